//! Policy tests: whole rollovers driven by a fake clock (timing metadata) and
//! by scripted `.state` snapshots (DSState), for every mode.

use std::sync::Arc;

use jiff::{Timestamp, ToSpan};

use super::*;
use crate::{
    config::{CdsMode, ChildSettings, PartialSettings},
    dns::{Dnskey, parse_name},
    dnssec::DigestType,
    keys::{KaspState, KeyFiles, KeyState, PrivatePart, Timing, TimingEvent},
};

fn t(day: i64) -> Timestamp {
    // Day 0 = 2030-01-01T00:00:00Z.
    Timestamp::from_second(1_893_456_000).expect("valid") + (day * 24).hours()
}

struct KeyBuilder {
    seed: u8,
    flags: u16,
    timing: Timing,
    state: Option<KaspState>,
    ttl: Option<u32>,
    private: PrivatePart,
}

fn ksk(seed: u8) -> KeyBuilder {
    KeyBuilder {
        seed,
        flags: 257,
        timing: Timing::default(),
        state: None,
        ttl: None,
        private: PrivatePart::Absent,
    }
}

fn zsk(seed: u8) -> KeyBuilder {
    KeyBuilder {
        flags: 256,
        ..ksk(seed)
    }
}

impl KeyBuilder {
    fn at(mut self, event: TimingEvent, day: i64) -> Self {
        self.timing.set(event, Some(t(day)));
        self
    }
    fn live(self, day: i64) -> Self {
        self.at(TimingEvent::Publish, day)
            .at(TimingEvent::Activate, day)
    }
    fn ds_state(mut self, ds: KeyState) -> Self {
        let state = self.state.get_or_insert_with(|| KaspState {
            ksk: Some(true),
            zsk: Some(false),
            dnskey: Some(KeyState::Omnipresent),
            ..KaspState::default()
        });
        state.ds = Some(ds);
        self
    }
    fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = Some(ttl);
        self
    }
    fn build(self) -> Arc<Key> {
        let dnskey = Dnskey {
            flags: self.flags,
            protocol: 3,
            algorithm: 13,
            public_key: (0..64u8)
                .map(|i| i.wrapping_mul(7).wrapping_add(self.seed))
                .collect(),
        };
        Arc::new(Key {
            zone: zone(),
            tag: dnssec::key_tag(&dnskey),
            dnskey,
            algorithm: dnssec::Algorithm::EcdsaP256Sha256,
            ttl: self.ttl,
            timing: self.timing,
            state: self.state,
            private: self.private,
            files: KeyFiles::default(),
        })
    }
}

fn zone() -> Name {
    parse_name("example.com.").expect("valid")
}

fn settings(mode: CdsMode) -> ChildSettings {
    PartialSettings {
        cds: Some(mode),
        nameservers: Some(vec![
            parse_name("ns1.example.net.").expect("valid"),
            parse_name("ns2.example.org.").expect("valid"),
        ]),
        ..PartialSettings::default()
    }
    .resolve()
}

fn run(settings: &ChildSettings, keys: &[Arc<Key>], now: Timestamp) -> ZoneSignals {
    let zone = zone();
    compute(
        &ZoneInput {
            zone: &zone,
            settings,
            keys,
            parent: None,
            soa_serial: None,
            followed: None,
            foreign: &[],
        },
        now,
    )
}

/// Tags in the CDS set (checking CDNSKEY describes the same keys).
fn tags(signals: &ZoneSignals) -> Vec<u16> {
    let mut cds: Vec<u16> = signals
        .cds
        .rdatas()
        .iter()
        .map(|r| match r {
            Rdata::Cds(ds) => ds.key_tag,
            other => panic!("not CDS: {other:?}"),
        })
        .collect();
    cds.dedup();
    let mut cdnskey: Vec<u16> = signals
        .cdnskey
        .rdatas()
        .iter()
        .map(|r| match r {
            Rdata::Cdnskey(k) => dnssec::key_tag(k),
            other => panic!("not CDNSKEY: {other:?}"),
        })
        .collect();
    cds.sort_unstable();
    cdnskey.sort_unstable();
    if signals.cdnskey.rdatas().first() != Some(&Rdata::Cdnskey(Dnskey::delete())) {
        assert_eq!(cds, cdnskey, "CDS and CDNSKEY must describe the same keys");
    }
    cds
}

