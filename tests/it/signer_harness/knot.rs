//! The harness's Knot 3.2 as a live signer: CDS/CDNSKEY lifecycle, NOTIFY
//! (RFC 1996) and what it keeps of UPDATEs (RFC 2136) carrying CDS, CDNSKEY
//! (RFC 7344) and CSYNC (RFC 7477).

use std::{
    fs,
    time::{Duration, Instant},
};

use super::*;
use crate::common::process;
use crate::common::signer::{
    CdsPublish, KNOT_TOOLS, KnotSigner, KnotZone, NotifyListener, TsigKey, axfr, knsupdate, lookup,
    query, version, wait_until,
};

/// The harness's Knot: CDS/CDNSKEY follow `cds-cdnskey-publish`, the KSK
/// lifecycle is driven by `zone-ksk-submitted` and `zone-key-rollover`, and
/// every serial change (key event or re-sign) is NOTIFYed to the target.
#[test]
fn knot_cds_lifecycle_and_notify() {
    let _cpu = process::cpu_heavy();
    if !crate::common::tools(KNOT_TOOLS) {
        return;
    }
    let knot_version = version("knotd", "-V");
    let dir = tempdir("signalbox-knot-signer-");
    let listener = NotifyListener::start();
    let knot = KnotSigner::start(
        dir.path(),
        &[
            KnotZone::new(CHILD, &body()).notify(listener.addr()),
            KnotZone::new("always.example.", &body()).cds(CdsPublish::Always),
            KnotZone::new("none.example.", &body()).cds(CdsPublish::None),
        ],
    );
    let log = || knot.log_tail();

    // The first KSK is `ready` (waiting for submission) right away, so with
    // `rollover` its CDS/CDNSKEY are published at the first signing.
    let keys = knot.keys(CHILD);
    let ksk = keys.iter().find(|k| k.ksk).expect("a KSK");
    assert!(
        ksk.timer("ready").is_some() && ksk.timer("active").is_none(),
        "{knot_version}: the initial KSK is ready, not active: {keys:?}"
    );
    let cds = lookup(knot.addr(), CHILD, "CDS");
    assert_eq!(cds.rdata("CDS").len(), 1, "{}\n{}", cds.output, log());
    assert!(
        cds.rdata("CDS")[0].starts_with(&format!("{} 13 2 ", ksk.tag)),
        "CDS for the KSK {}, SHA-256: {:?}",
        ksk.tag,
        cds.rdata("CDS")
    );
    assert_eq!(
        cds.ttls("CDS"),
        vec![0],
        "{knot_version} publishes its CDS with TTL 0"
    );
    assert_eq!(query(knot.addr(), CHILD, "CDNSKEY").len(), 1);
    assert_eq!(query(knot.addr(), "always.example.", "CDS").len(), 1);
    assert!(
        query(knot.addr(), "none.example.", "CDS").is_empty()
            && query(knot.addr(), "none.example.", "CDNSKEY").is_empty(),
        "cds-cdnskey-publish: none publishes nothing"
    );

    // Submission confirmed: the KSK goes active, the CDS go away, and the
    // new serial is NOTIFYed.
    let serial = knot.serial(CHILD);
    let t = Instant::now();
    let (code, out) = knot.ksk_submitted(CHILD);
    assert_eq!(code, 0, "zone-ksk-submitted: {out}");
    let gone = wait_until(Duration::from_secs(5), || {
        query(knot.addr(), CHILD, "CDS")
            .is_empty()
            .then(Instant::now)
    })
    .unwrap_or_else(|| panic!("CDS stay after zone-ksk-submitted\n{}", log()));
    let new_serial = knot.serial(CHILD);
    assert!(new_serial > serial, "serial {serial} -> {new_serial}");
    assert!(query(knot.addr(), CHILD, "CDNSKEY").is_empty());
    let n = listener
        .wait_for(CHILD, t, Some(new_serial), Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "{knot_version}: no NOTIFY for the CDS removal (serial {new_serial}): {:?}\n{}",
                listener.seen(),
                log()
            )
        });
    eprintln!(
        "knot: zone-ksk-submitted -> CDS gone {} -> NOTIFY serial {:?} {}",
        secs(gone - t),
        n.serial,
        secs(n.at - t)
    );
    let (code, _) = knot.ksk_submitted("always.example.");
    assert_eq!(code, 0);
    thread_sleep(500);
    assert_eq!(
        query(knot.addr(), "always.example.", "CDS").len(),
        1,
        "cds-cdnskey-publish: always keeps the CDS after submission"
    );

    // A KSK rollover: the new KSK is published at once and becomes `ready`
    // after dnskey-ttl + propagation-delay (2 s here); only then its CDS
    // appear (only the new key's: `rollover` mode), and are NOTIFYed.
    let t = Instant::now();
    let new = knot.new_ksk(CHILD);
    assert_ne!(new, ksk.tag);
    let appeared = wait_until(Duration::from_secs(15), || {
        let c = query(knot.addr(), CHILD, "CDS");
        (c.len() == 1 && c[0].starts_with(&format!("{new} 13 2 "))).then(Instant::now)
    })
    .unwrap_or_else(|| panic!("no CDS for the new KSK {new}\n{}", log()));
    let cds_serial = knot.serial(CHILD);
    assert!(
        appeared - t >= Duration::from_millis(900),
        "{knot_version}: the new KSK's CDS wait for `ready` (dnskey-ttl 2 + propagation-delay 0, \
         timers in whole seconds), appeared after {}",
        secs(appeared - t)
    );
    let n = listener
        .wait_for(CHILD, t, Some(cds_serial), Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "{knot_version}: no NOTIFY for the new CDS (serial {cds_serial}): {:?}\n{}",
                listener.seen(),
                log()
            )
        });
    assert!(
        n.at.saturating_duration_since(appeared) < Duration::from_secs(3),
        "NOTIFY {} after the CDS appeared",
        secs(n.at.saturating_duration_since(appeared))
    );
    eprintln!(
        "knot: zone-key-rollover ksk -> CDS of {new} {} (serial {cds_serial}) -> NOTIFY {}",
        secs(appeared - t),
        secs(n.at - t)
    );

    // A plain re-sign bumps the serial and is NOTIFYed too.
    let before = knot.serial(CHILD);
    let t = Instant::now();
    knot.sign(CHILD);
    let resigned = wait_until(Duration::from_secs(5), || {
        let s = knot.serial(CHILD);
        (s > before).then_some(s)
    })
    .unwrap_or_else(|| panic!("zone-sign did not bump the serial\n{}", log()));
    let n = listener
        .wait_for(CHILD, t, Some(resigned), Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{knot_version}: no NOTIFY after zone-sign\n{}", log()));
    eprintln!(
        "knot: zone-sign -> serial {before} -> {resigned}, NOTIFY {}",
        secs(n.at - t)
    );
    let seen = listener.seen();
    assert!(
        seen.iter().all(|n| n.from.ip() == knot.addr().ip()),
        "NOTIFYs come from Knot's address"
    );
    assert!(
        seen.iter().all(|n| n.transport == "tcp"),
        "{knot_version} sends NOTIFY over TCP: {seen:?}"
    );
}

