//! Every rule of the verdict with made-up servers whose RRsets carry real
//! Ed25519 signatures (keys from fixed seeds), checked by the same
//! `dnssec::signer::verify` the daemon's gate uses.

use std::net::SocketAddr;

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use super::super::{
    ApexSets, Facts, Outcome, ParentSide, ServerAnswer, Severity, SignalAnswer, SignalSets, Signed,
    Transport, evaluate,
    profile::{self, Profile},
};
use crate::{
    dns::{Dnskey, Ds, name::dsboot_name, parse_name},
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

/// An Ed25519 key of the child from a fixed seed.
fn key(seed: u8, flags: u16) -> Key {
    test_keys::ed25519(&name(CHILD), seed, flags)
}

fn ds_of(key: &Key) -> Ds {
    ds(&name(CHILD), &key.dnskey, DigestType::Sha256)
}

fn signed(rtype: RecordType, mut rdatas: Vec<Vec<u8>>, by: &[&Key]) -> Signed {
    rdatas.sort();
    rdatas.dedup();
    let at = now().as_second() as u32;
    let rrsigs = if rdatas.is_empty() {
        Vec::new()
    } else {
        by.iter()
            .map(|k| {
                k.signer
                    .sign_rrset(&name(CHILD), rtype, 3600, &rdatas, at - 3600, at + 86_400)
                    .expect("signature")
            })
            .collect()
    };
    Signed { rdatas, rrsigs }
}

/// A zone with `keys` published, signed by `ksk`/`zsk`, and CDS/CDNSKEY
/// for `wanted`, signed by `cds_by`.
struct Apex<'a> {
    published: Vec<&'a Key>,
    dnskey_by: Vec<&'a Key>,
    cds: Vec<Ds>,
    cdnskey: Vec<Dnskey>,
    cds_by: Vec<&'a Key>,
}

impl Apex<'_> {
    fn sets(&self) -> ApexSets {
        ApexSets {
            dnskey: signed(
                RecordType::DNSKEY,
                self.published.iter().map(|k| k.dnskey.to_wire()).collect(),
                &self.dnskey_by,
            ),
            cds: signed(
                RecordType::CDS,
                self.cds.iter().map(Ds::to_wire).collect(),
                &self.cds_by,
            ),
            cdnskey: signed(
                RecordType::CDNSKEY,
                self.cdnskey.iter().map(Dnskey::to_wire).collect(),
                &self.cds_by,
            ),
            csync: Signed::default(),
        }
    }
}

/// The usual zone: KSK and ZSK published, the KSK signs DNSKEY, CDS and
/// CDNSKEY for the KSK.
fn usual<'a>(ksk: &'a Key, zsk: &'a Key) -> Apex<'a> {
    Apex {
        published: vec![ksk, zsk],
        dnskey_by: vec![ksk],
        cds: vec![ds_of(ksk)],
        cdnskey: vec![ksk.dnskey.clone()],
        cds_by: vec![ksk],
    }
}

fn server(host: &str, last_octet: u8, sets: Result<ApexSets, String>) -> ServerAnswer {
    ServerAnswer {
        host: name(host),
        addr: SocketAddr::from(([192, 0, 2, last_octet], 53)),
        transport: Transport::Udp,
        sets,
    }
}

/// Facts with the apex served the same by ns1.example.net. (twice: two
/// transports) and ns2.example.org., valid signals under both, and the
/// parent's DS `parent_ds`.
fn facts(apex: &ApexSets, parent_ds: Vec<Ds>) -> Facts {
    let nameservers = vec![name("ns1.example.net."), name("ns2.example.org.")];
    let signals = nameservers
        .iter()
        .map(|ns| SignalAnswer {
            ns: ns.clone(),
            owner: dsboot_name(&name(CHILD), ns).expect("signalling name"),
            sets: Ok(SignalSets {
                cds: apex.cds.rdatas.clone(),
                cdnskey: apex.cdnskey.rdatas.clone(),
                validated: true,
            }),
        })
        .collect();
    Facts {
        child: name(CHILD),
        parent: Ok(ParentSide {
            zone: Some(name("com.")),
            ds: parent_ds,
            ns: nameservers.clone(),
        }),
        servers: vec![
            server("ns1.example.net.", 1, Ok(apex.clone())),
            server("ns1.example.net.", 1, Ok(apex.clone())),
            server("ns2.example.org.", 2, Ok(apex.clone())),
        ],
        nameservers,
        unresolved: Vec::new(),
        signals,
    }
}

fn generic() -> &'static Profile {
    profile::find("generic").expect("generic profile")
}