/// A timing-driven double-KSK rollover (dnssec-settime style):
/// KSK1 live day 0, DS at parent day 2; KSK2 published day 30, active day 31,
/// DS at parent day 40 (replacing KSK1's DS); KSK1 inactive day 45, deleted day 60.
fn timing_rollover() -> (Vec<Arc<Key>>, u16, u16) {
    let k1 = ksk(1)
        .live(0)
        .at(TimingEvent::SyncPublish, 1)
        .at(TimingEvent::DsPublish, 2)
        .at(TimingEvent::DsDelete, 40)
        .at(TimingEvent::SyncDelete, 41)
        .at(TimingEvent::Inactive, 45)
        .at(TimingEvent::Delete, 60)
        .build();
    let k2 = ksk(2)
        .at(TimingEvent::Publish, 30)
        .at(TimingEvent::Activate, 31)
        .at(TimingEvent::SyncPublish, 32)
        .at(TimingEvent::DsPublish, 40)
        .build();
    let z = zsk(3).live(0).build();
    let (t1, t2) = (k1.tag, k2.tag);
    (vec![k1, k2, z], t1, t2)
}

#[test]
fn always_through_a_rollover() {
    let (keys, k1, k2) = timing_rollover();
    let s = settings(CdsMode::Always);
    assert_eq!(
        tags(&run(&s, &keys, t(-1))),
        Vec::<u16>::new(),
        "nothing before any key is live"
    );
    assert_eq!(
        tags(&run(&s, &keys, t(0))),
        vec![k1],
        "bootstrap: first KSK is ready"
    );
    assert_eq!(
        tags(&run(&s, &keys, t(10))),
        vec![k1],
        "at rest: the in-service KSK"
    );
    assert_eq!(
        tags(&run(&s, &keys, t(30))),
        vec![k1],
        "KSK2 published but not active"
    );
    assert_eq!(
        tags(&run(&s, &keys, t(31))),
        vec![k2],
        "KSK2 ready: its DS replaces KSK1's"
    );
    assert_eq!(
        tags(&run(&s, &keys, t(40))),
        vec![k2],
        "DS of KSK2 at parent, KSK1's gone"
    );
    assert_eq!(tags(&run(&s, &keys, t(50))), vec![k2]);
    assert_eq!(tags(&run(&s, &keys, t(70))), vec![k2]);
}

#[test]
fn always_lists_every_ksk_in_service() {
    // Two KSKs whose DS are both at the parent (no DSDelete recorded): the
    // set the parent should hold is both, until one is retired.
    let k1 = ksk(1)
        .live(0)
        .at(TimingEvent::DsPublish, 1)
        .at(TimingEvent::Inactive, 20)
        .build();
    let k2 = ksk(2).live(5).at(TimingEvent::DsPublish, 6).build();
    let (t1, t2) = (k1.tag, k2.tag);
    let keys = [k1, k2];
    let mut both = vec![t1, t2];
    both.sort_unstable();
    assert_eq!(tags(&run(&settings(CdsMode::Always), &keys, t(10))), both);
    assert_eq!(
        tags(&run(&settings(CdsMode::Always), &keys, t(20))),
        vec![t2]
    );
}

#[test]
fn rollover_only_while_a_ksk_is_ready() {
    let (keys, k1, k2) = timing_rollover();
    let s = settings(CdsMode::Rollover);
    let sig = run(&s, &keys, t(0));
    assert_eq!(tags(&sig), vec![k1], "bootstrap signals for the first KSK");
    assert_eq!(sig.dsboot.len(), 2);
    let rest = run(&s, &keys, t(10));
    assert!(tags(&rest).is_empty(), "at rest");
    assert!(rest.dsboot.iter().all(|d| d.cds.is_empty()));
    assert!(rest.decisions.iter().any(|d| d.why.contains("at rest")));
    assert_eq!(tags(&run(&s, &keys, t(31))), vec![k2]);
    assert!(tags(&run(&s, &keys, t(40))).is_empty(), "KSK2's DS arrived");
}

