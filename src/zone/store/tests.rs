//! Signing tests: signatures verify, the NSEC chain is complete, and updates
//! re-sign only what changed.

use std::sync::Arc;

use super::*;
use crate::zone::signer::{SignError, ZoneSigner};
use crate::{dns::parse_name, dnssec::signer, keys::Key};

fn csk(zone: &str) -> Arc<Key> {
    crate::keys::rfc8080_csk(zone)
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("valid")
}

fn content(children: &[&str]) -> ZoneContent {
    crate::zone::content::test_signalling_zone(children, false)
}

fn signer() -> ZoneSigner {
    ZoneSigner::from_keys(&[csk("_signal.ns1.example.net.")], now())
}

fn verify_all(zone: &ZoneStore) -> usize {
    // Every data name is in both indexes, and nothing else is; the order
    // keys are the canonical keys without the apex's, the apex's empty.
    assert_eq!(zone.any_order_nodes().count(), zone.order.len());
    assert_eq!(zone.nodes().count(), zone.order.len());
    assert!(zone.order.iter().next().is_some_and(|k| k.is_empty()));
    for (key, node) in zone.order.iter().zip(zone.nodes()) {
        let full = canonical_key(&name_of(node.wire()).expect("a name"));
        assert_eq!([&zone.apex_key[..], &key[..]].concat(), full);
    }
    let key = csk("_signal.ns1.example.net.");
    let mut count = 0;
    for node in zone.nodes() {
        let owner = name_of(node.wire()).expect("a name");
        for rrset in node.rrsets() {
            let sigs = rrset.rrsigs();
            assert_eq!(sigs.len(), 1, "{} {}", display(&owner), rrset.rtype);
            let rdatas: Vec<Vec<u8>> = rrset.rdatas().iter().map(|r| r.to_vec()).collect();
            for sig in &sigs {
                assert!(signer::verify(sig, &owner, &rdatas, &key.dnskey));
                count += 1;
            }
        }
    }
    count
}

