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

use hickory_proto::rr::Name;
use rustc_hash::FxHashMap;

use crate::{
    plan::child_key,
    policy::DelegationState,
};

/// The per-child states and their counts.
#[derive(Debug, Default)]
pub(super) struct Delegations {
    by_child: FxHashMap<u64, DelegationState>,
    counts: [usize; DelegationState::ALL.len()],
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
        if let Some(old) = self.by_child.remove(&child_key(name)) {
            self.counts[old.index()] -= 1;
        }
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
        assert_eq!(table.set(child_key(&a), DelegationState::Bootstrapping), None);
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
}
