//! Every child's delegation state between rounds, for
//! `signalbox_children{state}`, `status` and `explain`
//! ([`crate::policy::DelegationState`] says what each state means).
//!
//! A round recomputes only the children it touches, so the state of every
//! other child is kept from the round that last planned it. At a million
//! children the table must stay small: one 64-bit word per child, its key
//! ([`crate::plan::child_key`], a keyed 64-bit hash of the name) with the
//! low octet replaced by the state, in a vector sorted by key (8 bytes per
//! child; a hash table of the 64-bit keys took 34 at 1M, its 16-byte
//! entries in a table twice their number). Two children whose keys agree
//! in their upper 56 bits would share a state (at a million children,
//! about one chance in 150,000; the keys are keyed per process, so no
//! name can be chosen to collide): a state is only counted and shown,
//! and a name outside the table taken for a child when it checks whether
//! an error report concerns one (`error_reports`) has about one chance in
//! 10^11 per look-up.
//! The count per state is kept as states change, so a scrape costs
//! nothing per child. The few held children are kept by name too, with
//! why, so that their release can be told (`zone-held`, `zone-released`:
//! [`crate::event`]).

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
    by_child: States,
    counts: [usize; DelegationState::ALL.len()],
    /// The held children by name, with why.
    held: FxHashMap<u64, (Name, String)>,
}

/// The bits of a child's key that identify it in [`States`].
const ID: u64 = !0xff;

/// Every child's state: a sorted vector of words, each a child's key with
/// the state's index in its low octet.
#[derive(Debug, Default)]
struct States {
    words: Vec<u64>,
}

impl States {
    fn word(key: u64, state: DelegationState) -> u64 {
        (key & ID) | state.index() as u64
    }

    fn state_of(word: u64) -> DelegationState {
        // Written by `word` from an index of `ALL`.
        DelegationState::ALL[(word & !ID) as usize % DelegationState::ALL.len()]
    }

    fn find(&self, key: u64) -> Result<usize, usize> {
        self.words
            .binary_search_by(|word| (word & ID).cmp(&(key & ID)))
    }

    fn get(&self, key: u64) -> Option<DelegationState> {
        self.find(key).ok().map(|at| Self::state_of(self.words[at]))
    }

    /// Sets the state of a child that has one; `Err` when it has none.
    fn update(&mut self, key: u64, state: DelegationState) -> Result<DelegationState, ()> {
        let at = self.find(key).map_err(|_| ())?;
        let before = Self::state_of(self.words[at]);
        self.words[at] = Self::word(key, state);
        Ok(before)
    }

    /// Adds children that have no state yet (`words` made by [`Self::word`],
    /// none of them here): one merge, however many. Of two words for one
    /// child, the later wins, as with [`Self::update`].
    fn add(&mut self, mut words: Vec<u64>) {
        words.reverse();
        // Stable, so the later of a child's words (first after `reverse`) stays.
        words.sort_by_key(|word| word & ID);
        words.dedup_by_key(|word| *word & ID);
        if self.words.is_empty() {
            self.words = words;
            return;
        }
        let old = std::mem::take(&mut self.words);
        let mut merged = Vec::with_capacity(old.len() + words.len());
        let (mut a, mut b) = (old.into_iter().peekable(), words.into_iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if (x & ID) <= (y & ID) => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            merged.extend(next);
        }
        self.words = merged;
    }

    /// Exactly these children, with these states (later ones win).
    fn replace(&mut self, states: &[(u64, DelegationState)]) {
        self.words = Vec::new();
        self.add(states.iter().map(|(k, s)| Self::word(*k, *s)).collect());
    }

    fn iter(&self) -> impl Iterator<Item = DelegationState> + '_ {
        self.words.iter().map(|word| Self::state_of(*word))
    }
}

impl Delegations {
    /// Records `state` for the child with key `key`; returns its state
    /// before, if it had one. (A new child costs a merge: rounds record
    /// theirs all at once, with [`Self::record`].)
    #[cfg(test)]
    fn set(&mut self, key: u64, state: DelegationState) -> Option<DelegationState> {
        let before = self.by_child.update(key, state).ok();
        match before {
            Some(old) => self.counts[old.index()] -= 1,
            None => self.by_child.add(vec![States::word(key, state)]),
        }
        self.counts[state.index()] += 1;
        before
    }

