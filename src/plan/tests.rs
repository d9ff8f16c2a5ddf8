//! Planning tests: which owners a round changes, for whom, and what a held
//! child leaves alone.

use std::sync::Arc;

use super::*;
use crate::{
    config::PartialSettings,
    dns::{name::display, parse_name},
    keys::Key,
    zone::content::RrsetData,
};

fn name(text: &str) -> Name {
    parse_name(text).expect("valid")
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("valid")
}

fn targets() -> Vec<SignalTarget> {
    ["ns1.example.net.", "ns2.example.org."]
        .into_iter()
        .map(|ns| SignalTarget {
            apex: name(&format!("_signal.{ns}")),
            ns_host: name(ns),
        })
        .collect()
}

fn child(zone: &str, keys: Vec<Arc<Key>>) -> ChildZone {
    let mut settings = PartialSettings::default().resolve();
    settings.nameservers = vec![name("ns1.example.net."), name("ns2.example.org.")];
    ChildZone {
        name: name(zone),
        settings: Arc::new(settings),
        key_dir: None,
        keys,
        held: Vec::new(),
        issues: Vec::new(),
        source: "test".into(),
        follows: false,
        fetches_foreign: false,
        publish_types: Vec::new(),
    }
}

static NO_FOREIGN: BTreeMap<Name, ForeignKeys> = BTreeMap::new();

fn no_facts<'a>(
    views: &'a HashMap<Name, ParentView>,
    followed: &'a HashMap<Name, FollowedApex>,
) -> Facts<'a> {
    Facts {
        views,
        followed,
        foreign: &NO_FOREIGN,
        signaling: None,
    }
}

#[test]
fn child_of_reads_the_child_out_of_a_dsboot_owner() {
    let apex = name("_signal.ns1.example.net.");
    assert_eq!(
        child_of(
            &name("_dsboot.example.co.uk._signal.ns1.example.net."),
            &apex
        ),
        Some(name("example.co.uk."))
    );
    assert_eq!(
        child_of(&name("_DSBOOT.Example.com._signal.ns1.example.net."), &apex)
            .map(|n| display(&n).to_ascii_lowercase()),
        Some("example.com.".to_string())
    );
    assert_eq!(child_of(&apex, &apex), None);
    assert_eq!(
        child_of(&name("_dsboot._signal.ns1.example.net."), &apex),
        None
    );
    assert_eq!(
        child_of(&name("www.example.com._signal.ns1.example.net."), &apex),
        None
    );
}

/// The wire form agrees with [`child_of`] on canonical (lower-case) owners.
#[test]
fn child_wire_of_agrees_with_child_of() {
    let apex = name("_signal.ns1.example.net.");
    let apex_wire = canonical_wire(&apex);
    for owner in [
        "_dsboot.example.co.uk._signal.ns1.example.net.",
        "_dsboot.example.com._signal.ns1.example.net.",
        "_signal.ns1.example.net.",
        "_dsboot._signal.ns1.example.net.",
        "www.example.com._signal.ns1.example.net.",
        "_dsboot.x_signal.ns1.example.net.",
        "_dsboot.ns1.example.net.",
    ] {
        let owner = name(owner);
        let wire = canonical_wire(&owner);
        let by_wire = child_wire_of(&wire, &apex_wire).map(|child| [child, &[0]].concat());
        let by_name = child_of(&owner, &apex).map(|child| canonical_wire(&child));
        assert_eq!(by_wire, by_name, "{}", display(&owner));
    }
    // Stricter than `child_of`, which only counts labels: not under the apex.
    let outside = canonical_wire(&name("_dsboot.a.b._signal.ns1.example.net.x."));
    assert_eq!(child_wire_of(&outside, &apex_wire), None);
}

#[test]
fn is_noop_compares_with_what_the_store_holds() {
    let store = ZoneStore::new(name("_signal.ns1.example.net."));
    let owner = name("_dsboot.example.com._signal.ns1.example.net.");
    let remove = Change {
        owner: owner.clone(),
        rrsets: None,
    };
    let empty = Change {
        owner: owner.clone(),
        rrsets: Some(vec![RrsetData::new(RecordType::CDS, 3600, Vec::new())]),
    };
    let add = Change {
        owner,
        rrsets: Some(vec![RrsetData::new(
            RecordType::CDS,
            3600,
            vec![vec![0, 0, 0]],
        )]),
    };
    assert!(is_noop(&store, &remove), "removing what is not there");
    assert!(
        is_noop(&store, &empty),
        "an empty RRset where there is none"
    );
    assert!(!is_noop(&store, &add), "a new RRset");
}

