//! One round, as its phases:
//!
//! 1. **scan** ([`Daemon::scan`]): rescan the key directories (or single
//!    files) that changed and name the child zones to recompute, and those
//!    that stopped being children;
//! 2. **plan** ([`Daemon::plan`]): the pure policy for those children and
//!    the changes it asks of every signalling zone ([`crate::plan`]);
//! 3. **compare** ([`Daemon::drop_unchanged`]): drop the changes a served
//!    signalling zone already holds (on a full round nearly all of them),
//!    once, so the brake and the signer look only at real differences.
//!    Phases 2 and 3 run a part of the children at a time ([`PLAN_PART`]),
//!    so what the policy made for a child that changes nothing is gone
//!    before the next part is planned;
//! 4. **brake** ([`Daemon::brake`]): hold the children's changes when they
//!    would withdraw or change too many published signals;
//! 5. **apply** ([`Daemon::apply`]): schedule the next key events, hand
//!    apex RRsets and hosted signalling zones to their UPDATE publishers,
//!    and sign a new version of each served signalling zone;
//! 6. **publish** ([`Daemon::publish_snapshot`]): swap in the new snapshot
//!    the server answers from.
//!
//! Rounds are level-triggered (docs/ARCHITECTURE.md, "The flow"): the
//! desired state of every affected child is recomputed from all facts, and
//! only the difference to what is published is applied. A missed event
//! costs latency, never correctness: the periodic full round recomputes
//! everything.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::Arc,
    time::Instant,
};

use hickory_proto::rr::Name;
use jiff::Timestamp;
use rustc_hash::FxHashSet;

use super::{Daemon, brake};
use crate::{
    cores,
    dns::name::canonical_wire,
    model::{self, ChildZone},
    parent,
    plan::{self, Facts, RoundPlan, SignalTarget},
    server::ServedZone,
    zone::{serial, store::name_of},
};

/// Children planned and compared at a time. The policy's outcome for a
/// child and the changes it asks (~2 KB a child) then live for one part
/// instead of the whole round: a full round at a million children peaked
/// at ~2 GB above the steady heap, with nearly every change dropped as
/// already served. A part is still thousands of children for each core.
/// The unit tests plan two children at a time, so that every round of
/// theirs with more is planned in parts.
const PLAN_PART: usize = if cfg!(test) { 2 } else { 65_536 };

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

/// Where in a full round a key change cuts in (logged as `point`).
#[derive(Debug, Clone, Copy)]
pub(super) enum CutInPoint<'a> {
    /// Before or while the key directories are listed.
    WhileListing,
    /// Once the listing is taken, with the children whose keys it found
    /// changed.
    ListingTaken(&'a BTreeSet<Name>),
    /// Once the children are joined.
    ChildrenJoined,
}

impl CutInPoint<'_> {
    /// How the log names it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CutInPoint::WhileListing => "while listing",
            CutInPoint::ListingTaken(_) => "listing taken",
            CutInPoint::ChildrenJoined => "children joined",
        }
    }
}

/// What a round did.
#[derive(Debug, Clone, Default)]
pub struct RoundReport {
    /// Children recomputed.
    pub recomputed: usize,
    /// Key files read (a rescan reads only files whose stamp changed).
    pub key_files_read: usize,
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

impl RoundReport {
    /// The one event of a round (`what`), with what a cut-in adds: where
    /// in the full round it cut in and the children the listing found
    /// changed that it took along (`cut_in`), and how long after it was
    /// seen the change was served.
    pub(super) fn log(
        &self,
        what: &'static str,
        progress: &Progress,
        cut_in: Option<(&'static str, usize)>,
        served: Option<std::time::Duration>,
    ) {
        let (point, listed_changes) = cut_in.unzip();
        tracing::info!(
            recomputed = self.recomputed,
            key_files_read = self.key_files_read,
            changed_names = self.changed_names,
            new_versions = self.new_versions,
            held = self.held,
            point,
            listed_changes,
            served_ms = served.map(|d| d.as_millis() as u64),
            elapsed_ms = progress.elapsed().as_millis() as u64,
            "{what}"
        );
    }
}

/// What the scan found.
pub(super) struct Scanned {
    /// Child zones to recompute.
    pub(super) children: Vec<ChildZone>,
    /// Names that stopped being child zones.
    pub(super) gone: Vec<Name>,
    /// Directories with keys mid-rewrite.
    flux_dirs: Vec<PathBuf>,
    /// Every child is among `children` (a full round, no key directory held).
    pub(super) every_child: bool,
    /// Key files read.
    files_read: usize,
}

/// What applying a round did.
#[derive(Default)]
pub(super) struct Applied {
    /// Owners changed across the served signalling zones.
    changed_names: usize,
    /// Served zones given a new version (signed, or marked unsignable).
    new_versions: usize,
    /// Served zones given a new serial.
    new_serials: Vec<(Name, u32)>,
    /// Reports for the parent agent whose content changed.
    child_reports: Vec<parent::ChildReport>,
}

/// Logs how far a round got, for the round's timing in debug logs.
pub(super) struct Progress(Instant);

impl Progress {
    /// Starts timing a round.
    pub(super) fn new() -> Self {
        Progress(Instant::now())
    }

