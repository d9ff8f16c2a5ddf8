//! The live daemon: key changes served within seconds (and validating), the
//! safety brake, reload with a bad and a good config, and kill -9 mid-burst.

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::common::{
    chain,
    process::{self, free_port},
    serve::*,
    signzone, *,
};

const APEX: &str = "_signal.ns1.operator.test.";

/// A config for children in `root/children` (cds "always") and the
/// signalling zone keyed in `root/signal`, short TTLs so a validating
/// resolver sees changes quickly.
fn config(root: &Path, port: u16, extra: &str) -> PathBuf {
    let path = root.join("signalbox.toml");
    fs::write(
        &path,
        format!(
            r#"version = 1
[[zones]]
keys = "children"
nameservers = ["ns1.operator.test.", "ns2.elsewhere.test."]
cds = "always"
signal_ttl = "1s"

[[signaling_zone]]
apex = "{APEX}"
keys = "signal"
nameservers = ["ns1.operator.test."]
soa_minimum = "1s"

[server]
listen = ["127.0.0.1:{port}"]

[state]
dir = "state"

[watch]
rescan_interval = "1h"
{extra}
"#
        ),
    )
    .expect("write config");
    path
}

fn signal_key(root: &Path) -> PathBuf {
    let dir = root.join("signal");
    fs::create_dir_all(&dir).expect("mkdir");
    let stem = signzone::keygen(&dir, &["-f", "KSK", APEX.trim_end_matches('.')]);
    dir.join(format!("{stem}.key"))
}

fn owner(child: &str) -> String {
    format!("_dsboot.{child}.{APEX}")
}

