//! One round: rescan what may have changed, recompute the affected child
//! zones, turn their signals into changes of the signalling zones, put the
//! changes past the safety brake, sign, and swap in a new snapshot.
//!
//! Rounds are level-triggered (ARCHITECTURE.md): the desired state of every
//! affected child is recomputed from all facts, and only the difference to
//! what is served is applied. A missed event costs latency, never
//! correctness: the periodic full round recomputes everything.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::Arc,
    time::Instant,
};

use hickory_proto::rr::Name;
use jiff::Timestamp;

use super::{Daemon, brake};
use crate::{
    dns::name::{display, dsboot_name},
    model,
    parent::{self, SignalingTarget},
    policy::{self, FollowedApex, ParentView, ZoneInput},
    server::ServedZone,
    state::ZoneState,
    zone::{Change, ZoneSigner, content, journal::Diff, serial, store::name_of},
};

/// What a round should look at.
#[derive(Debug, Clone, Default)]
pub struct RoundInput {
    /// Rescan everything and recompute every child.
    pub full: bool,
    /// Directories to rescan whole.
    pub dirs: BTreeSet<PathBuf>,
    /// Single files to rescan, per directory (inotify named them).
    pub files: BTreeMap<PathBuf, BTreeSet<String>>,
    /// Zones to recompute (timing events due).
    pub names: BTreeSet<Name>,
    /// Check every signature for refresh (a full scan).
    pub refresh: bool,
}

/// What a round did.
#[derive(Debug, Clone, Default)]
pub struct RoundReport {
    /// Children recomputed.
    pub recomputed: usize,
    /// Owners changed across the signalling zones.
    pub changed_names: usize,
    /// Zones given a new version.
    pub new_versions: usize,
    /// True when the brake held this round's child changes.
    pub held: bool,
    /// Directories with keys mid-rewrite: rescan them shortly.
    pub flux_dirs: Vec<PathBuf>,
    /// Zones given a new serial (NOTIFY their secondaries).
    pub new_serials: Vec<(Name, u32)>,
    /// Children whose signals changed, for the parent agent.
    pub child_reports: Vec<parent::ChildReport>,
}