/// The verdict, with its findings in the failure message.
fn judge(facts: &Facts, profile: &Profile) -> super::super::Verdict {
    evaluate(facts, profile, now())
}

fn has(verdict: &super::super::Verdict, severity: Severity, rule: &str, text: &str) -> bool {
    verdict
        .findings
        .iter()
        .any(|f| f.severity == severity && f.rule.contains(rule) && f.message.contains(text))
}

#[test]
fn a_consistent_signed_child_with_signals_bootstraps_authenticated() {
    let (ksk, zsk) = (key(1, 257), key(2, 256));
    let apex = usual(&ksk, &zsk).sets();
    let verdict = judge(&facts(&apex, vec![]), generic());
    assert_eq!(verdict.outcome, Outcome::Bootstrap, "{}", verdict.to_text());
    assert!(verdict.authenticated);
    assert_eq!(verdict.exit_code(), 0);
    assert!(verdict.findings.is_empty(), "{}", verdict.to_text());
    assert_eq!(verdict.expected_by, None, "a generic parent acts on NOTIFY");
    // .ch scans daily: expected within a day, no wait when authenticated.
    let ch = judge(&facts(&apex, vec![]), profile::find("ch").expect("ch"));
    assert_eq!(ch.outcome, Outcome::Bootstrap);
    assert_eq!(
        ch.expected_by,
        Some(now() + jiff::SignedDuration::from_hours(24))
    );
}

#[test]
fn servers_that_disagree_or_do_not_answer_make_the_parent_abort() {
    let (ksk, zsk) = (key(1, 257), key(2, 256));
    let apex = usual(&ksk, &zsk).sets();
    let mut disagree = facts(&apex, vec![]);
    let mut stale = apex.clone();
    stale.cds = Signed::default();
    stale.cdnskey = Signed::default();
    disagree.servers[2].sets = Ok(stale);
    let verdict = judge(&disagree, generic());
    assert_eq!(verdict.outcome, Outcome::Refused);
    assert_eq!(verdict.exit_code(), 1);
    assert!(
        has(
            &verdict,
            Severity::Error,
            "RFC 9975 §3",
            "serves another CDS RRset"
        ),
        "{}",
        verdict.to_text()
    );

    let mut silent = facts(&apex, vec![]);
    silent.servers[1].sets = Err("CDS: timed out".into());
    let verdict = judge(&silent, generic());
    assert_eq!(verdict.outcome, Outcome::Refused);
    assert!(has(&verdict, Severity::Error, "RFC 9975 §3", "timed out"));
}

#[test]
fn a_rollover_needs_a_signature_by_a_key_the_current_ds_points_to() {
    let (ksk1, ksk2, zsk) = (key(1, 257), key(3, 257), key(2, 256));
    // KSK1 is at the parent; the CDS asks for KSK2, signed by both KSKs.
    let mut apex = Apex {
        published: vec![&ksk1, &ksk2, &zsk],
        dnskey_by: vec![&ksk1, &ksk2],
        cds: vec![ds_of(&ksk2)],
        cdnskey: vec![ksk2.dnskey.clone()],
        cds_by: vec![&ksk1, &ksk2],
    };
    let verdict = judge(&facts(&apex.sets(), vec![ds_of(&ksk1)]), generic());
    assert_eq!(verdict.outcome, Outcome::Rollover, "{}", verdict.to_text());

    // Signed by KSK2 only: the parent cannot tie it to its DS.
    apex.cds_by = vec![&ksk2];
    let verdict = judge(&facts(&apex.sets(), vec![ds_of(&ksk1)]), generic());
    assert_eq!(verdict.outcome, Outcome::Refused);
    assert!(has(
        &verdict,
        Severity::Error,
        "RFC 7344 §4.1",
        "current DS points to"
    ));

    // Signed by the ZSK only: refused at a secured parent, and said.
    apex.cds_by = vec![&zsk];
    let verdict = judge(&facts(&apex.sets(), vec![ds_of(&ksk1)]), generic());
    assert_eq!(verdict.outcome, Outcome::Refused);
    assert!(has(
        &verdict,
        Severity::Warning,
        "RFC 7344 §4.1",
        "ZSKs only"
    ));
}

#[test]
fn a_zsk_signed_cds_is_a_warning_on_a_bootstrap() {
    let (ksk, zsk) = (key(1, 257), key(2, 256));
    let mut apex = usual(&ksk, &zsk);
    apex.cds_by = vec![&zsk];
    let verdict = judge(&facts(&apex.sets(), vec![]), generic());
    assert_eq!(verdict.outcome, Outcome::Bootstrap, "{}", verdict.to_text());
    assert!(has(
        &verdict,
        Severity::Warning,
        "RFC 7344 §4.1",
        "ZSKs only"
    ));
}

