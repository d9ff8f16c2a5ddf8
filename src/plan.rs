//! Round planning: from the child zones a round recomputes to what each
//! publisher should do. Pure: no I/O, no clocks but the `now` it is given,
//! no daemon state; the daemon applies what it returns.
//!
//! For every child the policy ([`crate::policy`]) decides its CDS/CDNSKEY
//! (RFC 7344 §4, RFC 8078), CSYNC (RFC 7477) and RFC 9615 `_dsboot` signals.
//! Planning turns those into:
//! - a [`Change`] of the owner `_dsboot.<child>._signal.<ns-host>` (RFC 9615
//!   §2) in every signalling zone: its CDS/CDNSKEY RRsets, byte-identical to
//!   the apex ones, or its removal;
//! - the apex RRsets a `[[zone]]` with `publish` writes into its signer by
//!   UPDATE ([`Wanted`]);
//! - what the parent agent must check before a generalized NOTIFY (RFC 9859,
//!   RFC 9975 consistency: [`ChildReport`]);
//! - when the child's keys next change something (its next timing event).
//!
//! A child that is held (unreadable keys, a policy hold, a followed signer
//! not read yet, other providers whose keys were never validated) plans
//! nothing: what it published stays. Children that
//! stopped being children get their `_dsboot` owners removed everywhere.
//! Planning is level-triggered: the desired state comes from all facts, and
//! only the difference to what is published is applied later.

use std::collections::{BTreeMap, HashMap};

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use crate::{
    dns::{
        RecordSet,
        name::{canonical_wire, dsboot_name},
    },
    model::ChildZone,
    parent::{self, ChildReport, SignalingTarget},
    policy::{self, DelegationState, FollowedApex, ParentView, ZoneInput},
    providers::ForeignKeys,
    publish::Wanted,
    zone::{Change, ZoneStore, content},
};

/// What the daemon has learnt from outside the key directories.
#[derive(Clone, Copy)]
pub struct Facts<'a> {
    /// The parent's DS/NS per child (the parent observer).
    pub views: &'a HashMap<Name, ParentView>,
    /// The signer's apex per followed child (sidecar mode).
    pub followed: &'a HashMap<Name, FollowedApex>,
    /// The other providers' KSKs per child with `foreign_from`, as last
    /// validated.
    pub foreign: &'a BTreeMap<Name, ForeignKeys>,
    /// The signalling zones as the consistency gate checks them; `None` when
    /// no parent agent runs (then no reports are planned).
    pub signaling: Option<&'a [SignalingTarget]>,
}

/// A signalling zone `_signal.<ns-host>` that carries `_dsboot` owners:
/// served here or hosted by a signer alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalTarget {
    /// Its apex.
    pub apex: Name,
    /// The NS host whose signals it carries.
    pub ns_host: Name,
}

/// One child's share of a round.
#[derive(Debug, Clone)]
pub struct ChildOutcome {
    /// Its `_dsboot` owner's change, per signalling zone apex.
    pub changes: Vec<(Name, Change)>,
    /// When its keys next change something.
    pub next_event: Option<Timestamp>,
    /// What the parent agent checks before NOTIFY, when an agent runs.
    pub report: Option<ChildReport>,
    /// The apex RRsets its `publish` writes by UPDATE.
    pub apex: Vec<Wanted>,
    /// Where its delegation stands ([`policy::delegation_state`]).
    pub state: DelegationState,
}

/// Where one child's changes sit in [`RoundPlan::changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TouchedChild {
    /// The child.
    pub child: Name,
    /// (signalling zone apex, index of its change in that zone's list).
    pub owners: Vec<(Name, usize)>,
}