fn thread_sleep(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Knot 3.2 keeps CDS/CDNSKEY added by UPDATE at a non-apex name (signed
/// with the ZSK, TTL as sent) through re-signs, KSK events and restarts, but
/// silently drops them at the apex; CSYNC at the apex is kept and signed.
#[test]
fn knot_update_keeps_non_apex_cds_but_drops_apex_cds() {
    let _cpu = process::cpu_heavy();
    if !crate::common::tools(KNOT_TOOLS) {
        return;
    }
    let knot_version = version("knotd", "-V");
    let dir = tempdir("signalbox-knot-update-");
    let key = TsigKey::generate("sidecar");
    let mut knot = KnotSigner::start(
        dir.path(),
        &[
            KnotZone::new(SIGNAL, &body()).update_key(&key),
            KnotZone::new(CHILD, &body())
                .update_key(&key)
                .transfer_key(&key),
            // The same, but the zone file is never written back: what
            // `zonefile-load: difference*` then does with UPDATEs.
            KnotZone::new(SIGNAL2, &body())
                .update_key(&key)
                .extra("zonefile-sync: -1"),
        ],
    );
    let log = || knot.log_tail();
    let addr = knot.addr();
    let served = |name: &str| (lookup(addr, name, "CDS"), lookup(addr, name, "CDNSKEY"));

    // No key, wrong key: refused (NOTAUTH, not REFUSED).
    let r = knsupdate(
        addr,
        None,
        &add_cds(SIGNAL, DSBOOT, 300, FOREIGN_CDS, FOREIGN_CDNSKEY),
    );
    assert!(
        !r.ok() && r.rcode == "NOTAUTH",
        "{knot_version} answers an UPDATE its ACL denies with NOTAUTH: {r:?}"
    );
    let r = knsupdate(
        addr,
        Some(&TsigKey::generate("sidecar")),
        &add_cds(SIGNAL, DSBOOT, 300, FOREIGN_CDS, FOREIGN_CDNSKEY),
    );
    assert!(
        !r.ok() && r.rcode == "BADSIG",
        "{knot_version}: UPDATE with a wrong secret gets NOTAUTH + TSIG error BADSIG \
         (kdig/knsupdate print `status: BADSIG`): {r:?}"
    );
    assert!(query(addr, DSBOOT, "CDS").is_empty());

    // Non-apex CDS + CDNSKEY: accepted, served, signed by the ZSK, TTL kept.
    let r = knsupdate(
        addr,
        Some(&key),
        &add_cds(SIGNAL, DSBOOT, 300, FOREIGN_CDS, FOREIGN_CDNSKEY),
    );
    assert!(r.ok(), "{r:?}\n{}", log());
    let (a, b) = served(DSBOOT);
    assert_signed_cds(&a, &b, "Knot, after UPDATE", &log);
    assert_eq!(
        a.ttls("CDS"),
        vec![300],
        "{knot_version} keeps the sent TTL"
    );
    let zsk = knot
        .keys(SIGNAL)
        .into_iter()
        .find(|k| !k.ksk)
        .expect("a ZSK");
    assert_eq!(
        a.rrsig_tags("CDS"),
        vec![zsk.tag],
        "{knot_version} signs non-apex CDS with the ZSK"
    );
    let r = knsupdate(
        addr,
        Some(&key),
        &add_cds(SIGNAL2, DSBOOT2, 300, FOREIGN_CDS, FOREIGN_CDNSKEY),
    );
    assert!(r.ok(), "{r:?}");
    assert_eq!(query(addr, DSBOOT2, "CDS"), vec![FOREIGN_CDS.to_string()]);

    // Transfers: open to loopback without TSIG, or only with the key.
    let t = axfr(addr, SIGNAL, None);
    assert!(t.ok(), "unsigned AXFR: {}", t.output);
    assert_eq!(t.rdata(DSBOOT, "CDS"), vec![FOREIGN_CDS.to_string()]);
    assert!(
        !axfr(addr, SIGNAL, Some(&key)).ok(),
        "{knot_version}: an ACL rule without `key` does not match a TSIG-signed AXFR"
    );
    assert!(
        !axfr(addr, CHILD, None).ok(),
        "transfer_key: unsigned AXFR refused"
    );
    let t = axfr(addr, CHILD, Some(&key));
    assert!(t.ok(), "AXFR with the transfer key: {}", t.output);
    assert_eq!(t.rdata(CHILD, "CDS").len(), 1, "{}", t.output);

    // Survives a full re-sign.
    let before = knot.serial(SIGNAL);
    knot.sign(SIGNAL);
    wait_until(Duration::from_secs(5), || {
        (knot.serial(SIGNAL) > before).then_some(())
    })
    .unwrap_or_else(|| panic!("zone-sign did not bump the serial\n{}", log()));
    let (a, b) = served(DSBOOT);
    assert_signed_cds(&a, &b, "Knot, after zone-sign", &log);

    // Survives KSK events: submission, rollover, the new KSK ready.
    assert_eq!(knot.ksk_submitted(SIGNAL).0, 0);
    let new = knot.new_ksk(SIGNAL);
    wait_until(Duration::from_secs(15), || {
        let c = query(addr, SIGNAL, "CDS");
        (c.len() == 1 && c[0].starts_with(&format!("{new} "))).then_some(())
    })
    .unwrap_or_else(|| panic!("no CDS for the new KSK\n{}", log()));
    let (a, b) = served(DSBOOT);
    assert_signed_cds(&a, &b, "Knot, after a KSK rollover", &log);

    // Written to the zone file (zonefile-sync: 0) and kept over a hard
    // restart; lost over a restart when the zone file is never flushed and
    // Knot re-applies it as a difference.
    let zone_file = fs::read_to_string(knot.zone_file(SIGNAL)).expect("zone file");
    assert!(
        zone_file.contains("_dsboot.example.com._signal.ns1.example.net."),
        "zonefile-sync 0 writes the UPDATE to the zone file:\n{zone_file}"
    );
    knot.restart();
    let log = || knot.log_tail();
    let (a, b) = served(DSBOOT);
    assert_signed_cds(&a, &b, "Knot, after SIGKILL and restart", &log);
    assert!(
        query(addr, DSBOOT2, "CDS").is_empty(),
        "{knot_version}: with zonefile-sync -1 + zonefile-load difference-no-serial + \
         journal-content all, a restart re-applies the unchanged zone file as a difference \
         and drops records added by UPDATE: {:?}",
        query(addr, DSBOOT2, "CDS")
    );

    // Withdrawing by UPDATE works.
    let r = knsupdate(
        addr,
        Some(&key),
        &format!("zone {SIGNAL}\nupdate delete {DSBOOT} CDS\nupdate delete {DSBOOT} CDNSKEY\n"),
    );
    assert!(r.ok(), "{r:?}");
    let a = lookup(addr, DSBOOT, "CDS");
    assert!(
        a.rdata("CDS").is_empty() && a.rcode == "NXDOMAIN",
        "deleted by UPDATE: {}",
        a.output
    );

    // Apex: Knot owns CDS/CDNSKEY. After submission there are none; a
    // foreign CDS sent by UPDATE is answered NOERROR but never served.
    assert_eq!(knot.ksk_submitted(CHILD).0, 0);
    wait_until(Duration::from_secs(5), || {
        query(addr, CHILD, "CDS").is_empty().then_some(())
    })
    .expect("no apex CDS after submission");
    let serial = knot.serial(CHILD);
    let r = knsupdate(
        addr,
        Some(&key),
        &add_cds(CHILD, CHILD, 300, FOREIGN_CDS, FOREIGN_CDNSKEY),
    );
    assert!(
        r.ok(),
        "{knot_version} answers NOERROR to an apex CDS UPDATE: {r:?}"
    );
    thread_sleep(300);
    assert!(
        query(addr, CHILD, "CDS").is_empty() && query(addr, CHILD, "CDNSKEY").is_empty(),
        "{knot_version} silently drops apex CDS/CDNSKEY sent by UPDATE"
    );
    assert_eq!(knot.serial(CHILD), serial, "nothing changed, no new serial");
    assert!(
        knot.log().contains("no changes to the zone were made"),
        "{knot_version} logs the no-op UPDATE\n{}",
        log()
    );

    // CSYNC at the apex: kept and signed.
    let r = knsupdate(
        addr,
        Some(&key),
        &format!("zone {CHILD}\nupdate add {CHILD} 300 CSYNC {serial} 3 A NS AAAA\n"),
    );
    assert!(r.ok(), "{r:?}");
    let c = lookup(addr, CHILD, "CSYNC");
    assert_eq!(
        c.rdata("CSYNC"),
        vec![format!("{serial} 3 A NS AAAA")],
        "{}",
        c.output
    );
    assert!(
        !c.rrsig_tags("CSYNC").is_empty(),
        "CSYNC signed: {}",
        c.output
    );
}
