//! A UDP flood from one source (issue 13, "Fuzzing and fault tests"),
//! against a real `signalbox serve` with its default response rate
//! limiting: while one sender floods it with DNSSEC queries as fast as it
//! can, a key change is still served within the usual two seconds and a
//! client in another /24 gets its answers.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hickory_proto::op::Message;

use crate::common::{
    process::{self, free_port},
    serve::*,
    signzone, *,
};

const APEX: &str = "_signal.ns1.operator.test.";

fn config(root: &Path, port: u16) -> std::path::PathBuf {
    operator_config(root, port, "", "", "\n[watch]\nrescan_interval = \"1h\"\n")
}

/// One query from `from`, up to three tries of 300 ms; the answer's
/// record count.
fn ask_from(from: Ipv4Addr, server: SocketAddr, name: &str, qtype: u16) -> Option<usize> {
    let socket = UdpSocket::bind((from, 0)).ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    let packet = query_bytes(name, qtype, true);
    let mut buf = [0u8; 65_535];
    for _ in 0..3 {
        socket.send_to(&packet, server).ok()?;
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            // TC=1 (a slipped answer) does not count: a real client would
            // have to retry over TCP.
            let truncated = len > 2 && buf[2] & 0x02 != 0;
            if let (false, Ok(m)) = (truncated, Message::from_vec(&buf[..len])) {
                return Some(m.answers.len());
            }
        }
    }
    None
}

#[test]
fn a_flood_from_one_source_slows_neither_key_changes_nor_other_sources() {
    let _alone = process::timing_sensitive();
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let children = root.join("children");
    let signal = root.join("signal");
    fs::create_dir_all(&children).expect("mkdir");
    fs::create_dir_all(&signal).expect("mkdir");
    signzone::keygen(&children, &["-f", "KSK", "example.com"]);
    signzone::keygen(&signal, &["-f", "KSK", APEX.trim_end_matches('.')]);
    let port = free_port();
    let cfg = config(root, port);
    let server = Serve::start(&cfg, SocketAddr::from(([127, 0, 0, 1], port)), APEX);
    let addr = server.addr;

    // The flood: signed DNSKEY answers (the largest the zone has), from
    // one source, never read.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let packet = query_bytes(APEX, 48, true);
            while !stop.load(Ordering::Relaxed) {
                if socket.send_to(&packet, addr).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    // Another source, another /24: answered.
    let other = Ipv4Addr::new(127, 0, 1, 1);
    let answered = (0..100)
        .filter(|_| ask_from(other, addr, APEX, 48).is_some_and(|n| n > 0))
        .count();

    // A key change, watched from the other source.
    signzone::keygen(&children, &["-f", "KSK", "new.example"]);
    let changed = Instant::now();
    let owner = format!("_dsboot.new.example.{APEX}");
    let mut took = None;
    while changed.elapsed() < Duration::from_secs(5) {
        if ask_from(other, addr, &owner, 59).is_some_and(|n| n > 0) {
            took = Some(changed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    flood.join().expect("flood");
    let flooded = sent.load(Ordering::Relaxed);
    eprintln!(
        "flood: {flooded} queries; other source: {answered}/100 answered; key change served in {took:?}"
    );
    assert!(flooded > 10_000, "the flood ran: {flooded} queries");
    assert!(
        answered >= 95,
        "{answered}/100 answered from another source during the flood\n{}",
        server.log_text()
    );
    let took =
        took.unwrap_or_else(|| panic!("key change not served in 5 s\n{}", server.log_text()));
    assert!(
        took < Duration::from_secs(2),
        "key change served in {took:?} during the flood"
    );
}
