//! An active/standby pair (issue 15, "Beyond one machine"): two signalbox
//! nodes with one configuration and the same key directories, each with its
//! own state directory, and a Knot 3.2 secondary. The primary serves and
//! moves on; the standby's state is an older copy of the primary's (a
//! backup, an rsync); the primary dies (kill -9) and the standby comes up on
//! the same address. The standby serves its saved zone at once and asks
//! Knot what it holds before its first round (`daemon::takeover`; transfers
//! are refused until then): its serials continue above Knot's, and its IXFR
//! journal, made from a version Knot no longer has, is dropped, so Knot
//! takes the whole zone once. Knot never serves a lower serial, and its copy
//! ends equal to the standby's zone, record for record, and passes
//! `dnssec-verify`.

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::{
    common::{
        process::free_port,
        secondary::{Kind, Secondary},
        serve::{Serve, serial},
        *,
    },
    transfer::{Setup, change_child, setup, verify_secondary},
};

const APEX: &str = "_signal.ns1.operator.test.";

/// RFC 1982: `a` is newer than `b`.
fn newer(a: u32, b: u32) -> bool {
    a != b && (a.wrapping_sub(b) as i32) > 0
}

/// Every serial a server answers with, polled every 20 ms until stopped.
struct SerialWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<u32>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SerialWatch {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(s) = serial(addr, APEX) {
                        let mut seen = seen.lock().expect("lock");
                        if seen.last() != Some(&s) {
                            seen.push(s);
                        }
                    }
                    thread::sleep(Duration::from_millis(20));
                }
            })
        };
        SerialWatch {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<u32> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("watch thread");
        }
        self.seen.lock().expect("lock").clone()
    }
}

/// The zone by AXFR from `addr`, one normalised line per record, sorted.
fn axfr(addr: SocketAddr) -> Vec<String> {
    let out = Command::new("dig")
        .args([
            "+onesoa",
            "+nocmd",
            "+nostats",
            "+nocomments",
            "+noquestion",
            "-p",
            &addr.port().to_string(),
            &format!("@{}", addr.ip()),
            APEX,
            "AXFR",
        ])
        .output()
        .expect("dig runs");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines
}