/// Everything a round should do, before the safety brake looks at it.
#[derive(Debug, Clone, Default)]
pub struct RoundPlan {
    /// Changes per signalling zone apex.
    pub changes: BTreeMap<Name, Vec<Change>>,
    /// The children behind the changes (a `Vec`: each child comes once, and
    /// a million `Name` comparisons in a map cost seconds).
    pub touched: Vec<TouchedChild>,
    /// Apex RRsets to write by UPDATE, per child with `publish`.
    pub apex_updates: Vec<(Name, Vec<Wanted>)>,
    /// Reports for the parent agent, one per planned child.
    pub reports: Vec<ChildReport>,
    /// Each planned child's next timing event.
    pub next_events: Vec<(Name, Option<Timestamp>)>,
    /// Names that stopped being child zones.
    pub gone: Vec<Name>,
    /// Every planned child's delegation state, by [`child_key`] (a held
    /// child is [`DelegationState::Held`]).
    pub states: Vec<(u64, DelegationState)>,
    /// The held children and why (few: a child waiting for its signer's
    /// first read is held without a reason here).
    pub held: Vec<(Name, String)>,
}

/// A child's key in per-child tables that must stay small at a million
/// children: a 64-bit SipHash of its lower-cased wire name, keyed at random
/// once per process (the table is never saved, and names an outsider might
/// choose cannot be made to collide). Two of a million names share a key
/// with a probability of about 3e-8.
pub fn child_key(name: &Name) -> u64 {
    use std::hash::BuildHasher;
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEYS.get_or_init(std::hash::RandomState::new)
        .hash_one(canonical_wire(name))
}

/// Plans a round: the policy for every child in `children` (on all cores:
/// it is pure), then the changes for `targets`; `gone` children lose their
/// `_dsboot` owners in every target.
pub fn plan_round(
    children: &[ChildZone],
    gone: Vec<Name>,
    targets: &[SignalTarget],
    facts: Facts<'_>,
    now: Timestamp,
) -> RoundPlan {
    let outcomes = child_outcomes(children, targets, facts, now);
    assemble(children, outcomes, gone, targets)
}

/// Gathers the per-child outcomes into one plan.
pub fn assemble(
    children: &[ChildZone],
    outcomes: Vec<Result<ChildOutcome, NotPlanned>>,
    gone: Vec<Name>,
    targets: &[SignalTarget],
) -> RoundPlan {
    let mut plan = RoundPlan::default();
    for (child, outcome) in children.iter().zip(outcomes) {
        for issue in &child.issues {
            tracing::warn!(zone = display(&child.name), key_tag = issue.tag, "{issue}");
        }
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(why) => {
                plan.states
                    .push((child_key(&child.name), DelegationState::Held));
                if let NotPlanned::Held(reason) = why {
                    tracing::warn!(
                        zone = display(&child.name),
                        reasons = reason,
                        "zone held: its published signals stay as they are"
                    );
                    plan.held.push((child.name.clone(), reason));
                }
                continue;
            }
        };
        plan.states.push((child_key(&child.name), outcome.state));
        plan.next_events
            .push((child.name.clone(), outcome.next_event));
        if !outcome.apex.is_empty() {
            plan.apex_updates.push((child.name.clone(), outcome.apex));
        }
        if let Some(report) = outcome.report {
            plan.reports.push(report);
        }
        // Collected into a list of its own size: `collect` would reuse the
        // outcome's list of changes, four times their size, for the round.
        let mut owners = Vec::with_capacity(outcome.changes.len());
        for (apex, change) in outcome.changes {
            owners.push(plan.push_change(apex, change));
        }
        plan.touch(child.name.clone(), owners);
    }
    for name in &gone {
        let owners = targets
            .iter()
            .filter_map(|target| {
                let owner = dsboot_name(name, &target.ns_host).ok()?;
                Some(plan.push_change(
                    target.apex.clone(),
                    Change {
                        owner,
                        rrsets: None,
                    },
                ))
            })
            .collect();
        plan.touch(name.clone(), owners);
    }
    plan.gone = gone;
    plan
}

impl RoundPlan {
    /// Appends `change` to `apex`'s list; returns where it went.
    fn push_change(&mut self, apex: Name, change: Change) -> (Name, usize) {
        let list = self.changes.entry(apex.clone()).or_default();
        list.push(change);
        (apex, list.len() - 1)
    }

    fn touch(&mut self, child: Name, owners: Vec<(Name, usize)>) {
        if !owners.is_empty() {
            self.touched.push(TouchedChild { child, owners });
        }
    }