#[test]
fn double_ds_keeps_both_and_at_most_two() {
    let (mut keys, k1, k2) = timing_rollover();
    let s = settings(CdsMode::DoubleDs);
    assert_eq!(tags(&run(&s, &keys, t(10))), vec![k1]);
    let mut both = vec![k1, k2];
    both.sort_unstable();
    assert_eq!(tags(&run(&s, &keys, t(31))), both);
    assert_eq!(tags(&run(&s, &keys, t(39))), both);
    assert_eq!(
        tags(&run(&s, &keys, t(40))),
        vec![k2],
        "KSK1's DS withdrawn"
    );
    assert_eq!(tags(&run(&s, &keys, t(45))), vec![k2], "KSK1 inactive");
    // A third KSK: only the two newest stay.
    let k3 = ksk(4).live(35).build();
    let k3_tag = k3.tag;
    keys.push(k3);
    let mut newest = vec![k2, k3_tag];
    newest.sort_unstable();
    let sig = run(&s, &keys, t(36));
    assert_eq!(tags(&sig), newest);
    assert!(sig.decisions.iter().any(|d| d.why.contains("two newest")));
}

#[test]
fn auto_follows_sync_timing() {
    let (keys, k1, k2) = timing_rollover();
    let s = settings(CdsMode::Auto);
    assert!(
        tags(&run(&s, &keys, t(0))).is_empty(),
        "SyncPublish not reached"
    );
    assert_eq!(tags(&run(&s, &keys, t(1))), vec![k1]);
    let mut both = vec![k1, k2];
    both.sort_unstable();
    assert_eq!(tags(&run(&s, &keys, t(32))), both);
    // SyncDelete is exclusive at the instant, inclusive after (BIND: `when < now`).
    assert_eq!(tags(&run(&s, &keys, t(41))), both);
    assert_eq!(tags(&run(&s, &keys, t(41) + 1.second())), vec![k2]);
}

#[test]
fn auto_follows_ds_state_snapshots() {
    // Scripted dnssec-policy snapshots of a KSK rollover.
    let s = settings(CdsMode::Auto);
    let snapshot = |old: KeyState, new: Option<KeyState>| {
        let mut keys = vec![ksk(1).live(0).ds_state(old).build()];
        if let Some(new) = new {
            keys.push(ksk(2).live(30).ds_state(new).build());
        }
        tags(&run(&s, &keys, t(100)))
    };
    let (k1, k2) = (ksk(1).build().tag, ksk(2).build().tag);
    assert!(snapshot(KeyState::Hidden, None).is_empty(), "DS hidden");
    assert_eq!(snapshot(KeyState::Rumoured, None), vec![k1]);
    assert_eq!(snapshot(KeyState::Omnipresent, None), vec![k1]);
    assert_eq!(
        snapshot(KeyState::Omnipresent, Some(KeyState::Hidden)),
        vec![k1]
    );
    let mut both = vec![k1, k2];
    both.sort_unstable();
    assert_eq!(
        snapshot(KeyState::Unretentive, Some(KeyState::Rumoured)),
        vec![k2]
    );
    assert_eq!(
        snapshot(KeyState::Omnipresent, Some(KeyState::Rumoured)),
        both
    );
    assert_eq!(
        snapshot(KeyState::Hidden, Some(KeyState::Omnipresent)),
        vec![k2]
    );
}

#[test]
fn bind_rule_table() {
    // (DSState, SyncPublish day, SyncDelete day, legacy) -> in?
    let now = 10;
    type Case = (Option<KeyState>, Option<i64>, Option<i64>, bool, bool);
    let cases: [Case; 12] = [
        (Some(KeyState::Hidden), Some(0), None, false, false),
        (Some(KeyState::Rumoured), None, None, false, true),
        (Some(KeyState::Omnipresent), None, Some(0), false, true),
        (Some(KeyState::Unretentive), Some(0), None, false, false),
        (None, Some(0), None, false, true),
        (None, Some(now), None, false, true),
        (None, Some(now + 1), None, false, false),
        (None, Some(0), Some(now), false, true),
        (None, Some(0), Some(5), false, false),
        (None, None, None, false, false),
        (None, Some(0), None, true, false),
        (Some(KeyState::Omnipresent), None, None, true, false),
    ];
    let s = settings(CdsMode::Auto);
    for (i, (ds, publish, delete, legacy, expect_in)) in cases.into_iter().enumerate() {
        let mut b = ksk(9).live(0);
        if let Some(ds) = ds {
            b = b.ds_state(ds);
        }
        if let Some(d) = publish {
            b = b.at(TimingEvent::SyncPublish, d);
        }
        if let Some(d) = delete {
            b = b.at(TimingEvent::SyncDelete, d);
        }
        if legacy {
            let text = "Private-key-format: v1.2\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=\n";
            b.private = PrivatePart::Present(Arc::new(
                crate::keys::bind::private::parse(text).expect("valid"),
            ));
        }
        let sig = run(&s, &[b.build()], t(now));
        assert_eq!(
            !tags(&sig).is_empty(),
            expect_in,
            "case {i}: {:#?}",
            sig.decisions
        );
    }
}

