//! The daemon's side of the other providers' keys ([`crate::providers`]):
//! the keys last validated per child with `foreign_from` (restored from
//! `state/foreign-keys.state` before the first round, so a restart while a
//! provider is unreachable keeps them), the fetcher started beside the
//! followers, and what a fetched change does (that child is recomputed).

use std::collections::{BTreeMap, HashMap};

use hickory_proto::rr::Name;
use tokio::sync::mpsc::UnboundedReceiver;

use super::Daemon;
use crate::{
    config::{Config, ForeignFrom},
    dns::name::display,
    policy::ParentView,
    providers::{self, FetchConfig, ForeignKeys, ParentDs, Provided},
};

/// The daemon's side of the fetcher.
#[derive(Debug, Default)]
pub(super) struct ProviderLink {
    /// The other providers' KSKs per child, as last validated.
    pub(super) keys: BTreeMap<Name, ForeignKeys>,
    /// The parent's DS per child with `foreign_from`, shared with the
    /// fetcher (a DS at the parent makes a provider's key trusted).
    parent_ds: Option<ParentDs>,
}

/// The `[[zone]]`s of `config` with `foreign_from`, and what it says.
pub(super) fn foreign_from_of(config: &Config) -> Vec<(&Name, &ForeignFrom)> {
    config
        .zones
        .iter()
        .filter_map(|zone| Some((&zone.name, zone.foreign_from.as_ref()?)))
        .collect()
}

impl Daemon {
    /// The `[[zone]]`s with `foreign_from`, as the fetcher takes them.
    fn provided(&self) -> Vec<Provided> {
        foreign_from_of(&self.config)
            .into_iter()
            .map(|(zone, from)| {
                let (child, _) = crate::model::child(&self.config, &self.keys, zone);
                Provided {
                    zone: zone.clone(),
                    hosts: from.hosts.clone(),
                    refresh: from.refresh,
                    listed: child
                        .map(|c| c.settings.foreign_keys.clone())
                        .unwrap_or_default(),
                }
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
        // Keys from other hosts than the ones configured now are not
        // restored: the new hosts' keys are fetched (the zone waits).
        saved.retain(|zone, keys| {
            provided
                .iter()
                .any(|p| p.zone == *zone && p.hosts == keys.hosts)
        });
        for (zone, keys) in &saved {
            let zone = display(zone);
            tracing::info!(
                zone,
                keys = providers::tags(&keys.keys),
                "the other providers' KSKs as last validated (restored)"
            );
        }
        self.providers.keys = saved.clone();
        let ds: HashMap<Name, Vec<crate::dns::Ds>> = provided
            .iter()
            .map(|p| {
                let ds = self.agent.views.get(&p.zone).map(|v| v.ds.clone());
                (p.zone.clone(), ds.unwrap_or_default())
            })
            .collect();
        let parent_ds = ParentDs::new(std::sync::RwLock::new(ds));
        self.providers.parent_ds = Some(parent_ds.clone());
        let config = FetchConfig {
            resolver: self.config.resolver.clone(),
            port: self.config.notify.nameserver_port,
            timeout: self.config.notify.udp_timeout,
            path,
        };
        Some(providers::start(
            provided,
            saved,
            parent_ds,
            config,
            &self.vitals,
        ))
    }

    /// Has the parent agent look at every child with `foreign_from` at the
    /// parent from the start: one that waits for its other providers'
    /// keys plans nothing, so no report would name it, and a DS at the
    /// parent is what makes a provider's key trusted.
    pub(super) fn watch_provided(&self, watch: &tokio::sync::mpsc::UnboundedSender<Name>) {
        for (zone, _) in foreign_from_of(&self.config) {
            let _ = watch.send(zone.clone());
        }
    }

    /// Tells the fetcher the parent's DS RRset of a child it fetches for.
    pub(super) fn parent_ds_seen(&self, zone: &Name, view: &ParentView) {
        let Some(shared) = &self.providers.parent_ds else {
            return;
        };
        if let Ok(mut all) = shared.write() {
            if let Some(ds) = all.get_mut(zone) {
                ds.clone_from(&view.ds);
            }
        }
    }
}