    /// Appends `part`, the plan of children after this plan's: its changes
    /// go after this plan's in each zone's list, its children pointing at
    /// them there. Planning a round in parts and appending them gives the
    /// plan of the whole round.
    pub fn append(&mut self, part: RoundPlan) {
        let RoundPlan {
            changes,
            mut touched,
            apex_updates,
            reports,
            next_events,
            gone,
            states,
            held,
        } = part;
        let mut offsets: Vec<(Name, usize)> = Vec::new();
        for (apex, list) in changes {
            let mine = self.changes.entry(apex.clone()).or_default();
            if !mine.is_empty() {
                offsets.push((apex, mine.len()));
            }
            mine.extend(list);
        }
        if !offsets.is_empty() {
            for (apex, index) in touched.iter_mut().flat_map(|t| t.owners.iter_mut()) {
                if let Some((_, offset)) = offsets.iter().find(|(a, _)| a == apex) {
                    *index += offset;
                }
            }
        }
        self.touched.append(&mut touched);
        self.apex_updates.extend(apex_updates);
        self.reports.extend(reports);
        self.next_events.extend(next_events);
        self.gone.extend(gone);
        self.states.extend(states);
        self.held.extend(held);
    }

    /// The change at `owner` (as recorded in [`TouchedChild::owners`]).
    pub fn change(&self, (apex, index): &(Name, usize)) -> Option<&Change> {
        self.changes.get(apex).and_then(|list| list.get(*index))
    }

    /// Drops the changes to `apex` whose `unchanged` flag is set (one flag
    /// per change, in order: what the zone already holds), keeping every
    /// [`TouchedChild::owners`] pointing at its change. A child left with no
    /// change keeps its entry: a held round still recomputes it. Nothing is
    /// dropped when the flags do not match the list.
    pub fn drop_changes(&mut self, apex: &Name, unchanged: &[bool]) {
        let Some(list) = self.changes.get_mut(apex) else {
            return;
        };
        if unchanged.len() != list.len() || !unchanged.contains(&true) {
            return;
        }
        let mut kept = 0;
        let new_index: Vec<Option<usize>> = unchanged
            .iter()
            .map(|&same| {
                (!same).then(|| {
                    kept += 1;
                    kept - 1
                })
            })
            .collect();
        let mut kept = new_index.iter();
        list.retain(|_| kept.next().is_some_and(Option::is_some));
        for touched in &mut self.touched {
            touched.owners.retain_mut(|(owner_apex, index)| {
                if owner_apex != apex {
                    return true;
                }
                match new_index.get(*index).copied().flatten() {
                    Some(new) => {
                        *index = new;
                        true
                    }
                    None => false,
                }
            });
            if touched.owners.is_empty() {
                // Kept for every child of a full round: without its list.
                touched.owners = Vec::new();
            }
        }
    }
}

/// Why a child plans nothing this round (what it published stays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotPlanned {
    /// Held, for this reason (unreadable keys, its signer and its key
    /// directory disagree, the policy failed).
    Held(String),
    /// Its followed signer's apex has not been read yet, or its other
    /// providers' keys have never been validated.
    Waiting,
}