#[test]
fn auto_never_signals_an_unpublished_key() {
    let key = ksk(1)
        .at(TimingEvent::Publish, 20)
        .at(TimingEvent::Activate, 20)
        .at(TimingEvent::SyncPublish, 5)
        .build();
    let sig = run(&settings(CdsMode::Auto), &[key], t(10));
    assert!(tags(&sig).is_empty());
    assert!(
        sig.decisions
            .iter()
            .any(|d| d.why.contains("not published"))
    );
    // Deleted keys never.
    let gone = ksk(1)
        .live(0)
        .at(TimingEvent::SyncPublish, 0)
        .at(TimingEvent::Delete, 5)
        .build();
    assert!(tags(&run(&settings(CdsMode::Auto), &[gone], t(10))).is_empty());
}

#[test]
fn keys_without_timing_are_published_and_active() {
    let key = ksk(1).build();
    let tag = key.tag;
    assert_eq!(
        tags(&run(
            &settings(CdsMode::Always),
            std::slice::from_ref(&key),
            t(0)
        )),
        vec![tag]
    );
    assert_eq!(
        tags(&run(
            &settings(CdsMode::Rollover),
            std::slice::from_ref(&key),
            t(0)
        )),
        vec![tag]
    );
    // Without metadata BIND's rule has nothing to go on.
    assert!(tags(&run(&settings(CdsMode::Auto), &[key], t(0))).is_empty());
}

#[test]
fn knot_modes_ignore_zsks_and_retired_keys() {
    let keys = vec![
        zsk(1).live(0).build(),
        ksk(2).live(0).at(TimingEvent::Revoke, 5).build(),
        ksk(3).live(0).at(TimingEvent::Inactive, 5).build(),
        ksk(4).at(TimingEvent::Publish, 0).build(), // never activated
    ];
    for mode in [CdsMode::Always, CdsMode::Rollover, CdsMode::DoubleDs] {
        let sig = run(&settings(mode), &keys, t(10));
        assert!(tags(&sig).is_empty(), "{mode}: {:#?}", sig.decisions);
        assert!(
            sig.dsboot
                .iter()
                .all(|d| d.cds.is_empty() && d.cdnskey.is_empty())
        );
    }
}

#[test]
fn ds_state_omnipresent_means_in_service() {
    let keys = vec![ksk(1).live(0).ds_state(KeyState::Omnipresent).build()];
    let sig = run(&settings(CdsMode::Rollover), &keys, t(10));
    assert!(
        tags(&sig).is_empty(),
        "rollover at rest once the DS is at the parent"
    );
    let sig = run(&settings(CdsMode::Always), &keys, t(10));
    assert_eq!(tags(&sig).len(), 1);
}

#[test]
fn parent_view_overrides_metadata() {
    let key = ksk(1).live(0).build();
    let zone = zone();
    let s = settings(CdsMode::Rollover);
    let parent = ParentView {
        ds: vec![dnssec::ds(&zone, &key.dnskey, DigestType::Sha256)],
        ns: None,
        observed_at: Some(t(5)),
    };
    let keys = [key];
    let input = ZoneInput {
        zone: &zone,
        settings: &s,
        keys: &keys,
        parent: Some(&parent),
        soa_serial: None,
        followed: None,
        foreign: &[],
    };
    assert!(compute(&input, t(10)).cds.is_empty());
    let other = ParentView::default();
    assert!(
        !compute(
            &ZoneInput {
                parent: Some(&other),
                ..input
            },
            t(10)
        )
        .cds
        .is_empty()
    );
}

