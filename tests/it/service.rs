//! signalbox as a systemd service (issue 14): the unit file passes
//! `systemd-analyze verify` and rates 2.0 or better in `systemd-analyze
//! security --offline=true`, and `serve` speaks the `Type=notify` protocol
//! (sd_notify(3)) to a socket standing in for systemd: READY=1 only once the
//! signed zone is served, STATUS= lines, WATCHDOG=1 pings, RELOADING=1 on
//! SIGHUP, STOPPING=1 on SIGTERM. The same run checks `status --json` and
//! `--log-format json`.

use std::{
    fs,
    net::SocketAddr,
    os::unix::net::UnixDatagram,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use crate::common::{
    process::{Daemon, Log, free_port},
    serve::{query, serial},
    signalbox, *,
};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/signalbox.service");

/// The shipped unit with its commands pointing at the binary under test.
fn unit_under_test(dir: &Path) -> std::path::PathBuf {
    let text = fs::read_to_string(UNIT).expect("read dist/signalbox.service");
    let unit = dir.join("signalbox.service");
    fs::write(
        &unit,
        text.replace("/usr/bin/signalbox", env!("CARGO_BIN_EXE_signalbox")),
    )
    .expect("write unit");
    unit
}

#[test]
fn the_unit_verifies_and_is_sandboxed_to_an_exposure_of_2_or_less() {
    if !tools(&["systemd-analyze"]) {
        return;
    }
    let analyze = "systemd-analyze";
    let tmp = tempfile::tempdir().expect("tempdir");
    let unit = unit_under_test(tmp.path());
    let (code, out, err) = output(
        Command::new(analyze)
            .args(["verify", "--man=no"])
            .arg(&unit),
    );
    assert!(
        code == 0 && err.trim().is_empty(),
        "systemd-analyze verify: exit {code}\n{out}{err}"
    );
    let (code, out, err) = output(
        Command::new(analyze)
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&unit),
    );
    assert_eq!(code, 0, "systemd-analyze security:\n{out}{err}");
    let score: f64 = out
        .lines()
        .find_map(|line| {
            let rest = line
                .split("Overall exposure level for signalbox.service:")
                .nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    println!("exposure level {score} (Debian: knot 7.0, nsd 5.0, named 9.6)");
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{out}");
    // The claims the README makes about the unit.
    let text = fs::read_to_string(UNIT).expect("unit");
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=signalbox",
        "ConfigurationDirectory=signalbox",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "ProtectSystem=strict",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "ReadOnlyPaths=/etc/signalbox",
    ] {
        assert!(text.contains(line), "the unit lacks {line}");
    }
}

/// What arrived on the notify socket so far, one string per datagram.
struct NotifySocket {
    socket: UnixDatagram,
    got: Vec<String>,
}

impl NotifySocket {
    fn bind(path: &Path) -> Self {
        let socket = UnixDatagram::bind(path).expect("bind notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        NotifySocket {
            socket,
            got: Vec::new(),
        }
    }

    /// Reads datagrams until one contains `line` (returned with its index),
    /// or `within` passes.
    fn wait_for(&mut self, line: &str, within: Duration) -> Option<usize> {
        let deadline = Instant::now() + within;
        let has = |m: &String| m.lines().any(|l| l == line);
        loop {
            if let Some(i) = self.got.iter().position(has) {
                return Some(i);
            }
            if Instant::now() > deadline {
                return None;
            }
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.got
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    fn count(&self, line: &str) -> usize {
        self.got
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }
}

fn signal(pid: u32, name: &str) {
    let (code, out, err) = output(Command::new("kill").args([name, &pid.to_string()]));
    assert_eq!(code, 0, "kill {name}: {out}{err}");
}

#[test]
fn serve_tells_systemd_when_it_is_ready_and_keeps_the_watchdog_fed() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let port = free_port();
    let config = crate::serve::write_config(root, port);
    crate::serve::signal_key(root);
    // Enough children that signing the cold start takes several watchdog
    // ticks: STATUS= tells how far it got.
    crate::serve::many_children(&root.join("children"), 40_000);
    let socket_path = root.join("notify.sock");
    let mut notify = NotifySocket::bind(&socket_path);
    let mut cmd = signalbox();
    cmd.args(["--log-format", "json", "serve", "-c"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "600000")
        .env_remove("WATCHDOG_PID");
    let mut daemon = Daemon::spawn("signalbox serve", cmd, &root.join("serve.log"), Log::Fresh);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let apex = "_signal.ns1.operator.test.";

    let ready = notify
        .wait_for("READY=1", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no READY=1: {:?}\n{}", notify.got, daemon.log_text()));
    // READY=1 means the signed zone is served: it answers at once, signed.
    let soa = query(addr, apex, 6, true).expect("an answer right after READY=1");
    assert!(
        soa.answers.iter().any(|r| u16::from(r.record_type()) == 46),
        "SOA without RRSIG right after READY=1: {soa:?}"
    );
    let before: Vec<&String> = notify.got[..ready].iter().collect();
    assert!(
        before.iter().any(|m| m.contains("STATUS=first round")),
        "no STATUS= line before READY=1: {before:?}"
    );
    assert!(
        before.iter().any(|m| m
            .contains("STATUS=first round: signing _signal.ns1.operator.test.: ")
            && m.contains(" RRsets, ")),
        "no signing progress in STATUS= before READY=1: {before:?}"
    );
    assert!(
        notify.got[ready].contains("STATUS=serving 1 signalling zones"),
        "READY=1 without the serving status: {:?}",
        notify.got[ready]
    );

    // `status --json` says what is served; the log is JSON lines.
    let (code, out, err) = output(signalbox().args(["status", "--json", "-c"]).arg(&config));
    assert_eq!(code, 0, "status --json: {out}{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    assert_eq!(status["zones"][0]["apex"], apex, "{status}");
    assert_eq!(
        status["zones"][0]["serial"].as_u64(),
        serial(addr, apex).map(u64::from),
        "{status}"
    );
    assert_eq!(status["zones"][0]["signed"], true, "{status}");
    assert_eq!(status["safety_brake"]["holding"], false, "{status}");
    let log = daemon.log_text();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("log line not JSON ({e}): {line}"))
        })
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["message"] == "round done" && e["level"] == "INFO"),
        "no JSON 'round done' event:\n{log}"
    );

    // Half of WATCHDOG_USEC: about three pings in a second.
    let pings_before = notify.count("WATCHDOG=1");
    notify.wait_for("never", Duration::from_millis(1500));
    let pings = notify.count("WATCHDOG=1") - pings_before;
    assert!(pings >= 2, "{pings} WATCHDOG=1 in 1.5 s: {:?}", notify.got);

    // SIGHUP: RELOADING=1, then READY=1 again.
    let readies = notify.count("READY=1");
    signal(daemon.pid(), "-HUP");
    assert!(
        notify
            .wait_for("RELOADING=1", Duration::from_secs(10))
            .is_some(),
        "no RELOADING=1 after SIGHUP: {:?}",
        notify.got
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while notify.count("READY=1") == readies && Instant::now() < deadline {
        notify.wait_for("never", Duration::from_millis(200));
    }
    assert!(
        notify.count("READY=1") > readies,
        "no READY=1 after the reload: {:?}",
        notify.got
    );
    assert!(serial(addr, apex).is_some(), "still serving after reload");

    // SIGTERM: STOPPING=1 and a clean exit.
    signal(daemon.pid(), "-TERM");
    assert!(
        notify
            .wait_for("STOPPING=1", Duration::from_secs(10))
            .is_some(),
        "no STOPPING=1 after SIGTERM: {:?}",
        notify.got
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while daemon.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = daemon.exited().expect("exited after SIGTERM");
    assert!(status.success(), "exit {status}:\n{}", daemon.log_text());
}
