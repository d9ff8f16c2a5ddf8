//! What a fetch accepts from the other providers' servers, with real
//! Ed25519 signatures (keys from fixed seeds), and the state file.

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use super::*;
use crate::{
    dns::parse_name,
    dnssec::{PrivateMaterial, signer::SigningKey},
};

const CHILD: &str = "example.com.";

fn name(text: &str) -> Name {
    parse_name(text).expect("valid name")
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("valid time")
}

struct Key {
    dnskey: Dnskey,
    signer: SigningKey,
}

fn key(seed: u8, flags: u16) -> Key {
    let seed = [seed; 32];
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
    let dnskey = Dnskey {
        flags,
        protocol: 3,
        algorithm: 15,
        public_key: ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec(),
    };
    let material = PrivateMaterial::Fields(vec![("PrivateKey".into(), seed.to_vec())]);
    let signer = SigningKey::new(&name(CHILD), &dnskey, &material).expect("signing key");
    Key { dnskey, signer }
}

/// `host` at `addr` serving `published`, signed by `by` (valid from an
/// hour before [`now`] for `lifetime` seconds).
fn answer(host: &str, addr: &str, published: &[&Key], by: &[&Key], lifetime: i64) -> HostAnswer {
    let mut rdatas: Vec<Vec<u8>> = published.iter().map(|k| k.dnskey.to_wire()).collect();
    rdatas.sort();
    let at = now().as_second();
    let rrsigs = by
        .iter()
        .map(|k| {
            k.signer
                .sign_rrset(
                    &name(CHILD),
                    RecordType::DNSKEY,
                    3600,
                    &rdatas,
                    (at - 3600) as u32,
                    (at - 3600 + lifetime) as u32,
                )
                .expect("signature")
        })
        .collect();
    HostAnswer {
        server: format!("{host} {addr}"),
        host: name(host),
        dnskey: Authoritative {
            rcode: 0,
            rdatas,
            rrsigs,
        },
    }
}

#[test]
fn a_providers_ksk_is_taken_when_it_signs_its_own_dnskey_rrset() {
    let (ksk, zsk, standby) = (key(1, 257), key(2, 256), key(3, 257));
    let answers = [
        answer(
            "ns1.b.net.",
            "192.0.2.1:53",
            &[&ksk, &zsk, &standby],
            &[&ksk],
            86_400,
        ),
        answer(
            "ns1.b.net.",
            "[2001:db8::1]:53",
            &[&ksk, &zsk, &standby],
            &[&ksk],
            86_400,
        ),
    ];
    let keys = validate(&name(CHILD), &answers, now()).expect("validated");
    // The ZSK is no KSK; the standby KSK does not sign, so the provider
    // does not vouch for it yet.
    assert_eq!(keys, vec![ksk.dnskey.clone()]);
}

#[test]
fn two_providers_give_the_union_of_their_ksks() {
    let (b, c, zsk) = (key(1, 257), key(4, 257), key(2, 256));
    let answers = [
        answer("ns1.b.net.", "192.0.2.1:53", &[&b, &zsk], &[&b], 86_400),
        answer("ns1.c.org.", "192.0.2.9:53", &[&c, &b, &zsk], &[&c], 86_400),
    ];
    let mut want = vec![b.dnskey.clone(), c.dnskey.clone()];
    want.sort_by_key(crate::dnssec::key_tag);
    assert_eq!(validate(&name(CHILD), &answers, now()).expect("ok"), want);
}