#[test]
fn none_and_delete() {
    let keys = vec![ksk(1).live(0).build()];
    let sig = run(&settings(CdsMode::None), &keys, t(1));
    assert!(sig.cds.is_empty() && sig.cdnskey.is_empty());
    let mut s = settings(CdsMode::Delete);
    s.foreign_keys = vec![ksk(7).build().dnskey.clone()];
    let sig = run(&s, &keys, t(1));
    let cds: Vec<String> = sig.cds.records().map(|r| r.to_string()).collect();
    let cdnskey: Vec<String> = sig.cdnskey.records().map(|r| r.to_string()).collect();
    assert_eq!(cds, ["example.com. 3600 IN CDS 0 0 0 00"]);
    assert_eq!(cdnskey, ["example.com. 3600 IN CDNSKEY 0 3 0 AA=="]);
    assert_eq!(sig.dsboot[0].cds.rdatas(), sig.cds.rdatas());
    // Without a signing KSK, a warning (but the confirmed intent stands).
    let sig = run(&settings(CdsMode::Delete), &[], t(1));
    assert_eq!(sig.cds.rdatas().len(), 1);
    assert!(sig.decisions.iter().any(|d| d.verdict == Verdict::Warning));
}

#[test]
fn digests_and_cdnskey_switch() {
    let keys = vec![ksk(1).live(0).build()];
    let mut s = settings(CdsMode::Always);
    s.digests = vec![DigestType::Sha256, DigestType::Sha384];
    let sig = run(&s, &keys, t(1));
    let types: Vec<u8> = sig
        .cds
        .rdatas()
        .iter()
        .map(|r| match r {
            Rdata::Cds(ds) => ds.digest_type,
            _ => 0,
        })
        .collect();
    assert_eq!(types.len(), 2);
    assert!(types.contains(&2) && types.contains(&4));
    s.cdnskey = false;
    let sig = run(&s, &keys, t(1));
    assert!(sig.cdnskey.is_empty());
    assert_eq!(sig.cds.rdatas().len(), 2);
}

#[test]
fn foreign_keys_join_but_never_alone() {
    let ours = ksk(1).live(0).build();
    let foreign = ksk(8).build().dnskey.clone();
    let mut s = settings(CdsMode::Always);
    s.foreign_keys = vec![foreign.clone(), ours.dnskey.clone()];
    let sig = run(&s, std::slice::from_ref(&ours), t(1));
    let mut expect = vec![ours.tag, dnssec::key_tag(&foreign)];
    expect.sort_unstable();
    assert_eq!(tags(&sig), expect);
    // Rollover at rest: our set is empty, foreign keys stay out.
    let at_rest = ksk(1).live(0).ds_state(KeyState::Omnipresent).build();
    let mut s = settings(CdsMode::Rollover);
    s.foreign_keys = vec![foreign];
    let sig = run(&s, &[at_rest], t(1));
    assert!(sig.cds.is_empty());
    assert!(
        sig.decisions
            .iter()
            .any(|d| d.why.contains("not published alone"))
    );
}

#[test]
fn fetched_foreign_keys_join_like_listed_ones_and_say_where_they_came_from() {
    let ours = ksk(1).live(0).build();
    let (listed, fetched) = (ksk(8).build().dnskey.clone(), ksk(9).build().dnskey.clone());
    let mut s = settings(CdsMode::Always);
    s.foreign_keys = vec![listed.clone()];
    let zone = zone();
    let fetched_keys = [fetched.clone(), listed.clone()];
    let input = ZoneInput {
        zone: &zone,
        settings: &s,
        keys: std::slice::from_ref(&ours),
        parent: None,
        soa_serial: None,
        followed: None,
        foreign: &fetched_keys,
    };
    let sig = compute(&input, t(1));
    let mut expect = vec![
        ours.tag,
        dnssec::key_tag(&listed),
        dnssec::key_tag(&fetched),
    ];
    expect.sort_unstable();
    assert_eq!(tags(&sig), expect, "each key once");
    let fetched_line = sig
        .decisions
        .iter()
        .find(|d| {
            d.key
                .as_ref()
                .is_some_and(|k| k.tag == dnssec::key_tag(&fetched))
        })
        .expect("a decision for the fetched key");
    assert!(
        fetched_line.why.contains("foreign_from"),
        "{}",
        fetched_line.why
    );
    // Alone (rollover at rest), fetched keys stay out too.
    let at_rest = ksk(1).live(0).ds_state(KeyState::Omnipresent).build();
    let s = settings(CdsMode::Rollover);
    let sig = compute(
        &ZoneInput {
            settings: &s,
            keys: std::slice::from_ref(&at_rest),
            ..input
        },
        t(1),
    );
    assert!(sig.cds.is_empty());
}

