//! The followed zones a NOTIFY is waiting for: a bounded set, one entry per
//! zone however many NOTIFYs arrive (RFC 1996 §4.7 asks a secondary to
//! treat a NOTIFY as "check the SOA soon", so a burst for one zone is one
//! pending check).
//!
//! The UDP and TCP threads put zones in ([`Pending::notified`], no await,
//! one atomic swap when the zone already waits); the follower takes them
//! out ([`Pending::take`]) after [`Pending::wait`]. A taken zone stays
//! marked until its SOA check begins ([`Pending::checking`]), so NOTIFYs
//! while it waits out its rate limit neither queue nor wake the follower;
//! one that arrives during the check queues the zone again: the last
//! serial a primary announces is never missed. At most `capacity` zones wait at a
//! time; a NOTIFY for one more is dropped and counted (its primary gets no
//! answer and retransmits, RFC 1996 §3.6; the SOA poll finds it anyway), so
//! memory never grows with the number of NOTIFYs.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use hickory_proto::rr::Name;
use tokio::sync::Notify;

/// How many followed zones may wait for their SOA check at once.
pub const CAPACITY: usize = 4096;

/// What became of one NOTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// The zone now waits for its SOA check.
    Queued,
    /// The zone was already waiting: this NOTIFY adds nothing.
    Coalesced,
    /// The set is full: dropped and counted.
    Dropped,
    /// Not a followed zone.
    Unknown,
}

/// Counts of what the set did, since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingCounts {
    /// NOTIFYs that queued their zone.
    pub queued: u64,
    /// NOTIFYs for a zone already waiting.
    pub coalesced: u64,
    /// NOTIFYs dropped because `capacity` zones were waiting.
    pub dropped: u64,
}

/// The followed zones waiting for their SOA check (see the module doc).
#[derive(Debug)]
pub struct Pending {
    /// Each followed zone's index in `waiting`.
    index: HashMap<Name, usize>,
    /// Per zone: queued (or about to be), or taken and not yet checked.
    waiting: Box<[AtomicBool]>,
    /// The waiting zones in arrival order, at most `capacity`.
    queue: Mutex<VecDeque<usize>>,
    capacity: usize,
    wake: Notify,
    queued: AtomicU64,
    coalesced: AtomicU64,
    dropped: AtomicU64,
}

impl Pending {
    /// A set for `zones` (indexed in this order) holding at most `capacity`.
    pub fn new(zones: &[Name], capacity: usize) -> Self {
        Pending {
            index: zones
                .iter()
                .enumerate()
                .map(|(i, z)| (z.clone(), i))
                .collect(),
            waiting: zones.iter().map(|_| AtomicBool::new(false)).collect(),
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(zones.len()))),
            capacity,
            wake: Notify::new(),
            queued: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// A NOTIFY for `zone` was accepted: queue its SOA check.
    pub fn notified(&self, zone: &Name) -> Queued {
        let Some(&i) = self.index.get(zone) else {
            return Queued::Unknown;
        };
        if self.waiting[i].swap(true, Ordering::AcqRel) {
            self.coalesced.fetch_add(1, Ordering::Relaxed);
            return Queued::Coalesced;
        }
        {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.len() >= self.capacity {
                drop(queue);
                self.waiting[i].store(false, Ordering::Release);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Queued::Dropped;
            }
            queue.push_back(i);
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        Queued::Queued
    }

    /// Waits until a zone is queued (at once when one was since the last
    /// [`Pending::take`]).
    pub async fn wait(&self) {
        self.wake.notified().await;
    }

    /// Takes every queued zone (indices in the order given to `new`),
    /// oldest first. They stay marked: NOTIFYs for them are coalesced
    /// until [`Pending::checking`].
    pub fn take(&self) -> Vec<usize> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.drain(..).collect()
    }

    /// `zone`'s SOA check begins: a NOTIFY from now on queues it again.
    pub fn checking(&self, zone: usize) {
        if let Some(flag) = self.waiting.get(zone) {
            flag.store(false, Ordering::Release);
        }
    }

    /// What the set did so far.
    pub fn counts(&self) -> PendingCounts {
        PendingCounts {
            queued: self.queued.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse_name;

    fn zones(n: usize) -> Vec<Name> {
        (0..n)
            .map(|i| parse_name(&format!("z{i}.example.")).expect("valid"))
            .collect()
    }

    #[test]
    fn a_burst_for_one_zone_is_one_pending_check() {
        let z = zones(2);
        let pending = Pending::new(&z, CAPACITY);
        assert_eq!(pending.notified(&z[1]), Queued::Queued);
        for _ in 0..10_000 {
            assert_eq!(pending.notified(&z[1]), Queued::Coalesced);
        }
        assert_eq!(pending.notified(&z[0]), Queued::Queued);
        assert_eq!(pending.take(), [1, 0]);
        assert!(pending.take().is_empty());
        // Taken but not yet checked (waiting out the rate limit): still
        // one pending check, and nothing queued to wake the follower.
        assert_eq!(pending.notified(&z[1]), Queued::Coalesced);
        assert!(pending.take().is_empty());
        let counts = pending.counts();
        assert_eq!((counts.queued, counts.coalesced), (2, 10_001));
    }

    #[test]
    fn a_notify_once_the_check_began_queues_the_zone_again() {
        let z = zones(1);
        let pending = Pending::new(&z, CAPACITY);
        pending.notified(&z[0]);
        assert_eq!(pending.take(), [0]);
        pending.checking(0);
        // The follower now checks the SOA; a NOTIFY meanwhile is not lost.
        assert_eq!(pending.notified(&z[0]), Queued::Queued);
        assert_eq!(pending.take(), [0]);
    }

    #[test]
    fn at_most_capacity_zones_wait_and_the_rest_are_counted() {
        let z = zones(5);
        let pending = Pending::new(&z, 3);
        let got: Vec<Queued> = z.iter().map(|n| pending.notified(n)).collect();
        assert_eq!(
            got,
            [
                Queued::Queued,
                Queued::Queued,
                Queued::Queued,
                Queued::Dropped,
                Queued::Dropped
            ]
        );
        // A dropped zone is not marked waiting: once there is room it queues.
        assert_eq!(pending.notified(&z[4]), Queued::Dropped);
        assert_eq!(pending.take(), [0, 1, 2]);
        assert_eq!(pending.notified(&z[4]), Queued::Queued);
        for i in 0..3 {
            pending.checking(i);
        }
        assert_eq!(pending.counts().dropped, 3);
        let unknown = parse_name("other.example.").expect("valid");
        assert_eq!(pending.notified(&unknown), Queued::Unknown);
    }

    #[test]
    fn a_flood_from_many_threads_leaves_one_entry() {
        let z = zones(1);
        let pending = std::sync::Arc::new(Pending::new(&z, CAPACITY));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (p, zone) = (pending.clone(), z[0].clone());
                std::thread::spawn(move || {
                    for _ in 0..5_000 {
                        p.notified(&zone);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no panic");
        }
        assert_eq!(pending.take(), [0]);
        assert_eq!(pending.counts().queued + pending.counts().coalesced, 20_000);
    }

    #[tokio::test]
    async fn wait_returns_at_once_when_a_zone_was_queued_before() {
        let z = zones(1);
        let pending = Pending::new(&z, CAPACITY);
        pending.notified(&z[0]);
        tokio::time::timeout(std::time::Duration::from_secs(1), pending.wait())
            .await
            .expect("the permit was stored");
        assert_eq!(pending.take(), [0]);
    }
}