impl Daemon {
    /// Runs one round at `now`.
    pub fn round(&mut self, input: RoundInput, now: Timestamp) -> RoundReport {
        let started = Instant::now();
        let mut report = RoundReport::default();

        // 1. Rescan.
        let dirs: Vec<PathBuf> = if input.full {
            self.keys.dirs().cloned().collect()
        } else {
            input.dirs.iter().cloned().collect()
        };
        let mut affected = self.keys.scan_dirs(&dirs, started);
        if !input.full {
            for (dir, files) in &input.files {
                affected.append(&mut self.keys.scan_files(dir, files, started));
            }
        }
        affected.extend(input.names.iter().cloned());
        affected.append(&mut self.pending);
        report.flux_dirs = self.keys.dirs_in_flux();

        tracing::debug!(
            phase = "scan",
            elapsed_ms = started.elapsed().as_millis() as u64,
            "round progress"
        );
        // 2. The children to recompute, and the names that stopped being one.
        let mut children = Vec::new();
        let mut gone: Vec<Name> = Vec::new();
        if input.full {
            let (all, errors) = model::children(&self.config, &self.keys);
            for error in errors {
                tracing::error!("{error}");
            }
            let known: BTreeSet<&Name> = all.iter().map(|c| &c.name).collect();
            for zone in self.zones.values() {
                for node in zone.store.nodes() {
                    if let Some(child) =
                        name_of(&node.wire).and_then(|owner| child_of(&owner, zone.store.apex()))
                    {
                        if !known.contains(&child) && !gone.contains(&child) {
                            gone.push(child);
                        }
                    }
                }
            }
            children = all;
        } else {
            for name in &affected {
                if self.zones.contains_key(name) {
                    continue; // a signalling zone's own keys: handled below
                }
                match model::child(&self.config, &self.keys, name) {
                    (Some(child), errors) => {
                        for error in errors {
                            tracing::error!("{error}");
                        }
                        children.push(child);
                    }
                    (None, _) => gone.push(name.clone()),
                }
            }
        }
        report.recomputed = children.len();

        tracing::debug!(
            phase = "model",
            elapsed_ms = started.elapsed().as_millis() as u64,
            "round progress"
        );
        // 3. Desired signals -> changes per signalling zone.
        let mut changes: BTreeMap<Name, Vec<Change>> = BTreeMap::new();
        // child -> (zone, index of its change in `changes[zone]`)
        // (a Vec: each child comes once, and a million Name comparisons in a
        // map cost seconds)
        let mut touched_children: Vec<(Name, Vec<(Name, usize)>)> = Vec::new();
        // The policy for every child, on all cores (it is pure); each
        // child's signals shrink to its changes right there, so a full
        // round never holds every child's decisions at once.
        // Served signalling zones and those hosted by a signer alike.
        let mut targets: Vec<(Name, Name)> = self
            .zones
            .iter()
            .map(|(apex, zone)| (apex.clone(), zone.config.ns_host()))
            .collect();
        targets.extend(self.published_signaling());
        let signaling = self.agent_active.then(|| self.signaling_targets());
        let computed = compute_all(
            &children,
            &targets,
            Facts {
                views: &self.parent_views,
                followed: &self.followed,
            },
            signaling.as_deref(),
            now,
        );
        for (child, outcome) in children.iter().zip(computed) {
            let Some(outcome) = outcome else {
                tracing::warn!(
                    zone = display(&child.name),
                    reasons = child.held.join("; "),
                    "zone held: its published signals stay as they are"
                );
                for issue in &child.issues {
                    tracing::warn!(zone = display(&child.name), key_tag = issue.tag, "{issue}");
                }
                continue;
            };
            for issue in &child.issues {
                tracing::warn!(zone = display(&child.name), key_tag = issue.tag, "{issue}");
            }
            self.schedule_zone(&child.name, outcome.next_event);
            if !outcome.apex.is_empty() {
                self.publish_apex(&child.name, outcome.apex);
            }
            if let Some(child_report) = outcome.report {
                let prints = (child_report.cds, child_report.csync);
                let forced = self.force_report.remove(&child.name);
                if forced || self.reported.get(&child.name) != Some(&prints) {
                    self.reported.insert(child.name.clone(), prints);
                    report.child_reports.push(child_report);
                }
            }
            let mut owners = Vec::with_capacity(outcome.changes.len());
            for (apex, change) in outcome.changes {
                let list = changes.entry(apex.clone()).or_default();
                list.push(change);
                owners.push((apex, list.len() - 1));
            }
            if !owners.is_empty() {
                touched_children.push((child.name.clone(), owners));
            }
        }
        for name in &gone {
            self.unschedule_zone(name);
            self.reported.remove(name);
            let mut owners = Vec::new();
            for (apex, ns_host) in &targets {
                let Ok(owner) = dsboot_name(name, ns_host) else {
                    continue;
                };
                let list = changes.entry(apex.clone()).or_default();
                list.push(Change {
                    owner,
                    rrsets: None,
                });
                owners.push((apex.clone(), list.len() - 1));
            }
            if !owners.is_empty() {
                touched_children.push((name.clone(), owners));
            }
        }

        tracing::debug!(
            phase = "policy",
            elapsed_ms = started.elapsed().as_millis() as u64,
            "round progress"
        );
        // 4. The safety brake: children whose published signals would go or change.
        let mut withdrawn_or_changed: BTreeSet<Name> = BTreeSet::new();
        for (child, owners) in &touched_children {
            for (apex, index) in owners {
                let Some(change) = changes.get(apex).and_then(|l| l.get(*index)) else {
                    continue;
                };
                if let Some(differs) = self.published_differs(apex, change) {
                    if differs {
                        withdrawn_or_changed.insert(child.clone());
                    }
                    continue;
                }
                let Some(zone) = self.zones.get(apex) else {
                    continue;
                };
                let wire = crate::dns::name::canonical_wire(&change.owner);
                let Some(node) = zone.store.node(&wire) else {
                    continue;
                };
                let new = change.rrsets.as_ref();
                let same = new.is_some_and(|rrsets| node.holds(rrsets));
                if !same {
                    withdrawn_or_changed.insert(child.clone());
                }
            }
        }
        let published = self
            .zones
            .values()
            .map(|z| z.store.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        match brake::decide(
            &self.config.safety,
            &withdrawn_or_changed,
            published,
            self.confirmed,
        ) {
            brake::Verdict::Go => {
                if self.confirmed && !withdrawn_or_changed.is_empty() {
                    tracing::warn!(
                        children = withdrawn_or_changed.len(),
                        "confirmed: applying the held changes"
                    );
                }
                if self.held.take().is_some() {
                    tracing::info!("safety brake released");
                }
                self.confirmed = false;
            }
            hold @ brake::Verdict::Hold { .. } => {
                if let brake::Verdict::Hold {
                    affected,
                    published,
                    limit,
                    examples,
                } = &hold
                {
                    let examples: Vec<String> = examples.iter().map(display).collect();
                    tracing::error!(
                        affected,
                        published,
                        limit,
                        examples = examples.join(" "),
                        "SAFETY BRAKE: this round would withdraw or change the signals of {affected} of \
                         {published} child zones (limit {limit}); keeping the previous signals. Check the key \
                         directories; if the change is intended run `signalbox confirm -c CONFIG` or raise \
                         [safety] max_change_share / min_changes and reload"
                    );
                }
                self.held = Some(hold);
                report.held = true;
                // Retry the children next round; apex changes still go ahead.
                self.pending
                    .extend(touched_children.into_iter().map(|(child, _)| child));
                changes.clear();
            }
        }

        tracing::debug!(
            phase = "brake",
            elapsed_ms = started.elapsed().as_millis() as u64,
            "round progress"
        );
        // 5. Hosted signalling zones: to their publishers.
        for (apex, _) in self.published_signaling() {
            let zone_changes = changes.remove(&apex).unwrap_or_default();
            self.publish_signaling(&apex, zone_changes);
        }
        // 6. Apex content and signing, zone by zone.
        let apexes: Vec<Name> = self.zones.keys().cloned().collect();
        for apex in apexes {
            let zone_changes = changes.remove(&apex).unwrap_or_default();
            let full = input.full || input.refresh;
            if self.update_zone(&apex, zone_changes, full, now, &mut report) {
                report.new_versions += 1;
            }
        }
        if report.new_versions > 0 || self.first_round {
            self.publish();
        }
        self.first_round = false;
        tracing::info!(
            recomputed = report.recomputed,
            changed_names = report.changed_names,
            new_versions = report.new_versions,
            held = report.held,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "round done"
        );
        report
    }

    /// Applies `changes` (plus its own apex) to one signalling zone; true when
    /// a new version was made.
    fn update_zone(
        &mut self,
        apex: &Name,
        mut changes: Vec<Change>,
        full: bool,
        now: Timestamp,
        report: &mut RoundReport,
    ) -> bool {
        let zone_name = display(apex);
        let Some(zone) = self.zones.get(apex) else {
            return false;
        };
        let sz = zone.config.clone();
        let keys = sz
            .keys
            .as_ref()
            .and_then(|dir| self.keys.report(dir))
            .and_then(|r| r.zones.get(apex).cloned())
            .unwrap_or_default();
        if let Some(report) = sz.keys.as_ref().and_then(|dir| self.keys.report(dir)) {
            for issue in report.issues_for(apex) {
                tracing::warn!(zone = zone_name, "{issue}");
            }
        }
        self.schedule_zone(apex, policy::next_event(&keys, now));
        let own_settings = sz.settings.resolve();
        let own = policy::compute(
            &ZoneInput {
                zone: apex,
                settings: &own_settings,
                keys: &keys,
                parent: None,
                soa_serial: None,
                followed: None,
            },
            now,
        );
        own.trace();
        changes.push(Change {
            owner: apex.clone(),
            rrsets: Some(content::apex_rrsets(&sz, &keys, &own, now)),
        });
        let signer = ZoneSigner::from_keys(&keys, now);
        for problem in &signer.problems {
            tracing::error!(zone = zone_name, "{problem}");
        }

        let Some(zone) = self.zones.get_mut(apex) else {
            return false;
        };
        let real_changes = changes.iter().filter(|c| !is_noop(&zone.store, c)).count();
        // A full scan for due signatures only on full rounds, the hourly tick
        // and when the zone's keys changed: one key change stays cheap.
        let keys_changed = zone.signer != signer.fingerprint();
        let check_refresh = full || keys_changed || zone.store.is_empty();
        let refresh = check_refresh
            && (zone.store.is_empty() || zone.store.needs_refresh(&signer, now, &sz.options));
        if real_changes == 0 && !refresh && !self.first_round && zone.broken.is_none() {
            return false;
        }
        // The serial: past both what was served and what the state file says.
        let saved = match self.state.load_zone(apex) {
            Ok(state) => state.map(|s| s.serial),
            Err(e) => {
                tracing::error!(zone = zone_name, "{e}");
                None
            }
        };
        let current = [saved, (!zone.store.is_empty()).then(|| zone.store.serial())]
            .into_iter()
            .flatten()
            .reduce(|a, b| if serial::is_newer(a, b) { a } else { b });
        let new_serial = serial::next(sz.options.serial_policy, current, now);
        // Saved before it is served, so a crash never serves a serial twice.
        if let Err(e) = self
            .state
            .save_zone(apex, &ZoneState { serial: new_serial })
        {
            tracing::error!(zone = zone_name, "{e}");
        }
        let mut next = zone.store.clone();
        let result = next
            .apply(&changes, &signer, new_serial, now, &sz.options)
            .and_then(|stats| {
                if check_refresh && next.needs_refresh(&signer, now, &sz.options) {
                    next.refresh(&signer, new_serial, now, &sz.options)
                        .map(|more| (stats, more))
                } else {
                    Ok((stats, Default::default()))
                }
            });
        match result {
            Ok((stats, more)) => {
                tracing::info!(
                    zone = zone_name,
                    serial = new_serial,
                    names = stats.names,
                    changed_names = stats.changed_names,
                    rrsets_signed = stats.rrsets_signed + more.rrsets_signed,
                    signatures = stats.signatures + more.signatures,
                    "zone updated"
                );
                report.changed_names += stats.changed_names;
                if !zone.store.is_empty() {
                    if let Some(diff) =
                        Diff::between(&zone.store, &next, next.touched().iter().map(|w| &w[..]))
                    {
                        Arc::make_mut(&mut zone.journal).push(diff, &sz.options.journal);
                    }
                }
                zone.store = next;
                zone.broken = None;
                zone.signer = signer.fingerprint();
                report.new_serials.push((apex.clone(), new_serial));
                self.persist.save(super::SaveJob {
                    zone_path: self.state.zone_store_path(apex),
                    zone: zone.store.clone(),
                    journal_path: self.state.journal_path(apex),
                    journal: zone.journal.clone(),
                });
                true
            }
            Err(e) => {
                let until = zone.store.earliest_expiration();
                tracing::error!(
                    zone = zone_name,
                    signatures_valid_until = until,
                    "cannot sign: {e}; {}",
                    if zone.store.is_empty() {
                        "the zone is not served (SERVFAIL)"
                    } else {
                        "serving the last signed version until its signatures expire"
                    }
                );
                zone.broken = Some(e.to_string());
                true
            }
        }
    }

    /// Swaps in a snapshot of every zone as it now stands.
    pub(super) fn publish(&self) {
        let now_secs = Timestamp::now().as_second().clamp(0, i64::from(u32::MAX)) as u32;
        let zones: Vec<Arc<ServedZone>> = self
            .zones
            .values()
            .map(|zone| {
                // Only an unsignable zone needs the (full-scan) expiry check.
                let expired = zone.broken.is_some()
                    && zone
                        .store
                        .earliest_expiration()
                        .is_none_or(|exp| !serial::is_newer(exp, now_secs));
                Arc::new(match &zone.broken {
                    // Unsignable and nothing valid left: SERVFAIL rather than
                    // answers no validator will accept.
                    Some(why) if expired => ServedZone::broken(zone.store.apex(), why.clone()),
                    _ => ServedZone::new(zone.store.clone()).with_transfers(
                        zone.journal.clone(),
                        zone.config.options.allow_transfer.clone().into(),
                    ),
                })
            })
            .collect();
        for zone in &zones {
            tracing::debug!("serving {zone}");
        }
        self.snapshot.store(Arc::new(
            crate::server::Snapshot::new(zones, self.config.server.edns_udp_size)
                .with_keyring(self.keyring.clone())
                .with_inbox(self.inbox.clone()),
        ));
    }
}

/// One child's share of a round: the changes of its `_dsboot` owners per
/// signalling zone, and when its keys next change something.
struct ChildOutcome {
    changes: Vec<(Name, Change)>,
    next_event: Option<Timestamp>,
    report: Option<parent::ChildReport>,
    /// Apex RRsets its `publish` writes by UPDATE.
    apex: Vec<crate::publish::Wanted>,
}

/// Runs the policy for every child (`None` for a held one) on all cores and
/// turns the signals into changes for the signalling zones in `targets`
/// (apex, NS host); decisions are logged on the way.
/// What the daemon has learnt from outside the key directories.
#[derive(Clone, Copy)]
struct Facts<'a> {
    /// The parent's DS/NS per child.
    views: &'a std::collections::HashMap<Name, ParentView>,
    /// The signer's apex per followed child.
    followed: &'a std::collections::HashMap<Name, FollowedApex>,
}