/// The policy for one child, or why it plans nothing.
fn child_outcome(
    child: &ChildZone,
    targets: &[SignalTarget],
    facts: Facts<'_>,
    now: Timestamp,
) -> Result<ChildOutcome, NotPlanned> {
    if child.is_held() {
        return Err(NotPlanned::Held(child.held.join("; ")));
    }
    let view = facts.views.get(&child.name);
    let followed = facts.followed.get(&child.name);
    if child.follows && followed.is_none() {
        // Not read from the signer yet: what is published stays.
        tracing::debug!(
            zone = display(&child.name),
            "waiting for the first read of the signer's apex"
        );
        return Err(NotPlanned::Waiting);
    }
    // Fetched keys count until the restart that drops them with their
    // `foreign_from`, also when a reload removed it (no sudden withdrawal).
    let foreign = facts.foreign.get(&child.name);
    if child.fetches_foreign && foreign.is_none() {
        // A CDS set without the other providers' keys would ask the parent
        // to drop their DS: what is published stays.
        tracing::debug!(
            zone = display(&child.name),
            "waiting for the other providers' keys (foreign_from)"
        );
        return Err(NotPlanned::Waiting);
    }
    let signals = policy::compute(
        &ZoneInput {
            followed,
            foreign: foreign.map_or(&[], |f| f.keys.as_slice()),
            ..child.input(view, None)
        },
        now,
    );
    signals.trace();
    if let Some(why) = &signals.hold {
        return Err(NotPlanned::Held(why.clone()));
    }
    let changes = targets
        .iter()
        .filter_map(|target| {
            let owner = dsboot_name(&child.name, &target.ns_host).ok()?;
            let rrsets = content::dsboot_rrsets(&signals, &target.ns_host).map(|(_, r)| r);
            Some((target.apex.clone(), Change { owner, rrsets }))
        })
        .collect();
    let report = facts
        .signaling
        .map(|targets| parent::plan(&signals, &child.settings.nameservers, view, targets));
    let apex = apex_wanted(
        &child.name,
        &child.publish_types,
        &signals.cds,
        &signals.cdnskey,
        signals.csync.as_ref(),
    );
    let state = policy::delegation_state(&signals, &child.keys, view, now);
    Ok(ChildOutcome {
        changes,
        next_event: policy::next_event(&child.keys, now),
        report,
        apex,
        state,
    })
}

/// Runs [`child_outcome`] for every child, on all cores when there are
/// enough children to pay for the threads ([`crate::cores::map`]).
pub fn child_outcomes(
    children: &[ChildZone],
    targets: &[SignalTarget],
    facts: Facts<'_>,
    now: Timestamp,
) -> Vec<Result<ChildOutcome, NotPlanned>> {
    // A child whose policy panicked is held: what it published stays.
    crate::cores::map(
        children,
        512,
        |child| child_outcome(child, targets, facts, now),
        |_| {
            Err(NotPlanned::Held(
                "the policy failed for it (see the log)".into(),
            ))
        },
    )
}

/// What a child's `publish` writes, from its signals: for each type in
/// `types`, the RRset (empty = remove).
pub fn apex_wanted(
    zone: &Name,
    types: &[RecordType],
    cds: &RecordSet,
    cdnskey: &RecordSet,
    csync: Option<&RecordSet>,
) -> Vec<Wanted> {
    types
        .iter()
        .map(|rtype| {
            let set = match rtype {
                RecordType::CDS => Some(cds),
                RecordType::CDNSKEY => Some(cdnskey),
                _ => csync,
            };
            let data = set.map(content::RrsetData::from_set);
            Wanted {
                owner: zone.clone(),
                rtype: *rtype,
                ttl: data.as_ref().map_or(0, |d| d.ttl),
                rdatas: data.map(|d| d.rdatas).unwrap_or_default(),
            }
        })
        .collect()
}

/// The child a `_dsboot.<child>.<apex>` owner signals for (RFC 9615 §2).
pub fn child_of(owner: &Name, apex: &Name) -> Option<Name> {
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

/// The child of a `_dsboot` owner in canonical wire form (as a zone store
/// keys its nodes) under the apex `apex_wire`: the child's labels in wire
/// form without the root label, or `None` for any other owner. The bulk
/// form of [`child_of`], without a `Name` (a full round looks at every
/// owner of a million-child zone).
pub fn child_wire_of<'a>(owner_wire: &'a [u8], apex_wire: &[u8]) -> Option<&'a [u8]> {
    const DSBOOT: &[u8] = b"\x07_dsboot";
    let rest = owner_wire.strip_prefix(DSBOOT)?;
    let child = rest.strip_suffix(apex_wire)?;
    // At least one label, and the apex starting at a label boundary.
    (!child.is_empty() && crate::dns::name::whole_labels(child)).then_some(child)
}

/// True when the store already holds exactly what `change` asks for.
pub fn is_noop(store: &ZoneStore, change: &Change) -> bool {
    let wire = canonical_wire(&change.owner);
    match (store.node(&wire), &change.rrsets) {
        (None, None) => true,
        (Some(node), Some(rrsets)) => node.holds(rrsets),
        (None, Some(rrsets)) => rrsets.iter().all(|r| r.rdatas.is_empty()),
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests;