    /// How long the round has run.
    pub(super) fn elapsed(&self) -> std::time::Duration {
        self.0.elapsed()
    }

    fn phase(&self, phase: &'static str) {
        tracing::debug!(
            phase,
            elapsed_ms = self.0.elapsed().as_millis() as u64,
            "round progress"
        );
    }
}

impl Daemon {
    /// Runs one round at `now`.
    pub fn round(&mut self, input: RoundInput, now: Timestamp) -> RoundReport {
        let progress = Progress::new();
        if self.first_round {
            self.restore_key_caches();
            progress.phase("key caches restored");
        }
        let scanned = self.scan(&input, &progress);
        // Not before a cut-in's time: planned at an earlier one, a child a
        // cut-in served after a timing event would be reverted.
        let now = self.cut_in_at.take().map_or(now, |at| at.max(now));
        // The first round after a start gives every served zone a version.
        let report = self.run_phases(scanned, &input, now, &progress, self.first_round);
        self.first_round = false;
        if input.full {
            self.save_key_caches(model::CacheSave::AfterFullRound);
        }
        report.log("round done", &progress, None, None);
        report
    }

    /// Phases 2 to 6 for what the scan found; with `every_zone`, every
    /// served zone gets a new version even without a change.
    pub(super) fn run_phases(
        &mut self,
        mut scanned: Scanned,
        input: &RoundInput,
        now: Timestamp,
        progress: &Progress,
        every_zone: bool,
    ) -> RoundReport {
        progress.phase("scan");
        let recomputed = scanned.children.len();
        let key_files_read = scanned.files_read;
        let every_child = scanned.every_child;
        let flux_dirs = std::mem::take(&mut scanned.flux_dirs);
        let plan = self.plan(scanned, now);
        progress.phase("plan and compare");
        let verdict = self.brake(&plan);
        progress.phase("brake");
        let held = matches!(verdict, brake::Verdict::Hold { .. });
        let full = input.full || input.refresh;
        let applied = self.apply(plan, held, every_child, full, every_zone, now);
        progress.phase("apply");
        if applied.new_versions > 0 || every_zone {
            self.publish_snapshot();
        }
        RoundReport {
            recomputed,
            key_files_read,
            changed_names: applied.changed_names,
            new_versions: applied.new_versions,
            held,
            flux_dirs,
            new_serials: applied.new_serials,
            child_reports: applied.child_reports,
        }
    }

    /// Phase 1: rescans what `input` names and finds the children to
    /// recompute (all of them on a full round).
    /// A full round lets waiting key changes cut in (`key_changes.rs`)
    /// once every directory is listed, and once the children are joined.
    pub(super) fn scan(&mut self, input: &RoundInput, progress: &Progress) -> Scanned {
        let started = progress.0;
        let dirs: Vec<PathBuf> = if input.full {
            self.keys.dirs().cloned().collect()
        } else {
            input.dirs.iter().cloned().collect()
        };
        let held_before = self.unreadable_key_dirs();
        let mut affected = if input.full {
            self.scan_cutting_in(&dirs, started)
        } else {
            self.keys.scan_dirs(&dirs, started)
        };
        if !input.full {
            for (dir, files) in &input.files {
                affected.append(&mut self.keys.scan_files(dir, files, started));
            }
        }
        // Counted before a cut-in takes them for its own.
        let files_read = self.keys.take_files_read();
        affected.extend(input.names.iter().cloned());
        affected.append(&mut self.brake.pending);
        let flux_dirs = self.keys.dirs_in_flux();
        let held = self.unreadable_key_dirs();
        // A directory that reads again: everything, as on a full round
        // (names left in place while it was held may be gone now).
        let read_again = held_before.iter().any(|dir| !held.contains(dir));
        progress.phase("keys scanned");
        if input.full {
            // The children whose keys the listing found changed go first.
            self.known_keys.listed = true;
            self.cut_in(CutInPoint::ListingTaken(&affected));
        }
        let (mut children, mut gone) = if input.full || read_again {
            self.all_children()
        } else {
            self.children_among(&affected)
        };
        if input.full {
            if let Some(names) = self.cut_in(CutInPoint::ChildrenJoined) {
                self.join_again(&names, &mut children, &mut gone);
            }
        }
        self.hold_unread(&held, &mut children, &mut gone);
        Scanned {
            children,
            gone,
            flux_dirs,
            every_child: (input.full || read_again) && held.is_empty(),
            files_read,
        }
    }

