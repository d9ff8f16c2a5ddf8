//! NOTIFY in (issue 13 item 7): a followed zone's primary NOTIFYs
//! signalbox (RFC 1996 §4.7), which checks the primary's SOA. A flood of
//! NOTIFYs is coalesced per zone and its SOA checks are rate limited, yet
//! the last serial is still read; with `follow.notify_key` only TSIG-signed
//! NOTIFYs get in (RFC 8945), and a real Knot signing its NOTIFYs with that
//! key still drives the follow. Everything on loopback.

use std::{
    fs,
    net::{SocketAddr, UdpSocket},
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::common::{
    process::{self, free_port},
    serve::{Serve, query_bytes, query_raw},
    signer::{CdsPublish, KNOT_TOOLS, KnotSigner, KnotZone, TsigKey, query, wait_until},
    signzone, tools,
};

const CHILD: &str = "child.test.";
const SIGNAL: &str = "_signal.ns1.operator.test.";

/// A tiny primary for `CHILD` on a UDP port of 127.0.0.1: answers every
/// question authoritatively (a SOA with the current serial, an NS, the rest
/// empty) and records each question's type with the serial served then.
struct FakePrimary {
    addr: SocketAddr,
    serial: Arc<AtomicU32>,
    seen: Arc<Mutex<Vec<(u16, u32)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakePrimary {
    fn start(serial: u32) -> FakePrimary {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the fake primary");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set timeout");
        let addr = socket.local_addr().expect("address");
        let serial = Arc::new(AtomicU32::new(serial));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (serial, seen, stop) = (serial.clone(), seen.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let now = serial.load(Ordering::Relaxed);
                    if let Some((qtype, answer)) = answer(&buf[..len], now) {
                        seen.lock().expect("not poisoned").push((qtype, now));
                        let _ = socket.send_to(&answer, from);
                    }
                }
            })
        };
        FakePrimary {
            addr,
            serial,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<(u16, u32)> {
        self.seen.lock().expect("not poisoned").clone()
    }

    fn soa_queries(&self) -> usize {
        self.seen().iter().filter(|(t, _)| *t == 6).count()
    }

    /// True once the apex was read (a DNSKEY question) at `serial`.
    fn read_at(&self, serial: u32) -> bool {
        self.seen().iter().any(|&(t, s)| t == 48 && s == serial)
    }
}

impl Drop for FakePrimary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The answer to a query (header and question echoed, QR and AA set, no
/// additional section): (qtype, message).
fn answer(query: &[u8], serial: u32) -> Option<(u16, Vec<u8>)> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + usize::from(query[end]);
    }
    let question_end = end + 5;
    let qtype = u16::from_be_bytes([*query.get(end + 1)?, *query.get(end + 2)?]);
    let mut out = query.get(..question_end)?.to_vec();
    out[2] = 0x84 | (query[2] & 0x01); // QR, opcode 0, AA, RD copied
    out[3] = 0;
    out[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
    let rdata: Vec<u8> = match qtype {
        6 => {
            let mut r = vec![0, 0]; // MNAME and RNAME: the root
            for v in [serial, 3600, 600, 86400, 2] {
                r.extend_from_slice(&v.to_be_bytes());
            }
            r
        }
        2 => b"\x03ns1\x08operator\x04test\x00".to_vec(),
        _ => return Some((qtype, out)),
    };
    out[7] = 1;
    out.extend_from_slice(&[0xc0, 12]);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 2]);
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
    Some((qtype, out))
}

/// A NOTIFY for `zone` (opcode 4, AA, a SOA question), unsigned.
fn notify_bytes(zone: &str) -> Vec<u8> {
    let mut q = query_bytes(zone, 6, false);
    q[2] = 0x24;
    q
}

/// The RCODE of a NOTIFY's answer, None without one.
fn notify_rcode(to: SocketAddr, zone: &str) -> Option<u8> {
    query_raw(to, &notify_bytes(zone)).map(|a| a[3] & 0x0f)
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).expect("write");
}

