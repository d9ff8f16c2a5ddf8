//! Rate-limited logging for events an outsider can trigger (a failed TSIG
//! check, a refused transfer, an unwanted NOTIFY, a flood): a burst of
//! events per window passes, the rest are counted and the count goes with
//! the next event that passes, so a hostile sender can neither fill the
//! disk nor hide the next real problem in noise. Lock-free: the UDP threads
//! call it; at a window's turn a few more may pass, never fewer.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::dns::wire::unix_now;

/// One kind of event, logged at most `burst` times per window.
#[derive(Debug)]
pub struct LogLimit {
    burst: u32,
    window_s: u64,
    window: AtomicU64,
    used: AtomicU32,
    suppressed: AtomicU64,
    total: AtomicU64,
}

impl Default for LogLimit {
    /// Five events per ten seconds.
    fn default() -> Self {
        LogLimit::new(5, 10)
    }
}

impl LogLimit {
    /// `burst` events per `window_s` seconds (at least one second).
    pub const fn new(burst: u32, window_s: u64) -> LogLimit {
        LogLimit {
            burst,
            window_s: if window_s == 0 { 1 } else { window_s },
            window: AtomicU64::new(0),
            used: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    /// One event now: `Some(events suppressed since the last one logged)`
    /// when it may be logged.
    pub fn allow(&self) -> Option<u64> {
        self.pass(unix_now())
    }

    /// One event at `now` (UNIX seconds), as [`LogLimit::allow`].
    pub fn pass(&self, now: u64) -> Option<u64> {
        self.total.fetch_add(1, Ordering::Relaxed);
        let window = now / self.window_s;
        let seen = self.window.load(Ordering::Relaxed);
        if seen != window
            && self
                .window
                .compare_exchange(seen, window, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used.store(0, Ordering::Relaxed);
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < self.burst {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Every event so far, logged or not.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_per_window_and_the_rest_are_counted() {
        let limit = LogLimit::default();
        let t = 1_000_000;
        let passed: Vec<Option<u64>> = (0..8).map(|_| limit.pass(t)).collect();
        assert_eq!(
            passed,
            [
                Some(0),
                Some(0),
                Some(0),
                Some(0),
                Some(0),
                None,
                None,
                None
            ]
        );
        // Still the same window.
        assert_eq!(limit.pass(t + 9), None);
        // The next window: the first event reports the four suppressed.
        assert_eq!(limit.pass(t + 10), Some(4));
        assert_eq!(limit.pass(t + 10), Some(0));
        assert_eq!(limit.total(), 11);
    }
}
