//! The parent agent's timers: every job (a NOTIFY owed for a child and
//! type, or a look at a child's parent) waits here for its due time, each
//! job at most once, at the earliest time it was asked for. Jobs due at the
//! same instant come out in the order they were scheduled.

use std::collections::{BTreeMap, HashMap};

use hickory_proto::rr::Name;
use tokio::time::Instant;

use super::ledger::Kind;

/// One job of the agent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Job {
    /// Send the NOTIFY of `Kind` owed for the child.
    Notify(Name, Kind),
    /// Read the child's DS and NS at the parent.
    Observe(Name),
}

impl std::hash::Hash for Job {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Name equality ignores case, so the hash must too.
        match self {
            Job::Notify(zone, kind) => {
                0u8.hash(state);
                zone.to_lowercase().to_ascii().hash(state);
                kind.hash(state);
            }
            Job::Observe(zone) => {
                1u8.hash(state);
                zone.to_lowercase().to_ascii().hash(state);
            }
        }
    }
}

/// Jobs by due time.
#[derive(Debug, Default)]
pub(super) struct Timers {
    due: BTreeMap<(Instant, u64), Job>,
    queued: HashMap<Job, (Instant, u64)>,
    sequence: u64,
}

impl Timers {
    /// Puts `job` on the timer at `at` (moving it if it is already there
    /// and `at` is earlier).
    pub(super) fn schedule(&mut self, job: Job, at: Instant) {
        if let Some(&(when, seq)) = self.queued.get(&job) {
            if when <= at {
                return;
            }
            self.due.remove(&(when, seq));
        }
        self.sequence += 1;
        self.due.insert((at, self.sequence), job.clone());
        self.queued.insert(job, (at, self.sequence));
    }

    /// Takes the first job due at or before `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Job> {
        let (&(at, seq), _) = self.due.first_key_value()?;
        if at > now {
            return None;
        }
        let job = self.due.remove(&(at, seq))?;
        self.queued.remove(&job);
        Some(job)
    }

    /// When the next job is due.
    pub(super) fn next(&self) -> Option<Instant> {
        self.due.first_key_value().map(|(&(at, _), _)| at)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dns::parse_name;

    #[test]
    fn a_job_is_queued_once_at_its_earliest_time() {
        let zone = parse_name("Child.Example.").expect("valid");
        let lower = parse_name("child.example.").expect("valid");
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let mut timers = Timers::default();
        timers.schedule(Job::Observe(zone.clone()), later);
        timers.schedule(Job::Observe(lower.clone()), now);
        timers.schedule(Job::Observe(zone), later);
        timers.schedule(Job::Notify(lower.clone(), Kind::Cds), later);
        assert_eq!(timers.next(), Some(now));
        assert_eq!(timers.pop_due(now), Some(Job::Observe(lower.clone())));
        assert_eq!(timers.pop_due(now), None);
        assert_eq!(timers.pop_due(later), Some(Job::Notify(lower, Kind::Cds)));
        assert_eq!(timers.next(), None);
    }
}