#[test]
fn ttl_rules() {
    let keys = vec![
        ksk(1).live(0).ttl(7200).build(),
        zsk(2).live(0).ttl(600).build(),
    ];
    let sig = run(&settings(CdsMode::Always), &keys, t(1));
    assert_eq!(sig.cds.ttl(), 600);
    assert_eq!(sig.cdnskey.ttl(), 600);
    let mut s = settings(CdsMode::Always);
    s.signal_ttl = Some(60);
    assert_eq!(run(&s, &keys, t(1)).cds.ttl(), 60);
    let plain = vec![ksk(1).live(0).build()];
    assert_eq!(
        run(&settings(CdsMode::Always), &plain, t(1)).cds.ttl(),
        DEFAULT_SIGNAL_TTL
    );
}

#[test]
fn dsboot_names_are_byte_identical_copies() {
    let keys = vec![ksk(1).live(0).build()];
    let mut s = settings(CdsMode::Always);
    s.nameservers
        .push(parse_name("ns3.example.com.").expect("valid"));
    let sig = run(&s, &keys, t(1));
    let owners: Vec<String> = sig.dsboot.iter().map(|d| display(&d.owner)).collect();
    assert_eq!(
        owners,
        [
            "_dsboot.example.com._signal.ns1.example.net.",
            "_dsboot.example.com._signal.ns2.example.org."
        ]
    );
    for d in &sig.dsboot {
        assert_eq!(d.cds.wire_rdatas(), sig.cds.wire_rdatas());
        assert_eq!(d.cdnskey.wire_rdatas(), sig.cdnskey.wire_rdatas());
        assert_eq!(d.cds.ttl(), sig.cds.ttl());
    }
    assert!(
        sig.decisions
            .iter()
            .any(|d| d.why.contains("ns3.example.com. is in the child zone"))
    );
}

#[test]
fn all_in_domain_ns_is_a_warning() {
    let keys = vec![ksk(1).live(0).build()];
    let mut s = settings(CdsMode::Always);
    s.nameservers = vec![parse_name("ns1.example.com.").expect("valid")];
    let sig = run(&s, &keys, t(1));
    assert!(sig.dsboot.is_empty());
    assert!(
        sig.decisions
            .iter()
            .any(|d| d.verdict == Verdict::Warning && d.why.contains("impossible"))
    );
}

#[test]
fn too_long_signalling_name_is_reported_not_truncated() {
    let label = "a".repeat(63);
    let long_ns =
        parse_name(&format!("{label}.{label}.{label}.{}.", "b".repeat(40))).expect("valid");
    let keys = vec![ksk(1).live(0).build()];
    let mut s = settings(CdsMode::Always);
    s.nameservers.push(long_ns);
    let sig = run(&s, &keys, t(1));
    assert_eq!(sig.dsboot.len(), 2, "the two usable NS still get signals");
    let err = sig
        .decisions
        .iter()
        .find(|d| d.verdict == Verdict::Error)
        .expect("an error for the long NS");
    assert!(
        err.why.contains("255") && err.why.contains(&"a".repeat(63)),
        "{err}"
    );
    assert!(sig.has_errors());
}

#[test]
fn csync_bitmaps() {
    let keys = vec![ksk(1).live(0).build()];
    let mut s = settings(CdsMode::Always);
    s.csync = true;
    let zone = zone();
    let input = ZoneInput {
        zone: &zone,
        settings: &s,
        keys: &keys,
        parent: None,
        soa_serial: Some(2030010101),
        followed: None,
        foreign: &[],
    };
    let sig = compute(&input, t(1));
    let lines: Vec<String> = sig
        .csync
        .as_ref()
        .expect("csync")
        .records()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(lines, ["example.com. 3600 IN CSYNC 2030010101 3 NS"]);
    let mut s2 = s.clone();
    s2.nameservers
        .push(parse_name("ns3.example.com.").expect("valid"));
    s2.csync_flags = 2;
    let sig = compute(
        &ZoneInput {
            settings: &s2,
            ..input
        },
        t(1),
    );
    let lines: Vec<String> = sig
        .csync
        .as_ref()
        .expect("csync")
        .records()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(lines, ["example.com. 3600 IN CSYNC 2030010101 2 A NS AAAA"]);
    assert!(
        sig.decisions
            .iter()
            .any(|d| d.why.contains("out-of-band approval"))
    );
    // No serial: left out with a note.
    let sig = compute(
        &ZoneInput {
            soa_serial: None,
            ..input
        },
        t(1),
    );
    assert!(sig.csync.is_none());
    assert!(sig.decisions.iter().any(|d| d.why.contains("--soa-serial")));
}

