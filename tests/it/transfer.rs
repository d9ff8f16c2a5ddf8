//! signalbox as a hidden primary: Knot 3.2 and NSD 4.6 secondaries transfer
//! the signalling zone by AXFR, follow key changes by NOTIFY + IXFR, with and
//! without TSIG, and fall back to AXFR when the journal does not reach.

use std::{
    fs,
    net::SocketAddr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use crate::common::{
    process::free_port,
    secondary::{Kind, Secondary},
    serve::*,
    signer::TsigKey,
    *,
};

const APEX: &str = "_signal.ns1.operator.test.";
const SECRET: &str = "YpbnOapa/XuGGvTDCPj33ehLkOpZPmOOq7AIL2tSRcs=";

fn children(dir: &Path, count: usize) {
    fs::create_dir_all(dir).expect("mkdir");
    for i in 0..count {
        let mut key = dnskey(257, 13, (i % 251) as u8);
        key.public_key[..4].copy_from_slice(&(i as u32).to_be_bytes());
        write_key(dir, &format!("c{i}.example."), &key, &[]);
    }
}

/// Replaces child `i`'s key by another one (renamed into place).
pub(crate) fn change_child(dir: &Path, i: usize, generation: u32) {
    for entry in fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.starts_with(&format!("Kc{i}.example.+")) {
            fs::remove_file(&path).expect("remove");
        }
    }
    let mut key = dnskey(257, 13, (i % 251) as u8);
    key.public_key[..4].copy_from_slice(&(i as u32).to_be_bytes());
    key.public_key[4..8].copy_from_slice(&generation.to_be_bytes());
    let tmp = dir.parent().expect("parent").join("tmpkeys");
    fs::create_dir_all(&tmp).expect("mkdir");
    let file = write_key(&tmp, &format!("c{i}.example."), &key, &[]);
    fs::rename(&file, dir.join(file.file_name().expect("name"))).expect("rename");
}

pub(crate) struct Setup {
    _tmp: tempfile::TempDir,
    pub(crate) root: std::path::PathBuf,
    pub(crate) config: std::path::PathBuf,
    pub(crate) addr: SocketAddr,
}