#[test]
fn the_delete_form_must_be_alone_and_removes_the_ds() {
    let (ksk, zsk) = (key(1, 257), key(2, 256));
    let mut apex = usual(&ksk, &zsk);
    apex.cds = vec![Ds::delete()];
    apex.cdnskey = vec![Dnskey::delete()];
    let verdict = judge(&facts(&apex.sets(), vec![ds_of(&ksk)]), generic());
    assert_eq!(verdict.outcome, Outcome::Delete, "{}", verdict.to_text());
    let verdict = judge(&facts(&apex.sets(), vec![]), generic());
    assert_eq!(verdict.outcome, Outcome::NothingToDo, "no DS to delete");

    apex.cds = vec![Ds::delete(), ds_of(&ksk)];
    let verdict = judge(&facts(&apex.sets(), vec![ds_of(&ksk)]), generic());
    assert_eq!(verdict.outcome, Outcome::Refused);
    assert!(has(&verdict, Severity::Error, "RFC 8078 §4", "mixed"));
}

#[test]
fn nameservers_only_inside_the_child_cannot_be_bootstrapped_by_signals() {
    let (ksk, zsk) = (key(1, 257), key(2, 256));
    let apex = usual(&ksk, &zsk).sets();
    let mut inside = facts(&apex, vec![]);
    inside.nameservers = vec![name("ns1.example.com."), name("ns2.example.com.")];
    inside.servers = vec![
        server("ns1.example.com.", 1, Ok(apex.clone())),
        server("ns2.example.com.", 2, Ok(apex.clone())),
    ];
    inside.signals.clear();
    let verdict = judge(&inside, generic());
    assert_eq!(verdict.outcome, Outcome::Refused, "{}", verdict.to_text());
    assert!(has(
        &verdict,
        Severity::Error,
        "RFC 9615",
        "inside the child"
    ));
    // .ch accepts an unauthenticated bootstrap after 3 days unchanged.
    let ch = judge(&inside, profile::find("ch").expect("ch"));
    assert_eq!(ch.outcome, Outcome::Bootstrap, "{}", ch.to_text());
    assert!(!ch.authenticated);
    assert_eq!(
        ch.expected_by,
        Some(now() + jiff::SignedDuration::from_hours(24 * 4))
    );
}

#[test]
fn signals_must_validate_and_equal_the_apex() {
    let (ksk, zsk) = (key(1, 257), key(2, 256));
    let apex = usual(&ksk, &zsk).sets();
    let mut bad = facts(&apex, vec![]);
    if let Ok(sets) = &mut bad.signals[0].sets {
        sets.validated = false;
    }
    if let Ok(sets) = &mut bad.signals[1].sets {
        sets.cds.clear();
    }
    let verdict = judge(&bad, generic());
    assert_eq!(verdict.outcome, Outcome::Refused);
    assert!(has(
        &verdict,
        Severity::Error,
        "RFC 9615",
        "did not validate"
    ));
    assert!(has(
        &verdict,
        Severity::Error,
        "RFC 9615",
        "is not the apex's"
    ));
}

#[test]
fn registry_profiles_read_their_own_rrset_and_limits() {
    let (ksk, zsk) = (key(1, 257), key(2, 256));
    let mut apex = usual(&ksk, &zsk);
    apex.cdnskey.clear();
    // .cz reads CDNSKEY only.
    let verdict = judge(
        &facts(&apex.sets(), vec![]),
        profile::find("cz").expect("cz"),
    );
    assert_eq!(verdict.outcome, Outcome::Refused);
    assert!(has(
        &verdict,
        Severity::Error,
        "RFC 7344 §4",
        "CDNSKEY only"
    ));
    // .se takes at most 6 CDS (made-up standby digests: warnings only).
    apex.cds = (0..7u8)
        .map(|i| Ds {
            key_tag: 100 + u16::from(i),
            algorithm: 15,
            digest_type: 2,
            digest: vec![i; 32],
        })
        .chain([ds_of(&ksk)])
        .collect();
    let verdict = judge(
        &facts(&apex.sets(), vec![]),
        profile::find("se").expect("se"),
    );
    assert!(
        has(&verdict, Severity::Error, "registry policy", "at most 6"),
        "{}",
        verdict.to_text()
    );
    // SHA-1 digests are refused everywhere.
    apex.cds = vec![ds(&name(CHILD), &ksk.dnskey, DigestType::Sha256)];
    apex.cds[0].digest_type = 1;
    let verdict = judge(&facts(&apex.sets(), vec![]), generic());
    assert!(has(&verdict, Severity::Error, "RFC 8624", "digest type 1"));
}