#[test]
fn decision_lines_name_zone_key_and_verdict() {
    let keys = vec![ksk(1).live(0).ds_state(KeyState::Rumoured).build()];
    let sig = run(&settings(CdsMode::Auto), &keys, t(1));
    let line = sig.decisions[0].to_string();
    assert!(
        line.starts_with(&format!(
            "example.com. key {} alg 13 (ECDSAP256SHA256) KSK (",
            keys[0].tag
        )),
        "{line}"
    );
    assert!(line.contains("DSState rumoured"), "{line}");
    assert!(line.contains(": in: "), "{line}");
}

#[test]
fn the_parent_acting_withdraws_dsboot_unless_kept() {
    let key = ksk(1).live(0).build();
    let zone = zone();
    let mut s = settings(CdsMode::Always);
    let parent = ParentView {
        ds: vec![dnssec::ds(&zone, &key.dnskey, DigestType::Sha256)],
        ns: None,
        observed_at: Some(t(5)),
    };
    let keys = [key];
    let with = |s: &ChildSettings, parent: Option<&ParentView>| {
        compute(
            &ZoneInput {
                zone: &zone,
                settings: s,
                keys: &keys,
                parent,
                soa_serial: None,
                followed: None,
                foreign: &[],
            },
            t(10),
        )
    };
    // No observation yet, or a parent DS for someone else's key: signals stay.
    assert_eq!(with(&s, None).dsboot.len(), 2);
    let stranger = ParentView {
        ds: vec![dnssec::ds(
            &zone,
            &ksk(9).build().dnskey,
            DigestType::Sha256,
        )],
        ..parent.clone()
    };
    assert_eq!(with(&s, Some(&stranger)).dsboot.len(), 2);
    // The parent holds our DS: bootstrapping is over (RFC 9615 §5.1); the
    // apex CDS stays (mode "always").
    let done = with(&s, Some(&parent));
    assert!(done.dsboot.is_empty());
    assert!(!done.cds.is_empty());
    assert!(
        done.decisions
            .iter()
            .any(|d| d.why.contains("bootstrapping is done"))
    );
    s.keep_signals = true;
    assert_eq!(with(&s, Some(&parent)).dsboot.len(), 2);
}

#[test]
fn csync_goes_once_the_parent_ns_match() {
    let keys = [ksk(1).live(0).build()];
    let zone = zone();
    let mut s = settings(CdsMode::Always);
    s.csync = true;
    let view = |ns: &[&str]| ParentView {
        ds: Vec::new(),
        ns: Some(ns.iter().map(|n| parse_name(n).expect("valid")).collect()),
        observed_at: Some(t(5)),
    };
    let csync = |parent: &ParentView| {
        compute(
            &ZoneInput {
                zone: &zone,
                settings: &s,
                keys: &keys,
                parent: Some(parent),
                soa_serial: Some(7),
                followed: None,
                foreign: &[],
            },
            t(10),
        )
        .csync
    };
    assert!(csync(&view(&["ns1.example.net.", "old.example.org."])).is_some());
    assert!(csync(&view(&["ns2.example.org.", "ns1.example.net."])).is_none());
}

fn followed(cds: Vec<Ds>, cdnskey: Vec<Dnskey>) -> FollowedApex {
    FollowedApex {
        primary: "127.0.0.1:53".into(),
        serial: 43,
        ns_serial: 42,
        cds,
        cds_ttl: 0,
        cdnskey,
        cdnskey_ttl: 0,
        ns: vec![parse_name("ns.other.example.").expect("valid")],
        dnskeys: Vec::new(),
        read_at: t(1),
    }
}

