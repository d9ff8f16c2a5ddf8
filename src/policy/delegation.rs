//! Where a child's delegation stands, in one word: the state
//! `signalbox_children{state}` counts and `explain` names.
//!
//! The signals the policy wants (the apex CDS/CDNSKEY, RFC 7344 §4) are
//! compared with the DS RRset at the parent (RFC 4034 §5). The parent's
//! side comes from the parent observer when it has looked; without one it
//! is read from the key metadata, as the policy itself reads it
//! ([`super::Lifecycle`]: `DSPublish` reached and `DSDelete` not, or BIND's
//! `DSState: omnipresent`). Keys are compared by (key tag, algorithm), the
//! pair a DS names (RFC 4034 §5.1), so a parent that holds a SHA-384 DS
//! where the CDS offers SHA-256 still counts as in sync.
//!
//! | state | when |
//! |---|---|
//! | `held` | nothing new may be published for the child (unreadable keys, a signer that disagrees with the key directory, a held round) |
//! | `error` | a decision stopped a signal (a `_dsboot` name too long for an NS host, RFC 9615 §2) |
//! | `deleting` | the RFC 8078 delete signal is out and the parent still has DS |
//! | `bootstrapping` | signals are out and the parent has no DS yet (RFC 9615 §4) |
//! | `rolling` | the keys the signals name differ from those the parent's DS names |
//! | `in_sync` | the parent's DS names exactly the signalled keys, or nothing is signalled and the parent has DS |
//! | `insecure` | no signals and no DS (including a finished delete) |

use std::sync::Arc;

use jiff::Timestamp;

use super::{Lifecycle, ParentView, ZoneSignals};
use crate::{dns::Rdata, dnssec::key_tag, keys::Key};

/// A child's delegation state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DelegationState {
    /// Signals out, no DS at the parent.
    Bootstrapping,
    /// The signals name other keys than the parent's DS.
    Rolling,
    /// The parent's DS matches the signals.
    InSync,
    /// No signals, no DS.
    Insecure,
    /// The delete signal is out, the parent still has DS.
    Deleting,
    /// Nothing new may be published for the child.
    Held,
    /// A decision stopped a signal.
    Error,
}

impl DelegationState {
    /// Every state, in the order metrics list them.
    pub const ALL: [DelegationState; 7] = [
        DelegationState::Bootstrapping,
        DelegationState::Rolling,
        DelegationState::InSync,
        DelegationState::Insecure,
        DelegationState::Deleting,
        DelegationState::Held,
        DelegationState::Error,
    ];

    /// The label value (`signalbox_children{state="in_sync"}`).
    pub fn as_str(self) -> &'static str {
        match self {
            DelegationState::Bootstrapping => "bootstrapping",
            DelegationState::Rolling => "rolling",
            DelegationState::InSync => "in_sync",
            DelegationState::Insecure => "insecure",
            DelegationState::Deleting => "deleting",
            DelegationState::Held => "held",
            DelegationState::Error => "error",
        }
    }

    /// Its place in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for DelegationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The keys, as (key tag, algorithm), the signals ask the parent to hold;
/// `None` for the delete signal.
pub fn signalled_keys(signals: &ZoneSignals) -> Option<Vec<(u16, u8)>> {
    let mut keys = Vec::new();
    let rdatas = signals.cds.rdatas().iter().chain(signals.cdnskey.rdatas());
    for rdata in rdatas {
        let key = match rdata {
            Rdata::Cds(ds) if ds.is_delete() => return None,
            Rdata::Cdnskey(k) if k.is_delete() => return None,
            Rdata::Cds(ds) => (ds.key_tag, ds.algorithm),
            Rdata::Cdnskey(k) => (key_tag(k), k.algorithm),
            _ => continue,
        };
        keys.push(key);
    }
    keys.sort_unstable();
    keys.dedup();
    Some(keys)
}

/// The keys, as (key tag, algorithm), the parent holds DS for: observed,
/// else from the key metadata at `now`.
pub fn keys_at_parent(
    keys: &[Arc<Key>],
    parent: Option<&ParentView>,
    now: Timestamp,
) -> Vec<(u16, u8)> {
    let mut out: Vec<(u16, u8)> = match parent {
        Some(view) => view.ds.iter().map(|d| (d.key_tag, d.algorithm)).collect(),
        None => keys
            .iter()
            .filter(|k| Lifecycle::of(k, now, None).ds_at_parent)
            .map(|k| (k.tag, k.dnskey.algorithm))
            .collect(),
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// The state of a child the policy was run for (a child held before the
/// policy ran is [`DelegationState::Held`] without calling this).
pub fn delegation_state(
    signals: &ZoneSignals,
    keys: &[Arc<Key>],
    parent: Option<&ParentView>,
    now: Timestamp,
) -> DelegationState {
    if signals.hold.is_some() {
        return DelegationState::Held;
    }
    if signals.has_errors() {
        return DelegationState::Error;
    }
    let at_parent = keys_at_parent(keys, parent, now);
    match signalled_keys(signals) {
        None if at_parent.is_empty() => DelegationState::Insecure,
        None => DelegationState::Deleting,
        Some(wanted) if wanted.is_empty() => {
            if at_parent.is_empty() {
                DelegationState::Insecure
            } else {
                DelegationState::InSync
            }
        }
        Some(_) if at_parent.is_empty() => DelegationState::Bootstrapping,
        Some(wanted) if wanted == at_parent => DelegationState::InSync,
        Some(_) => DelegationState::Rolling,
    }
}