/// Polls `addr` until `check` holds for the CDS at `name`; returns how long it took.
fn wait_for(
    addr: SocketAddr,
    name: &str,
    within: Duration,
    check: impl Fn(usize) -> bool,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some(m) = query(addr, name, 59, false) {
            if check(m.answers.len()) {
                return Some(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn key_changes_are_served_and_validate_within_two_seconds() {
    let _alone = process::timing_sensitive();
    if !tools(chain::TOOLS) || !tools(&["dnssec-settime"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let children = root.join("children");
    fs::create_dir_all(&children).expect("mkdir");
    let ksk = signzone::keygen(&children, &["-f", "KSK", "example.com"]);
    let key = signal_key(root);
    let port = free_port();
    let cfg = config(root, port, "");
    let server = Serve::start(&cfg, SocketAddr::from(([127, 0, 0, 1], port)), APEX);
    let chain = chain::Chain::start(&chain::ChainSpec {
        signaling_apex: APEX.into(),
        signaling_ds: vec![signzone::dsfromkey(&key)],
        signaling_server: server.addr,
    });
    chain.assert_validated(&owner("example.com"), "CDS");

    // 1. dnssec-settime retires the child's KSK: its signal goes.
    let out = Command::new("dnssec-settime")
        .args(["-K", children.to_str().expect("utf-8"), "-I", "now", &ksk])
        .output()
        .expect("dnssec-settime");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = wait_for(
        server.addr,
        &owner("example.com"),
        Duration::from_secs(2),
        |n| n == 0,
    );
    assert!(
        took.is_some(),
        "signal still served 2 s after dnssec-settime:\n{}",
        server.log_text()
    );
    // Through the validating resolver once its 1 s TTL has run out.
    settles(&chain, &owner("example.com"), "CDS", |r| {
        matches!(r, chain::DelvResult::NegativeValidated(_))
    });

    // 2. A new key file for a new child: its signal appears, and validates.
    signzone::keygen(&children, &["-f", "KSK", "new.example"]);
    let took = wait_for(
        server.addr,
        &owner("new.example"),
        Duration::from_secs(2),
        |n| n == 1,
    );
    assert!(
        took.is_some(),
        "new signal not served within 2 s:\n{}",
        server.log_text()
    );
    for rtype in ["CDS", "CDNSKEY"] {
        settles(&chain, &owner("new.example"), rtype, |r| {
            matches!(r, chain::DelvResult::Validated(_))
        });
    }

    // 3. A key timing event in the future: served at that time, no file change.
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3);
    let when = soon.strftime("%Y%m%d%H%M%S").to_string();
    signzone::keygen(
        &children,
        &["-f", "KSK", "-P", &when, "-A", &when, "later.example"],
    );
    assert!(
        wait_for(
            server.addr,
            &owner("later.example"),
            Duration::from_millis(1500),
            |n| n == 1
        )
        .is_none(),
        "published before its Publish time"
    );
    let took = wait_for(
        server.addr,
        &owner("later.example"),
        Duration::from_secs(5),
        |n| n == 1,
    );
    assert!(
        took.is_some(),
        "timing event missed:\n{}",
        server.log_text()
    );
}

/// Asks delv through the chain until `ok` holds (the resolver's cached
/// answer, TTL 1 s, must run out first); at most 5 s.
fn settles(chain: &chain::Chain, name: &str, rtype: &str, ok: impl Fn(&chain::DelvResult) -> bool) {
    let started = Instant::now();
    loop {
        let result = chain.delv(name, rtype);
        if ok(&result) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "delv {name} {rtype}: still {} after 5 s:\n{}",
            result.verdict(),
            result.output()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `count` children with made-up KSKs as `.key` files only.
fn children(dir: &Path, count: usize) -> Vec<PathBuf> {
    fs::create_dir_all(dir).expect("mkdir");
    (0..count)
        .map(|i| {
            let mut key = dnskey(257, 13, (i % 251) as u8);
            key.public_key[..4].copy_from_slice(&(i as u32).to_be_bytes());
            write_key(dir, &format!("c{i}.example."), &key, &[])
        })
        .collect()
}

fn signalbox_cmd(cmd: &str, cfg: &Path) -> (i32, String, String) {
    output(signalbox().arg(cmd).arg("-c").arg(cfg))
}

#[test]
fn the_brake_holds_a_mass_withdrawal_until_confirmed() {
    let _alone = process::timing_sensitive();
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let files = children(&root.join("children"), 300);
    signal_key(root);
    let port = free_port();
    let cfg = config(root, port, "");
    let server = Serve::start(&cfg, SocketAddr::from(([127, 0, 0, 1], port)), APEX);
    assert_eq!(
        query(server.addr, &owner("c0.example"), 59, false).map(|m| m.answers.len()),
        Some(1)
    );
    let serial_before = serial(server.addr, APEX).expect("serial");

    // Half the zone set's key files vanish (a bad deploy).
    for file in files.iter().step_by(2) {
        fs::remove_file(file).expect("remove");
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        query(server.addr, &owner("c0.example"), 59, false).map(|m| m.answers.len()),
        Some(1),
        "the brake must keep the signal:\n{}",
        server.log_text()
    );
    assert!(
        server.log_text().contains("SAFETY BRAKE"),
        "{}",
        server.log_text()
    );
    let (code, status, _) = signalbox_cmd("status", &cfg);
    assert_eq!(code, 0);
    assert!(
        status.contains("HOLDING a change to 150 of 300"),
        "{status}"
    );

    // The operator confirms: the withdrawal goes through.
    let (code, out, err) = signalbox_cmd("confirm", &cfg);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("150"), "{out}");
    assert!(
        wait_for(
            server.addr,
            &owner("c0.example"),
            Duration::from_secs(5),
            |n| n == 0
        )
        .is_some(),
        "{}",
        server.log_text()
    );
    assert_eq!(
        query(server.addr, &owner("c1.example"), 59, false).map(|m| m.answers.len()),
        Some(1)
    );
    assert!(serial(server.addr, APEX).expect("serial") > serial_before);
    let (_, status, _) = signalbox_cmd("status", &cfg);
    assert!(status.contains("not holding"), "{status}");
}

/// Issue 13 item 4: with the old fixed floor of 100, a deployment of 100
/// children or fewer could lose every signal in one round. Now a round may
/// change at most half of a small deployment: one of four goes through, the
/// other three at once are held.
#[test]
fn a_small_deployment_is_protected_by_the_brake_too() {
    let _alone = process::timing_sensitive();
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let files = children(&root.join("children"), 4);
    signal_key(root);
    let port = free_port();
    let cfg = config(root, port, "");
    let server = Serve::start(&cfg, SocketAddr::from(([127, 0, 0, 1], port)), APEX);
    for i in 0..4 {
        assert_eq!(
            query(server.addr, &owner(&format!("c{i}.example")), 59, false)
                .map(|m| m.answers.len()),
            Some(1)
        );
    }

    // One child of four leaves: within the limit (half of 4).
    fs::remove_file(&files[0]).expect("remove");
    assert!(
        wait_for(
            server.addr,
            &owner("c0.example"),
            Duration::from_secs(5),
            |n| n == 0
        )
        .is_some(),
        "{}",
        server.log_text()
    );

    // The other three at once (an emptied directory): held.
    for file in &files[1..] {
        fs::remove_file(file).expect("remove");
    }
    std::thread::sleep(Duration::from_millis(1500));
    for i in 1..4 {
        assert_eq!(
            query(server.addr, &owner(&format!("c{i}.example")), 59, false)
                .map(|m| m.answers.len()),
            Some(1),
            "the brake must keep c{i}'s signal:\n{}",
            server.log_text()
        );
    }
    let (code, status, _) = signalbox_cmd("status", &cfg);
    assert_eq!(code, 0);
    assert!(status.contains("HOLDING a change to 3 of 3"), "{status}");

    let (code, out, err) = signalbox_cmd("confirm", &cfg);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        wait_for(
            server.addr,
            &owner("c3.example"),
            Duration::from_secs(5),
            |n| n == 0
        )
        .is_some(),
        "{}",
        server.log_text()
    );
}

#[test]
fn a_reload_with_a_broken_config_keeps_serving_and_a_good_one_applies() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    children(&root.join("children"), 3);
    signal_key(root);
    let port = free_port();
    let cfg = config(root, port, "");
    let good = fs::read_to_string(&cfg).expect("read");
    let server = Serve::start(&cfg, SocketAddr::from(([127, 0, 0, 1], port)), APEX);
    let serial_before = serial(server.addr, APEX).expect("serial");
    let pid = server.pid();

    // A broken config by SIGHUP: rejected, still serving.
    fs::write(
        &cfg,
        good.replace("cds = \"always\"", "cds = \"sometimes\""),
    )
    .expect("write");
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.log_text().contains("reload rejected"),
        "{}",
        server.log_text()
    );
    assert_eq!(serial(server.addr, APEX), Some(serial_before));
    assert_eq!(
        query(server.addr, &owner("c0.example"), 59, false).map(|m| m.answers.len()),
        Some(1)
    );
    // And by `signalbox reload`: refused with the error, exit 2.
    let (code, _, err) = signalbox_cmd("reload", &cfg);
    assert_eq!(code, 2);
    assert!(err.contains("sometimes"), "{err}");

    // A good config by SIGHUP: one child now uses "none".
    fs::write(
        &cfg,
        format!("{good}\n[[zone]]\nname = \"c0.example.\"\ncds = \"none\"\n"),
    )
    .expect("write");
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(
        wait_for(
            server.addr,
            &owner("c0.example"),
            Duration::from_secs(3),
            |n| n == 0
        )
        .is_some(),
        "{}",
        server.log_text()
    );
    // And back, by `signalbox reload`.
    fs::write(&cfg, &good).expect("write");
    let (code, out, err) = signalbox_cmd("reload", &cfg);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        wait_for(
            server.addr,
            &owner("c0.example"),
            Duration::from_secs(3),
            |n| n == 1
        )
        .is_some()
    );
}

#[test]
fn kill_9_during_a_burst_then_restart_serves_the_same_signals_with_a_higher_serial() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let dir = root.join("children");
    let files = children(&dir, 200);
    signal_key(root);
    let port = free_port();
    // This test is about crashes, not the brake: let every change through.
    let cfg = config(root, port, "[safety]\nmax_change_share = 1.0");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = Serve::start(&cfg, addr, APEX);
    // Zones are saved at most every 2 s: let the first save happen.
    let saved = root.join(format!("state/zones/{APEX}zone"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !saved.exists() {
        assert!(
            Instant::now() < deadline,
            "zone never saved:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A burst: every child's key replaced by another, renamed into place
    // like BIND does; kill -9 in the middle of it.
    let mut highest = serial(addr, APEX).expect("serial");
    for (i, file) in files.iter().enumerate() {
        let mut key = dnskey(257, 13, (i % 251) as u8);
        key.public_key[..4].copy_from_slice(&((i + 1000) as u32).to_be_bytes());
        let tmp_dir = root.join("tmp");
        fs::create_dir_all(&tmp_dir).expect("mkdir");
        let new = write_key(&tmp_dir, &format!("c{i}.example."), &key, &[]);
        fs::rename(&new, dir.join(new.file_name().expect("name"))).expect("rename");
        fs::remove_file(file).expect("remove");
        if i % 20 == 0 {
            if let Some(s) = serial(addr, APEX) {
                highest = highest.max(s);
            }
        }
        if i == 120 {
            if let Some(s) = serial(addr, APEX) {
                highest = highest.max(s);
            }
            server.kill();
        }
    }
    // No half-written state file: every zone file loads (checksummed).
    let zones = root.join("state/zones");
    for entry in fs::read_dir(&zones).expect("state dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "zone") {
            let data = fs::read(&path).expect("read");
            assert!(
                signalbox::zone::persist::decode(&data).is_some(),
                "{} is damaged",
                path.display()
            );
        }
    }

    let server = Serve::start(&cfg, addr, APEX);
    assert!(
        server.log_text().contains("warm start"),
        "{}",
        server.log_text()
    );
    // Same signals as the key files now say, and a higher serial.
    let (code, stdout, stderr) = output(signalbox().args(["signals", "-c"]).arg(&cfg));
    assert_eq!(code, 0, "{stderr}");
    let expected: Vec<String> = records(&stdout)
        .into_iter()
        .filter(|l| l.starts_with("_dsboot.c") && l.contains(APEX) && l.contains(" CDS "))
        .collect();
    assert_eq!(expected.len(), 200);
    let expected: Vec<(String, Vec<u8>)> = expected
        .iter()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let rdata = signalbox::dns::Ds::from_text(&fields[4..].join(" ")).expect("a CDS");
            (fields[0].to_string(), rdata.to_wire())
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mismatched = expected
            .iter()
            .filter(|(name, rdata)| answer_rdatas(addr, name, 59) != vec![rdata.clone()])
            .count();
        if mismatched == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{mismatched} signals differ after restart:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = serial(addr, APEX).expect("serial");
    assert!(
        after > highest,
        "serial {after} after restart, {highest} seen before the kill"
    );
}

/// A key file written while the first round runs (after its scan, before
/// its signed zone is served) is served right after that round: the key
/// directories are watched from before it, not only after it (with
/// `rescan_interval = "1h"`, a change missed by the watch would wait an
/// hour). At a million children the first round runs for tens of seconds
/// after its scan; here 20k children make it seconds long.
#[test]
fn a_key_written_during_the_first_round_is_served_right_after_it() {
    let _cpu = process::cpu_heavy();
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let children = root.join("children");
    crate::serve::many_children(&children, 20_000);
    signal_key(root);
    let port = free_port();
    let cfg = config(root, port, "");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = Serve::launch_logging(&cfg, addr, "info,signalbox::daemon::round=debug");

    // Once the first round's scan is done, the new child's key appears.
    server.wait(Duration::from_secs(60), "finish the first scan", || {
        server_log_has(&cfg, "phase=\"scan\"")
    });
    write_key(&children, "late.example.", &dnskey(257, 13, 7), &[]);
    let served = |name: &str| query(addr, name, 59, false).is_some_and(|m| !m.answers.is_empty());
    assert!(
        !served(&owner("child0.example")),
        "the first round ended before the key was written: the test proves nothing; give it more children"
    );

    server.wait(Duration::from_secs(120), "finish the first round", || {
        served(&owner("child0.example"))
    });
    let first_done = Instant::now();
    server.wait(
        Duration::from_secs(10),
        "serve the key written during the first round",
        || served(&owner("late.example")),
    );
    assert!(
        first_done.elapsed() < Duration::from_secs(5),
        "served {:?} after the first round",
        first_done.elapsed()
    );
}

/// True when the log of the server started with `cfg` holds `text`.
fn server_log_has(cfg: &Path, text: &str) -> bool {
    fs::read_to_string(cfg.with_extension("log")).is_ok_and(|log| log.contains(text))
}