#[test]
fn cds_and_cdnskey_must_describe_the_same_keys() {
    let (ksk, ksk2, zsk) = (key(1, 257), key(3, 257), key(2, 256));
    let mut apex = usual(&ksk, &zsk);
    apex.cdnskey = vec![ksk2.dnskey.clone()];
    let verdict = judge(&facts(&apex.sets(), vec![]), generic());
    assert_eq!(verdict.outcome, Outcome::Refused);
    assert!(has(
        &verdict,
        Severity::Error,
        "RFC 7344 §4",
        "different keys"
    ));
}

#[test]
fn a_ds_set_that_would_break_the_delegation_is_refused() {
    let (ksk, standby, zsk) = (key(1, 257), key(4, 257), key(2, 256));
    let mut apex = usual(&ksk, &zsk);
    // Only a standby key that is not published: the zone would go bogus.
    apex.cds = vec![ds_of(&standby)];
    apex.cdnskey = vec![standby.dnskey.clone()];
    let verdict = judge(&facts(&apex.sets(), vec![]), generic());
    assert_eq!(verdict.outcome, Outcome::Refused);
    assert!(has(
        &verdict,
        Severity::Error,
        "RFC 7344 §4.1",
        "would break"
    ));
    // Beside the active KSK, a standby is fine (RFC 8078 §3.1), and said.
    apex.cds = vec![ds_of(&ksk), ds_of(&standby)];
    apex.cdnskey = vec![ksk.dnskey.clone(), standby.dnskey.clone()];
    let verdict = judge(&facts(&apex.sets(), vec![]), generic());
    assert_eq!(verdict.outcome, Outcome::Bootstrap, "{}", verdict.to_text());
    assert!(has(&verdict, Severity::Warning, "RFC 8078 §3.1", "standby"));
}

#[test]
fn nothing_published_or_already_in_sync_is_nothing_to_do() {
    let (ksk, zsk) = (key(1, 257), key(2, 256));
    let mut apex = usual(&ksk, &zsk);
    let verdict = judge(&facts(&apex.sets(), vec![ds_of(&ksk)]), generic());
    assert_eq!(
        verdict.outcome,
        Outcome::NothingToDo,
        "{}",
        verdict.to_text()
    );
    apex.cds.clear();
    apex.cdnskey.clear();
    let verdict = judge(&facts(&apex.sets(), vec![ds_of(&ksk)]), generic());
    assert_eq!(verdict.outcome, Outcome::NothingToDo);
    assert_eq!(verdict.exit_code(), 0);
}

#[test]
fn an_expired_signature_does_not_count() {
    let (ksk, zsk) = (key(1, 257), key(2, 256));
    let apex = usual(&ksk, &zsk).sets();
    let facts = facts(&apex, vec![]);
    let later = now() + jiff::SignedDuration::from_hours(48);
    let verdict = evaluate(&facts, generic(), later);
    assert_eq!(verdict.outcome, Outcome::Refused);
    assert!(has(
        &verdict,
        Severity::Error,
        "RFC 7344 §4.1",
        "no valid signature"
    ));
}

#[test]
fn a_stale_secondary_with_expired_signatures_is_named() {
    let (ksk, zsk) = (key(1, 257), key(2, 256));
    let apex = usual(&ksk, &zsk).sets();
    let mut stale = facts(&apex, vec![]);
    // Same records, signatures that expired an hour ago.
    let mut old = apex.clone();
    for set in [&mut old.dnskey, &mut old.cds, &mut old.cdnskey] {
        for sig in &mut set.rrsigs {
            sig.expiration = now().as_second() as u32 - 3600;
        }
    }
    stale.servers[2].sets = Ok(old);
    let verdict = judge(&stale, generic());
    assert_eq!(verdict.outcome, Outcome::Refused, "{}", verdict.to_text());
    assert!(
        has(
            &verdict,
            Severity::Error,
            "RFC 7344 §4.1",
            "ns2.example.org. 192.0.2.2:53 udp: no valid signature"
        ),
        "{}",
        verdict.to_text()
    );
}

