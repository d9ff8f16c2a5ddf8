//! Signing tests: signatures verify, the NSEC chain is complete, and updates
//! re-sign only what changed.

use std::sync::Arc;

use super::*;
use crate::{
    dns::{Dnskey, Ds, name::canonical_wire, parse_name},
    dnssec::{self, Algorithm, signer},
    keys::{KeyFiles, PrivatePart, Timing, bind::private},
};

fn csk(zone: &str) -> Arc<Key> {
    let dnskey =
        Dnskey::from_text("257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=").expect("valid");
    let file = private::parse(
        "Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=\n",
    )
    .expect("valid");
    Arc::new(Key {
        zone: parse_name(zone).expect("valid"),
        tag: dnssec::key_tag(&dnskey),
        dnskey,
        algorithm: Algorithm::Ed25519,
        ttl: None,
        timing: Timing::default(),
        state: None,
        private: PrivatePart::Present(Arc::new(file)),
        files: KeyFiles {
            key: "x".into(),
            private: None,
            state: None,
        },
    })
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("valid")
}

fn content(children: &[&str]) -> ZoneContent {
    let apex = parse_name("_signal.ns1.example.net.").expect("valid");
    let key = csk("_signal.ns1.example.net.");
    let mut c = ZoneContent::new(apex.clone());
    let soa = crate::dns::Soa {
        mname: parse_name("ns1.example.net.").expect("valid"),
        rname: parse_name("hostmaster.example.net.").expect("valid"),
        serial: 0,
        refresh: 3600,
        retry: 600,
        expire: 1_209_600,
        minimum: 300,
    };
    c.add(
        &apex,
        RrsetData::new(RecordType::SOA, 3600, vec![soa.to_wire()]),
    );
    c.add(
        &apex,
        RrsetData::new(
            RecordType::NS,
            3600,
            vec![canonical_wire(
                &parse_name("ns1.example.net.").expect("valid"),
            )],
        ),
    );
    c.add(
        &apex,
        RrsetData::new(RecordType::DNSKEY, 3600, vec![key.dnskey.to_wire()]),
    );
    for child in children {
        let owner =
            parse_name(&format!("_dsboot.{child}._signal.ns1.example.net.")).expect("valid");
        let ds = Ds::from_text(
            "35217 15 2 28525601C55CE99A840AD171CE8A295DED91CC18D2EBB902B542A5148A277C3D",
        )
        .expect("valid");
        c.add(
            &owner,
            RrsetData::new(RecordType::CDS, 3600, vec![ds.to_wire()]),
        );
    }
    c
}

fn signer() -> ZoneSigner {
    ZoneSigner::from_keys(&[csk("_signal.ns1.example.net.")], now())
}

fn verify_all(zone: &SignedZone) -> usize {
    let key = csk("_signal.ns1.example.net.");
    let mut count = 0;
    for node in zone.nodes.values() {
        for rrset in &node.rrsets {
            assert_eq!(
                rrset.sigs.len(),
                1,
                "{} {:?}",
                display(&node.name),
                rrset.data.rtype
            );
            for sig in &rrset.sigs {
                assert!(signer::verify(
                    sig,
                    &node.name,
                    &rrset.data.rdatas,
                    &key.dnskey
                ));
                count += 1;
            }
        }
    }
    count
}

