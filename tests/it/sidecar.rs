//! Beside real signers (issue 7): signalbox follows Knot 3.2 and BIND 9.18,
//! mirrors their apex CDS/CDNSKEY into RFC 9615 signals, pushes CSYNC (and
//! `_dsboot` RRsets into a signalling zone BIND hosts) by TSIG UPDATE, and
//! proves every write by reading it back. Everything on loopback.

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::common::{
    chain::{self, Chain, ChainSpec},
    process::{self, free_port},
    serve::Serve,
    signer::{
        BIND_TOOLS, BindSigner, BindZone, CdsPublish, KNOT_TOOLS, KnotSigner, KnotZone, TsigKey,
        lookup, nsupdate, query, wait_until,
    },
    signzone, *,
};

const CHILD: &str = "child.test.";
const SIGNAL: &str = "_signal.ns1.operator.test.";

fn dsboot(child: &str) -> String {
    format!("_dsboot.{child}{SIGNAL}")
}

fn zone_body(ns: &[&str]) -> String {
    let mut body = String::from(
        "$TTL 2\n@ SOA ns1.operator.test. hostmaster.operator.test. 1 3600 600 86400 2\n",
    );
    for n in ns {
        body.push_str(&format!("@ NS {n}\n"));
    }
    body
}

fn ready(extra: &[&str]) -> bool {
    let mut needed: Vec<&str> = chain::TOOLS.to_vec();
    needed.extend(KNOT_TOOLS);
    needed.extend(BIND_TOOLS);
    needed.extend(extra);
    tools(&needed)
}

fn write(path: &Path, text: &str) -> PathBuf {
    fs::write(path, text).expect("write");
    path.to_path_buf()
}

/// The signalling zone's key; returns its DS for the chain.
fn signal_key(root: &Path) -> String {
    let dir = root.join("signal");
    fs::create_dir_all(&dir).expect("mkdir");
    let stem = signzone::keygen(&dir, &["-f", "KSK", SIGNAL.trim_end_matches('.')]);
    signzone::dsfromkey(&dir.join(format!("{stem}.key")))
}