/// Waits until the saved zone in `state` carries `serial` (the background
/// saver writes at most every 2 s).
fn saved(state: &Path, serial: u32, server: &Serve) {
    let mark = state.join(format!("zones/{APEX}toml"));
    let zone = state.join(format!("zones/{APEX}zone"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let recorded = fs::read_to_string(&mark).is_ok_and(|t| t.contains(&serial.to_string()));
        let journal = state.join(format!("zones/{APEX}journal"));
        if recorded && zone.exists() && journal.exists() {
            // One more save period, so the zone file is the one with `serial`.
            thread::sleep(Duration::from_secs(3));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the primary did not save serial {serial}:\n{}",
            server.log_text()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let (code, out, err) = output(Command::new("cp").arg("-a").arg(from).arg(to));
    assert_eq!(code, 0, "cp -a: {out}{err}");
}

/// The serial `addr` serves once it differs from `old` (within 20 s).
fn serial_after(addr: SocketAddr, old: u32, server: &Serve) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(now) = serial(addr, APEX).filter(|s| *s != old) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "no new serial:\n{}",
            server.log_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A standby's configuration: `s`'s with its state in `state_dir`.
fn standby_config(s: &Setup, name: &str, state_dir: &str) -> PathBuf {
    let path = s.root.join(name);
    let text = fs::read_to_string(&s.config).expect("config");
    assert!(text.contains("dir = \"state\""), "{text}");
    fs::write(
        &path,
        text.replace("dir = \"state\"", &format!("dir = \"{state_dir}\"")),
    )
    .expect("standby config");
    path
}

/// The primary serving `s`, and a Knot secondary on `secondary_port` that
/// has taken its first version; returns that serial too.
fn primary_and_knot(s: &Setup, secondary_port: u16) -> (Serve, Secondary, u32) {
    let primary = Serve::start(&s.config, s.addr, APEX);
    let first = serial(s.addr, APEX).expect("serial");
    let mut knot = Secondary::start_on_port(
        Kind::Knot,
        &s.root.join("secondary"),
        APEX,
        s.addr,
        None,
        secondary_port,
    );
    assert!(
        knot.wait_serial(APEX, first, Duration::from_secs(60)),
        "{}",
        knot.log_text()
    );
    (primary, knot, first)
}

/// The first serial the standby serves that is newer than `old` (within
/// 30 s).
fn served_above(s: &Setup, old: u32, standby: &Serve) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match serial(s.addr, APEX) {
            Some(now) if newer(now, old) => return now,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the standby never served above {old}:\n{}",
            standby.log_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Knot follows the standby to `serial`, ends with the standby's zone
/// record for record (and it verifies), and never served a lower serial
/// after a higher one.
fn knot_ends_with_the_standbys_zone(
    s: &Setup,
    knot: &mut Secondary,
    secondary_port: u16,
    serial_now: u32,
    standby: &Serve,
    watch: SerialWatch,
) {
    assert!(
        knot.wait_serial(APEX, serial_now, Duration::from_secs(30)),
        "{}\n{}",
        knot.log_text(),
        standby.log_text()
    );
    let knot_addr = SocketAddr::from(([127, 0, 0, 1], secondary_port));
    // Once both serve the same serial, Knot's copy is the standby's zone.
    let now = serial(s.addr, APEX).expect("serial");
    assert!(
        knot.wait_serial(APEX, now, Duration::from_secs(30)),
        "{}",
        knot.log_text()
    );
    assert_eq!(
        serial(knot_addr, APEX),
        Some(now),
        "the standby moved on meanwhile"
    );
    let ours = axfr(s.addr);
    assert!(ours.len() > 100, "{ours:?}");
    assert_eq!(
        ours,
        axfr(knot_addr),
        "Knot's copy is not the standby's zone"
    );
    verify_secondary(knot_addr, &s.root);

    // Knot never went back.
    let served = watch.finish();
    assert!(served.len() >= 3, "{served:?}");
    for pair in served.windows(2) {
        assert!(
            newer(pair[1], pair[0]),
            "Knot served {} after {}: {served:?}",
            pair[1],
            pair[0]
        );
    }
}

#[test]
fn a_standby_takes_over_above_the_secondarys_serial_and_knot_never_goes_back() {
    if !tools(&["knotd", "dig", "dnssec-verify", "dnssec-keygen"]) {
        return;
    }
    let secondary_port = free_port();
    let s = setup(50, secondary_port, false, "");
    let children = s.root.join("children");
    let standby_config = standby_config(&s, "standby.toml", "state-standby");

    // The primary serves; Knot follows it.
    let (mut primary, mut knot, first) = primary_and_knot(&s, secondary_port);
    let watch = SerialWatch::start(SocketAddr::from(([127, 0, 0, 1], secondary_port)));

    // One change; the standby's state is a copy from then (with a journal).
    change_child(&children, 3, 1);
    let second = serial_after(s.addr, first, &primary);
    assert!(knot.wait_serial(APEX, second, Duration::from_secs(30)));
    saved(&s.root.join("state"), second, &primary);
    copy_dir(&s.root.join("state"), &s.root.join("state-standby"));

    // The primary moves on; Knot follows; then the primary dies.
    change_child(&children, 4, 1);
    let third = serial_after(s.addr, second, &primary);
    assert!(knot.wait_serial(APEX, third, Duration::from_secs(30)));
    primary.kill();
    drop(primary);

    // The standby comes up on the same address.
    let standby = Serve::start(&standby_config, s.addr, APEX);
    let asked = crate::notify::wait_until(Duration::from_secs(10), || {
        let log = standby.log_text();
        log.contains("a secondary holds a newer serial than this node made")
            && log.contains("journal is dropped")
            && log.contains("round done")
    });
    let log = standby.log_text();
    assert!(asked, "{log}");
    // It served its saved zone first, and asked Knot before its first
    // round (which makes the next serial).
    let at = |what: &str| {
        log.find(what)
            .unwrap_or_else(|| panic!("no {what:?} in {log}"))
    };
    assert!(
        at("serving addr") < at("a secondary holds a newer serial"),
        "{log}"
    );
    assert!(
        at("a secondary holds a newer serial") < at("round done"),
        "{log}"
    );
    let fourth = served_above(&s, third, &standby);
    knot_ends_with_the_standbys_zone(&s, &mut knot, secondary_port, fourth, &standby, watch);
}

/// A standby that lost its state directory (or never had one) takes over
/// from nothing: a cold start. Nothing is served before its first round,
/// so it scans and signs without waiting for the secondaries, and takes
/// their answers before its first serial: that serial continues above
/// Knot's, Knot follows it, and never goes back.
#[test]
fn a_cold_standby_scans_first_and_still_continues_above_the_secondarys_serial() {
    if !tools(&["knotd", "dig", "dnssec-verify", "dnssec-keygen"]) {
        return;
    }
    let secondary_port = free_port();
    let s = setup(50, secondary_port, false, "");
    let children = s.root.join("children");
    let cold_config = standby_config(&s, "cold.toml", "state-cold");

    // The primary serves and moves on; Knot follows; the primary dies.
    let (mut primary, mut knot, first) = primary_and_knot(&s, secondary_port);
    let watch = SerialWatch::start(SocketAddr::from(([127, 0, 0, 1], secondary_port)));
    change_child(&children, 3, 1);
    let second = serial_after(s.addr, first, &primary);
    assert!(knot.wait_serial(APEX, second, Duration::from_secs(30)));
    primary.kill();
    drop(primary);

    // The standby starts from nothing on the same address.
    let standby = Serve::launch_logging(&cold_config, s.addr, "info,signalbox::daemon=debug");
    let done = crate::notify::wait_until(Duration::from_secs(60), || {
        standby.log_text().contains("round done")
    });
    let log = standby.log_text();
    assert!(done, "{log}");
    let at = |what: &str| {
        log.find(what)
            .unwrap_or_else(|| panic!("no {what:?} in {log}"))
    };
    // Its key scan did not wait for Knot's answer, which was taken before
    // its first serial.
    assert!(
        at("phase=\"keys scanned\"") < at("a secondary holds a newer serial"),
        "{log}"
    );
    assert!(
        at("a secondary holds a newer serial") < at("zone updated"),
        "{log}"
    );
    let third = served_above(&s, second, &standby);
    knot_ends_with_the_standbys_zone(&s, &mut knot, secondary_port, third, &standby, watch);
}
