//! Every child's delegation state between rounds, for
//! `signalbox_children{state}`, `status` and `explain`
//! ([`crate::policy::DelegationState`] says what each state means).
//!
//! A round recomputes only the children it touches, so the state of every
//! other child is kept from the round that last planned it. At a million
//! children the table must stay small: it is keyed by
//! [`crate::plan::child_key`], a 64-bit hash of the name, not by the name
//! (about 24 bytes per child instead of a `Name`'s hundred), and the count
//! per state is kept as states change, so a scrape costs nothing per child.
//! The few held children are kept by name too, with why, so that their
//! release can be told (`zone-held`, `zone-released`: [`crate::event`]).

use hickory_proto::rr::Name;
use rustc_hash::FxHashMap;

use crate::{
    dns::name::display,
    event::{Event, EventKind},
    plan::child_key,
    policy::DelegationState,
};

/// The per-child states and their counts.
#[derive(Debug, Default)]
pub(super) struct Delegations {
    by_child: FxHashMap<u64, DelegationState>,
    counts: [usize; DelegationState::ALL.len()],
    /// The held children by name, with why.
    held: FxHashMap<u64, (Name, String)>,
}

impl Delegations {
    /// Records `state` for the child with key `key`; returns its state
    /// before, if it had one.
    pub(super) fn set(&mut self, key: u64, state: DelegationState) -> Option<DelegationState> {
        let before = self.by_child.insert(key, state);
        if let Some(old) = before {
            self.counts[old.index()] -= 1;
        }
        self.counts[state.index()] += 1;
        before
    }

    /// Forgets a name that is no child any more.
    pub(super) fn remove(&mut self, name: &Name) {
        let key = child_key(name);
        if let Some(old) = self.by_child.remove(&key) {
            self.counts[old.index()] -= 1;
        }
        self.held.remove(&key);
    }

    /// Records a round's planned `states` and its `held` children (with
    /// why); returns the `zone-held` and `zone-released` events. In a round
    /// the safety brake held nothing new was published, so states stay as
    /// they were (a child without one counts as held) and no child is
    /// released.
    /// With `complete` (the round planned every child), children it did not
    /// plan are no children any more and are forgotten (a `[[zones]]` set
    /// removed by a reload, a child whose keys are gone).
    pub(super) fn record(
        &mut self,
        states: Vec<(u64, DelegationState)>,
        held: Vec<(Name, String)>,
        brake_held: bool,
        complete: bool,
    ) -> Vec<Event> {
        if complete && !brake_held {
            let planned: rustc_hash::FxHashSet<u64> = states.iter().map(|(key, _)| *key).collect();
            let counts = &mut self.counts;
            self.by_child.retain(|key, state| {
                let keep = planned.contains(key);
                if !keep {
                    counts[state.index()] -= 1;
                }
                keep
            });
            self.held.retain(|key, _| planned.contains(key));
        }
        let mut events = Vec::new();
        for (name, reason) in held {
            let key = child_key(&name);
            let known = self.held.get(&key).is_some_and(|(_, r)| *r == reason);
            if !known {
                events.push(
                    Event::new(
                        EventKind::ZoneHeld,
                        "nothing new is published for the zone; its signals stay as they are",
                    )
                    .with("zone", display(&name))
                    .with("reason", reason.clone()),
                );
            }
            self.held.insert(key, (name, reason));
        }
        for (key, state) in states {
            if brake_held {
                if !self.by_child.contains_key(&key) {
                    self.set(key, DelegationState::Held);
                }
                continue;
            }
            self.set(key, state);
            if state != DelegationState::Held {
                if let Some((name, _)) = self.held.remove(&key) {
                    events.push(
                        Event::new(EventKind::ZoneReleased, "the zone is planned again")
                            .with("zone", display(&name))
                            .with("state", state.as_str()),
                    );
                }
            }
        }
        events
    }

    /// Why `name` is held, when it is.
    pub(super) fn held_reason(&self, name: &Name) -> Option<&str> {
        self.held.get(&child_key(name)).map(|(_, r)| r.as_str())
    }

    /// The state of `name`, when it was planned.
    pub(super) fn get(&self, name: &Name) -> Option<DelegationState> {
        self.by_child.get(&child_key(name)).copied()
    }

    /// Children per state, in [`DelegationState::ALL`] order.
    pub(super) fn counts(&self) -> [usize; DelegationState::ALL.len()] {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_every_change_and_removal() {
        let name = |n: &str| crate::dns::parse_name(n).expect("valid");
        let (a, b) = (name("a.example."), name("b.example."));
        let mut table = Delegations::default();
        assert_eq!(
            table.set(child_key(&a), DelegationState::Bootstrapping),
            None
        );
        table.set(child_key(&b), DelegationState::Bootstrapping);
        assert_eq!(
            table.set(child_key(&a), DelegationState::InSync),
            Some(DelegationState::Bootstrapping)
        );
        let counts = table.counts();
        assert_eq!(counts[DelegationState::Bootstrapping.index()], 1);
        assert_eq!(counts[DelegationState::InSync.index()], 1);
        table.remove(&name("A.Example."));
        assert_eq!(table.get(&a), None, "case does not matter");
        assert_eq!(table.counts().iter().sum::<usize>(), 1);
        assert_eq!(table.get(&b), Some(DelegationState::Bootstrapping));
    }

    #[test]
    fn a_hold_and_its_release_are_events_once_each() {
        let a = crate::dns::parse_name("a.example.").expect("valid");
        let key = child_key(&a);
        let mut table = Delegations::default();
        let held = || vec![(a.clone(), "a key cannot be read".to_string())];
        let kinds = |events: Vec<Event>| events.iter().map(|e| e.kind).collect::<Vec<_>>();
        let first = table.record(vec![(key, DelegationState::Held)], held(), false, false);
        assert_eq!(kinds(first), [EventKind::ZoneHeld]);
        let again = table.record(vec![(key, DelegationState::Held)], held(), false, false);
        assert!(again.is_empty(), "still held for the same reason: no event");
        assert_eq!(table.held_reason(&a), Some("a key cannot be read"));
        // A round the brake held releases nothing.
        let braked = table.record(vec![(key, DelegationState::InSync)], vec![], true, true);
        assert!(braked.is_empty());
        assert_eq!(table.get(&a), Some(DelegationState::Held));
        let released = table.record(vec![(key, DelegationState::InSync)], vec![], false, false);
        assert_eq!(released[0].kind, EventKind::ZoneReleased);
        assert_eq!(released[0].field("state"), Some("in_sync"));
        assert_eq!(table.held_reason(&a), None);
        // A round that planned every child forgets the others (a set
        // removed by a reload); their counts go with them.
        let b = crate::dns::parse_name("b.example.").expect("valid");
        table.record(
            vec![(child_key(&b), DelegationState::Rolling)],
            vec![],
            false,
            false,
        );
        assert_eq!(table.counts().iter().sum::<usize>(), 2);
        table.record(
            vec![(child_key(&b), DelegationState::Rolling)],
            vec![],
            false,
            true,
        );
        assert_eq!(table.get(&a), None);
        assert_eq!(table.counts().iter().sum::<usize>(), 1);
        assert_eq!(table.counts()[DelegationState::Rolling.index()], 1);
    }
}
