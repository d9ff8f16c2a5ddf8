//! Pure per-item work spread over the machine's cores: reading and parsing
//! the key files a scan found changed, the policy for every child of a
//! round. Scoped threads, one contiguous chunk each, results in input order.
//!
//! (Signing keeps its own loop in `zone::signer`: it stops at the first error
//! and counts progress per batch, which a per-item map would not.)
//!
//! A chunk whose thread panics never shifts the results of the others: each
//! of its items gets the caller's `failed` value instead (a key file that
//! reads as an error, a child that is held), so no result lands on the
//! wrong item.

/// `work` applied to every item, on all cores when there are at least
/// `min_items` items (fewer are not worth the threads); in input order.
pub fn map<T: Sync, R: Send>(
    items: &[T],
    min_items: usize,
    work: impl Fn(&T) -> R + Sync,
    failed: impl Fn(&T) -> R,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads <= 1 || items.len() < min_items.max(2) {
        return items.iter().map(&work).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                (
                    part,
                    scope.spawn(move || part.iter().map(work).collect::<Vec<_>>()),
                )
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for (part, handle) in handles {
            match handle.join() {
                Ok(results) => out.extend(results),
                Err(_) => {
                    tracing::error!(
                        items = part.len(),
                        "a worker thread failed; its items are marked failed"
                    );
                    out.extend(part.iter().map(&failed));
                }
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_their_order_and_a_failed_chunk_keeps_its_place() {
        let items: Vec<u32> = (0..1000).collect();
        assert_eq!(
            map(&items, 10, |i| i * 2, |_| 0),
            items.iter().map(|i| i * 2).collect::<Vec<_>>()
        );
        // Few items: no threads, same result.
        assert_eq!(map(&items[..3], 10, |i| i + 1, |_| 0), vec![1, 2, 3]);
        // A panicking chunk: its items get `failed`, the others their results.
        let out = map(
            &items,
            10,
            |&i| {
                assert!(i != 0, "boom");
                i
            },
            |_| u32::MAX,
        );
        assert_eq!(out.len(), items.len());
        if std::thread::available_parallelism().map_or(1, usize::from) > 1 {
            assert_eq!(out[0], u32::MAX);
            assert_eq!(out[999], 999, "later chunks are not shifted");
        }
    }
}
