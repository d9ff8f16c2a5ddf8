//! What the parent agent remembers per child for `signalbox explain`: the
//! last NOTIFY sent per kind (when, to which target, what came back) and
//! the last parent's-eye verdict ([`crate::check`]) before one. Bounded
//! ([`RECENT`] entries, the oldest forgotten first) so a million children
//! who were all notified once do not keep a million records; the log has
//! the history.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
};

use hickory_proto::rr::Name;
use jiff::Timestamp;

use super::ledger::Kind;
use crate::check::Verdict;

/// Children and kinds remembered, at most.
pub const RECENT: usize = 10_000;

/// One NOTIFY sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    /// When the answer (or the failure) came.
    pub time: Timestamp,
    /// The DSYNC target host and the address it was sent to.
    pub target: String,
    /// `acknowledged`, `rejected (RCODE)` or `failed: why`.
    pub result: String,
}

/// The parent's-eye check made before a NOTIFY.
#[derive(Debug, Clone)]
pub struct CheckRecord {
    /// When it was made.
    pub time: Timestamp,
    /// Before which NOTIFY.
    pub kind: Kind,
    /// What it found.
    pub verdict: Verdict,
}

/// The most recent value per key, for at most [`RECENT`] keys.
#[derive(Debug)]
pub struct Recent<K, V> {
    last: HashMap<K, (u64, V)>,
    order: VecDeque<(K, u64)>,
    next: u64,
}

impl<K, V> Default for Recent<K, V> {
    fn default() -> Self {
        Recent {
            last: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
        }
    }
}

/// The last [`SentRecord`] per (child, kind).
pub type RecentSends = Recent<(Name, Kind), SentRecord>;

/// The last [`CheckRecord`] per child.
pub type RecentChecks = Recent<Name, CheckRecord>;

impl<K: Hash + Eq + Clone, V> Recent<K, V> {
    /// Remembers `value` as the latest for `key`.
    pub fn record(&mut self, key: K, value: V) {
        let seq = self.next;
        self.next += 1;
        self.last.insert(key.clone(), (seq, value));
        self.order.push_back((key, seq));
        // A key recorded again leaves a stale position behind; drop those
        // first, so a few keys recorded over and over never push others out.
        if self.order.len() > 2 * RECENT {
            let last = &self.last;
            self.order
                .retain(|(key, seq)| last.get(key).is_some_and(|(latest, _)| latest == seq));
        }
        while self.last.len() > RECENT {
            let Some((key, seq)) = self.order.pop_front() else {
                break;
            };
            // Only the entry's latest position in the queue removes it.
            if self
                .last
                .get(&key)
                .is_some_and(|(latest, _)| *latest == seq)
            {
                self.last.remove(&key);
            }
        }
    }

    /// The latest value for `key`, if remembered.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.last.get(key).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_send_wins_and_the_oldest_children_are_forgotten() {
        let name = |i: usize| crate::dns::parse_name(&format!("c{i}.example.")).expect("valid");
        let sent = |result: &str| SentRecord {
            time: Timestamp::UNIX_EPOCH,
            target: "scanner.example. 192.0.2.1:53".into(),
            result: result.into(),
        };
        let mut recent = RecentSends::default();
        recent.record((name(0), Kind::Cds), sent("failed: timeout"));
        recent.record((name(0), Kind::Cds), sent("acknowledged"));
        assert_eq!(
            recent.get(&(name(0), Kind::Cds)).map(|r| r.result.as_str()),
            Some("acknowledged")
        );
        assert!(recent.get(&(name(0), Kind::Csync)).is_none());
        for i in 1..=RECENT {
            recent.record((name(i), Kind::Cds), sent("acknowledged"));
        }
        assert!(
            recent.get(&(name(0), Kind::Cds)).is_none(),
            "the oldest went"
        );
        assert!(recent.get(&(name(RECENT), Kind::Cds)).is_some());
        assert!(recent.last.len() <= RECENT && recent.order.len() <= 2 * RECENT);
        // One key recorded over and over does not push the others out.
        for _ in 0..3 * RECENT {
            recent.record((name(1), Kind::Cds), sent("waiting"));
        }
        assert!(
            recent.get(&(name(2), Kind::Cds)).is_some(),
            "still remembered"
        );
        assert!(recent.order.len() <= 2 * RECENT + 1);
    }
}