    /// Joins the children a cut-in recomputed (`names`) again from the key
    /// store, in place of what the full round joined before it: planned
    /// from the same facts, they are found unchanged.
    fn join_again(
        &self,
        names: &BTreeSet<Name>,
        children: &mut Vec<ChildZone>,
        gone: &mut Vec<Name>,
    ) {
        let (fresh, fresh_gone) = self.children_among(names);
        let mut fresh: BTreeMap<Name, ChildZone> =
            fresh.into_iter().map(|c| (c.name.clone(), c)).collect();
        // In place: a million children need no second sort.
        children.retain_mut(|child| {
            if !names.contains(&child.name) {
                return true;
            }
            match fresh.remove(&child.name) {
                Some(again) => {
                    *child = again;
                    true
                }
                None => false,
            }
        });
        children.extend(fresh.into_values());
        gone.retain(|name| !names.contains(name));
        gone.extend(fresh_gone);
    }

    /// Partial reads are not deletions (issue 13): the children of a key
    /// directory that cannot be read (`held`) are not recomputed, their
    /// signals stay; while a `[[zones]]` set's directory cannot be read no
    /// name is withdrawn for lack of keys (they may be there). The round
    /// after the directory reads again recomputes everything.
    fn hold_unread(
        &self,
        held: &BTreeSet<PathBuf>,
        children: &mut Vec<ChildZone>,
        gone: &mut Vec<Name>,
    ) {
        if held.is_empty() {
            return;
        }
        children.retain(|c| !c.key_dir.as_ref().is_some_and(|d| held.contains(&**d)));
        if self.config.zone_sets.iter().any(|s| held.contains(&s.keys)) && !gone.is_empty() {
            tracing::debug!(
                names = gone.len(),
                "not withdrawn while a key directory is held"
            );
            gone.clear();
        }
    }

    /// Every child zone, and every name the served signalling zones still
    /// carry `_dsboot` owners for that is no child any more.
    fn all_children(&self) -> (Vec<ChildZone>, Vec<Name>) {
        let (all, errors) = model::children(&self.config, &self.keys);
        for error in errors {
            tracing::error!("{error}");
        }
        // In wire form, without a `Name` per owner: a million of them.
        let known: FxHashSet<Vec<u8>> = all
            .iter()
            .map(|c| {
                let mut wire = canonical_wire(&c.name);
                wire.pop(); // the root label
                wire
            })
            .collect();
        let mut gone_wires: FxHashSet<&[u8]> = FxHashSet::default();
        for zone in self.zones.values() {
            let apex = zone.store.apex_wire();
            for owner in zone.store.owner_wires() {
                if let Some(child) = plan::child_wire_of(owner, apex) {
                    if !known.contains(child) {
                        gone_wires.insert(child);
                    }
                }
            }
        }
        let mut gone: Vec<Name> = gone_wires
            .into_iter()
            .filter_map(|child| name_of(&[child, &[0]].concat()))
            .collect();
        gone.sort();
        (all, gone)
    }