/// (a) A flood of NOTIFYs from the primary's address, with the serial
/// moving during it: the primary gets a bounded number of SOA queries (at
/// most one check per second, plus the two SOA reads around each apex
/// read) instead of one per NOTIFY, the last serial is still read, and
/// the log about them is rate limited.
#[test]
fn a_notify_flood_costs_the_primary_few_soa_queries_and_the_last_serial_is_read() {
    let _cpu = process::cpu_heavy();
    let dir = tempfile::tempdir().expect("tempdir");
    let primary = FakePrimary::start(1);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let config = dir.path().join("signalbox.toml");
    write(
        &config,
        &format!(
            r#"version = 1
[[zone]]
name = "{CHILD}"
follow = {{ primary = "{}", refresh = "1h" }}

[server]
listen = ["{addr}"]
"#,
            primary.addr
        ),
    );
    let daemon = Serve::spawn(&config, addr);
    assert!(
        wait_until(Duration::from_secs(10), || primary.read_at(1).then_some(())).is_some(),
        "the first read\n{}",
        daemon.log_text()
    );
    // One NOTIFY answered NOERROR from the primary's address.
    assert_eq!(notify_rcode(addr, CHILD), Some(0), "{}", daemon.log_text());
    thread::sleep(Duration::from_millis(1500));
    let before = primary.soa_queries();

    // 3 s of NOTIFYs (about 6000), the serial moving every second.
    let flood = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let packet = notify_bytes(CHILD);
    let started = Instant::now();
    let mut sent = 0u32;
    while started.elapsed() < Duration::from_secs(3) {
        for _ in 0..20 {
            let _ = flood.send_to(&packet, addr);
            sent += 1;
        }
        let second = started.elapsed().as_secs() as u32;
        primary.serial.store(2 + second, Ordering::Relaxed);
        thread::sleep(Duration::from_millis(10));
    }
    let last = primary.serial.load(Ordering::Relaxed);
    for _ in 0..20 {
        let _ = flood.send_to(&packet, addr);
    }
    let read = wait_until(Duration::from_secs(5), || {
        primary.read_at(last).then_some(())
    });
    thread::sleep(Duration::from_millis(1500));
    let soa = primary.soa_queries() - before;
    eprintln!("{sent} NOTIFYs in 3 s -> {soa} SOA queries at the primary");
    assert!(
        read.is_some(),
        "serial {last} was never read: {:?}\n{}",
        primary.seen(),
        daemon.log_text()
    );
    // ~5 checks (one per second) + 2 more SOA reads per new serial (3).
    assert!(
        soa <= 20,
        "{soa} SOA queries for {sent} NOTIFYs\n{}",
        daemon.log_text()
    );
    let log = daemon.log_text();
    let logged = log.matches("NOTIFY from the primary").count();
    assert!(
        logged <= 12,
        "{logged} log lines for {sent} NOTIFYs: not rate limited"
    );
}