/// Test 1: Knot signs the child (cds-cdnskey-publish: rollover); signalbox
/// follows it and serves identical, validating `_dsboot` RRsets within 2 s
/// of Knot's NOTIFY; a new KSK's CDS follow; `zone-ksk-submitted` removes
/// Knot's CDS and the signals go too.
#[test]
fn following_knot_mirrors_its_cds_into_validated_signals() {
    let _cpu = process::cpu_heavy();
    if !ready(&[]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let ds = signal_key(root);
    let port = free_port();
    let metrics_port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let chain = Chain::start(&ChainSpec {
        signaling_apex: SIGNAL.into(),
        signaling_ds: vec![ds],
        signaling_server: addr,
    });
    let knot = KnotSigner::start(
        &root.join("knot"),
        &[KnotZone::new(CHILD, &zone_body(&["ns1.operator.test."]))
            .cds(CdsPublish::Rollover)
            .notify(addr)],
    );
    let config = write(
        &root.join("signalbox.toml"),
        &format!(
            r#"version = 1
[[zone]]
name = "{CHILD}"
follow = {{ primary = "{primary}", refresh = "1h" }}

[[signaling_zone]]
apex = "{SIGNAL}"
keys = "signal"
nameservers = ["ns1.operator.test."]
soa_minimum = "1s"

[server]
listen = ["{addr}"]

[metrics]
listen = "127.0.0.1:{metrics_port}"
"#,
            primary = knot.addr(),
        ),
    );
    let daemon = Serve::start(&config, addr, SIGNAL);
    let name = dsboot(CHILD);

    // Knot's first KSK is ready at once: its CDS are the signals. The
    // refresh is an hour, so only the first read or a NOTIFY moves them.
    let knot_cds = || query(knot.addr(), CHILD, "CDS");
    let knot_cdnskey = || query(knot.addr(), CHILD, "CDNSKEY");
    let ours = |rtype: &str| query(addr, &name, rtype);
    assert_eq!(knot_cds().len(), 1, "{}", knot.log_tail());
    let mirrored = wait_until(Duration::from_secs(10), || {
        (ours("CDS") == knot_cds() && ours("CDNSKEY") == knot_cdnskey()).then_some(())
    });
    assert!(
        mirrored.is_some(),
        "{:?} vs {:?}\n{}",
        ours("CDS"),
        knot_cds(),
        daemon.log_text()
    );
    // The follower confirmed Knot's serial just now: the lag is small.
    let (_, body) = crate::metrics::scrape(SocketAddr::from(([127, 0, 0, 1], metrics_port)));
    let lag = crate::metrics::sample(
        &body,
        &format!("signalbox_follow_lag_seconds{{zone=\"{CHILD}\"}}"),
    );
    assert!(lag.is_some_and(|l| l < 30.0), "follow lag {lag:?}:\n{body}");
    let validated = chain.assert_validated(&name, "CDS");
    assert_eq!(validated.len(), 1, "{validated:?}");

    // A KSK rollover: Knot publishes the new key's CDS ~2 s later and
    // NOTIFYs signalbox; the signals follow within 2 s of Knot's change.
    let before = knot_cds();
    knot.knotc_ok(&["zone-key-rollover", CHILD, "ksk"]);
    let changed = wait_until(Duration::from_secs(20), || {
        let now = knot_cds();
        (!now.is_empty() && now != before).then(|| (Instant::now(), now))
    });
    let (at, new_cds) =
        changed.unwrap_or_else(|| panic!("no new CDS at Knot\n{}", knot.log_tail()));
    let followed = wait_until(Duration::from_secs(10), || {
        (ours("CDS") == new_cds).then(Instant::now)
    })
    .unwrap_or_else(|| {
        panic!(
            "signals did not follow\n{}\n{}",
            daemon.log_text(),
            knot.log_tail()
        )
    });
    let latency = followed.saturating_duration_since(at);
    eprintln!("knot CDS change -> served _dsboot: {latency:?}");
    assert!(
        latency < Duration::from_secs(2),
        "{latency:?}\n{}",
        daemon.log_text()
    );
    assert!(
        daemon.log_text().contains("NOTIFY from the primary"),
        "{}",
        daemon.log_text()
    );
    assert_eq!(ours("CDNSKEY"), knot_cdnskey());
    chain.assert_validated(&name, "CDS");

    // Submission confirmed: Knot removes its CDS (rollover mode), and the
    // signals go (a validated negative answer).
    let (code, out) = knot.ksk_submitted(CHILD);
    assert_eq!(code, 0, "{out}");
    let gone = wait_until(Duration::from_secs(10), || {
        (knot_cds().is_empty() && ours("CDS").is_empty() && ours("CDNSKEY").is_empty())
            .then_some(())
    });
    assert!(gone.is_some(), "{}", daemon.log_text());
    chain.assert_negative(&name, "CDS");
}

/// The daemon's config for a followed zone that pushes CSYNC.
fn csync_config(
    root: &Path,
    addr: SocketAddr,
    primary: SocketAddr,
    key: &TsigKey,
    extra: &str,
) -> PathBuf {
    key.write_keyfile(&root.join("update.key"));
    write(
        &root.join("signalbox.toml"),
        &format!(
            r#"version = 1
tsig_keys = ["update.key"]

[[zone]]
name = "{CHILD}"
csync = true
follow = {{ primary = "{primary}", tsig = "{key}", refresh = "1h" }}
publish = {{ update = "{primary}", tsig = "{key}", types = ["CSYNC"] }}
{extra}

[server]
listen = ["{addr}"]
"#,
            key = key.name,
        ),
    )
}

/// Test 2: BIND 9.18 signs a dynamic zone (dnssec-policy); signalbox
/// follows it and pushes CSYNC by UPDATE; BIND signs it; a new NS set
/// gives a new CSYNC naming the serial that holds it.
#[test]
fn beside_bind_csync_is_pushed_signed_and_follows_the_ns_set() {
    let _cpu = process::cpu_heavy();
    if !ready(&[]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let key = TsigKey::generate("update-key");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let bind = BindSigner::start(
        &root.join("bind"),
        &[BindZone::new(CHILD, &zone_body(&["ns1.operator.test."]))
            .update_key(&key)
            .transfer_key(&key)
            .notify(addr)],
    );
    let config = csync_config(root, addr, bind.addr(), &key, "");
    let daemon = Serve::spawn(&config, addr);

    let csync = || lookup(bind.addr(), CHILD, "CSYNC");
    let first = wait_until(Duration::from_secs(20), || {
        let a = csync();
        (!a.rdata("CSYNC").is_empty()).then_some(a)
    })
    .unwrap_or_else(|| {
        panic!(
            "no CSYNC at BIND\n{}\n{}",
            daemon.log_text(),
            bind.log_tail()
        )
    });
    let rdata = first.rdata("CSYNC")[0].clone();
    let fields: Vec<&str> = rdata.split_whitespace().collect();
    assert_eq!(
        &fields[1..],
        ["3", "NS"],
        "immediate+soaminimum, NS only (no in-bailiwick NS): {rdata}"
    );
    assert!(
        !first.rrsig_tags("CSYNC").is_empty(),
        "BIND signs the CSYNC: {}",
        first.output
    );
    assert!(
        daemon.log_text().contains("UPDATE written and read back"),
        "{}",
        daemon.log_text()
    );
    let old_serial: u32 = fields[0].parse().expect("serial");

    // A new NS set at the signer: BIND NOTIFYs, signalbox reads it and
    // writes a CSYNC naming the serial that has it.
    let update = nsupdate(
        bind.addr(),
        Some(&key),
        &format!("zone {CHILD}\nupdate add {CHILD} 300 NS ns2.elsewhere.test.\n"),
    );
    assert!(update.ok(), "{}", update.output);
    let ns_serial = bind.serial(CHILD);
    let second = wait_until(Duration::from_secs(30), || {
        let a = csync();
        let rdata = a.rdata("CSYNC").first().cloned()?;
        let serial: u32 = rdata.split_whitespace().next()?.parse().ok()?;
        (serial != old_serial).then_some(serial)
    })
    .unwrap_or_else(|| panic!("CSYNC did not follow the NS change\n{}", daemon.log_text()));
    assert!(
        second >= ns_serial,
        "CSYNC serial {second} names a version with the new NS ({ns_serial})"
    );
    // Our own UPDATE bumped the serial, but the CSYNC does not chase it.
    std::thread::sleep(Duration::from_secs(3));
    let settled = csync().rdata("CSYNC");
    assert_eq!(settled.len(), 1);
    assert!(settled[0].starts_with(&second.to_string()), "{settled:?}");
}

/// Test 3: beside Knot, CSYNC is kept but a CDS pushed by UPDATE is
/// dropped (NOERROR): signalbox sees it by reading back, reports it with
/// the likely cause, and backs off instead of retrying in a loop.
#[test]
fn beside_knot_csync_sticks_and_a_dropped_cds_is_detected_not_fought() {
    let _cpu = process::cpu_heavy();
    if !ready(&[]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let key = TsigKey::generate("update-key");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let knot = KnotSigner::start(
        &root.join("knot"),
        &[
            KnotZone::new(CHILD, &zone_body(&["ns1.operator.test."]))
                .update_key(&key)
                .notify(addr),
            KnotZone::new("keyed.test.", &zone_body(&["ns1.operator.test."]))
                .cds(CdsPublish::None)
                .update_key(&key),
        ],
    );
    // keyed.test.: signalbox's own key directory says CDS; it pushes them.
    let keys = root.join("keys");
    fs::create_dir_all(&keys).expect("mkdir");
    signzone::keygen(&keys, &["-f", "KSK", "keyed.test"]);
    let extra = format!(
        r#"
[[zone]]
name = "keyed.test."
keys = "keys"
cds = "always"
publish = {{ update = "{}", tsig = "{}", types = ["CDS"], cds_by_update = true }}
"#,
        knot.addr(),
        key.name
    );
    let config = csync_config(root, addr, knot.addr(), &key, &extra);
    let daemon = Serve::spawn(&config, addr);

    let csync = wait_until(Duration::from_secs(20), || {
        let a = lookup(knot.addr(), CHILD, "CSYNC");
        (!a.rdata("CSYNC").is_empty()).then_some(a)
    })
    .unwrap_or_else(|| panic!("no CSYNC at Knot\n{}", daemon.log_text()));
    assert!(
        !csync.rrsig_tags("CSYNC").is_empty(),
        "Knot signs it: {}",
        csync.output
    );

    let dropped = wait_until(Duration::from_secs(20), || {
        daemon.log_text().contains("keyed.test.").then_some(())?;
        daemon
            .log_text()
            .contains("answered NOERROR but the server serves 0 record(s) instead of 1")
            .then_some(())
    });
    assert!(dropped.is_some(), "{}", daemon.log_text());
    assert!(
        daemon
            .log_text()
            .contains("Knot 3.2 drops CDS/CDNSKEY sent by UPDATE")
    );
    assert!(query(knot.addr(), "keyed.test.", "CDS").is_empty());
    // No tight loop: over the next 6 s at most two more tries.
    let count = |log: String| log.matches("the write was dropped or reverted").count();
    let before = count(daemon.log_text());
    std::thread::sleep(Duration::from_secs(6));
    let after = count(daemon.log_text());
    assert!(
        after - before <= 2,
        "{before} -> {after} tries in 6 s\n{}",
        daemon.log_text()
    );
    assert!(daemon.log_text().contains("retry_in_s"));
    // The counter shows in `status`.
    let (code, status, _) = output(signalbox().args(["status", "-c"]).arg(&config));
    assert_eq!(code, 0, "{status}");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("UPDATE:") && !l.contains(" 0 dropped")),
        "{status}"
    );
}

/// Test 4: the signalling zone lives on BIND (dynamic, signed by BIND);
/// signalbox writes the `_dsboot` RRsets there by UPDATE; `delv` validates
/// them through the local chain of trust.
#[test]
fn a_signalling_zone_hosted_by_bind_is_fed_by_update_and_validates() {
    let _cpu = process::cpu_heavy();
    if !ready(&[]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let key = TsigKey::generate("update-key");
    let bind = BindSigner::start(
        &root.join("bind"),
        &[BindZone::new(SIGNAL, &zone_body(&["ns1.operator.test."])).update_key(&key)],
    );
    // The DS of BIND's KSK for the signalling zone.
    let ksk = bind.ksks(SIGNAL);
    assert_eq!(ksk.len(), 1, "{:?}", bind.keys(SIGNAL));
    let key_file = fs::read_dir(bind.keys_dir(SIGNAL))
        .expect("keys dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "key")
                && p.to_string_lossy().contains(&format!("+{:05}", ksk[0]))
        })
        .expect("the KSK's .key file");
    let chain = Chain::start(&ChainSpec {
        signaling_apex: SIGNAL.into(),
        signaling_ds: vec![signzone::dsfromkey(&key_file)],
        signaling_server: bind.addr(),
    });
    chain.assert_validated(SIGNAL, "SOA");

    let children = root.join("children");
    fs::create_dir_all(&children).expect("mkdir");
    signzone::keygen(&children, &["-f", "KSK", "a.example"]);
    signzone::keygen(&children, &["-f", "KSK", "b.example"]);
    key.write_keyfile(&root.join("update.key"));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let config = write(
        &root.join("signalbox.toml"),
        &format!(
            r#"version = 1
tsig_keys = ["update.key"]

[[zones]]
keys = "children"
nameservers = ["ns1.operator.test."]
cds = "always"

[[signaling_zone]]
apex = "{SIGNAL}"
nameservers = ["ns1.operator.test."]
publish = {{ update = "{}", tsig = "{}" }}

[server]
listen = ["{addr}"]
"#,
            bind.addr(),
            key.name
        ),
    );
    let daemon = Serve::spawn(&config, addr);
    let (_, signals, _) = output(signalbox().args(["signals", "-c"]).arg(&config));
    for child in ["a.example.", "b.example."] {
        let name = dsboot(child);
        let written = wait_until(Duration::from_secs(20), || {
            (query(bind.addr(), &name, "CDS").len() == 1
                && query(bind.addr(), &name, "CDNSKEY").len() == 1)
                .then_some(())
        });
        assert!(
            written.is_some(),
            "{name}\n{}\n{}",
            daemon.log_text(),
            bind.log_tail()
        );
        let records = chain.assert_validated(&name, "CDS");
        // Compare RDATA without whitespace (tools split long digests).
        let squash = |l: &str| {
            l.split_whitespace()
                .skip(4)
                .collect::<String>()
                .to_uppercase()
        };
        let rdata = squash(&records[0]);
        assert!(
            signals
                .lines()
                .any(|l| l.starts_with(&name) && l.contains(" CDS ") && squash(l) == rdata),
            "BIND serves what signals prints: {rdata}\n{signals}"
        );
        chain.assert_validated(&name, "CDNSKEY");
    }
}

/// Test 5: a wrong TSIG secret, an unknown key, a server that is down and
/// a REFUSED UPDATE give clear errors naming zone and server, retries back
/// off, and nothing else is disturbed.
#[test]
fn update_errors_are_clear_and_backed_off() {
    let _cpu = process::cpu_heavy();
    if !ready(&[]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let good = TsigKey::generate("good-key");
    let known = TsigKey::generate("known-key");
    let bind = BindSigner::start(
        &root.join("bind"),
        &[
            BindZone::new("wrong.test.", &zone_body(&["ns1.operator.test."])).update_key(&good),
            BindZone::new("unknown.test.", &zone_body(&["ns1.operator.test."])).update_key(&good),
            // BIND knows known-key (for this zone) but refused.test. grants it nothing.
            BindZone::new("spare.test.", &zone_body(&["ns1.operator.test."])).update_key(&known),
            BindZone::new("refused.test.", &zone_body(&["ns1.operator.test."])).update_key(&good),
        ],
    );
    // good-key with a wrong secret; a key BIND does not know; a known key
    // without the right to update refused.test.
    let wrong = TsigKey::generate("good-key");
    let stranger = TsigKey::generate("stranger-key");
    wrong.write_keyfile(&root.join("wrong.key"));
    stranger.write_keyfile(&root.join("stranger.key"));
    known.write_keyfile(&root.join("known.key"));
    let children = root.join("keys");
    fs::create_dir_all(&children).expect("mkdir");
    let dead = free_port();
    let mut zones = String::new();
    for (zone, server, tsig) in [
        ("wrong.test.", bind.addr().to_string(), "good-key"),
        ("unknown.test.", bind.addr().to_string(), "stranger-key"),
        ("refused.test.", bind.addr().to_string(), "known-key"),
        ("down.test.", format!("127.0.0.1:{dead}"), "good-key"),
    ] {
        signzone::keygen(&children, &["-f", "KSK", zone.trim_end_matches('.')]);
        zones.push_str(&format!(
            "[[zone]]\nname = \"{zone}\"\nkeys = \"keys\"\ncds = \"always\"\n\
             publish = {{ update = \"{server}\", tsig = \"{tsig}\", types = [\"CDS\"], cds_by_update = true }}\n\n"
        ));
    }
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let config = write(
        &root.join("signalbox.toml"),
        &format!(
            "version = 1\ntsig_keys = [\"wrong.key\", \"stranger.key\", \"known.key\"]\n\n{zones}[server]\nlisten = [\"{addr}\"]\n"
        ),
    );
    let daemon = Serve::spawn(&config, addr);
    let expect = [
        ("wrong.test.", "TSIG"),
        ("unknown.test.", "TSIG"),
        ("refused.test.", "REFUSED"),
        ("down.test.", "127.0.0.1:"),
    ];
    let all = wait_until(Duration::from_secs(30), || {
        let log = daemon.log_text();
        expect
            .iter()
            .all(|(zone, what)| {
                log.lines()
                    .any(|l| l.contains(zone) && l.contains(what) && l.contains("retry_in_s"))
            })
            .then_some(())
    });
    assert!(all.is_some(), "{}", daemon.log_text());
    let log = daemon.log_text();
    assert!(
        log.contains(&format!("127.0.0.1:{dead}")),
        "the server is named: {log}"
    );
    assert!(
        log.contains("update-policy"),
        "REFUSED names the server setting: {log}"
    );
    // Backed off: each zone tried at most 3 times within 8 s more.
    std::thread::sleep(Duration::from_secs(8));
    let log = daemon.log_text();
    for (zone, _) in expect {
        let tries = log
            .lines()
            .filter(|l| l.contains(zone) && l.contains("retry_in_s"))
            .count();
        assert!(tries <= 4, "{zone}: {tries} tries\n{log}");
    }
    // Nothing was written (BIND's own CDS for its keys are another matter);
    // the daemon still answers.
    assert!(!log.contains("UPDATE written"), "{log}");
    assert!(crate::common::serve::query(addr, ".", 6, false).is_some());
}

/// Issue 13 item 4: the safety brake counts the children published in a
/// signalling zone a signer hosts (it counted served zones only, so a
/// hosted zone always got the fixed floor). Four children on BIND, at most
/// half may change: two leaving at once go through.
#[test]
fn the_brake_counts_children_in_a_signer_hosted_signalling_zone() {
    let _cpu = process::cpu_heavy();
    if !ready(&[]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let key = TsigKey::generate("update-key");
    let bind = BindSigner::start(
        &root.join("bind"),
        &[BindZone::new(SIGNAL, &zone_body(&["ns1.operator.test."])).update_key(&key)],
    );
    let children = root.join("children");
    fs::create_dir_all(&children).expect("mkdir");
    let names = ["a.example.", "b.example.", "c.example.", "d.example."];
    let stems: Vec<String> = names
        .iter()
        .map(|n| signzone::keygen(&children, &["-f", "KSK", n.trim_end_matches('.')]))
        .collect();
    key.write_keyfile(&root.join("update.key"));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let config = write(
        &root.join("signalbox.toml"),
        &format!(
            r#"version = 1
tsig_keys = ["update.key"]

[[zones]]
keys = "children"
nameservers = ["ns1.operator.test."]
cds = "always"

[[signaling_zone]]
apex = "{SIGNAL}"
nameservers = ["ns1.operator.test."]
publish = {{ update = "{}", tsig = "{}" }}

[safety]
max_change_share = 0.5
min_changes = 1

[server]
listen = ["{addr}"]
"#,
            bind.addr(),
            key.name
        ),
    );
    let daemon = Serve::spawn(&config, addr);
    let written = wait_until(Duration::from_secs(30), || {
        names
            .iter()
            .all(|n| query(bind.addr(), &dsboot(n), "CDS").len() == 1)
            .then_some(())
    });
    assert!(
        written.is_some(),
        "{}\n{}",
        daemon.log_text(),
        bind.log_tail()
    );

    // Two of the four leave in one round: 2 <= 50% of 4.
    for stem in &stems[..2] {
        for ext in ["key", "private"] {
            fs::remove_file(children.join(format!("{stem}.{ext}"))).expect("remove");
        }
    }
    let withdrawn = wait_until(Duration::from_secs(20), || {
        names[..2]
            .iter()
            .all(|n| query(bind.addr(), &dsboot(n), "CDS").is_empty())
            .then_some(())
    });
    assert!(
        withdrawn.is_some(),
        "two of four hosted children may go:\n{}",
        daemon.log_text()
    );
    assert!(
        !daemon.log_text().contains("SAFETY BRAKE"),
        "{}",
        daemon.log_text()
    );
    for n in &names[2..] {
        assert_eq!(query(bind.addr(), &dsboot(n), "CDS").len(), 1, "{n}");
    }
}

/// Issue 13 item 4: apex UPDATEs pass the safety brake (they were sent
/// before it decided). Three child zones on BIND get their CDS from
/// signalbox's key directory by UPDATE; every KSK is replaced at once (a bad
/// deploy): the brake holds, BIND keeps the old CDS until `signalbox
/// confirm`, then the new ones are written.
#[test]
fn apex_updates_wait_for_the_safety_brake() {
    let _cpu = process::cpu_heavy();
    if !ready(&[]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let key = TsigKey::generate("update-key");
    let zones = ["a.test.", "b.test.", "c.test."];
    let bind_zones: Vec<BindZone> = zones
        .iter()
        .map(|z| BindZone::new(z, &zone_body(&["ns1.operator.test."])).update_key(&key))
        .collect();
    let bind = BindSigner::start(&root.join("bind"), &bind_zones);
    key.write_keyfile(&root.join("update.key"));
    let keys = root.join("keys");
    fs::create_dir_all(&keys).expect("mkdir");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let mut text = String::from("version = 1\ntsig_keys = [\"update.key\"]\n\n");
    // The key tag of a `K<zone>+<alg>+<tag>` stem: the first field of its CDS.
    let tag = |stem: String| -> u16 {
        stem.rsplit('+')
            .next()
            .and_then(|t| t.parse().ok())
            .expect("tag")
    };
    let mut old_tags = Vec::new();
    for zone in zones {
        old_tags.push(tag(signzone::keygen(
            &keys,
            &["-f", "KSK", zone.trim_end_matches('.')],
        )));
        text.push_str(&format!(
            "[[zone]]\nname = \"{zone}\"\nkeys = \"keys\"\ncds = \"always\"\n\
             publish = {{ update = \"{}\", tsig = \"{}\", types = [\"CDS\"], cds_by_update = true }}\n\n",
            bind.addr(),
            key.name
        ));
    }
    // A limit the old rule enforced too (one child per round): this test
    // is about the UPDATEs, not the limit.
    text.push_str(&format!(
        "[safety]\nmin_changes = 1\n\n[server]\nlisten = [\"{addr}\"]\n"
    ));
    let config = write(&root.join("signalbox.toml"), &text);
    let daemon = Serve::spawn(&config, addr);
    // The key tags of BIND's CDS (BIND adds one of its own KSK's, too).
    let cds_tags = |zone: &str| -> Vec<u16> {
        lookup(bind.addr(), zone, "CDS")
            .rdata("CDS")
            .iter()
            .filter_map(|r| r.split_whitespace().next()?.parse().ok())
            .collect()
    };
    let has = |zone: &str, tag: &u16| cds_tags(zone).contains(tag);
    wait_until(Duration::from_secs(30), || {
        zones
            .iter()
            .zip(&old_tags)
            .all(|(zone, tag)| has(zone, tag))
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "BIND keeps CDS written by UPDATE\n{}\n{}",
            daemon.log_text(),
            bind.log_tail()
        )
    });

    // Every child's KSK replaced at once.
    for entry in fs::read_dir(&keys).expect("keys").flatten() {
        fs::remove_file(entry.path()).expect("remove");
    }
    let new_tags: Vec<u16> = zones
        .iter()
        .map(|zone| {
            tag(signzone::keygen(
                &keys,
                &["-f", "KSK", zone.trim_end_matches('.')],
            ))
        })
        .collect();
    let held = wait_until(Duration::from_secs(10), || {
        daemon.log_text().contains("SAFETY BRAKE").then_some(())
    });
    assert!(held.is_some(), "{}", daemon.log_text());
    std::thread::sleep(Duration::from_secs(3));
    for ((zone, old), new) in zones.iter().zip(&old_tags).zip(&new_tags) {
        assert!(
            has(zone, old) && !has(zone, new),
            "{zone}: no UPDATE while the brake holds: {:?}\n{}",
            cds_tags(zone),
            daemon.log_text()
        );
    }
    let (code, status, _) = output(signalbox().args(["status", "-c"]).arg(&config));
    assert_eq!(code, 0, "{status}");
    assert!(status.contains("HOLDING a change to 3 of 3"), "{status}");

    let (code, out, err) = output(signalbox().args(["confirm", "-c"]).arg(&config));
    assert_eq!(code, 0, "{out}{err}");
    let rolled = wait_until(Duration::from_secs(20), || {
        zones
            .iter()
            .zip(&old_tags)
            .zip(&new_tags)
            .all(|((zone, old), new)| has(zone, new) && !has(zone, old))
            .then_some(())
    });
    assert!(rolled.is_some(), "{}", daemon.log_text());
}