#[test]
fn a_held_child_plans_nothing() {
    let (views, followed) = (HashMap::new(), HashMap::new());
    let mut held = child("held.example.", Vec::new());
    held.held.push("a key file cannot be read".into());
    let mut waiting = child("follows.example.", Vec::new());
    waiting.follows = true;
    // Other providers whose keys were never validated: a CDS set without
    // them would ask the parent to drop their DS.
    let mut multi = child("multi.example.", Vec::new());
    multi.fetches_foreign = true;
    let plan = plan_round(
        &[held, waiting, multi],
        Vec::new(),
        &targets(),
        no_facts(&views, &followed),
        now(),
    );
    assert!(plan.changes.is_empty());
    assert!(plan.touched.is_empty());
    assert!(
        plan.next_events.is_empty(),
        "held children keep their schedule"
    );
    assert!(plan.apex_updates.is_empty());
}

#[test]
fn a_child_without_keys_withdraws_its_dsboot_owners_in_every_signalling_zone() {
    let (views, followed) = (HashMap::new(), HashMap::new());
    let plan = plan_round(
        &[child("example.com.", Vec::new())],
        Vec::new(),
        &targets(),
        no_facts(&views, &followed),
        now(),
    );
    assert_eq!(plan.touched.len(), 1);
    assert_eq!(plan.touched[0].child, name("example.com."));
    assert_eq!(plan.touched[0].owners.len(), 2);
    for owner in &plan.touched[0].owners {
        let change = plan.change(owner).expect("recorded");
        assert!(change.rrsets.is_none());
        assert_eq!(
            child_of(&change.owner, &owner.0),
            Some(name("example.com."))
        );
    }
    assert_eq!(plan.next_events, vec![(name("example.com."), None)]);
    assert!(plan.reports.is_empty(), "no agent, no reports");
}

#[test]
fn a_child_with_a_ready_ksk_signals_in_every_signalling_zone() {
    let (views, followed) = (HashMap::new(), HashMap::new());
    let mut settings_child = child(
        "example.com.",
        vec![crate::keys::rfc8080_csk("example.com.")],
    );
    Arc::make_mut(&mut settings_child.settings).cds = crate::config::CdsMode::Always;
    let plan = plan_round(
        &[settings_child],
        Vec::new(),
        &targets(),
        no_facts(&views, &followed),
        now(),
    );
    assert_eq!(plan.changes.len(), 2, "one change per signalling zone");
    for (apex, changes) in &plan.changes {
        assert_eq!(changes.len(), 1);
        let rrsets = changes[0].rrsets.as_ref().expect("signals");
        let types: Vec<RecordType> = rrsets.iter().map(|r| r.rtype).collect();
        assert!(types.contains(&RecordType::CDS), "{apex}: {types:?}");
        assert!(types.contains(&RecordType::CDNSKEY), "{apex}: {types:?}");
    }
}

#[test]
fn gone_children_lose_their_owners_and_changes_stay_addressable() {
    let (views, followed) = (HashMap::new(), HashMap::new());
    let plan = plan_round(
        &[child("stays.example.", Vec::new())],
        vec![name("gone.example.")],
        &targets(),
        no_facts(&views, &followed),
        now(),
    );
    assert_eq!(plan.gone, vec![name("gone.example.")]);
    let gone = plan
        .touched
        .iter()
        .find(|t| t.child == name("gone.example."))
        .expect("touched");
    assert_eq!(gone.owners.len(), 2);
    for owner in &gone.owners {
        let change = plan.change(owner).expect("recorded");
        assert_eq!(
            child_of(&change.owner, &owner.0),
            Some(name("gone.example."))
        );
        assert!(change.rrsets.is_none());
    }
    // Both children's changes sit in the same per-zone lists, in order.
    for changes in plan.changes.values() {
        assert_eq!(changes.len(), 2);
    }
}