/// signalbox with `n` children, NOTIFYing `secondary`; `tsig` protects transfers.
pub(crate) fn setup(n: usize, secondary_port: u16, tsig: bool, extra: &str) -> Setup {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().to_path_buf();
    children(&root.join("children"), n);
    let signal = root.join("signal");
    fs::create_dir_all(&signal).expect("mkdir");
    crate::common::signzone::keygen(&signal, &["-f", "KSK", APEX.trim_end_matches('.')]);
    fs::write(
        root.join("xfr.key"),
        format!("key \"xfr-key\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n"),
    )
    .expect("write key");
    let port = free_port();
    let acl = if tsig {
        "\"key:xfr-key\""
    } else {
        "\"127.0.0.0/8\""
    };
    let notify_key = if tsig { "notify_key = \"xfr-key\"" } else { "" };
    let config = root.join("signalbox.toml");
    fs::write(
        &config,
        format!(
            r#"version = 1
tsig_keys = ["xfr.key"]
[[zones]]
keys = "children"
nameservers = ["ns1.operator.test."]
cds = "always"

[[signaling_zone]]
apex = "{APEX}"
keys = "signal"
nameservers = ["ns1.operator.test."]
secondaries = ["127.0.0.1:{secondary_port}"]
allow_transfer = [{acl}]
{notify_key}
{extra}

[server]
listen = ["127.0.0.1:{port}"]

[state]
dir = "state"

[safety]
max_change_share = 1.0
"#
        ),
    )
    .expect("write config");
    Setup {
        _tmp: tmp,
        root,
        config,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

fn key() -> TsigKey {
    TsigKey {
        name: "xfr-key".into(),
        secret: SECRET.into(),
    }
}

/// The secondary answers like signalbox for a sample of names.
fn same_answers(primary: SocketAddr, secondary: SocketAddr, n: usize) {
    let mut names: Vec<(String, u16)> = (0..n)
        .step_by((n / 40).max(1))
        .flat_map(|i| {
            [
                (format!("_dsboot.c{i}.example.{APEX}"), 59),
                (format!("_dsboot.c{i}.example.{APEX}"), 60),
            ]
        })
        .collect();
    // (NS is left out: servers may compress the name inside its RDATA.)
    names.push((APEX.to_string(), 48));
    for (name, qtype) in names {
        let mut a = answer_rdatas(primary, &name, qtype);
        let mut b = answer_rdatas(secondary, &name, qtype);
        a.sort();
        b.sort();
        assert!(!a.is_empty(), "{name} {qtype}: no answer from signalbox");
        assert_eq!(a, b, "{name} {qtype}: the secondary answers differently");
    }
    // A name that does not exist: NXDOMAIN from both.
    let nx = format!("nope.{APEX}");
    let rcode = |addr| query(addr, &nx, 59, true).map(|m| m.metadata.response_code);
    assert_eq!(rcode(primary), rcode(secondary));
}

/// `dnssec-verify` on the secondary's copy, fetched by AXFR from it.
pub(crate) fn verify_secondary(secondary: SocketAddr, dir: &Path) {
    let out = Command::new("dig")
        .args([
            "+nocmd",
            "+nostats",
            "+nocomments",
            "+noquestion",
            "-p",
            &secondary.port().to_string(),
            "@127.0.0.1",
            APEX,
            "AXFR",
        ])
        .output()
        .expect("dig runs");
    let zone = dir.join("secondary-copy.zone");
    fs::write(&zone, &out.stdout).expect("write");
    let verify = Command::new("dnssec-verify")
        .args(["-z", "-o", APEX])
        .arg(&zone)
        .output()
        .expect("dnssec-verify runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        verify.status.success() && text.contains("Zone fully signed"),
        "{text}"
    );
}

/// The serial signalbox at `addr` serves once it moved past `first` and
/// `ready` holds (within 10 s).
fn new_serial_after(
    addr: SocketAddr,
    first: u32,
    server: &Serve,
    ready: impl Fn(SocketAddr) -> bool,
) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match serial(addr, APEX) {
            Some(now) if now != first && ready(addr) => return now,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "no new serial:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The secondary serves `serial` within `within`.
fn transferred(server: &Serve, sec: &mut Secondary, serial: u32, within: Duration) {
    assert!(
        sec.wait_serial(APEX, serial, within),
        "the secondary did not reach serial {serial}:\n{}\n{}",
        sec.log_text(),
        server.log_text()
    );
}

/// The secondary reaches `new_serial`, and by an IXFR from `first`.
fn followed_by_ixfr(server: &Serve, sec: &mut Secondary, first: u32, new_serial: u32) {
    transferred(server, sec, new_serial, Duration::from_secs(30));
    let ixfr = format!("kind=\"IXFR\" from={first} to={new_serial}");
    assert!(
        server.log_text().contains(&ixfr),
        "not an IXFR ({ixfr}):\n{}",
        server.log_text()
    );
}

fn wait_log(text: impl Fn() -> String, needle: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if text().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn secondary_follows(kind: Kind, tsig: bool) {
    if !tools(&["knotd", "nsd", "dig", "dnssec-verify", "dnssec-keygen"]) {
        return;
    }
    let n = 10_000;
    let secondary_port = free_port();
    let s = setup(n, secondary_port, tsig, "");
    let server = Serve::start(&s.config, s.addr, APEX);
    let first = serial(s.addr, APEX).expect("serial");
    let key = tsig.then(key);
    // The secondary's port was picked before signalbox's config was written.
    let mut sec = start_on(
        kind,
        &s.root.join("secondary"),
        s.addr,
        key.as_ref(),
        secondary_port,
    );
    transferred(&server, &mut sec, first, Duration::from_secs(60));
    same_answers(s.addr, sec.addr, n);
    verify_secondary(sec.addr, &s.root);

    // A key change: NOTIFY, then IXFR, then the secondary serves it.
    change_child(&s.root.join("children"), 7, 1);
    let new_serial = new_serial_after(s.addr, first, &server, |_| true);
    followed_by_ixfr(&server, &mut sec, first, new_serial);
    assert!(
        server.log_text().contains("NOTIFY acknowledged"),
        "{}",
        server.log_text()
    );
    if kind == Kind::Knot {
        assert!(
            wait_log(|| sec.log_text(), "IXFR, incoming", Duration::from_secs(5)),
            "Knot did not log an incoming IXFR:\n{}",
            sec.log_text()
        );
    }
    same_answers(s.addr, sec.addr, n);
    verify_secondary(sec.addr, &s.root);
    if tsig {
        // A wrong key is refused.
        let out = Command::new("dig")
            .args([
                "-y",
                "hmac-sha256:xfr-key:d3Jvbmcgc2VjcmV0IGluZGVlZA==",
                "-p",
                &s.addr.port().to_string(),
                "@127.0.0.1",
                APEX,
                "AXFR",
            ])
            .output()
            .expect("dig runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("BADSIG") || text.contains("Transfer failed"),
            "{text}"
        );
        // And no key at all too.
        let out = Command::new("dig")
            .args(["-p", &s.addr.port().to_string(), "@127.0.0.1", APEX, "AXFR"])
            .output()
            .expect("dig runs");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Transfer failed"));
    }
}

fn start_on(
    kind: Kind,
    dir: &Path,
    primary: SocketAddr,
    key: Option<&TsigKey>,
    port: u16,
) -> Secondary {
    Secondary::start_on_port(kind, dir, APEX, primary, key, port)
}

#[test]
fn knot_follows_by_notify_and_ixfr() {
    secondary_follows(Kind::Knot, false);
}

#[test]
fn nsd_follows_by_notify_and_ixfr() {
    secondary_follows(Kind::Nsd, false);
}

#[test]
fn knot_follows_with_tsig() {
    secondary_follows(Kind::Knot, true);
}

#[test]
fn nsd_follows_with_tsig() {
    secondary_follows(Kind::Nsd, true);
}

#[test]
fn an_old_serial_gets_the_whole_zone_and_restarts_keep_signatures() {
    if !tools(&["dig", "dnssec-keygen"]) {
        return;
    }
    let s = setup(50, free_port(), false, "journal_versions = 2");
    let mut server = Serve::start(&s.config, s.addr, APEX);
    let first = serial(s.addr, APEX).expect("serial");
    for generation in 1..=4 {
        change_child(&s.root.join("children"), generation as usize, generation);
        let deadline = Instant::now() + Duration::from_secs(10);
        while serial(s.addr, APEX) == Some(first + generation - 1) {
            assert!(Instant::now() < deadline, "{}", server.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let last = serial(s.addr, APEX).expect("serial");
    let records = |from: u32| -> usize {
        let out = Command::new("dig")
            .args([
                "+nocmd",
                "+nostats",
                "+nocomments",
                "+noquestion",
                "-p",
                &s.addr.port().to_string(),
                "@127.0.0.1",
                APEX,
                &format!("IXFR={from}"),
            ])
            .output()
            .expect("dig runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
            .count()
    };
    // Two versions back: in the journal, a short answer.
    let recent = records(last - 1);
    // The first serial is beyond the journal (2 versions): the whole zone.
    let whole = records(first);
    let axfr = {
        let out = Command::new("dig")
            .args([
                "+nocmd",
                "+nostats",
                "+nocomments",
                "+noquestion",
                "-p",
                &s.addr.port().to_string(),
                "@127.0.0.1",
                APEX,
                "AXFR",
            ])
            .output()
            .expect("dig runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
            .count()
    };
    assert!(recent < 20, "{recent} records for one change");
    assert_eq!(whole, axfr, "the fallback is the whole zone");
    assert!(
        server.log_text().contains("serial not in the journal"),
        "{}",
        server.log_text()
    );
    // IXFR over UDP: the SOA alone.
    let out = Command::new("dig")
        .args([
            "+notcp",
            "+noall",
            "+answer",
            "-p",
            &s.addr.port().to_string(),
            "@127.0.0.1",
            APEX,
            &format!("IXFR={}", last - 1),
        ])
        .output()
        .expect("dig runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.lines().filter(|l| l.contains("SOA")).count() >= 1,
        "{text}"
    );

    // A restart: higher serial, nothing but the SOA re-signed, and the
    // journal still answers an IXFR from the last serial before it.
    std::thread::sleep(Duration::from_millis(2500)); // zones are saved every 2 s
    server.kill();
    let server = Serve::start(&s.config, s.addr, APEX);
    // The saved zone answers at once; the first round, after the
    // secondaries were asked what they hold, makes the next serial.
    let higher = crate::notify::wait_until(Duration::from_secs(10), || {
        serial(s.addr, APEX).is_some_and(|after| after > last)
    });
    assert!(higher, "{}", server.log_text());
    let log = server.log_text();
    assert!(log.contains("warm start"), "{log}");
    assert!(
        log.contains("rrsets_signed=1 "),
        "only the SOA should be re-signed:\n{log}"
    );
    let across = records(last);
    assert!(
        across < 10,
        "IXFR across the restart: {across} records\n{log}"
    );
}

/// Issue 13 item 1: one round that both withdraws a child's signals and
/// re-signs the whole zone (a new ZSK in the signalling zone's key
/// directory) must give secondaries an IXFR that removes the withdrawn
/// `_dsboot` owner. Knot, fed by that IXFR, ends with the zone signalbox
/// serves: the owner gone, and `dnssec-verify` content with its copy.
#[test]
fn an_ixfr_that_withdraws_and_resigns_at_once_keeps_the_secondary_whole() {
    if !tools(&["knotd", "dig", "dnssec-verify", "dnssec-keygen"]) {
        return;
    }
    let n = 20;
    let secondary_port = free_port();
    let s = setup(n, secondary_port, false, "");
    let server = Serve::start(&s.config, s.addr, APEX);
    let first = serial(s.addr, APEX).expect("serial");
    let mut sec = start_on(
        Kind::Knot,
        &s.root.join("secondary"),
        s.addr,
        None,
        secondary_port,
    );
    transferred(&server, &mut sec, first, Duration::from_secs(60));
    let gone = format!("_dsboot.c3.example.{APEX}");
    assert!(
        !answer_rdatas(sec.addr, &gone, 59).is_empty(),
        "c3 signals at first"
    );

    // The same round: child c3's key files go, and a ZSK joins the
    // signalling zone's keys, so every RRset is signed anew.
    let staged = s.root.join("staged-zsk");
    fs::create_dir_all(&staged).expect("mkdir");
    crate::common::signzone::keygen(&staged, &[APEX.trim_end_matches('.')]);
    for entry in fs::read_dir(s.root.join("children")).expect("dir") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("Kc3.example.+"))
        {
            fs::remove_file(&path).expect("remove");
        }
    }
    for entry in fs::read_dir(&staged).expect("dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_owned();
        fs::rename(&path, s.root.join("signal").join(name)).expect("rename");
    }
    let new_serial = new_serial_after(s.addr, first, &server, |addr| {
        answer_rdatas(addr, &gone, 59).is_empty()
    });
    assert!(
        server.log_text().contains("resign_due=true"),
        "the round did not re-sign the zone:\n{}",
        server.log_text()
    );
    followed_by_ixfr(&server, &mut sec, first, new_serial);
    assert!(
        answer_rdatas(sec.addr, &gone, 59).is_empty(),
        "Knot still serves the withdrawn {gone}:\n{}",
        sec.log_text()
    );
    verify_secondary(sec.addr, &s.root);
}
