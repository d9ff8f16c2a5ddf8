//! The harness's BIND 9.18 as a live signer: CDS/CDNSKEY under
//! dnssec-policy, NOTIFY (RFC 1996) and what it keeps of UPDATEs (RFC 2136)
//! carrying CDS, CDNSKEY (RFC 7344) and CSYNC (RFC 7477), dynamic and inline.

use std::time::{Duration, Instant};

use super::*;
use crate::common::process;
use crate::common::signer::{
    BIND_TOOLS, BindPolicy, BindSigner, BindZone, NotifyListener, TsigKey, axfr, lookup, nsupdate,
    query, version, wait_until,
};

/// The harness's BIND: with the fast policy the KSK's CDS/CDNSKEY appear a
/// few seconds after start and are NOTIFYed; `rndc dnssec -checkds ...
/// published` before SyncPublish publishes them at once.
#[test]
fn bind_cds_appear_and_are_notified() {
    let _cpu = process::cpu_heavy();
    if !crate::common::tools(BIND_TOOLS) {
        return;
    }
    let bind_version = version("named", "-v");
    let dir = tempdir("signalbox-bind-signer-");
    let listener = NotifyListener::start();
    let slow = BindPolicy {
        max_zone_ttl: 3600,
        dnskey_ttl: 3600,
        zone_propagation_delay: 300,
        publish_safety: 3600,
        ..BindPolicy::default()
    };
    let t0 = Instant::now();
    let bind = BindSigner::start(
        dir.path(),
        &[
            BindZone::new(CHILD, &body()).notify(listener.addr()),
            BindZone::new("inline.example.", &body())
                .inline()
                .notify(listener.addr()),
            BindZone::new("slow.example.", &body()).policy(slow),
        ],
    );
    let log = || bind.log_tail();
    let started = t0.elapsed();

    for zone in [CHILD, "inline.example."] {
        let ksk = bind.ksks(zone);
        assert_eq!(ksk.len(), 1, "{zone}: one KSK: {:?}", bind.keys(zone));
        let appeared = wait_until(Duration::from_secs(20), || {
            let c = lookup(bind.addr(), zone, "CDS");
            (c.rdata("CDS").len() == 1).then(|| (Instant::now(), c))
        });
        let (at, c) = appeared.unwrap_or_else(|| panic!("{zone}: no CDS within 20 s\n{}", log()));
        assert!(
            c.rdata("CDS")[0].starts_with(&format!("{} 13 2 ", ksk[0])),
            "{zone}: {:?}",
            c.rdata("CDS")
        );
        assert_eq!(
            c.ttls("CDS"),
            vec![2],
            "{bind_version}: CDS TTL = dnskey-ttl"
        );
        assert_eq!(
            c.rrsig_tags("CDS"),
            ksk,
            "{bind_version} signs CDS with the KSK"
        );
        assert_eq!(query(bind.addr(), zone, "CDNSKEY").len(), 1);
        let serial = bind.serial(zone);
        let n = listener
            .wait_for(zone, t0, Some(serial), Duration::from_secs(10))
            .unwrap_or_else(|| {
                panic!(
                    "{bind_version}: no NOTIFY for {zone} serial {serial}: {:?}\n{}",
                    listener.seen(),
                    log()
                )
            });
        eprintln!(
            "bind {zone}: started in {}, CDS at {} after start, NOTIFY (serial {:?}) {} after the CDS",
            secs(started),
            secs(at - t0),
            n.serial,
            secs(n.at.saturating_duration_since(at))
        );
        assert!(
            at - t0 < Duration::from_secs(15),
            "{bind_version}: SyncPublish = max-zone-ttl 2 + propagation 1 + safety 1 s"
        );
    }
    assert!(
        bind.log()
            .contains("CDS for key example.com/ECDSAP256SHA256/"),
        "{bind_version} logs `CDS for key ... is now published`\n{}",
        log()
    );

    // The slow policy: no CDS yet (SyncPublish is hours away) until the DS
    // is declared published.
    let slow_ksk = bind.ksks("slow.example.");
    assert_eq!(slow_ksk.len(), 1);
    assert!(query(bind.addr(), "slow.example.", "CDS").is_empty());
    let t = Instant::now();
    bind.checkds("slow.example.", slow_ksk[0], true);
    let at = wait_until(Duration::from_secs(10), || {
        (query(bind.addr(), "slow.example.", "CDS").len() == 1).then(Instant::now)
    })
    .unwrap_or_else(|| {
        panic!(
            "{bind_version}: checkds published before SyncPublish did not publish CDS\n{}",
            log()
        )
    });
    eprintln!(
        "bind: checkds published before SyncPublish -> CDS after {}",
        secs(at - t)
    );
    let seen = listener.seen();
    assert!(
        !seen.is_empty() && seen.iter().all(|n| n.transport == "udp"),
        "{bind_version} sends NOTIFY over UDP: {seen:?}"
    );
}