#[test]
fn dropping_unchanged_changes_keeps_every_child_pointing_at_its_own() {
    let (views, followed) = (HashMap::new(), HashMap::new());
    let children = ["a.example.", "b.example.", "c.example.", "d.example."];
    let children: Vec<ChildZone> = children.iter().map(|c| child(c, Vec::new())).collect();
    let mut plan = plan_round(
        &children,
        Vec::new(),
        &targets(),
        no_facts(&views, &followed),
        now(),
    );
    let first = targets()[0].apex.clone();
    let second = targets()[1].apex.clone();
    // In the first zone a and c already hold what they want; in the second
    // nothing does; a flag list of the wrong length drops nothing.
    plan.drop_changes(&first, &[true, false, true, false]);
    plan.drop_changes(&second, &[false, false, false, false]);
    plan.drop_changes(&second, &[true, true]);
    assert_eq!(plan.changes[&first].len(), 2);
    assert_eq!(plan.changes[&second].len(), 4);
    assert_eq!(plan.touched.len(), 4, "every child stays touched");
    for touched in &plan.touched {
        let in_first = touched.owners.iter().filter(|(apex, _)| *apex == first);
        let kept = ["b.example.", "d.example."].contains(&display(&touched.child).as_str());
        let expected = usize::from(kept);
        assert_eq!(in_first.count(), expected, "{}", touched.child);
        for owner in &touched.owners {
            let change = plan.change(owner).expect("recorded");
            assert_eq!(
                child_of(&change.owner, &owner.0),
                Some(touched.child.clone())
            );
        }
    }
}

/// A round plans a part of its children at a time, drops what each part's
/// zones already hold, and appends the parts (`daemon::round`): the result
/// is the plan of the whole round with the same changes dropped.
#[test]
fn plans_of_parts_appended_are_the_plan_of_the_whole() {
    let (views, followed) = (HashMap::new(), HashMap::new());
    let facts = no_facts(&views, &followed);
    let names = [
        "a.example.",
        "b.example.",
        "c.example.",
        "d.example.",
        "e.example.",
    ];
    let children: Vec<ChildZone> = names.iter().map(|c| child(c, Vec::new())).collect();
    let gone = vec![name("gone.example.")];
    let first = targets()[0].apex.clone();
    let second = targets()[1].apex.clone();
    // The first zone already holds b's and d's changes, the second a's and
    // b's: the first part leaves it no change.
    let mut whole = plan_round(&children, gone.clone(), &targets(), facts, now());
    whole.drop_changes(&first, &[false, true, false, true, false, false]);
    whole.drop_changes(&second, &[true, true, false, false, false, false]);
    let mut parts = RoundPlan::default();
    let mut part = plan_round(&children[..2], Vec::new(), &targets(), facts, now());
    part.drop_changes(&first, &[false, true]);
    part.drop_changes(&second, &[true, true]);
    parts.append(part);
    let mut part = plan_round(&children[2..], Vec::new(), &targets(), facts, now());
    part.drop_changes(&first, &[false, true, false]);
    parts.append(part);
    parts.append(plan_round(&[], gone, &targets(), facts, now()));

    assert_eq!(parts.changes, whole.changes);
    assert_eq!(parts.touched, whole.touched);
    assert_eq!(parts.states, whole.states);
    assert_eq!(parts.next_events, whole.next_events);
    assert_eq!(parts.gone, whole.gone);
    assert_eq!(parts.held, whole.held);
    assert_eq!(parts.apex_updates.len(), whole.apex_updates.len());
    assert_eq!(parts.reports.len(), whole.reports.len());
    // Each child points at its own changes, the later parts' moved down
    // their zones' lists.
    assert_eq!(parts.changes[&first].len(), 4);
    assert_eq!(parts.changes[&second].len(), 4);
    for touched in &parts.touched {
        for owner in &touched.owners {
            let change = parts.change(owner).expect("recorded");
            assert_eq!(
                child_of(&change.owner, &owner.0),
                Some(touched.child.clone())
            );
        }
    }
    // A child left with no change in a zone keeps no list for it.
    let b = (parts.touched.iter())
        .find(|t| t.child == name("b.example."))
        .expect("touched");
    assert!(b.owners.iter().all(|(apex, _)| *apex != first));
}

#[test]
fn apex_wanted_writes_each_published_type_and_empties_the_rest() {
    let zone = name("example.com.");
    let cds = RecordSet::new(zone.clone(), RecordType::CDS, 3600, Vec::new());
    let cdnskey = RecordSet::new(zone.clone(), RecordType::CDNSKEY, 3600, Vec::new());
    let wanted = apex_wanted(
        &zone,
        &[RecordType::CDS, RecordType::CSYNC],
        &cds,
        &cdnskey,
        None,
    );
    assert_eq!(wanted.len(), 2);
    assert!(
        wanted
            .iter()
            .all(|w| w.owner == zone && w.rdatas.is_empty())
    );
    assert_eq!(wanted[1].rtype, RecordType::CSYNC);
}