#[test]
fn a_followed_zone_copies_its_signers_apex_byte_for_byte() {
    let zone = zone();
    let key = ksk(1).live(0).build();
    let f = followed(
        vec![dnssec::ds(&zone, &key.dnskey, DigestType::Sha256)],
        vec![key.dnskey.clone()],
    );
    // No keys and no nameservers configured: the signer's NS are used.
    let mut s = settings(CdsMode::Auto);
    s.nameservers.clear();
    s.csync = true;
    let sig = compute(
        &ZoneInput {
            zone: &zone,
            settings: &s,
            keys: &[],
            parent: None,
            soa_serial: None,
            followed: Some(&f),
            foreign: &[],
        },
        t(10),
    );
    assert!(sig.hold.is_none());
    assert_eq!(tags(&sig), vec![key.tag]);
    assert_eq!(sig.cds.ttl(), 0, "the signer's TTL (Knot 3.2 uses 0)");
    assert_eq!(sig.dsboot.len(), 1);
    assert_eq!(display(&sig.dsboot[0].ns), "ns.other.example.");
    assert_eq!(sig.dsboot[0].cds.rdatas(), sig.cds.rdatas());
    // The signer's serial feeds CSYNC.
    let csync = sig.csync.expect("csync");
    assert!(matches!(&csync.rdatas()[0], Rdata::Csync(c) if c.serial == 42));
}

#[test]
fn follow_and_keys_must_agree_or_nothing_new_is_published() {
    let zone = zone();
    let key = ksk(1).live(0).build();
    let other = ksk(2).live(0).build();
    let s = settings(CdsMode::Always);
    let keys = [key.clone()];
    let run = |f: &FollowedApex| {
        compute(
            &ZoneInput {
                zone: &zone,
                settings: &s,
                keys: &keys,
                parent: None,
                soa_serial: None,
                followed: Some(f),
                foreign: &[],
            },
            t(10),
        )
    };
    let agree = followed(
        vec![dnssec::ds(&zone, &key.dnskey, DigestType::Sha256)],
        vec![key.dnskey.clone()],
    );
    let sig = run(&agree);
    assert!(sig.hold.is_none(), "{:?}", sig.decisions);
    assert_eq!(tags(&sig), vec![key.tag]);
    let disagree = followed(
        vec![dnssec::ds(&zone, &other.dnskey, DigestType::Sha256)],
        vec![other.dnskey.clone()],
    );
    let sig = run(&disagree);
    assert!(
        sig.hold
            .as_deref()
            .is_some_and(|w| w.contains("never publishes a guess"))
    );
    assert!(sig.has_errors());
}

#[test]
fn delegation_states_through_a_rollover_and_a_delete() {
    let (keys, _, _) = timing_rollover();
    let s = settings(CdsMode::Always);
    let state = |day| delegation_state(&run(&s, &keys, t(day)), &keys, None, t(day));
    assert_eq!(state(-1), DelegationState::Insecure, "no key live, no DS");
    assert_eq!(
        state(0),
        DelegationState::Bootstrapping,
        "CDS out, no DS yet"
    );
    assert_eq!(
        state(10),
        DelegationState::InSync,
        "KSK1's DS is at the parent"
    );
    assert_eq!(
        state(31),
        DelegationState::Rolling,
        "CDS names KSK2, DS KSK1"
    );
    assert_eq!(
        state(40),
        DelegationState::InSync,
        "KSK2's DS replaced KSK1's"
    );
    // The parent's DS as observed wins over the metadata.
    let zone = zone();
    let k1 = &keys[0];
    let view = ParentView {
        ds: vec![dnssec::ds(&zone, &k1.dnskey, DigestType::Sha384)],
        ns: None,
        observed_at: Some(t(40)),
    };
    let signals = run(&s, &keys, t(40));
    assert_eq!(
        delegation_state(&signals, &keys, Some(&view), t(40)),
        DelegationState::Rolling,
        "the parent still has KSK1's DS"
    );
    // Delete: deleting while a DS is left, insecure once it is gone.
    let live = vec![ksk(1).live(0).ds_state(KeyState::Omnipresent).build()];
    let del = settings(CdsMode::Delete);
    let signals = run(&del, &live, t(1));
    assert_eq!(
        delegation_state(&signals, &live, None, t(1)),
        DelegationState::Deleting
    );
    assert_eq!(
        delegation_state(&signals, &live, Some(&ParentView::default()), t(1)),
        DelegationState::Insecure
    );
}
