//! The last NOTIFY sent per child and kind, for `signalbox explain`: when,
//! to which target, and what came back. Bounded ([`RECENT`] children and
//! kinds, the oldest forgotten first) so a million children who were all
//! notified once do not keep a million records; the log has the history.

use std::collections::{HashMap, VecDeque};

use hickory_proto::rr::Name;
use jiff::Timestamp;

use super::ledger::Kind;

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

/// The most recent [`SentRecord`] per (child, kind).
#[derive(Debug, Default)]
pub struct RecentSends {
    last: HashMap<(Name, Kind), (u64, SentRecord)>,
    order: VecDeque<((Name, Kind), u64)>,
    next: u64,
}

impl RecentSends {
    /// Remembers `record` as the last send of `kind` for `zone`.
    pub fn record(&mut self, zone: Name, kind: Kind, record: SentRecord) {
        let seq = self.next;
        self.next += 1;
        self.last.insert((zone.clone(), kind), (seq, record));
        self.order.push_back(((zone, kind), seq));
        while self.last.len() > RECENT || self.order.len() > 2 * RECENT {
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

    /// The last send of `kind` for `zone`, if remembered.
    pub fn get(&self, zone: &Name, kind: Kind) -> Option<&SentRecord> {
        self.last.get(&(zone.clone(), kind)).map(|(_, r)| r)
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
        recent.record(name(0), Kind::Cds, sent("failed: timeout"));
        recent.record(name(0), Kind::Cds, sent("acknowledged"));
        assert_eq!(
            recent.get(&name(0), Kind::Cds).map(|r| r.result.as_str()),
            Some("acknowledged")
        );
        assert!(recent.get(&name(0), Kind::Csync).is_none());
        for i in 1..=RECENT {
            recent.record(name(i), Kind::Cds, sent("acknowledged"));
        }
        assert!(recent.get(&name(0), Kind::Cds).is_none(), "the oldest went");
        assert!(recent.get(&name(RECENT), Kind::Cds).is_some());
        assert!(recent.last.len() <= RECENT && recent.order.len() <= 2 * RECENT);
    }
}
