//! The daemon's side of the other providers' keys ([`crate::providers`]):
//! the keys last validated per child with `foreign_from` (restored from
//! `state/foreign-keys.state` before the first round, so a restart while a
//! provider is unreachable keeps them), the fetcher started beside the
//! followers, and what a fetched change does (that child is recomputed).

use std::collections::BTreeSet;

use hickory_proto::rr::Name;
use tokio::sync::mpsc::UnboundedReceiver;

use super::{Daemon, RoundInput};
use crate::{
    dns::name::display,
    dnssec::key_tag,
    providers::{self, FetchConfig, ForeignKeys, Provided},
};

impl Daemon {
    /// The `[[zone]]`s with `foreign_from`.
    fn provided(&self) -> Vec<Provided> {
        self.config
            .zones
            .iter()
            .filter_map(|zone| {
                let from = zone.foreign_from.as_ref()?;
                Some(Provided {
                    zone: zone.name.clone(),
                    hosts: from.hosts.clone(),
                    refresh: from.refresh,
                })
            })
            .collect()
    }

    /// Restores the keys last validated and starts fetching, when a
    /// `[[zone]]` has `foreign_from`.
    pub(super) fn start_foreign_fetch(&mut self) -> Option<UnboundedReceiver<(Name, ForeignKeys)>> {
        let provided = self.provided();
        if provided.is_empty() {
            return None;
        }
        let path = providers::state_path(self.state.path());
        let mut saved = providers::load(&path);
        saved.retain(|zone, _| provided.iter().any(|p| p.zone == *zone));
        for (zone, keys) in &saved {
            let zone = display(zone);
            tracing::info!(
                zone,
                keys = tags(keys),
                "the other providers' KSKs as last validated (restored)"
            );
        }
        self.foreign = saved.clone();
        let config = FetchConfig {
            resolver: self.config.resolver.clone(),
            port: self.config.notify.nameserver_port,
            timeout: self.config.notify.udp_timeout,
            path,
        };
        Some(providers::start(provided, saved, config, &self.vitals))
    }

    /// Warns when a reload changes `foreign_from`: the fetcher keeps the
    /// list it started with (a zone newly given `foreign_from` waits).
    pub(super) fn foreign_from_reloaded(&self, before: &[Provided]) {
        if self.provided() != before {
            tracing::warn!(
                "foreign_from changed: what is fetched changes at the next restart; \
                 a zone newly given foreign_from publishes nothing new until then"
            );
        }
    }

    /// The `[[zone]]`s with `foreign_from`, for [`Self::foreign_from_reloaded`].
    pub(super) fn provided_now(&self) -> Vec<Provided> {
        self.provided()
    }
}

/// Takes the keys the fetcher validated (`first` and whatever else is
/// queued); those children are recomputed.
pub(super) fn on_foreign_keys(
    daemon: &mut Daemon,
    first: (Name, ForeignKeys),
    more: Option<&mut UnboundedReceiver<(Name, ForeignKeys)>>,
) -> RoundInput {
    let mut names = BTreeSet::new();
    let mut take = |(zone, keys): (Name, ForeignKeys)| {
        daemon.foreign.insert(zone.clone(), keys);
        names.insert(zone);
    };
    take(first);
    if let Some(rx) = more {
        while let Ok(next) = rx.try_recv() {
            take(next);
        }
    }
    RoundInput {
        names,
        ..RoundInput::default()
    }
}

/// `tag/alg tag/alg`.
fn tags(keys: &ForeignKeys) -> String {
    keys.keys
        .iter()
        .map(|k| format!("{}/{}", key_tag(k), k.algorithm))
        .collect::<Vec<_>>()
        .join(" ")
}
