//! Pure per-item work spread over the machine's cores: the policy for every
//! child of a round; and over more threads than cores for work that waits
//! for the disk: `stat`ing and reading the key files a scan lists. Scoped
//! threads, one contiguous chunk each, results in input order.
//!
//! (Signing keeps its own loop in `zone::signer`: it stops at the first error
//! and counts progress per batch, which a per-item map would not.)
//!
//! A chunk whose thread panics never shifts the results of the others: each
//! of its items gets the caller's `failed` value instead (a key file that
//! reads as an error, a child that is held), so no result lands on the
//! wrong item.

/// Threads for work that mostly waits for the disk ([`map_blocking`]):
/// a `stat` or `read` of a file not in the page cache blocks its thread, so
/// a few per core keep the disk's queue full (a cold start reads a million
/// key files).
pub const BLOCKING_THREADS: usize = 16;

/// `work` applied to every item, on all cores when there are at least
/// `min_items` items (fewer are not worth the threads); in input order.
pub fn map<T: Sync, R: Send>(
    items: &[T],
    min_items: usize,
    work: impl Fn(&T) -> R + Sync,
    failed: impl Fn(&T) -> R,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    map_on(threads, items, min_items, work, failed)
}

/// [`map`] for work that blocks on the disk (`stat`, `read` of files that
/// may not be cached): on [`BLOCKING_THREADS`] threads, whatever the cores.
pub fn map_blocking<T: Sync, R: Send>(
    items: &[T],
    min_items: usize,
    work: impl Fn(&T) -> R + Sync,
    failed: impl Fn(&T) -> R,
) -> Vec<R> {
    map_on(BLOCKING_THREADS, items, min_items, work, failed)
}

/// [`map`] on `threads` threads.
fn map_on<T: Sync, R: Send>(
    threads: usize,
    items: &[T],
    min_items: usize,
    work: impl Fn(&T) -> R + Sync,
    failed: impl Fn(&T) -> R,
) -> Vec<R> {
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

    #[test]
    fn blocking_work_runs_on_more_threads_than_cores_in_order() {
        let items: Vec<u32> = (0..1000).collect();
        let threads = std::sync::Mutex::new(std::collections::HashSet::new());
        let out = map_blocking(
            &items,
            10,
            |i| {
                threads
                    .lock()
                    .map(|mut t| t.insert(std::thread::current().id()))
                    .ok();
                i * 3
            },
            |_| 0,
        );
        assert_eq!(out, items.iter().map(|i| i * 3).collect::<Vec<_>>());
        let used = threads.lock().map(|t| t.len()).unwrap_or(0);
        assert_eq!(used, BLOCKING_THREADS, "one thread per chunk");
        // A chunk that panics keeps its place here too.
        let out = map_blocking(
            &items,
            10,
            |&i| {
                assert!(i < 990, "boom");
                i
            },
            |_| u32::MAX,
        );
        // 1000 items in 16 chunks of 63: the last one starts at 945.
        assert_eq!(out[944], 944);
        assert_eq!(out[945], u32::MAX);
    }
}
