//! When each followed zone's SOA is checked next: at its poll time (every
//! `refresh`, sooner after a failure), or soon after a NOTIFY, but never
//! twice within [`NOTIFY_INTERVAL`] (RFC 1996 §4.7 leaves how soon to the
//! secondary; a flood of NOTIFYs, forged or not, costs the primary at most
//! one SOA query per zone per interval). A NOTIFY that arrives while the
//! zone waits out the interval is remembered and checked when it ends, so
//! the last serial announced is always read.
//!
//! Pure: the clock is a parameter, so the unit tests drive it.

use std::time::Duration;

use tokio::time::Instant;

/// The shortest time between two NOTIFY-triggered SOA checks of one zone.
pub const NOTIFY_INTERVAL: Duration = Duration::from_secs(1);

/// One zone's times.
#[derive(Debug, Clone, Copy)]
struct Times {
    /// The next SOA poll.
    poll: Instant,
    /// When the last check ended.
    checked: Option<Instant>,
    /// A NOTIFY came since the last check began.
    notified: bool,
}

impl Times {
    /// When this zone is due.
    fn due(&self, interval: Duration) -> Instant {
        if !self.notified {
            return self.poll;
        }
        match self.checked {
            Some(at) => self.poll.min(at + interval),
            // Not checked yet: the first poll is due anyway.
            None => self.poll,
        }
    }
}

/// The check times of every followed zone (indices as the follower's list).
#[derive(Debug)]
pub struct Schedule {
    zones: Vec<Times>,
    interval: Duration,
}

impl Schedule {
    /// `zones` zones, each polled first at `now`.
    pub fn new(zones: usize, now: Instant, interval: Duration) -> Self {
        Schedule {
            zones: vec![
                Times {
                    poll: now,
                    checked: None,
                    notified: false,
                };
                zones
            ],
            interval,
        }
    }

    /// A NOTIFY for `zone` was taken from the pending set.
    pub fn notified(&mut self, zone: usize) {
        if let Some(t) = self.zones.get_mut(zone) {
            t.notified = true;
        }
    }

    /// When the next zone is due (None without zones).
    pub fn next(&self) -> Option<Instant> {
        self.zones.iter().map(|t| t.due(self.interval)).min()
    }

    /// The zones due at `now`, their NOTIFYs consumed: the caller checks
    /// them and reports each with [`Schedule::checked`].
    pub fn due(&mut self, now: Instant) -> Vec<usize> {
        let interval = self.interval;
        self.zones
            .iter_mut()
            .enumerate()
            .filter(|(_, t)| t.due(interval) <= now)
            .map(|(i, t)| {
                t.notified = false;
                i
            })
            .collect()
    }

    /// `zone`'s check ended at `now`; its next poll is `next_poll` after.
    pub fn checked(&mut self, zone: usize, now: Instant, next_poll: Duration) {
        if let Some(t) = self.zones.get_mut(zone) {
            t.checked = Some(now);
            t.poll = now + next_poll;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFRESH: Duration = Duration::from_secs(3600);
    const MS: Duration = Duration::from_millis(1);

    /// Runs a schedule for `zones` from `start` with NOTIFYs for zone 0 at
    /// every `notify_every` until `until`; each check takes `check_takes`.
    /// Returns the times (ms after start) zone 0 was checked.
    fn run(notify_every: Duration, until: Duration, check_takes: Duration) -> Vec<u128> {
        let start = Instant::now();
        let mut s = Schedule::new(1, start, NOTIFY_INTERVAL);
        // The first poll at start.
        assert_eq!(s.due(start), [0]);
        s.checked(0, start, REFRESH);
        let mut checks = Vec::new();
        let mut now = start;
        let mut next_notify = start + notify_every;
        let end = start + until + Duration::from_secs(3);
        while now < end {
            if now >= next_notify && now < start + until {
                s.notified(0);
                next_notify += notify_every;
            }
            for z in s.due(now) {
                checks.push((now - start).as_millis());
                now += check_takes;
                s.checked(z, now, REFRESH);
            }
            now += MS;
        }
        checks
    }

    #[test]
    fn a_flood_of_notifies_checks_at_most_once_per_interval() {
        // A NOTIFY every millisecond for 10 s.
        let checks = run(MS, Duration::from_secs(10), Duration::ZERO);
        assert!((9..=11).contains(&checks.len()), "{checks:?}");
        for pair in checks.windows(2) {
            assert!(pair[1] - pair[0] >= 1000, "{checks:?}");
        }
        // The NOTIFYs of the last interval were remembered: a check after
        // the flood ended, no later than one interval.
        let last = *checks.last().expect("checked");
        assert!((10_000..=11_000).contains(&last), "{checks:?}");
    }

    #[test]
    fn a_notify_after_a_quiet_spell_is_checked_at_once() {
        let start = Instant::now();
        let mut s = Schedule::new(2, start, NOTIFY_INTERVAL);
        assert_eq!(s.due(start), [0, 1]);
        s.checked(0, start, REFRESH);
        s.checked(1, start, REFRESH);
        let later = start + Duration::from_secs(5);
        s.notified(1);
        assert_eq!(s.next(), Some(start + NOTIFY_INTERVAL));
        assert_eq!(s.due(later), [1]);
        assert!(s.due(later).is_empty(), "the NOTIFY was consumed");
        assert_eq!(s.next(), Some(start + REFRESH));
    }

    #[test]
    fn a_notify_during_a_check_brings_one_more_check() {
        let start = Instant::now();
        let mut s = Schedule::new(1, start, NOTIFY_INTERVAL);
        assert_eq!(s.due(start), [0]);
        // The check is in flight; a NOTIFY for a newer serial arrives.
        s.notified(0);
        let ended = start + 300 * MS;
        s.checked(0, ended, REFRESH);
        assert!(s.due(ended + 999 * MS).is_empty());
        assert_eq!(s.due(ended + NOTIFY_INTERVAL), [0]);
    }

    #[test]
    fn polls_come_every_refresh_without_notifies() {
        let start = Instant::now();
        let mut s = Schedule::new(1, start, NOTIFY_INTERVAL);
        s.due(start);
        s.checked(0, start, Duration::from_secs(60));
        assert_eq!(s.next(), Some(start + Duration::from_secs(60)));
        assert!(s.due(start + Duration::from_secs(59)).is_empty());
        assert_eq!(s.due(start + Duration::from_secs(60)), [0]);
    }

    #[test]
    fn slow_checks_space_themselves() {
        // Each check takes 1.5 s; NOTIFYs every 10 ms for 6 s.
        let checks = run(10 * MS, Duration::from_secs(6), 1500 * MS);
        for pair in checks.windows(2) {
            assert!(pair[1] - pair[0] >= 2500, "{checks:?}");
        }
        assert!(checks.len() <= 4, "{checks:?}");
    }
}