/// The NSEC chain as (owner, next) text pairs, in canonical order.
fn chain(zone: &ZoneStore) -> Vec<(String, String)> {
    zone.nodes()
        .map(|n| {
            let nsec = n.rrset(RecordType::NSEC).expect("nsec");
            let next = nsec.rdatas()[0];
            let (_, len) = crate::dns::name::from_wire(next).expect("a name");
            (
                display(&name_of(n.wire()).expect("name")),
                display(&name_of(&next[..len]).expect("name")),
            )
        })
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn signs_everything_and_chains_nsec() {
    let mut zone = ZoneStore::new(parse_name("_signal.ns1.example.net.").expect("valid"));
    let options = ZoneOptions::default();
    let stats = zone
        .sync(
            &content(&["example.com", "a.example"]),
            &signer(),
            7,
            now(),
            &options,
        )
        .expect("signed");
    assert_eq!(stats.names, 3);
    // apex: SOA NS DNSKEY NSEC; two children: CDS NSEC each.
    assert_eq!(stats.rrsets_signed, 8);
    assert_eq!(verify_all(&zone), 8);
    // Canonical order compares labels from the root down: com < example.
    assert_eq!(
        chain(&zone),
        [
            pair(
                "_signal.ns1.example.net.",
                "_dsboot.example.com._signal.ns1.example.net."
            ),
            pair(
                "_dsboot.example.com._signal.ns1.example.net.",
                "_dsboot.a.example._signal.ns1.example.net."
            ),
            pair(
                "_dsboot.a.example._signal.ns1.example.net.",
                "_signal.ns1.example.net."
            ),
        ]
    );
    let sig = &zone
        .apex_node()
        .expect("apex")
        .rrset(RecordType::SOA)
        .expect("soa")
        .rrsigs()[0];
    let now = now().as_second() as u32;
    assert_eq!(sig.inception, now - 3600);
    assert!(sig.expiration <= now + 14 * 86_400 && sig.expiration > now + 14 * 86_400 - 12 * 3600);
    assert_eq!(zone.negative_ttl(), 300);
    assert_eq!(zone.serial(), 7);
    // Empty non-terminals exist.
    let ent = crate::dns::name::canonical_wire(
        &parse_name("com._signal.ns1.example.net.").expect("valid"),
    );
    assert!(matches!(zone.entry(&ent), Some(Entry::Ent)));
}

/// A name without data exists (NODATA, not NXDOMAIN) exactly while a data
/// name lies below it; a name that only shares a prefix with one does not.
#[test]
fn empty_non_terminals_come_and_go_with_the_names_below_them() {
    let mut zone = ZoneStore::new(parse_name("_signal.ns1.example.net.").expect("valid"));
    let options = ZoneOptions::default();
    let at = |zone: &ZoneStore, name: &str| {
        let wire = crate::dns::name::canonical_wire(&parse_name(name).expect("valid"));
        match zone.entry(&wire) {
            Some(Entry::Node(_)) => "data",
            Some(Entry::Ent) => "empty non-terminal",
            None => "nothing",
        }
    };
    // The first version is built whole (the cold path); the deep name then
    // comes through the incremental path.
    zone.sync(&content(&["a.example"]), &signer(), 1, now(), &options)
        .expect("signed");
    assert_eq!(
        at(&zone, "deep.example._signal.ns1.example.net."),
        "nothing"
    );
    zone.sync(
        &content(&["x.y.deep.example", "a.example"]),
        &signer(),
        2,
        now(),
        &options,
    )
    .expect("signed");
    for (name, what) in [
        ("_dsboot.x.y.deep.example._signal.ns1.example.net.", "data"),
        (
            "x.y.deep.example._signal.ns1.example.net.",
            "empty non-terminal",
        ),
        (
            "y.deep.example._signal.ns1.example.net.",
            "empty non-terminal",
        ),
        (
            "deep.example._signal.ns1.example.net.",
            "empty non-terminal",
        ),
        ("example._signal.ns1.example.net.", "empty non-terminal"),
        ("_signal.ns1.example.net.", "data"),
        ("deeper.example._signal.ns1.example.net.", "nothing"),
        ("dee.example._signal.ns1.example.net.", "nothing"),
        ("z.x.y.deep.example._signal.ns1.example.net.", "nothing"),
        (
            "_dsboot.x.y.deep.example2._signal.ns1.example.net.",
            "nothing",
        ),
    ] {
        assert_eq!(at(&zone, name), what, "{name}");
    }
    zone.sync(&content(&["a.example"]), &signer(), 3, now(), &options)
        .expect("signed");
    assert_eq!(
        at(&zone, "deep.example._signal.ns1.example.net."),
        "nothing"
    );
    assert_eq!(
        at(&zone, "x.y.deep.example._signal.ns1.example.net."),
        "nothing"
    );
    assert_eq!(
        at(&zone, "example._signal.ns1.example.net."),
        "empty non-terminal"
    );
    zone.sync(&content(&[]), &signer(), 4, now(), &options)
        .expect("signed");
    assert_eq!(at(&zone, "example._signal.ns1.example.net."), "nothing");
    assert_eq!(at(&zone, "_signal.ns1.example.net."), "data");
}

#[test]
fn updates_resign_only_what_changed() {
    let mut zone = ZoneStore::new(parse_name("_signal.ns1.example.net.").expect("valid"));
    let options = ZoneOptions::default();
    let sync = |zone: &mut ZoneStore, children: &[&str], serial: u32| {
        zone.sync(&content(children), &signer(), serial, now(), &options)
            .expect("signed")
    };
    let touched = |stats: &UpdateStats| -> Vec<String> {
        let mut names: Vec<String> = (stats.touched.iter())
            .map(|w| display(&name_of(w).expect("a name")))
            .collect();
        names.sort();
        names
    };
    let stats = sync(&mut zone, &["a.example", "c.example"], 1);
    // Built from nothing: no version before it to diff against.
    assert!(stats.touched.is_empty());
    let before = zone.clone();
    // Same content, new serial: only the SOA is re-signed.
    let stats = sync(&mut zone, &["a.example", "c.example"], 2);
    assert_eq!((stats.rrsets_signed, stats.changed_names), (1, 0));
    // A child between the two: its CDS and NSEC, the predecessor's NSEC, the SOA.
    let stats = sync(&mut zone, &["a.example", "b.example", "c.example"], 3);
    assert_eq!((stats.rrsets_signed, stats.changed_names), (4, 1));
    assert_eq!(verify_all(&zone), 10);
    // What the IXFR diff reads: the new name, its predecessor (NSEC) and
    // the apex (SOA).
    assert_eq!(
        touched(&stats),
        [
            "_dsboot.a.example._signal.ns1.example.net.",
            "_dsboot.b.example._signal.ns1.example.net.",
            "_signal.ns1.example.net.",
        ]
    );
    // Removing it again: the predecessor's NSEC and the SOA; the ENT goes.
    let stats = sync(&mut zone, &["a.example", "c.example"], 4);
    assert_eq!((stats.rrsets_signed, stats.changed_names), (2, 1));
    assert_eq!(chain(&zone), chain(&before));
    let ent = crate::dns::name::canonical_wire(
        &parse_name("b.example._signal.ns1.example.net.").expect("valid"),
    );
    assert!(zone.entry(&ent).is_none());
    // 8 days in, 6 days (less jitter) remain: nothing is due.
    let later = now() + jiff::SignedDuration::from_hours(24 * 8);
    assert!(!zone.needs_refresh(&signer(), later, &options));
    // 10 days in, less than 5 days remain: everything is re-signed.
    let later = now() + jiff::SignedDuration::from_hours(24 * 10);
    assert!(zone.needs_refresh(&signer(), later, &options));
    let stats = zone.refresh(&signer(), 5, later, &options).expect("signed");
    assert_eq!(stats.rrsets_signed, 8);
    assert_eq!(verify_all(&zone), 8);
}

#[test]
fn the_old_version_is_untouched_by_an_update() {
    let mut zone = ZoneStore::new(parse_name("_signal.ns1.example.net.").expect("valid"));
    let options = ZoneOptions::default();
    zone.sync(&content(&["a.example"]), &signer(), 1, now(), &options)
        .expect("signed");
    let served = zone.clone();
    zone.sync(
        &content(&["a.example", "b.example"]),
        &signer(),
        2,
        now(),
        &options,
    )
    .expect("signed");
    assert_eq!(served.len(), 2);
    assert_eq!(served.serial(), 1);
    assert_eq!(zone.len(), 3);
    assert_eq!(verify_all(&served), 6);
}

#[test]
fn no_key_is_an_error_and_changes_nothing() {
    let mut zone = ZoneStore::new(parse_name("_signal.ns1.example.net.").expect("valid"));
    let options = ZoneOptions::default();
    zone.sync(&content(&["a.example"]), &signer(), 1, now(), &options)
        .expect("signed");
    let before = chain(&zone);
    let err = zone
        .sync(
            &content(&["a.example", "b.example"]),
            &ZoneSigner::default(),
            2,
            now(),
            &options,
        )
        .expect_err("no keys");
    assert!(matches!(err, SignError::NoKey { .. }), "{err}");
    assert_eq!(zone.serial(), 1);
    assert_eq!(chain(&zone), before);
}

#[test]
fn a_cold_build_equals_the_incremental_path() {
    let children = [
        "a.example",
        "b.example",
        "x.y.deep.example",
        "example.com",
        "c.example",
    ];
    let options = ZoneOptions::default();
    // Built in one pass (an empty store).
    let mut built = ZoneStore::new(parse_name("_signal.ns1.example.net.").expect("valid"));
    built
        .sync(&content(&children), &signer(), 9, now(), &options)
        .expect("signed");
    // Grown through the incremental path from one child.
    let mut grown = ZoneStore::new(parse_name("_signal.ns1.example.net.").expect("valid"));
    grown
        .sync(&content(&["a.example"]), &signer(), 1, now(), &options)
        .expect("signed");
    grown
        .sync(&content(&children), &signer(), 9, now(), &options)
        .expect("signed");
    // Ed25519 signatures are deterministic, so everything must match.
    let entries = |zone: &ZoneStore| {
        let mut all: Vec<(Vec<u8>, String)> = zone
            .any_order_nodes()
            .map(|node| (node.wire().to_vec(), format!("{node:?}")))
            .collect();
        all.sort();
        all
    };
    assert_eq!(entries(&built), entries(&grown));
    assert_eq!(chain(&built), chain(&grown));
    assert_eq!(built.negative_ttl(), grown.negative_ttl());
    assert_eq!(verify_all(&built), 14);
}

#[test]
fn saved_parts_with_a_name_twice_are_refused() {
    let apex = parse_name("_signal.ns1.example.net.").expect("valid");
    let mut zone = ZoneStore::new(apex.clone());
    zone.sync(
        &content(&["example.com", "a.example"]),
        &signer(),
        7,
        now(),
        &ZoneOptions::default(),
    )
    .expect("signed");
    let nodes: Vec<Node> = zone.nodes().cloned().collect();
    let whole = ZoneStore::from_parts(apex.clone(), 7, zone.negative_ttl(), nodes.clone())
        .expect("the saved parts");
    assert_eq!(verify_all(&whole), verify_all(&zone));
    let mut twice = nodes;
    twice.push(twice[1].clone());
    assert!(ZoneStore::from_parts(apex, 7, zone.negative_ttl(), twice).is_none());
}
