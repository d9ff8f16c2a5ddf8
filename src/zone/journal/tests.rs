//! The journal's promise, as a property: for any sequence of rounds (children
//! added, removed and changed, key rolls, clock jumps past the signature
//! refresh window, full and partial rounds), the previous version plus the
//! diff recorded for the new one is the new version, record for record
//! (RFC 1995 §4: a secondary applying the IXFR must end with the same zone).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;
use proptest::prelude::*;
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::*;
use crate::{
    config::ZoneOptions,
    dns::{Dnskey, name::canonical_wire, parse_name},
    dnssec::{PrivateMaterial, rfc8080, signer::SigningKey},
    zone::{
        ZoneSigner,
        content::{RrsetData, ZoneContent, test_signalling_apex},
    },
};

/// One round's cause.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// A child gets signals.
    Add(u8),
    /// A child's keys are gone: its `_dsboot` owner is withdrawn.
    Remove(u8),
    /// A child's CDS changes (a KSK roll at the child).
    Change(u8),
    /// The signalling zone's own key rolls: every signature changes.
    Roll,
    /// The clock moves on by this many days (signatures come due).
    Wait(u8),
}

pub(crate) fn step() -> impl Strategy<Value = (Step, bool)> {
    let step = prop_oneof![
        (0u8..10).prop_map(Step::Add),
        (0u8..10).prop_map(Step::Remove),
        (0u8..10).prop_map(Step::Change),
        Just(Step::Roll),
        (1u8..12).prop_map(Step::Wait),
    ];
    // The bool: a full round (the daemon then re-signs whatever is due).
    (step, any::<bool>())
}

fn apex() -> Name {
    parse_name("_signal.ns1.example.net.").expect("valid")
}

/// The RFC 8080 key, or a second Ed25519 key to roll to.
fn key(second: bool) -> (Dnskey, PrivateMaterial) {
    if !second {
        return (rfc8080::dnskey(), rfc8080::material());
    }
    let seed = [7u8; 32];
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).expect("any 32 octets are a seed");
    let dnskey = Dnskey {
        flags: 257,
        protocol: 3,
        algorithm: 15,
        public_key: pair.public_key().as_ref().to_vec(),
    };
    let material = PrivateMaterial::Fields(vec![("PrivateKey".into(), seed.to_vec())]);
    (dnskey, material)
}

fn signer(second: bool) -> ZoneSigner {
    let (dnskey, material) = key(second);
    let key = Arc::new(SigningKey::new(&apex(), &dnskey, &material).expect("signs"));
    ZoneSigner {
        ksks: vec![key.clone()],
        zsks: vec![key],
        problems: Vec::new(),
        progress: None,
    }
}

/// The signalling zone: SOA, NS, the DNSKEY in use, a `_dsboot` CDS per child.
fn content(children: &BTreeMap<u8, u8>, second: bool) -> ZoneContent {
    let mut content = test_signalling_apex(&key(second).0);
    for (child, version) in children {
        let owner = parse_name(&format!(
            "_dsboot.c{child}.example._signal.ns1.example.net."
        ))
        .expect("valid");
        let mut cds = vec![0, *child, 15, 2];
        cds.extend([*version; 32]);
        content.add(&owner, RrsetData::new(RecordType::CDS, 3600, vec![cds]));
    }
    content
}

/// Every record of the zone (RRSIGs included) with its owner.
pub(crate) fn records(zone: &ZoneStore) -> BTreeSet<(Vec<u8>, Vec<u8>)> {
    zone.nodes()
        .flat_map(|node| {
            flatten(Some(node))
                .into_iter()
                .map(|record| (node.wire().to_vec(), record.to_vec()))
        })
        .collect()
}

/// `old` with `diff` applied, as a secondary does with an IXFR.
fn replay(old: &ZoneStore, diff: &Diff) -> BTreeSet<(Vec<u8>, Vec<u8>)> {
    let mut zone = records(old);
    let apex = canonical_wire(&apex());
    assert!(
        zone.remove(&(apex.clone(), diff.old_soa.to_vec())),
        "the old SOA is the one served"
    );
    zone.insert((apex, diff.new_soa.to_vec()));
    for rr in &diff.removed {
        assert!(
            zone.remove(&(rr.owner.to_vec(), rr.record.to_vec())),
            "a removed record was in the old version"
        );
    }
    for rr in &diff.added {
        zone.insert((rr.owner.to_vec(), rr.record.to_vec()));
    }
    zone
}

/// The first version, then every round's next version with its diff, as
/// the daemon makes them: re-signing what is due on full rounds and when the
/// zone's keys changed.
pub(crate) fn versions(steps: &[(Step, bool)]) -> (ZoneStore, Vec<(ZoneStore, Diff)>) {
    let options = ZoneOptions::default();
    let mut now = Timestamp::from_second(1_800_000_000).expect("valid");
    let mut children: BTreeMap<u8, u8> = BTreeMap::new();
    let mut second = false;
    let mut zone = ZoneStore::new(apex());
    let mut serial = 1;
    zone.sync(
        &content(&children, second),
        &signer(second),
        serial,
        now,
        &options,
    )
    .expect("signed");
    let first = zone.clone();
    let mut out = Vec::new();
    for (step, full) in steps {
        let mut rolled = false;
        match step {
            Step::Add(c) => {
                children.entry(*c).or_insert(0);
            }
            Step::Remove(c) => {
                children.remove(c);
            }
            Step::Change(c) => {
                if let Some(version) = children.get_mut(c) {
                    *version = version.wrapping_add(1);
                }
            }
            Step::Roll => {
                second = !second;
                rolled = true;
            }
            Step::Wait(days) => {
                now = now
                    .checked_add(jiff::SignedDuration::from_hours(24 * i64::from(*days)))
                    .expect("in range");
            }
        }
        let signer = signer(second);
        let resign_due = (*full || rolled) && zone.needs_refresh(&signer, now, &options);
        let changes = zone.changes_to(&content(&children, second));
        serial += 1;
        let mut next = zone.clone();
        let stats = next
            .apply(changes, resign_due, &signer, serial, now, &options)
            .expect("signed");
        let diff = Diff::between(&zone, &next, stats.touched.iter().map(|w| &w[..]))
            .expect("both versions have an SOA");
        out.push((next.clone(), diff));
        zone = next;
    }
    (first, out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_old_version_plus_the_diff_is_the_new_version(steps in proptest::collection::vec(step(), 1..12)) {
        let (mut zone, versions) = versions(&steps);
        for (next, diff) in versions {
            prop_assert_eq!(replay(&zone, &diff), records(&next));
            zone = next;
        }
    }
}
