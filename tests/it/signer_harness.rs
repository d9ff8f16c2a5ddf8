//! Self-tests of the real-signer harness (`common::signer`) and the
//! interop investigation for sidecar mode, as executable assertions.
//!
//! What Knot 3.2.6 and BIND 9.18.49 (Debian 12) do, as asserted below:
//!
//! | UPDATE (TSIG) | Knot auto-signing | BIND dynamic | BIND inline |
//! |---|---|---|---|
//! | CDS+CDNSKEY at a non-apex name | NOERROR, served, signed (ZSK), TTL as sent | NOERROR, served, signed (KSK), TTL capped at max-zone-ttl | same as dynamic |
//! | ... after re-sign / KSK rollover / SIGKILL restart | kept (*) | kept; re-signed by the new KSK | kept; re-signed by the new KSK |
//! | CDS at the apex | NOERROR, dropped ("no changes to the zone were made") | kept next to its own, signed | REFUSED ("bad CDS RRset") |
//! | CSYNC at the apex | kept, signed | kept, signed | kept, signed |
//! | no key / wrong key | NOTAUTH / BADSIG | REFUSED / NOTAUTH(BADSIG) | |
//!
//! (*) Knot loses UPDATEs on restart when its zone file is never flushed
//! (`zonefile-sync: -1`) and `zonefile-load: difference-no-serial`
//! re-applies the unchanged file as a difference; the harness default
//! (`zonefile-sync: 0`) keeps them.
//!
//! NOTIFY to the also-notify target: Knot (over TCP) on every serial
//! change, at once: `zone-sign`, `zone-ksk-submitted` (CDS gone), the new
//! KSK becoming ready (CDS appear, 2 s after `zone-key-rollover` with
//! dnskey-ttl 2). BIND (over UDP) on every serial change, `rndc sign` and
//! key-manager events included, spaced by notify-delay (5 s): 0-5 s after
//! the change.

use std::{
    fs,
    time::{Duration, Instant},
};

use crate::common::signer::{
    Answer, BIND_TOOLS, BindPolicy, BindSigner, BindZone, CdsPublish, KNOT_TOOLS, KnotSigner,
    KnotZone, NotifyListener, TsigKey, axfr, knsupdate, lookup, nsupdate, query, version,
    wait_until,
};

const CHILD: &str = "example.com.";
const SIGNAL: &str = "_signal.ns1.example.net.";
const DSBOOT: &str = "_dsboot.example.com._signal.ns1.example.net.";
const SIGNAL2: &str = "_signal.ns2.example.net.";
const DSBOOT2: &str = "_dsboot.example.com._signal.ns2.example.net.";

/// A CDS and CDNSKEY of some other zone's key (kept constant: only the
/// signers' handling matters here).
const FOREIGN_CDS: &str =
    "1690 13 2 C0221B938B5F5A3276719A4B0A037B2ABD32685510467B2A65F8CEC10D09908B";
const FOREIGN_CDNSKEY: &str = "257 3 13 6i6AlyxncrN8wXZCowRzo8O/WxFZnvpyAM8V31krvQhN7NW93CjQpaEvDHGxMvJQ+jkqiPdeTMCO67RBg2H+LA==";

fn body() -> String {
    "$TTL 2\n\
     @ SOA ns1.example.net. hostmaster.example.net. 1 3600 600 86400 2\n\
     @ NS ns1.example.net.\n"
        .to_string()
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temporary directory")
}

/// `update add` lines for CDS + CDNSKEY at `owner` with `ttl`.
fn add_cds(zone: &str, owner: &str, ttl: u32, cds: &str, cdnskey: &str) -> String {
    format!(
        "zone {zone}\nupdate add {owner} {ttl} CDS {cds}\nupdate add {owner} {ttl} CDNSKEY {cdnskey}\n"
    )
}

/// Asserts `name` serves exactly our CDS/CDNSKEY, each with an RRSIG.
#[track_caller]
fn assert_signed_cds(a: &Answer, b: &Answer, what: &str, log: &dyn Fn() -> String) {
    assert_eq!(
        a.rdata("CDS"),
        vec![FOREIGN_CDS.to_string()],
        "{what}: CDS not served\n{}\n{}",
        a.output,
        log()
    );
    assert_eq!(
        b.rdata("CDNSKEY"),
        vec![FOREIGN_CDNSKEY.to_string()],
        "{what}: CDNSKEY not served\n{}\n{}",
        b.output,
        log()
    );
    assert!(
        !a.rrsig_tags("CDS").is_empty() && !b.rrsig_tags("CDNSKEY").is_empty(),
        "{what}: served unsigned\n{}\n{}\n{}",
        a.output,
        b.output,
        log()
    );
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------
// TSIG keys (no daemons)
// ---------------------------------------------------------------------------

#[test]
fn tsig_keys_are_random_and_in_tsig_keygen_format() {
    let a = TsigKey::generate("sidecar.");
    let b = TsigKey::generate("sidecar");
    assert_eq!(a.name, "sidecar", "the final dot is dropped");
    assert_ne!(a.secret, b.secret, "fresh random secrets");
    let raw = data_encoding::BASE64
        .decode(a.secret.as_bytes())
        .expect("base64 secret");
    assert_eq!(raw.len(), 32, "32-byte secret");
    assert_eq!(
        a.keyfile_text(),
        format!(
            "key \"sidecar\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
            a.secret
        )
    );
    assert_eq!(a.spec(), format!("hmac-sha256:sidecar:{}", a.secret));
    if crate::common::have("named-checkconf") {
        let dir = tempdir("signalbox-tsig-");
        let key = dir.path().join("sidecar.key");
        a.write_keyfile(&key);
        let conf = dir.path().join("named.conf");
        fs::write(&conf, format!("include \"{}\";\n", key.display())).expect("write");
        let (code, out, err) =
            crate::common::output(std::process::Command::new("named-checkconf").arg(&conf));
        assert_eq!(code, 0, "named-checkconf rejects the key file: {out}{err}");
    }
}

// ---------------------------------------------------------------------------
// Knot
// ---------------------------------------------------------------------------

/// The harness's Knot: CDS/CDNSKEY follow `cds-cdnskey-publish`, the KSK
/// lifecycle is driven by `zone-ksk-submitted` and `zone-key-rollover`, and
/// every serial change (key event or re-sign) is NOTIFYed to the target.
#[test]
fn knot_cds_lifecycle_and_notify() {
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

// ---------------------------------------------------------------------------
// BIND
// ---------------------------------------------------------------------------

/// The harness's BIND: with the fast policy the KSK's CDS/CDNSKEY appear a
/// few seconds after start and are NOTIFYed; `rndc dnssec -checkds ...
/// published` before SyncPublish publishes them at once.
#[test]
fn bind_cds_appear_and_are_notified() {
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