/// (b) With `notify_key`, an unsigned NOTIFY from the primary's own
/// address is REFUSED, one signed with the key (dig) is accepted, and a
/// real Knot that signs its NOTIFYs with the key (`remote: key`) drives the
/// follow: a KSK rollover's new CDS is served as `_dsboot` signals within
/// seconds although the SOA poll is an hour away.
#[test]
fn with_notify_key_only_signed_notifies_get_in_and_knot_signs_its_own() {
    let _cpu = process::cpu_heavy();
    let mut needed = KNOT_TOOLS.to_vec();
    needed.extend(["dig", "dnssec-keygen"]);
    if !tools(&needed) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let signal = root.join("signal");
    fs::create_dir_all(&signal).expect("mkdir");
    signzone::keygen(&signal, &["-f", "KSK", SIGNAL.trim_end_matches('.')]);
    let key = TsigKey::generate("notify-key");
    let other = TsigKey::generate("other-key");
    key.write_keyfile(&root.join("notify.key"));
    other.write_keyfile(&root.join("other.key"));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let knot = KnotSigner::start(
        &root.join("knot"),
        &[KnotZone::new(
            CHILD,
            "$TTL 2\n@ SOA ns1.operator.test. hostmaster.operator.test. 1 3600 600 86400 2\n\
             @ NS ns1.operator.test.\n",
        )
        .cds(CdsPublish::Rollover)
        .notify(addr)
        .notify_key(&key)],
    );
    let config = root.join("signalbox.toml");
    write(
        &config,
        &format!(
            r#"version = 1
tsig_keys = ["notify.key", "other.key"]

[[zone]]
name = "{CHILD}"
follow = {{ primary = "{primary}", refresh = "1h", notify_key = "{key}" }}

[[signaling_zone]]
apex = "{SIGNAL}"
keys = "signal"
nameservers = ["ns1.operator.test."]

[server]
listen = ["{addr}"]
"#,
            primary = knot.addr(),
            key = key.name,
        ),
    );
    let daemon = Serve::start(&config, addr, SIGNAL);
    let name = format!("_dsboot.{CHILD}{SIGNAL}");
    let knot_cds = || query(knot.addr(), CHILD, "CDS");
    let ours = || query(addr, &name, "CDS");
    assert!(
        wait_until(Duration::from_secs(10), || (!knot_cds().is_empty()
            && ours() == knot_cds())
        .then_some(()))
        .is_some(),
        "the first read\n{}",
        daemon.log_text()
    );

    // Unsigned, from 127.0.0.1, the primary's own address: REFUSED.
    assert_eq!(notify_rcode(addr, CHILD), Some(5), "{}", daemon.log_text());
    // Signed with another key signalbox knows: REFUSED too.
    let dig = |spec: &str| {
        let (code, out, err) = crate::common::output(std::process::Command::new("dig").args([
            &format!("@{}", addr.ip()),
            "-p",
            &addr.port().to_string(),
            "+opcode=notify",
            "+norecurse",
            "+time=2",
            "+tries=1",
            "-y",
            spec,
            CHILD,
            "SOA",
        ]));
        format!("{code} {out}{err}")
    };
    let refused = dig(&other.spec());
    assert!(refused.contains("status: REFUSED"), "{refused}");
    // Signed with notify_key (dig checks our signed answer): NOERROR.
    let accepted = dig(&key.spec());
    assert!(accepted.contains("status: NOERROR"), "{accepted}");
    assert!(!accepted.contains("tsig verify failure"), "{accepted}");
    let log = daemon.log_text();
    assert!(
        log.contains("NOTIFY not signed with the zone's notify_key: refused"),
        "{log}"
    );

    // Knot's own NOTIFYs are signed with the key: a KSK rollover follows.
    let signed_in = |log: &str| {
        log.lines()
            .filter(|l| l.contains("NOTIFY from the primary") && l.contains("notify-key"))
            .count()
    };
    let by_dig = signed_in(&log);
    let before = knot_cds();
    knot.knotc_ok(&["zone-key-rollover", CHILD, "ksk"]);
    let new_cds = wait_until(Duration::from_secs(20), || {
        let now = knot_cds();
        (!now.is_empty() && now != before).then_some(now)
    })
    .unwrap_or_else(|| panic!("no new CDS at Knot\n{}", knot.log_tail()));
    let followed = wait_until(Duration::from_secs(10), || {
        (ours() == new_cds).then_some(())
    });
    assert!(
        followed.is_some(),
        "signals did not follow Knot's signed NOTIFY\n{}\n{}",
        daemon.log_text(),
        knot.log_tail()
    );
    let log = daemon.log_text();
    assert!(signed_in(&log) > by_dig, "{log}");
    let knot_log = knot.log();
    let outgoing: Vec<&str> = knot_log
        .lines()
        .filter(|l| l.contains("notify, outgoing"))
        .collect();
    assert!(
        outgoing.iter().any(|l| l.contains(", serial ")),
        "{}",
        outgoing.join("\n")
    );
}