#[test]
fn signs_everything_and_chains_nsec() {
    let mut zone = SignedZone::new(parse_name("_signal.ns1.example.net.").expect("valid"));
    let options = ZoneOptions::default();
    let stats = zone
        .update(
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
    // NSEC chain in canonical order (labels compared from the root down:
    // com < example): apex -> _dsboot.example.com -> _dsboot.a.example -> apex.
    let chain: Vec<(String, String)> = zone
        .nodes
        .values()
        .map(|n| {
            let nsec = n.rrset(RecordType::NSEC).expect("nsec");
            let next = &nsec.data.rdatas[0];
            let mut at = 0;
            let mut labels = Vec::new();
            while next[at] != 0 {
                let len = usize::from(next[at]);
                labels.push(String::from_utf8_lossy(&next[at + 1..at + 1 + len]).into_owned());
                at += 1 + len;
            }
            (display(&n.name), labels.join("."))
        })
        .collect();
    assert_eq!(
        chain,
        [
            (
                "_signal.ns1.example.net.".to_string(),
                "_dsboot.example.com._signal.ns1.example.net".to_string()
            ),
            (
                "_dsboot.example.com._signal.ns1.example.net.".to_string(),
                "_dsboot.a.example._signal.ns1.example.net".to_string()
            ),
            (
                "_dsboot.a.example._signal.ns1.example.net.".to_string(),
                "_signal.ns1.example.net".to_string()
            ),
        ]
    );
    // Validity and backdating.
    let sig = &zone
        .apex_node()
        .expect("apex")
        .rrset(RecordType::SOA)
        .expect("soa")
        .sigs[0];
    let now = now().as_second() as u32;
    assert_eq!(sig.inception, now - 3600);
    assert!(sig.expiration <= now + 14 * 86_400 && sig.expiration > now + 14 * 86_400 - 12 * 3600);
    assert_eq!(zone.negative_ttl, 300);
    assert_eq!(zone.serial, 7);
}

#[test]
fn updates_resign_only_what_changed() {
    let mut zone = SignedZone::new(parse_name("_signal.ns1.example.net.").expect("valid"));
    let options = ZoneOptions::default();
    zone.update(
        &content(&["a.example", "c.example"]),
        &signer(),
        1,
        now(),
        &options,
    )
    .expect("signed");
    let before = zone.clone();
    // Same content, new serial: only the SOA is re-signed.
    let stats = zone
        .update(
            &content(&["a.example", "c.example"]),
            &signer(),
            2,
            now(),
            &options,
        )
        .expect("signed");
    assert_eq!((stats.rrsets_signed, stats.rrsets_kept), (1, 7));
    // A child between the two: its CDS and NSEC, the predecessor's NSEC, the SOA.
    let stats = zone
        .update(
            &content(&["a.example", "b.example", "c.example"]),
            &signer(),
            3,
            now(),
            &options,
        )
        .expect("signed");
    assert_eq!(stats.rrsets_signed, 4);
    assert_eq!(verify_all(&zone), 10);
    // 8 days in, 6 days (less jitter) remain: only the SOA is due.
    let later = now() + jiff::SignedDuration::from_hours(24 * 8);
    let stats = zone
        .update(
            &content(&["a.example", "b.example", "c.example"]),
            &signer(),
            4,
            later,
            &options,
        )
        .expect("signed");
    assert_eq!(stats.rrsets_signed, 1);
    // 10 days in, less than 5 days remain: everything is re-signed.
    let later = now() + jiff::SignedDuration::from_hours(24 * 10);
    let stats = zone
        .update(
            &content(&["a.example", "b.example", "c.example"]),
            &signer(),
            5,
            later,
            &options,
        )
        .expect("signed");
    assert_eq!(stats.rrsets_kept, 0);
    assert_ne!(before.nodes, zone.nodes);
}

#[test]
fn no_key_is_an_error_and_changes_nothing() {
    let mut zone = SignedZone::new(parse_name("_signal.ns1.example.net.").expect("valid"));
    let options = ZoneOptions::default();
    zone.update(&content(&["a.example"]), &signer(), 1, now(), &options)
        .expect("signed");
    let before = zone.clone();
    let err = zone
        .update(
            &content(&["a.example"]),
            &ZoneSigner::default(),
            2,
            now(),
            &options,
        )
        .expect_err("no keys");
    assert!(matches!(err, SignError::NoKey { .. }), "{err}");
    assert_eq!(zone.serial, before.serial);
    assert_eq!(zone.nodes, before.nodes);
}