#[test]
fn anything_short_of_a_valid_self_signature_is_refused_whole() {
    let (ksk, zsk, other) = (key(1, 257), key(2, 256), key(5, 257));
    let zone = name(CHILD);
    let refused = |answers: &[HostAnswer]| validate(&zone, answers, now()).expect_err("refused");
    // Unsigned.
    let e = refused(&[answer(
        "ns1.b.net.",
        "192.0.2.1:53",
        &[&ksk, &zsk],
        &[],
        86_400,
    )]);
    assert!(matches!(e, FetchError::NoValidKsk { rrsigs: 0, .. }), "{e}");
    // Signed by the ZSK only.
    let e = refused(&[answer(
        "ns1.b.net.",
        "192.0.2.1:53",
        &[&ksk, &zsk],
        &[&zsk],
        86_400,
    )]);
    assert!(matches!(e, FetchError::NoValidKsk { rrsigs: 1, .. }), "{e}");
    // Signed by a key that is not in the RRset.
    let e = refused(&[answer(
        "ns1.b.net.",
        "192.0.2.1:53",
        &[&ksk, &zsk],
        &[&other],
        86_400,
    )]);
    assert!(matches!(e, FetchError::NoValidKsk { .. }), "{e}");
    // Expired (valid for half an hour, an hour ago).
    let e = refused(&[answer(
        "ns1.b.net.",
        "192.0.2.1:53",
        &[&ksk, &zsk],
        &[&ksk],
        1800,
    )]);
    assert!(matches!(e, FetchError::NoValidKsk { .. }), "{e}");
    // A revoked KSK (RFC 5011) vouches for nothing.
    let revoked = key(6, 257 | 0x80);
    let e = refused(&[answer(
        "ns1.b.net.",
        "192.0.2.1:53",
        &[&revoked, &zsk],
        &[&revoked],
        86_400,
    )]);
    assert!(matches!(e, FetchError::NoValidKsk { .. }), "{e}");
    // No DNSKEY RRset.
    let e = refused(&[answer("ns1.b.net.", "192.0.2.1:53", &[], &[], 86_400)]);
    assert!(matches!(e, FetchError::NoDnskey { .. }), "{e}");
    // Two addresses of one host disagree; a good second provider does not
    // make up for it.
    let e = refused(&[
        answer("ns1.b.net.", "192.0.2.1:53", &[&ksk, &zsk], &[&ksk], 86_400),
        answer("ns1.b.net.", "192.0.2.2:53", &[&ksk], &[&ksk], 86_400),
        answer("ns1.c.org.", "192.0.2.9:53", &[&other], &[&other], 86_400),
    ]);
    assert!(
        matches!(&e, FetchError::Disagree { first, second }
            if first == "ns1.b.net. 192.0.2.1:53" && second == "ns1.b.net. 192.0.2.2:53"),
        "{e}"
    );
    // One provider fine, the other not: nothing.
    let e = refused(&[
        answer("ns1.b.net.", "192.0.2.1:53", &[&ksk, &zsk], &[&ksk], 86_400),
        answer("ns1.c.org.", "192.0.2.9:53", &[&other], &[], 86_400),
    ]);
    assert!(e.to_string().starts_with("ns1.c.org. 192.0.2.9:53"), "{e}");
}

#[test]
fn the_state_file_round_trips_and_a_damaged_zone_is_fetched_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = state_path(dir.path());
    assert!(load(&path).is_empty(), "no file: nothing known");
    let at = Timestamp::from_second(1_800_000_000).expect("valid");
    let mut all = BTreeMap::new();
    all.insert(
        name("a.example."),
        ForeignKeys {
            keys: vec![key(1, 257).dnskey, key(4, 257).dnskey],
            fetched_at: at,
        },
    );
    all.insert(
        name("b.example."),
        ForeignKeys {
            keys: vec![key(5, 257).dnskey],
            fetched_at: at,
        },
    );
    save(&path, &all).expect("saved");
    assert_eq!(load(&path), all);
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        format!("{text}b.example. 1800000000 257 3 15 !!notbase64\n"),
    )
    .expect("write");
    let loaded = load(&path);
    assert!(loaded.contains_key(&name("a.example.")));
    assert!(
        !loaded.contains_key(&name("b.example.")),
        "a zone with a damaged line is not half-restored"
    );
}