#[test]
fn a_dnskey_rrset_not_signed_by_a_key_the_ds_points_to_is_bogus() {
    let (ksk1, ksk2, zsk) = (key(1, 257), key(3, 257), key(2, 256));
    let apex = Apex {
        published: vec![&ksk1, &ksk2, &zsk],
        dnskey_by: vec![&ksk2],
        cds: vec![ds_of(&ksk2)],
        cdnskey: vec![ksk2.dnskey.clone()],
        cds_by: vec![&ksk1, &ksk2],
    };
    let verdict = judge(&facts(&apex.sets(), vec![ds_of(&ksk1)]), generic());
    assert_eq!(verdict.outcome, Outcome::Refused, "{}", verdict.to_text());
    assert!(has(&verdict, Severity::Error, "RFC 4035 §5", "bogus"));
}

#[test]
fn a_sha1_ds_at_the_parent_still_identifies_its_key() {
    let (ksk, zsk) = (key(1, 257), key(2, 256));
    let apex = usual(&ksk, &zsk).sets();
    let mut sha1 = ds_of(&ksk);
    sha1.digest_type = 1;
    sha1.digest = vec![0xab; 20];
    let verdict = judge(&facts(&apex, vec![sha1]), generic());
    assert_eq!(verdict.outcome, Outcome::Rollover, "{}", verdict.to_text());
    assert!(
        verdict
            .findings
            .iter()
            .all(|f| f.severity != Severity::Error),
        "{}",
        verdict.to_text()
    );
}

#[test]
fn a_delete_on_an_unsigned_child_without_ds_is_nothing_to_do() {
    let apex = ApexSets {
        dnskey: Signed::default(),
        cds: Signed {
            rdatas: vec![Ds::delete().to_wire()],
            rrsigs: vec![],
        },
        cdnskey: Signed {
            rdatas: vec![Dnskey::delete().to_wire()],
            rrsigs: vec![],
        },
        csync: Signed::default(),
    };
    let verdict = judge(&facts(&apex, vec![]), generic());
    assert_eq!(
        verdict.outcome,
        Outcome::NothingToDo,
        "{}",
        verdict.to_text()
    );
    assert_eq!(verdict.exit_code(), 0);
}

#[test]
fn a_csync_is_checked_and_its_fate_said() {
    let (ksk, zsk) = (key(1, 257), key(2, 256));
    let mut apex = usual(&ksk, &zsk).sets();
    let csync = crate::dns::Csync {
        serial: 7,
        flags: crate::dns::Csync::FLAG_IMMEDIATE,
        types: vec![RecordType::A, RecordType::NS],
    };
    apex.csync = signed(RecordType::CSYNC, vec![csync.to_wire()], &[&zsk]);
    let secure = judge(&facts(&apex, vec![ds_of(&ksk)]), generic());
    assert_eq!(secure.outcome, Outcome::NothingToDo, "{}", secure.to_text());
    assert_eq!(
        secure.csync.as_deref(),
        Some("the parent copies A NS at once (immediate)")
    );
    // Not yet secure: ignored, and said.
    let first = judge(&facts(&apex, vec![]), generic());
    assert!(
        first
            .csync
            .as_deref()
            .is_some_and(|c| c.starts_with("ignored until the DS"))
    );
    assert!(has(&first, Severity::Warning, "RFC 7477 §4.1", "no DS yet"));
    // Unsigned: the CSYNC is refused, the DS side is untouched (a parent
    // handles CSYNC apart), and the exit code says it.
    apex.csync.rrsigs.clear();
    let unsigned = judge(&facts(&apex, vec![ds_of(&ksk)]), generic());
    assert_eq!(unsigned.outcome, Outcome::NothingToDo);
    assert_eq!(unsigned.exit_code(), 1);
    assert!(has(&unsigned, Severity::Error, "RFC 7477 §3", "CSYNC"));
    assert!(
        unsigned
            .csync
            .as_deref()
            .is_some_and(|c| c.starts_with("refused: no valid signature")),
        "{:?}",
        unsigned.csync
    );
    // Different on one server: the parent aborts (RFC 9975 §3).
    let mut differ = facts(&usual(&ksk, &zsk).sets(), vec![ds_of(&ksk)]);
    if let Ok(sets) = &mut differ.servers[0].sets {
        sets.csync = signed(RecordType::CSYNC, vec![csync.to_wire()], &[&zsk]);
    }
    let verdict = judge(&differ, generic());
    assert!(
        has(&verdict, Severity::Error, "RFC 9975 §3", "CSYNC"),
        "{}",
        verdict.to_text()
    );
    assert_eq!(
        verdict.outcome,
        Outcome::NothingToDo,
        "{}",
        verdict.to_text()
    );
    assert_eq!(verdict.exit_code(), 1);
}
