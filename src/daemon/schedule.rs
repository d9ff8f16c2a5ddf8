//! When each zone's keys next change something: a key timing event
//! (Publish, Activate, SyncPublish, ... in BIND's key files) at time T wakes
//! the daemon at T and recomputes that zone. One entry per zone: a new time
//! replaces the old one.

use std::collections::{BTreeMap, BTreeSet};

use hickory_proto::rr::Name;
use jiff::Timestamp;
use rustc_hash::FxHashMap;

/// Zones by the Unix second of their next key timing event.
#[derive(Debug, Default)]
pub(super) struct KeySchedule {
    /// Unix second -> zones with an event then.
    by_time: BTreeMap<i64, BTreeSet<Name>>,
    /// Zone -> its entry in `by_time`.
    by_zone: FxHashMap<Name, i64>,
}

impl KeySchedule {
    /// Sets `zone`'s next event (`None`: it has none).
    pub(super) fn set(&mut self, zone: &Name, next: Option<Timestamp>) {
        self.remove(zone);
        if let Some(next) = next {
            let at = next.as_second();
            self.by_time.entry(at).or_default().insert(zone.clone());
            self.by_zone.insert(zone.clone(), at);
        }
    }

    /// Forgets `zone`.
    pub(super) fn remove(&mut self, zone: &Name) {
        if let Some(at) = self.by_zone.remove(zone) {
            if let Some(set) = self.by_time.get_mut(&at) {
                set.remove(zone);
                if set.is_empty() {
                    self.by_time.remove(&at);
                }
            }
        }
    }

    /// When the next event is due (Unix seconds).
    pub(super) fn next(&self) -> Option<i64> {
        self.by_time.keys().next().copied()
    }

    /// Takes the zones whose events are due at `now`.
    pub(super) fn due(&mut self, now: Timestamp) -> BTreeSet<Name> {
        let mut due = BTreeSet::new();
        while let Some((&at, _)) = self.by_time.first_key_value() {
            if at > now.as_second() {
                break;
            }
            if let Some(names) = self.by_time.remove(&at) {
                for name in names {
                    self.by_zone.remove(&name);
                    due.insert(name);
                }
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse_name;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid")
    }

    #[test]
    fn events_come_due_in_time_order_and_a_new_time_replaces_the_old() {
        let (a, b) = (
            parse_name("a.example.").expect("valid"),
            parse_name("b.example.").expect("valid"),
        );
        let mut schedule = KeySchedule::default();
        schedule.set(&a, Some(at(200)));
        schedule.set(&b, Some(at(100)));
        assert_eq!(schedule.next(), Some(100));
        schedule.set(&b, Some(at(300)));
        assert_eq!(schedule.next(), Some(200));
        assert!(schedule.due(at(199)).is_empty());
        assert_eq!(schedule.due(at(250)), BTreeSet::from([a.clone()]));
        assert_eq!(schedule.next(), Some(300));
        schedule.set(&b, None);
        assert_eq!(schedule.next(), None);
        schedule.set(&a, Some(at(400)));
        schedule.remove(&a);
        assert!(schedule.due(at(1000)).is_empty());
    }
}
