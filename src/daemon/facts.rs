//! The facts other tasks report to the daemon, taken between rounds: the
//! parent views the parent agent observes, the apexes read from followed
//! signers, the other providers' keys the fetcher validated. Each turns
//! into the round that recomputes the children concerned.

use std::collections::BTreeSet;

use hickory_proto::rr::Name;
use tokio::sync::mpsc as tmpsc;

use super::{Daemon, RoundInput};
use crate::{
    policy::{FollowedApex, ParentView},
    providers::ForeignKeys,
};

/// Takes `first` and whatever else `more` has queued, each by `take`;
/// returns the names `take` says changed.
fn drain<T>(
    first: (Name, T),
    more: Option<&mut tmpsc::UnboundedReceiver<(Name, T)>>,
    mut take: impl FnMut(Name, T) -> bool,
) -> BTreeSet<Name> {
    let mut names = BTreeSet::new();
    let mut one = |(zone, value): (Name, T)| {
        if take(zone.clone(), value) {
            names.insert(zone);
        }
    };
    one(first);
    if let Some(rx) = more {
        while let Ok(next) = rx.try_recv() {
            one(next);
        }
    }
    names
}

/// Takes the parent views the agent reports; the children whose view
/// changed are recomputed.
pub(super) fn on_parent_views(
    daemon: &mut Daemon,
    first: (Name, ParentView),
    more: Option<&mut tmpsc::UnboundedReceiver<(Name, ParentView)>>,
) -> Option<RoundInput> {
    let names = drain(first, more, |zone, view| daemon.parent_view(zone, view));
    (!names.is_empty()).then(|| RoundInput {
        names,
        ..RoundInput::default()
    })
}

/// Takes the apexes read from followed signers; those children are
/// recomputed.
pub(super) fn on_followed_apexes(
    daemon: &mut Daemon,
    first: (Name, FollowedApex),
    more: Option<&mut tmpsc::UnboundedReceiver<(Name, FollowedApex)>>,
) -> RoundInput {
    let names = drain(first, more, |zone, apex| {
        daemon.sidecar.followed.insert(zone, apex);
        true
    });
    RoundInput {
        names,
        ..RoundInput::default()
    }
}

/// Takes the other providers' keys the fetcher validated; those children
/// are recomputed.
pub(super) fn on_foreign_keys(
    daemon: &mut Daemon,
    first: (Name, ForeignKeys),
    more: Option<&mut tmpsc::UnboundedReceiver<(Name, ForeignKeys)>>,
) -> RoundInput {
    let names = drain(first, more, |zone, keys| {
        daemon.providers.keys.insert(zone, keys);
        true
    });
    RoundInput {
        names,
        ..RoundInput::default()
    }
}
