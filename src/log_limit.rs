//! Rate-limited logging for events an outsider can trigger (a failed TSIG
//! check, a refused transfer, an unwanted NOTIFY, a flood): one event per
//! interval per kind, with the number suppressed since the last, so a
//! hostile sender can neither fill the disk nor hide the next real problem
//! in noise. Lock-free: the UDP threads may ask.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// One kind of event, logged at most once per interval.
#[derive(Debug)]
pub struct LogLimit {
    every_ms: u64,
    /// When the next event may be logged (milliseconds since the epoch).
    next_ms: AtomicU64,
    /// Events not logged since the last one that was.
    suppressed: AtomicU64,
}

impl LogLimit {
    /// At most one event per `every`.
    pub const fn new(every: Duration) -> LogLimit {
        LogLimit {
            every_ms: every.as_millis() as u64,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed)` when this event should be logged (with how many
    /// were suppressed since the last one), `None` when it is suppressed.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(now_ms())
    }

    fn allow_at(&self, now: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + self.every_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_interval_and_the_rest_are_counted() {
        let limit = LogLimit::new(Duration::from_secs(10));
        assert_eq!(limit.allow_at(1_000), Some(0));
        for at in 1_001..1_100 {
            assert_eq!(limit.allow_at(at), None);
        }
        assert_eq!(limit.allow_at(10_999), None);
        assert_eq!(limit.allow_at(11_000), Some(100));
        assert_eq!(limit.allow_at(11_001), None);
    }
}