    /// Forgets names that are no children any more: one pass over the
    /// table, however many (a reload can drop a million).
    pub(super) fn remove_all<'a>(&mut self, names: impl IntoIterator<Item = &'a Name>) {
        self.forget(names.into_iter().map(child_key).collect());
    }

    /// Forgets the children with these keys.
    fn forget(&mut self, keys: rustc_hash::FxHashSet<u64>) {
        if keys.is_empty() {
            return;
        }
        let ids: rustc_hash::FxHashSet<u64> = keys.iter().map(|key| key & ID).collect();
        self.by_child
            .words
            .retain(|word| !ids.contains(&(word & ID)));
        self.held.retain(|key, _| !keys.contains(key));
        self.recount();
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
        if brake_held {
            let new: Vec<u64> = states
                .iter()
                .filter(|(key, _)| self.by_child.get(*key).is_none())
                .map(|(key, _)| States::word(*key, DelegationState::Held))
                .collect();
            self.by_child.add(new);
            self.recount();
            return events;
        }
        for (key, state) in &states {
            if *state != DelegationState::Held {
                if let Some((name, _)) = self.held.remove(key) {
                    events.push(
                        Event::new(EventKind::ZoneReleased, "the zone is planned again")
                            .with("zone", display(&name))
                            .with("state", state.as_str()),
                    );
                }
            }
        }
        if complete {
            self.by_child.replace(&states);
        } else {
            let mut new = Vec::new();
            for (key, state) in states {
                if self.by_child.update(key, state).is_err() {
                    new.push(States::word(key, state));
                }
            }
            self.by_child.add(new);
        }
        self.recount();
        events
    }

    /// Counts the children per state again (once per round: a pass over
    /// 8 bytes per child).
    fn recount(&mut self) {
        self.counts = [0; DelegationState::ALL.len()];
        for state in self.by_child.iter() {
            self.counts[state.index()] += 1;
        }
    }

    /// Why `name` is held, when it is.
    pub(super) fn held_reason(&self, name: &Name) -> Option<&str> {
        self.held.get(&child_key(name)).map(|(_, r)| r.as_str())
    }

    /// The state of `name`, when it was planned.
    pub(super) fn get(&self, name: &Name) -> Option<DelegationState> {
        self.by_child.get(child_key(name))
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
        table.remove_all([&name("A.Example.")]);
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

    /// The packed table agrees with a plain map of the same states through
    /// partial and complete rounds (a complete one forgets who it did not
    /// plan), and so do the counts.
    #[test]
    fn the_packed_table_agrees_with_a_map_through_rounds() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let keys: Vec<u64> = (0..2000).map(|_| next()).collect();
        let mut table = Delegations::default();
        let mut model: std::collections::HashMap<u64, DelegationState> = Default::default();
        for round in 0..20usize {
            let complete = round % 5 == 4;
            let planned: Vec<(u64, DelegationState)> = keys
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    if complete {
                        i % 4 != round % 4
                    } else {
                        (i + round) % 3 == 0
                    }
                })
                .map(|(i, key)| {
                    (
                        *key,
                        DelegationState::ALL[(i + round) % DelegationState::ALL.len()],
                    )
                })
                .collect();
            let mut planned = planned;
            // A child planned twice: the later state wins, known or new.
            if let Some(&(key, _)) = planned.first() {
                planned.push((key, DelegationState::Held));
            }
            if let Some(&(key, _)) = planned.get(planned.len() / 2) {
                planned.push((key, DelegationState::Rolling));
            }
            table.record(planned.clone(), vec![], false, complete);
            if complete {
                model.clear();
            }
            model.extend(planned.iter().map(|(key, state)| (key & ID, *state)));
            if round % 7 == 3 {
                let gone: rustc_hash::FxHashSet<u64> = keys.iter().step_by(7).copied().collect();
                table.forget(gone.clone());
                model.retain(|id, _| !gone.iter().any(|key| key & ID == *id));
            }
            for key in &keys {
                assert_eq!(table.by_child.get(*key), model.get(&(key & ID)).copied());
            }
            let mut counts = [0; DelegationState::ALL.len()];
            for state in model.values() {
                counts[state.index()] += 1;
            }
            assert_eq!(table.counts(), counts, "round {round}");
            assert!(table.by_child.words.is_sorted_by_key(|w| w & ID));
        }
    }
}