fn compute_all(
    children: &[model::ChildZone],
    targets: &[(Name, Name)],
    facts: Facts<'_>,
    signaling: Option<&[SignalingTarget]>,
    now: Timestamp,
) -> Vec<Option<ChildOutcome>> {
    let one = |child: &model::ChildZone| {
        if child.is_held() {
            return None;
        }
        let view = facts.views.get(&child.name);
        let followed = facts.followed.get(&child.name);
        if child.follows && followed.is_none() {
            // Not read from the signer yet: what is published stays.
            tracing::debug!(
                zone = display(&child.name),
                "waiting for the first read of the signer's apex"
            );
            return None;
        }
        let signals = policy::compute(
            &ZoneInput {
                followed,
                ..child.input(view, None)
            },
            now,
        );
        signals.trace();
        if let Some(why) = &signals.hold {
            tracing::warn!(zone = display(&child.name), "zone held: {why}");
            return None;
        }
        let changes = targets
            .iter()
            .filter_map(|(apex, ns)| {
                let owner = dsboot_name(&child.name, ns).ok()?;
                let rrsets = content::dsboot_rrsets(&signals, ns).map(|(_, r)| r);
                Some((apex.clone(), Change { owner, rrsets }))
            })
            .collect();
        let report = signaling
            .map(|targets| parent::plan(&signals, &child.settings.nameservers, view, targets));
        let apex = super::sidecar::apex_wanted(
            &child.name,
            &child.publish_types,
            &signals.cds,
            &signals.cdnskey,
            signals.csync.as_ref(),
        );
        Some(ChildOutcome {
            changes,
            next_event: policy::next_event(&child.keys, now),
            report,
            apex,
        })
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads <= 1 || children.len() < 512 {
        return children.iter().map(one).collect();
    }
    let chunk = children.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = children
            .chunks(chunk)
            .map(|part| {
                let work = scope.spawn(move || part.iter().map(one).collect::<Vec<_>>());
                (part.len(), work)
            })
            .collect();
        let mut out = Vec::with_capacity(children.len());
        for (len, handle) in handles {
            match handle.join() {
                Ok(part) => out.extend(part),
                Err(_) => {
                    // Never misalign children and outcomes: a failed part
                    // publishes nothing new (as if held).
                    tracing::error!(
                        zones = len,
                        "policy computation failed for part of the zones; they are held"
                    );
                    out.extend(std::iter::repeat_with(|| None).take(len));
                }
            }
        }
        out
    })
}

/// The child a `_dsboot.<child>.<apex>` owner signals for.
fn child_of(owner: &Name, apex: &Name) -> Option<Name> {
    let labels: Vec<&[u8]> = owner.iter().collect();
    let apex_labels = apex.iter().count();
    if labels.len() <= apex_labels + 1 || !labels[0].eq_ignore_ascii_case(b"_dsboot") {
        return None;
    }
    let mut child =
        Name::from_labels(labels[1..labels.len() - apex_labels].iter().copied()).ok()?;
    child.set_fqdn(true);
    Some(child)
}

/// True when the store already holds exactly what `change` asks for.
fn is_noop(store: &crate::zone::ZoneStore, change: &Change) -> bool {
    let wire = crate::dns::name::canonical_wire(&change.owner);
    match (store.node(&wire), &change.rrsets) {
        (None, None) => true,
        (Some(node), Some(rrsets)) => node.holds(rrsets),
        (None, Some(rrsets)) => rrsets.iter().all(|r| r.rdatas.is_empty()),
        (Some(_), None) => false,
    }
}