/// BIND 9.18 keeps CDS/CDNSKEY added by UPDATE at a non-apex name, in a
/// dynamic and in an inline-signing zone alike: served, signed (with the
/// KSK), TTL capped at max-zone-ttl, through `rndc sign`, a KSK rollover
/// and a SIGKILL restart. At the apex the dynamic zone keeps a foreign CDS,
/// the inline zone refuses it; CSYNC is kept and signed in both.
#[test]
fn bind_update_keeps_non_apex_cds_in_dynamic_and_inline_zones() {
    let _cpu = process::cpu_heavy();
    if !crate::common::tools(BIND_TOOLS) {
        return;
    }
    let bind_version = version("named", "-v");
    let dir = tempdir("signalbox-bind-update-");
    let key = TsigKey::generate("sidecar");
    let listener = NotifyListener::start();
    let mut bind = BindSigner::start(
        dir.path(),
        &[
            BindZone::new(SIGNAL, &body())
                .update_key(&key)
                .notify(listener.addr()),
            BindZone::new(SIGNAL2, &body())
                .inline()
                .update_key(&key)
                .transfer_key(&key)
                .notify(listener.addr()),
        ],
    );
    let addr = bind.addr();
    let cases = [(SIGNAL, DSBOOT, "dynamic"), (SIGNAL2, DSBOOT2, "inline")];

    let r = nsupdate(
        addr,
        None,
        &add_cds(SIGNAL, DSBOOT, 300, FOREIGN_CDS, FOREIGN_CDNSKEY),
    );
    assert!(
        !r.ok() && r.rcode == "REFUSED",
        "{bind_version} answers an UPDATE its policy denies with REFUSED: {r:?}"
    );
    let r = nsupdate(
        addr,
        Some(&TsigKey::generate("sidecar")),
        &add_cds(SIGNAL, DSBOOT, 300, FOREIGN_CDS, FOREIGN_CDNSKEY),
    );
    assert!(
        !r.ok() && r.rcode == "NOTAUTH" && r.output.contains("NOTAUTH(BADSIG)"),
        "{bind_version}: UPDATE with a wrong secret gets NOTAUTH + TSIG error BADSIG: {r:?}"
    );

    for (zone, owner, kind) in cases {
        let log = || bind.log_tail();
        let t = Instant::now();
        let r = nsupdate(
            addr,
            Some(&key),
            &add_cds(zone, owner, 300, FOREIGN_CDS, FOREIGN_CDNSKEY),
        );
        assert!(r.ok(), "{kind}: {r:?}\n{}", log());
        let what = format!("BIND {kind}, after UPDATE");
        let (a, b) = wait_until(Duration::from_secs(5), || {
            let a = lookup(addr, owner, "CDS");
            (!a.rdata("CDS").is_empty()).then(|| (a, lookup(addr, owner, "CDNSKEY")))
        })
        .unwrap_or_else(|| panic!("{what}: not served\n{}", log()));
        assert_signed_cds(&a, &b, &what, &log);
        assert_eq!(
            a.ttls("CDS"),
            vec![2],
            "{bind_version} caps the TTL at the policy's max-zone-ttl (2)"
        );
        assert_eq!(
            a.rrsig_tags("CDS"),
            bind.ksks(zone),
            "{bind_version} signs CDS with the KSK, also below the apex ({kind})"
        );
        let serial = bind.serial(zone);
        let n = listener
            .wait_for(zone, t, Some(serial), Duration::from_secs(8))
            .unwrap_or_else(|| panic!("{kind}: no NOTIFY after the UPDATE\n{}", log()));
        eprintln!("bind {kind}: UPDATE -> NOTIFY {}", secs(n.at - t));
    }
    assert!(
        bind.log()
            .contains("reducing TTL to the configured max-zone-ttl 2"),
        "{bind_version} logs the TTL cap"
    );

    // Transfers: open to loopback (signed or not), or only with the key.
    let t = axfr(addr, SIGNAL, None);
    assert!(t.ok(), "unsigned AXFR: {}", t.output);
    assert_eq!(t.rdata(DSBOOT, "CDS"), vec![FOREIGN_CDS.to_string()]);
    assert!(
        axfr(addr, SIGNAL, Some(&key)).ok(),
        "{bind_version}: allow-transfer by address also takes TSIG-signed requests"
    );
    assert!(
        !axfr(addr, SIGNAL2, None).ok(),
        "transfer_key: unsigned AXFR refused"
    );
    let t = axfr(addr, SIGNAL2, Some(&key));
    assert!(t.ok(), "AXFR with the transfer key: {}", t.output);
    assert_eq!(
        t.rdata(DSBOOT2, "CDNSKEY"),
        vec![FOREIGN_CDNSKEY.to_string()]
    );

    // rndc sign: still there, still signed.
    for (zone, owner, kind) in cases {
        let log = || bind.log_tail();
        let before = bind.serial(zone);
        let t = Instant::now();
        bind.rndc_ok(&["sign", zone.trim_end_matches('.')]);
        let after = wait_until(Duration::from_secs(5), || {
            let s = bind.serial(zone);
            (s > before).then_some(s)
        })
        .unwrap_or_else(|| panic!("{kind}: rndc sign did not bump the serial\n{}", log()));
        let (a, b) = (lookup(addr, owner, "CDS"), lookup(addr, owner, "CDNSKEY"));
        assert_signed_cds(&a, &b, &format!("BIND {kind}, after rndc sign"), &log);
        // notify-delay (5 s by default) spaces a zone's NOTIFYs.
        let n = listener
            .wait_for(zone, t, Some(after), Duration::from_secs(8))
            .unwrap_or_else(|| {
                panic!(
                    "{bind_version}: no NOTIFY after rndc sign ({kind}, serial {after}): {:?}\n{}",
                    listener.seen(),
                    log()
                )
            });
        eprintln!(
            "bind {kind}: rndc sign -> serial {before} -> {after}, NOTIFY {}",
            secs(n.at - t)
        );
    }

    // A KSK rollover to the end: the old KSK's DS "published", rollover,
    // the new KSK's CDS appear (the old one's go: one NOTIFY), DS swapped,
    // the old KSK removed. The non-apex records stay and end up signed by
    // the new KSK.
    for (zone, owner, kind) in cases {
        let log = || bind.log_tail();
        let old = bind.ksks(zone);
        assert_eq!(old.len(), 1, "{kind}");
        wait_until(Duration::from_secs(20), || {
            (query(addr, zone, "CDS").len() == 1).then_some(())
        })
        .unwrap_or_else(|| panic!("{kind}: no apex CDS\n{}", log()));
        bind.checkds(zone, old[0], true);
        let t = Instant::now();
        bind.rollover(zone, old[0]);
        let new = wait_until(Duration::from_secs(5), || {
            bind.ksks(zone).into_iter().find(|k| !old.contains(k))
        })
        .unwrap_or_else(|| panic!("{kind}: no successor KSK\n{}", log()));
        let swapped = wait_until(Duration::from_secs(20), || {
            let c = query(addr, zone, "CDS");
            (c.len() == 1 && c[0].starts_with(&format!("{new} "))).then(Instant::now)
        })
        .unwrap_or_else(|| panic!("{kind}: CDS never switched to {new}\n{}", log()));
        let serial = bind.serial(zone);
        let n = listener
            .wait_for(
                zone,
                swapped - Duration::from_millis(200),
                Some(serial),
                Duration::from_secs(10),
            )
            .unwrap_or_else(|| {
                panic!(
                    "{bind_version}: no NOTIFY for the CDS switch ({kind}, serial {serial}): {:?}",
                    listener.seen()
                )
            });
        eprintln!(
            "bind {kind}: rollover -> CDS {} switched after {}, NOTIFY {} later",
            new,
            secs(swapped - t),
            secs(n.at.saturating_duration_since(swapped))
        );
        let (a, b) = (lookup(addr, owner, "CDS"), lookup(addr, owner, "CDNSKEY"));
        assert_signed_cds(&a, &b, &format!("BIND {kind}, during a KSK rollover"), &log);

        bind.checkds(zone, new, true);
        bind.checkds(zone, old[0], false);
        wait_until(Duration::from_secs(20), || {
            let keys = query(addr, zone, "DNSKEY");
            (keys.iter().filter(|k| k.starts_with("257 ")).count() == 1).then_some(())
        })
        .unwrap_or_else(|| panic!("{kind}: old KSK {} never removed\n{}", old[0], log()));
        let resigned = wait_until(Duration::from_secs(10), || {
            let a = lookup(addr, owner, "CDS");
            (a.rrsig_tags("CDS") == vec![new]).then_some(a)
        });
        let a = resigned.unwrap_or_else(|| {
            panic!(
                "{bind_version}: {kind} non-apex CDS not re-signed with the new KSK {new}: {}\n{}",
                lookup(addr, owner, "CDS").output,
                log()
            )
        });
        assert_eq!(a.rdata("CDS"), vec![FOREIGN_CDS.to_string()]);
    }

    // SIGKILL and restart: still there.
    bind.restart();
    for (_, owner, kind) in cases {
        let log = || bind.log_tail();
        let (a, b) = (lookup(addr, owner, "CDS"), lookup(addr, owner, "CDNSKEY"));
        assert_signed_cds(
            &a,
            &b,
            &format!("BIND {kind}, after SIGKILL and restart"),
            &log,
        );
    }

    // Apex: the dynamic zone keeps a foreign CDS next to its own (signed);
    // the inline zone refuses it ("bad CDS RRset": its raw zone has no
    // DNSKEY). CSYNC: kept and signed in both.
    let r = nsupdate(
        addr,
        Some(&key),
        &format!("zone {SIGNAL}\nupdate add {SIGNAL} 300 CDS {FOREIGN_CDS}\n"),
    );
    assert!(r.ok(), "{bind_version} dynamic: apex CDS accepted: {r:?}");
    let c = lookup(addr, SIGNAL, "CDS");
    assert!(
        c.rdata("CDS").contains(&FOREIGN_CDS.to_string()) && c.rdata("CDS").len() == 2,
        "{bind_version} dynamic keeps a foreign apex CDS next to its own: {}",
        c.output
    );
    assert!(!c.rrsig_tags("CDS").is_empty());
    let r = nsupdate(
        addr,
        Some(&key),
        &format!("zone {SIGNAL2}\nupdate add {SIGNAL2} 300 CDS {FOREIGN_CDS}\n"),
    );
    assert!(
        !r.ok() && r.rcode == "REFUSED",
        "{bind_version} inline: apex CDS refused: {r:?}"
    );
    assert!(bind.log().contains("update rejected: bad CDS RRset"));
    assert!(!query(addr, SIGNAL2, "CDS").contains(&FOREIGN_CDS.to_string()));
    for zone in [SIGNAL, SIGNAL2] {
        let serial = bind.serial(zone);
        let r = nsupdate(
            addr,
            Some(&key),
            &format!("zone {zone}\nupdate add {zone} 300 CSYNC {serial} 3 A NS AAAA\n"),
        );
        assert!(r.ok(), "{zone} CSYNC: {r:?}");
        let c = wait_until(Duration::from_secs(5), || {
            let c = lookup(addr, zone, "CSYNC");
            (!c.rdata("CSYNC").is_empty()).then_some(c)
        })
        .unwrap_or_else(|| panic!("{zone}: CSYNC not served\n{}", bind.log_tail()));
        assert_eq!(c.rdata("CSYNC"), vec![format!("{serial} 3 A NS AAAA")]);
        assert!(
            !c.rrsig_tags("CSYNC").is_empty(),
            "CSYNC signed: {}",
            c.output
        );
    }
}