    /// The child zones among `affected` names, and those no longer children.
    fn children_among(&self, affected: &BTreeSet<Name>) -> (Vec<ChildZone>, Vec<Name>) {
        let mut children = Vec::new();
        let mut gone = Vec::new();
        for name in affected {
            if self.zones.contains_key(name) {
                continue; // a signalling zone's own keys: applied with its zone
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
        (children, gone)
    }

    /// Phases 2 and 3: what the scanned children should publish, as changes
    /// per signalling zone (served here or hosted by a signer alike), less
    /// what the served zones already hold; [`PLAN_PART`] children at a
    /// time, then the children gone.
    fn plan(&self, scanned: Scanned, now: Timestamp) -> RoundPlan {
        let signaling = self.agent.active.then(|| self.signaling_targets());
        let targets = self.signal_targets();
        let facts = Facts {
            views: &self.agent.views,
            followed: &self.sidecar.followed,
            foreign: &self.providers.keys,
            signaling: signaling.as_deref(),
        };
        let mut plan = RoundPlan::default();
        let mut gone = scanned.gone.into_iter();
        let gone_parts = std::iter::from_fn(|| {
            let part: Vec<Name> = gone.by_ref().take(PLAN_PART).collect();
            (!part.is_empty()).then_some(part)
        });
        let parts = (scanned.children.chunks(PLAN_PART))
            .map(|part| (part, Vec::new()))
            .chain(gone_parts.map(|gone| (&[][..], gone)));
        for (children, gone) in parts {
            let mut part = plan::plan_round(children, gone, &targets, facts, now);
            self.drop_unchanged(&mut part);
            plan.append(part);
        }
        plan
    }

    /// Every signalling zone that carries `_dsboot` owners.
    fn signal_targets(&self) -> Vec<SignalTarget> {
        let served = self.zones.iter().map(|(apex, zone)| SignalTarget {
            apex: apex.clone(),
            ns_host: zone.config.ns_host(),
        });
        let hosted = self
            .published_signaling()
            .into_iter()
            .map(|(apex, ns_host)| SignalTarget { apex, ns_host });
        served.chain(hosted).collect()
    }

    /// Phase 3: drops from `plan` the changes each served signalling zone
    /// already holds, comparing each with the zone's node once, on all
    /// cores. A full round plans every child, and at a million children
    /// the brake, the check for any change and the store's update each
    /// compared all of them again. Hosted zones keep theirs: their
    /// publishers compare with what the signer serves.
    fn drop_unchanged(&self, plan: &mut RoundPlan) {
        for (apex, zone) in &self.zones {
            let Some(changes) = plan.changes.get(apex) else {
                continue;
            };
            // A comparison that failed keeps its change: later steps
            // compare again.
            let unchanged = cores::map(
                changes,
                4096,
                |change| plan::is_noop(&zone.store, change),
                |_| false,
            );
            plan.drop_changes(apex, &unchanged);
        }
    }

    /// Phase 5: acts on the plan. Scheduling goes ahead even when the brake
    /// `held` the round; every outward effect of the children's changes —
    /// apex UPDATEs, reports that lead to NOTIFYs, hosted and served
    /// signals — is held with it (and recomputed next round). Then hosted
    /// signalling zones go to their publishers and served ones are signed.
    fn apply(
        &mut self,
        mut plan: RoundPlan,
        held: bool,
        every_child: bool,
        full: bool,
        every_zone: bool,
        now: Timestamp,
    ) -> Applied {
        // Before the first new serial of a cold start.
        self.settle_takeover();
        for (child, next) in &plan.next_events {
            self.schedule.set(child, *next);
        }
        for name in &plan.gone {
            self.schedule.remove(name);
            self.agent.reported.remove(name);
        }
        self.delegations.remove_all(&plan.gone);
        if held {
            self.hold(&mut plan);
        }
        let states = std::mem::take(&mut plan.states);
        let held_children = std::mem::take(&mut plan.held);
        for event in self
            .delegations
            .record(states, held_children, held, every_child)
        {
            self.events.emit(event);
        }
        for (zone, wanted) in std::mem::take(&mut plan.apex_updates) {
            self.publish_apex(&zone, wanted);
        }
        let mut applied = Applied::default();
        for (apex, _) in self.published_signaling() {
            let changes = plan.changes.remove(&apex).unwrap_or_default();
            self.publish_signaling(&apex, changes);
        }
        let apexes: Vec<Name> = self.zones.keys().cloned().collect();
        for apex in apexes {
            let changes = plan.changes.remove(&apex).unwrap_or_default();
            match self.update_zone(&apex, changes, full, every_zone, now) {
                Some(super::sign::ZoneUpdate::Signed {
                    serial,
                    changed_names,
                }) => {
                    applied.new_versions += 1;
                    applied.changed_names += changed_names;
                    applied.new_serials.push((apex, serial));
                }
                Some(super::sign::ZoneUpdate::Unsignable) => applied.new_versions += 1,
                None => {}
            }
        }
        // Last: a child whose signals a zone could not serve yet (its serial
        // could not be recorded) is reported once its retry round serves them.
        let reports = std::mem::take(&mut plan.reports)
            .into_iter()
            .filter(|report| !self.serial_hold.holds_child(&report.zone))
            .collect();
        applied.child_reports = self.changed_reports(reports);
        applied
    }

    /// Takes every child effect out of a held `plan`, and remembers its
    /// children to recompute next round.
    fn hold(&mut self, plan: &mut RoundPlan) {
        let pending = &mut self.brake.pending;
        pending.extend(plan.touched.drain(..).map(|touched| touched.child));
        pending.extend(plan.apex_updates.drain(..).map(|(child, _)| child));
        pending.extend(plan.reports.drain(..).map(|report| report.zone));
        plan.changes.clear();
    }

    /// Phase 6: swaps in a snapshot of every served zone as it now stands.
    pub(super) fn publish_snapshot(&self) {
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
                    // Until the secondaries were asked what they hold, no
                    // transfer (the answer may drop the journal; a whole
                    // zone for every retrying secondary would cost more).
                    _ if self.takeover_pending => ServedZone::new(zone.store.clone()),
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
                .with_inbox(self.sidecar.inbox.clone())
                .with_report_agent(self.report_agent.clone()),
        ));
    }
}
