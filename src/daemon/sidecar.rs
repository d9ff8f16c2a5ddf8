//! The daemon beside a signer: apexes read from it (`follow`, with the
//! NOTIFYs its primary sends let in by [`crate::server::inbound`]) and
//! RRsets written by UPDATE instead of served.
//!
//! A `[[signaling_zone]]` with `publish` lives on the signer, which signs
//! it; its `_dsboot` RRsets go there by UPDATE (one publisher per zone, see
//! [`crate::publish`]). A `[[zone]]` with `publish` gets its apex CSYNC
//! (and CDS/CDNSKEY where allowed) the same way. What was last asked for is
//! remembered per owner, so the safety brake sees published signalling
//! zones as it sees served ones.

use std::{collections::HashMap, sync::Arc};

use hickory_proto::rr::{Name, RecordType};
use tokio::sync::mpsc as tmpsc;

use super::Daemon;
use crate::{
    follow,
    policy::FollowedApex,
    publish::{self, Target, Wanted},
    server::inbound::{Deliver, FollowAcl, FollowInbox},
    zone::{Change, content::RrsetData},
};

impl Daemon {
    /// Starts following the `[[zone]]`s with `follow`: their primaries'
    /// NOTIFYs are accepted from now on, into the follower's bounded set
    /// (`follow::Pending`, see [`crate::server::inbound`]).
    pub(super) fn start_followers(
        &mut self,
    ) -> Option<tmpsc::UnboundedReceiver<(Name, FollowedApex)>> {
        let mut followed = Vec::new();
        let mut acls = Vec::new();
        for zone in &self.config.zones {
            let Some(follow) = &zone.follow else { continue };
            let key = follow
                .tsig
                .as_ref()
                .and_then(|name| self.keyring.get(name).cloned());
            acls.push(FollowAcl {
                zone: zone.name.clone(),
                primary: follow.primary.ip(),
                key: follow.tsig.clone(),
                notify_key: follow.notify_key.clone(),
            });
            followed.push(follow::Followed {
                zone: zone.name.clone(),
                config: follow.clone(),
                key,
            });
        }
        if followed.is_empty() {
            return None;
        }
        let follow::Following {
            pending,
            apexes,
            confirmed,
        } = follow::start(followed, &self.vitals);
        self.sidecar.confirmed = Some(confirmed);
        let deliver: Deliver = Box::new(move |zone| {
            !matches!(
                pending.notified(zone),
                follow::Queued::Dropped | follow::Queued::Unknown
            )
        });
        self.sidecar.inbox = Some(Arc::new(FollowInbox::new(acls, deliver)));
        self.publish_snapshot();
        Some(apexes)
    }

    /// Starts one publisher per zone with `publish` (needs the runtime).
    pub(super) fn start_publishers(&mut self) {
        let mut targets: Vec<(Name, crate::config::PublishConfig)> = self
            .config
            .signaling_zones
            .iter()
            .filter_map(|s| s.publish.clone().map(|p| (s.apex.clone(), p)))
            .collect();
        targets.extend(
            self.config
                .zones
                .iter()
                .filter_map(|z| z.publish.clone().map(|p| (z.name.clone(), p))),
        );
        for (zone, config) in targets {
            if self.sidecar.publishers.contains_key(&zone) {
                continue;
            }
            let key = config
                .tsig
                .as_ref()
                .and_then(|n| self.keyring.get(n).cloned());
            tracing::info!(zone = display(&zone), server = %config.server, "publishing by UPDATE");
            let tx = publish::start(
                Target {
                    zone: zone.clone(),
                    server: config.server,
                    key,
                },
                self.sidecar.counters.clone(),
                &self.vitals,
            );
            self.sidecar.publishers.insert(zone, tx);
        }
    }

    /// The signalling zones hosted by a signer: (apex, NS host).
    pub(super) fn published_signaling(&self) -> Vec<(Name, Name)> {
        self.config
            .signaling_zones
            .iter()
            .filter(|s| s.publish.is_some())
            .map(|s| (s.apex.clone(), s.ns_host()))
            .collect()
    }

    /// True when `change` differs from what was last asked of a hosted
    /// signalling zone (`None` when `apex` is not one).
    pub(super) fn published_differs(&self, apex: &Name, change: &Change) -> Option<bool> {
        let state = self.sidecar.published_state.get(apex)?;
        let old = state.get(&change.owner);
        Some(match (old, &change.rrsets) {
            (None, None) => false,
            (Some(old), new) => old.as_ref() != new.as_ref(),
            (None, Some(_)) => false, // new signals are not a withdrawal or change
        })
    }

