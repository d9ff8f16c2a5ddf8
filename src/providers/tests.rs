//! What a fetch believes of the other providers' servers, with real
//! Ed25519 signatures (keys from fixed seeds), and the state file.

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use super::*;
use crate::{
    dns::parse_name,
    dnssec::{
        DigestType, ds,
        test_keys::{self, TestKey as Key},
    },
};

const CHILD: &str = "example.com.";

fn name(text: &str) -> Name {
    parse_name(text).expect("valid name")
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("valid time")
}

fn key(seed: u8, flags: u16) -> Key {
    test_keys::ed25519(&name(CHILD), seed, flags)
}

/// `rtype` RRset of `keys`, signed by `by`, valid from `from` seconds
/// around [`now`] for `lifetime` seconds.
fn rrset(rtype: RecordType, keys: &[&Key], by: &[&Key], from: i64, lifetime: i64) -> Authoritative {
    let mut rdatas: Vec<Vec<u8>> = keys.iter().map(|k| k.dnskey.to_wire()).collect();
    rdatas.sort();
    let at = now().as_second() + from;
    let rrsigs = by
        .iter()
        .map(|k| {
            k.signer
                .sign_rrset(
                    &name(CHILD),
                    rtype,
                    3600,
                    &rdatas,
                    at as u32,
                    (at + lifetime) as u32,
                )
                .expect("signature")
        })
        .collect();
    Authoritative {
        rcode: 0,
        rdatas,
        rrsigs,
    }
}

/// `host` at `addr` serving `published`, signed by `by` (valid from an
/// hour before [`now`] for a day), no CDNSKEY.
fn answer(host: &str, addr: &str, published: &[&Key], by: &[&Key]) -> HostAnswer {
    HostAnswer {
        server: format!("{host} {addr}"),
        host: name(host),
        dnskey: rrset(RecordType::DNSKEY, published, by, -3600, 86_400),
        cdnskey: Authoritative::default(),
    }
}

/// Trusting `keys` and a parent DS for `ds_of`.
fn check(answers: &[HostAnswer], keys: &[&Key], ds_of: &[&Key]) -> Result<Vec<Dnskey>, FetchError> {
    let keys: Vec<Dnskey> = keys.iter().map(|k| k.dnskey.clone()).collect();
    let parent_ds: Vec<Ds> = ds_of
        .iter()
        .map(|k| ds(&name(CHILD), &k.dnskey, DigestType::Sha256))
        .collect();
    let anchors = Anchors {
        keys: &keys,
        parent_ds: &parent_ds,
    };
    validate(&name(CHILD), answers, anchors, now())
}

fn sorted(keys: &[&Key]) -> Vec<Dnskey> {
    let mut out: Vec<Dnskey> = keys.iter().map(|k| k.dnskey.clone()).collect();
    out.sort_by_key(|k| (crate::dnssec::key_tag(k), k.algorithm));
    out
}

#[test]
fn a_provider_is_believed_through_a_ds_at_the_parent_a_listed_key_or_its_last_keys() {
    let (ksk, zsk, standby) = (key(1, 257), key(2, 256), key(3, 257));
    let answers = [
        answer(
            "ns1.b.net.",
            "192.0.2.1:53",
            &[&ksk, &zsk, &standby],
            &[&ksk],
        ),
        answer(
            "ns1.b.net.",
            "[2001:db8::1]:53",
            &[&ksk, &zsk, &standby],
            &[&ksk],
        ),
    ];
    // The standby KSK (published, not signing) is the provider's too: its
    // DS may be at the parent already (RFC 7583 double-DS).
    let want = sorted(&[&ksk, &standby]);
    assert_eq!(
        check(&answers, &[], &[&ksk]).expect("DS at the parent"),
        want
    );
    assert_eq!(check(&answers, &[&ksk], &[]).expect("listed"), want);
    // Nothing vouches for the signer: a self-signature proves nothing.
    let e = check(&answers, &[], &[]).expect_err("untrusted");
    assert!(matches!(e, FetchError::Untrusted { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("{}/15", crate::dnssec::key_tag(&ksk.dnskey))),
        "{e}"
    );
    // A DS for the standby key does not make the RRset believed: it must
    // be signed by a trusted key.
    let e = check(&answers, &[], &[&standby]).expect_err("not signed by the trusted key");
    assert!(matches!(e, FetchError::Untrusted { .. }), "{e}");
}

#[test]
fn a_ksk_rollover_is_followed_through_the_old_key() {
    let (old, new, zsk) = (key(1, 257), key(4, 257), key(2, 256));
    // The new KSK arrives in an RRset the old one (trusted) signs.
    let rolling = [answer(
        "ns1.b.net.",
        "192.0.2.1:53",
        &[&old, &new, &zsk],
        &[&old, &new],
    )];
    let both = check(&rolling, &[&old], &[]).expect("believed");
    assert_eq!(both, sorted(&[&old, &new]));
    // Then the old one goes: believed through the new one, validated before.
    let rolled = [answer("ns1.b.net.", "192.0.2.1:53", &[&new, &zsk], &[&new])];
    assert_eq!(
        check(&rolled, &[&old, &new], &[]).expect("believed"),
        sorted(&[&new])
    );
    // A new key signing alone, never seen: refused.
    let e = check(&rolled, &[&old], &[]).expect_err("untrusted");
    assert!(matches!(e, FetchError::Untrusted { .. }), "{e}");
}

#[test]
fn a_signed_cdnskey_says_which_ksks_the_provider_wants_at_the_parent() {
    let (ksk, zsk, retiring) = (key(1, 257), key(2, 256), key(5, 257));
    let ours = key(9, 257);
    let mut b = answer(
        "ns1.b.net.",
        "192.0.2.1:53",
        &[&ksk, &zsk, &retiring],
        &[&ksk],
    );
    // The union its CDNSKEY names includes our key (not in its DNSKEY
    // RRset): only its own KSKs are taken.
    b.cdnskey = rrset(RecordType::CDNSKEY, &[&ksk, &ours], &[&ksk], -3600, 86_400);
    assert_eq!(
        check(std::slice::from_ref(&b), &[&ksk], &[]).expect("ok"),
        sorted(&[&ksk])
    );
    // An unsigned CDNSKEY says nothing: every KSK.
    b.cdnskey.rrsigs.clear();
    assert_eq!(
        check(std::slice::from_ref(&b), &[&ksk], &[]).expect("ok"),
        sorted(&[&ksk, &retiring])
    );
}

#[test]
fn anything_short_of_a_current_trusted_signature_is_refused_whole() {
    let (ksk, zsk, other) = (key(1, 257), key(2, 256), key(5, 257));
    let refused =
        |answers: &[HostAnswer]| check(answers, &[&ksk, &other], &[]).expect_err("refused");
    let with = |published: &[&Key], by: &[&Key], from: i64, lifetime: i64| HostAnswer {
        dnskey: rrset(RecordType::DNSKEY, published, by, from, lifetime),
        ..answer("ns1.b.net.", "192.0.2.1:53", &[], &[])
    };
    // Unsigned.
    let e = refused(&[with(&[&ksk, &zsk], &[], -3600, 86_400)]);
    assert!(
        matches!(e, FetchError::NoValidSignature { rrsigs: 0, .. }),
        "{e}"
    );
    // Signed by a key that is not in the RRset.
    let e = refused(&[with(&[&ksk, &zsk], &[&other], -3600, 86_400)]);
    assert!(
        matches!(e, FetchError::NoValidSignature { rrsigs: 1, .. }),
        "{e}"
    );
    // Expired (valid for half an hour, an hour ago), and not valid yet.
    let e = refused(&[with(&[&ksk, &zsk], &[&ksk], -3600, 1800)]);
    assert!(matches!(e, FetchError::NoValidSignature { .. }), "{e}");
    let e = refused(&[with(&[&ksk, &zsk], &[&ksk], 600, 86_400)]);
    assert!(matches!(e, FetchError::NoValidSignature { .. }), "{e}");
    // A revoked KSK (RFC 5011) vouches for nothing.
    let revoked = key(6, 257 | 0x80);
    let e = refused(&[with(&[&revoked, &zsk], &[&revoked], -3600, 86_400)]);
    assert!(matches!(e, FetchError::NoValidSignature { .. }), "{e}");
    // Believed, but only a ZSK: no KSK to take.
    let e = check(&[with(&[&zsk], &[&zsk], -3600, 86_400)], &[&zsk], &[]).expect_err("no KSK");
    assert!(matches!(e, FetchError::NoKsk { .. }), "{e}");
    // No DNSKEY RRset.
    let e = refused(&[with(&[], &[], -3600, 86_400)]);
    assert!(matches!(e, FetchError::NoDnskey { .. }), "{e}");
    // Two addresses of one host disagree; a good second provider does not
    // make up for it.
    let e = refused(&[
        answer("ns1.b.net.", "192.0.2.1:53", &[&ksk, &zsk], &[&ksk]),
        answer("ns1.b.net.", "192.0.2.2:53", &[&ksk], &[&ksk]),
        answer("ns1.c.org.", "192.0.2.9:53", &[&other], &[&other]),
    ]);
    assert!(
        matches!(&e, FetchError::Disagree { first, second }
            if first == "ns1.b.net. 192.0.2.1:53" && second == "ns1.b.net. 192.0.2.2:53"),
        "{e}"
    );
    // One provider fine, the other not: nothing.
    let e = refused(&[
        answer("ns1.b.net.", "192.0.2.1:53", &[&ksk, &zsk], &[&ksk]),
        answer("ns1.c.org.", "192.0.2.9:53", &[&other], &[]),
    ]);
    assert!(e.to_string().starts_with("ns1.c.org. 192.0.2.9:53"), "{e}");
}

#[test]
fn two_providers_give_the_union_of_their_ksks() {
    let (b, c, zsk) = (key(1, 257), key(4, 257), key(2, 256));
    let answers = [
        answer("ns1.b.net.", "192.0.2.1:53", &[&b, &zsk], &[&b]),
        answer("ns1.c.org.", "192.0.2.9:53", &[&c, &zsk], &[&c]),
    ];
    assert_eq!(
        check(&answers, &[], &[&b, &c]).expect("ok"),
        sorted(&[&b, &c])
    );
}

#[test]
fn the_state_file_round_trips_and_a_damaged_zone_is_fetched_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = state_path(dir.path());
    assert!(load(&path).is_empty(), "no file: nothing known");
    let at = Timestamp::from_second(1_800_000_000).expect("valid");
    let hosts = vec![name("ns1.b.net."), name("ns2.b.net.")];
    let mut all = BTreeMap::new();
    all.insert(
        name("a.example."),
        ForeignKeys {
            keys: vec![key(1, 257).dnskey, key(4, 257).dnskey],
            fetched_at: at,
            hosts: hosts.clone(),
        },
    );
    all.insert(
        name("b.example."),
        ForeignKeys {
            keys: vec![key(5, 257).dnskey],
            fetched_at: at,
            hosts,
        },
    );
    save(&path, &all).expect("saved");
    assert_eq!(load(&path), all);
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        format!("{text}b.example. 1800000000 ns1.b.net. 257 3 15 !!notbase64\n"),
    )
    .expect("write");
    let loaded = load(&path);
    assert!(loaded.contains_key(&name("a.example.")));
    assert!(
        !loaded.contains_key(&name("b.example.")),
        "a zone with a damaged line is not half-restored"
    );
}