    /// Sends a hosted signalling zone's changes to its publisher.
    pub(super) fn publish_signaling(&mut self, apex: &Name, changes: Vec<Change>) {
        let Some(tx) = self.sidecar.publishers.get(apex) else {
            return;
        };
        let state = self
            .sidecar
            .published_state
            .entry(apex.clone())
            .or_default();
        for change in changes {
            if state.get(&change.owner) == Some(&change.rrsets) {
                continue;
            }
            for rtype in [RecordType::CDS, RecordType::CDNSKEY] {
                let set = change.rrsets.iter().flatten().find(|r| r.rtype == rtype);
                let _ = tx.send(Wanted {
                    owner: change.owner.clone(),
                    rtype,
                    ttl: set.map_or(0, |s| s.ttl),
                    rdatas: set.map(|s| s.rdatas.clone()).unwrap_or_default(),
                });
            }
            state.insert(change.owner, change.rrsets);
        }
    }

    /// True when writing `wanted` at a child apex would withdraw or change
    /// an RRset published there: one signalbox wrote earlier in this run,
    /// or else (after a restart) the CDS/CDNSKEY the followed signer serves.
    pub(super) fn apex_differs(&self, wanted: &Wanted) -> bool {
        let old = match self
            .sidecar
            .apex_state
            .get(&(wanted.owner.clone(), wanted.rtype))
        {
            Some(old) => old.clone(),
            None => match self.sidecar.followed.get(&wanted.owner) {
                Some(apex) => followed_rdatas(apex, wanted.rtype),
                None => return false,
            },
        };
        // New signals where there were none are not a withdrawal or change.
        !old.is_empty() && old != wanted.rdatas
    }

    /// Children with RRsets written at their apex by UPDATE.
    pub(super) fn apex_published(&self) -> usize {
        let mut zones: Vec<&Name> = self
            .sidecar
            .apex_state
            .iter()
            .filter(|(_, rdatas)| !rdatas.is_empty())
            .map(|((zone, _), _)| zone)
            .collect();
        zones.sort_unstable();
        zones.dedup();
        zones.len()
    }

    /// Sends a child's apex RRsets of the published types to its publisher.
    pub(super) fn publish_apex(&mut self, zone: &Name, wanted: Vec<Wanted>) {
        if let Some(tx) = self.sidecar.publishers.get(zone) {
            for w in wanted {
                self.sidecar
                    .apex_state
                    .insert((w.owner.clone(), w.rtype), w.rdatas.clone());
                let _ = tx.send(w);
            }
        }
    }
}

/// The sorted wire RDATAs of the followed signer's apex RRset of `rtype`
/// (only CDS and CDNSKEY are followed; anything else reads as empty).
fn followed_rdatas(apex: &FollowedApex, rtype: RecordType) -> Vec<Vec<u8>> {
    let mut rdatas: Vec<Vec<u8>> = match rtype {
        RecordType::CDS => apex.cds.iter().map(|ds| ds.to_wire()).collect(),
        RecordType::CDNSKEY => apex.cdnskey.iter().map(|k| k.to_wire()).collect(),
        _ => Vec::new(),
    };
    rdatas.sort();
    rdatas
}

/// Published state per hosted signalling zone: owner -> RRsets last asked.
pub(super) type PublishedState = HashMap<Name, HashMap<Name, Option<Vec<RrsetData>>>>;

/// The daemon beside signers: followed apexes and UPDATE publishers.
#[derive(Default)]
pub(super) struct Sidecar {
    /// The signer's apex per followed child.
    pub(super) followed: HashMap<Name, FollowedApex>,
    /// Where NOTIFYs from followed zones' primaries go.
    pub(super) inbox: Option<Arc<FollowInbox>>,
    /// UPDATE publishers per zone (`publish`).
    pub(super) publishers: HashMap<Name, tmpsc::UnboundedSender<Wanted>>,
    /// What was last asked of each hosted signalling zone.
    pub(super) published_state: PublishedState,
    /// What was last written at each child apex by UPDATE (sorted RDATAs;
    /// empty: removed).
    pub(super) apex_state: HashMap<(Name, RecordType), Vec<Vec<u8>>>,
    /// Publisher counters (written, failed, dropped).
    pub(super) counters: Arc<publish::Counters>,
    /// When each followed zone was last confirmed current (for metrics).
    pub(super) confirmed: Option<Arc<follow::Confirmed>>,
}
