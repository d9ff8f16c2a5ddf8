//! `signalbox serve` against real peers: a local chain of trust (Knot +
//! validating Unbound + delv), dnssec-verify on the walked zone, restarts,
//! and malformed input.

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::Command,
    time::Duration,
};

use crate::common::{
    chain,
    process::{self, free_port},
    proxy,
    serve::*,
    signzone, *,
};
use hickory_proto::op::ResponseCode;

const APEX: &str = "_signal.ns1.operator.test.";

/// A config serving `_signal.ns1.operator.test.` for the children whose keys
/// are in `root/children`, with the signalling zone's CSK in `root/signal`.
pub(crate) fn write_config(root: &Path, port: u16) -> std::path::PathBuf {
    write_config_with(root, port, "")
}

/// The same, with extra `[server]` lines.
fn write_config_with(root: &Path, port: u16, server_extra: &str) -> std::path::PathBuf {
    let config = root.join("signalbox.toml");
    fs::write(
        &config,
        format!(
            r#"version = 1
[[zones]]
keys = "children"
nameservers = ["ns1.operator.test.", "ns2.elsewhere.test."]
cds = "always"

[[signaling_zone]]
apex = "{APEX}"
keys = "signal"
nameservers = ["ns1.operator.test."]

[server]
listen = ["127.0.0.1:{port}"]
udp_threads = 2
{server_extra}

# The zone walker and `dig -f` ask thousands of names from 127.0.0.1 as
# fast as they can: a bulk client, exempt from response rate limiting
# (which rrl.rs and flood.rs test).
[server.rrl]
exempt = ["127.0.0.1"]

[state]
dir = "state"
"#
        ),
    )
    .expect("write config");
    config
}

/// The signalling zone's CSK, made by dnssec-keygen; returns its .key path.
pub(crate) fn signal_key(root: &Path) -> std::path::PathBuf {
    let dir = root.join("signal");
    fs::create_dir_all(&dir).expect("mkdir");
    let stem = signzone::keygen(
        &dir,
        &["-f", "KSK", "-L", "3600", APEX.trim_end_matches('.')],
    );
    dir.join(format!("{stem}.key"))
}

/// Walks the served zone (dnspython + `dig -f`) into `root/walked.zone`;
/// returns the file and the walker's summary line.
fn walk(root: &Path, port: u16, server: &Serve) -> (std::path::PathBuf, String) {
    let walked = root.join("walked.zone");
    let out = Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/walk_zone.py"))
        .args(["127.0.0.1", &port.to_string(), APEX])
        .output()
        .expect("walker runs");
    let summary = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "walk failed: {summary}\n{}",
        server.log_text()
    );
    fs::write(&walked, &out.stdout).expect("write zone");
    (walked, summary)
}

/// `dnssec-verify -z` (the CSK is a SEP key); returns (passed, output).
fn dnssec_verify(file: &Path) -> (bool, String) {
    let result = Command::new("dnssec-verify")
        .args(["-z", "-o", APEX])
        .arg(file)
        .output()
        .expect("dnssec-verify runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    (
        result.status.success() && text.contains("Zone fully signed"),
        text,
    )
}

#[test]
fn signals_validate_through_a_local_chain_of_trust() {
    if !tools(chain::TOOLS) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let children = root.join("children");
    fs::create_dir_all(&children).expect("mkdir");
    for child in ["example.com", "example.co.uk"] {
        signzone::keygen(&children, &["-f", "KSK", "-L", "600", child]);
    }
    let key = signal_key(root);
    let port = free_port();
    let config = write_config(root, port);
    let server = Serve::start(&config, SocketAddr::from(([127, 0, 0, 1], port)), APEX);

    let chain = chain::Chain::start(&chain::ChainSpec {
        signaling_apex: APEX.into(),
        signaling_ds: vec![signzone::dsfromkey(&key)],
        signaling_server: server.addr,
    });
    // What `signalbox signals` says must be what validates.
    let (code, stdout, stderr) = output(signalbox().args(["signals", "-c"]).arg(&config));
    assert_eq!(code, 0, "{stderr}");
    let expected = records(&stdout);
    for child in ["example.com", "example.co.uk"] {
        let name = format!("_dsboot.{child}.{APEX}");
        for rtype in ["CDS", "CDNSKEY"] {
            let got = chain.assert_validated(&name, rtype);
            let want: Vec<&String> = expected
                .iter()
                .filter(|l| {
                    l.starts_with(&format!("{name} ")) && l.split(' ').nth(3) == Some(rtype)
                })
                .collect();
            assert_eq!(want.len(), 1, "{stdout}");
            assert_eq!(got.len(), 1, "{got:?}");
            // Type and RDATA, white space removed (delv splits long digests).
            let tail = |l: &str| l.split(' ').skip(3).collect::<String>();
            assert_eq!(
                tail(&got[0]).to_ascii_uppercase(),
                tail(want[0]).to_ascii_uppercase(),
                "{name} {rtype}"
            );
        }
    }
    chain.assert_validated(APEX, "DNSKEY");
    chain.assert_validated(APEX, "SOA");
    // Denial: a name, a type, an empty non-terminal, a name below a signal.
    chain.assert_negative(&format!("nope.{APEX}"), "A");
    chain.assert_negative(&format!("_dsboot.example.com.{APEX}"), "TXT");
    chain.assert_negative(&format!("com.{APEX}"), "CDS");
    chain.assert_negative(&format!("example.co.uk.{APEX}"), "CDS");
    chain.assert_negative(&format!("x._dsboot.example.com.{APEX}"), "CDS");
    // The signalling NS in another zone gets no record here.
    chain.assert_negative("_dsboot.example.com._signal.ns2.elsewhere.test.", "CDS");

    // Negative control: the same server behind a proxy that corrupts one CDS.
    let proxy = proxy::CorruptingProxy::start(
        server.addr,
        &format!("_dsboot.example.com.{APEX}"),
        proxy::CDS,
    );
    let bad = chain::Chain::start(&chain::ChainSpec {
        signaling_apex: APEX.into(),
        signaling_ds: vec![signzone::dsfromkey(&key)],
        signaling_server: proxy.addr(),
    });
    bad.assert_failed(&format!("_dsboot.example.com.{APEX}"), "CDS");
    bad.assert_validated(&format!("_dsboot.example.co.uk.{APEX}"), "CDS");
    assert!(proxy.corrupted() > 0);
}

/// 10k children with made-up KSKs: `.key` files written directly.
pub(crate) fn many_children(dir: &Path, count: usize) {
    fs::create_dir_all(dir).expect("mkdir");
    for i in 0..count {
        let mut key = dnskey(257, 13, (i % 251) as u8);
        key.public_key[..4].copy_from_slice(&(i as u32).to_be_bytes());
        write_key(dir, &format!("child{i}.example."), &key, &[]);
    }
}

/// A root with `count` children's keys, the signalling zone's key and a
/// config serving them on a free loopback port.
struct Setup {
    tmp: tempfile::TempDir,
    config: std::path::PathBuf,
    addr: SocketAddr,
}

fn setup(count: usize) -> Setup {
    let tmp = tempfile::tempdir().expect("tmp");
    many_children(&tmp.path().join("children"), count);
    signal_key(tmp.path());
    let port = free_port();
    let config = write_config(tmp.path(), port);
    Setup {
        tmp,
        config,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

#[test]
fn walked_zone_with_10k_children_passes_dnssec_verify() {
    let _cpu = process::cpu_heavy();
    if !tools(&["dnssec-keygen", "dnssec-verify", "dig", "/usr/bin/python3"]) {
        return;
    }
    let setup = setup(10_000);
    let (root, port) = (setup.tmp.path(), setup.addr.port());
    let server = Serve::start(&setup.config, setup.addr, APEX);

    // Walk the NSEC chain and dump every RRset as served.
    let (walked, summary) = walk(root, port, &server);
    assert!(summary.contains("walked 10001 names"), "{summary}");
    let (ok, text) = dnssec_verify(&walked);
    assert!(ok, "{text}");

    // Negative control: one flipped signature octet fails verification.
    let zone = fs::read_to_string(&walked).expect("read");
    let line = zone
        .lines()
        .position(|l| l.contains("RRSIG CDS"))
        .expect("an RRSIG over a CDS");
    let mut lines: Vec<String> = zone.lines().map(str::to_string).collect();
    let sig = lines[line].clone();
    let last = sig
        .rfind(|c: char| c.is_ascii_alphanumeric())
        .expect("base64");
    let flipped = if &sig[last..=last] == "A" { "B" } else { "A" };
    lines[line] = format!("{}{}{}", &sig[..last], flipped, &sig[last + 1..]);
    let bad = root.join("bad.zone");
    fs::write(&bad, lines.join("\n")).expect("write");
    assert!(
        !dnssec_verify(&bad).0,
        "a corrupted RRSIG must fail dnssec-verify"
    );
}

#[test]
fn every_signing_algorithm_passes_dnssec_verify() {
    let _cpu = process::cpu_heavy();
    if !tools(&["dnssec-keygen", "dnssec-verify", "dig", "/usr/bin/python3"]) {
        return;
    }
    for (alg, extra) in [
        ("RSASHA256", &["-b", "2048"][..]),
        ("ECDSAP256SHA256", &[][..]),
        ("ECDSAP384SHA384", &[][..]),
        ("ED25519", &[][..]),
    ] {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path();
        many_children(&root.join("children"), 5);
        let dir = root.join("signal");
        fs::create_dir_all(&dir).expect("mkdir");
        // A KSK and a ZSK this time, both made by dnssec-keygen.
        for role in [&["-f", "KSK"][..], &[][..]] {
            let out = Command::new("dnssec-keygen")
                .args(["-q", "-K"])
                .arg(&dir)
                .args(["-a", alg])
                .args(extra)
                .args(role)
                .arg(APEX.trim_end_matches('.'))
                .output()
                .expect("dnssec-keygen");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = free_port();
        let config = write_config(root, port);
        let server = Serve::start(&config, SocketAddr::from(([127, 0, 0, 1], port)), APEX);
        let (walked, _) = walk(root, port, &server);
        let result = Command::new("dnssec-verify")
            .args(["-o", APEX])
            .arg(&walked)
            .output()
            .expect("dnssec-verify runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
        assert!(
            result.status.success()
                && text.contains("KSKs: 1 active")
                && text.contains("ZSKs: 1 active"),
            "{alg}: {text}"
        );
    }
}

#[test]
fn restart_serves_the_same_signals_with_a_higher_serial() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let setup = setup(3);
    let (config, addr) = (&setup.config, setup.addr);
    let name = format!("_dsboot.child1.example.{APEX}");
    let mut server = Serve::start(config, addr, APEX);
    let first = serial(addr, APEX).expect("serial");
    let cds = query(addr, &name, 59, false).expect("answer").answers;
    assert_eq!(cds.len(), 1);
    server.kill();
    let _server = Serve::start(config, addr, APEX);
    let second = serial(addr, APEX).expect("serial");
    assert!(second > first, "{second} after {first}");
    assert_eq!(query(addr, &name, 59, false).expect("answer").answers, cds);
}

/// A tiny deterministic PRNG (xorshift) for garbage.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn malformed_input_is_answered_or_dropped_never_a_crash() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let setup = setup(3);
    let addr = setup.addr;
    let mut server = Serve::start(&setup.config, addr, APEX);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut rng = Rng(0x5eed_cafe);

    // Random packets of every size, truncated valid queries, bit flips.
    for len in (0..600).chain([1232, 4096, 65_000]) {
        let _ = socket.send_to(&rng.bytes(len), addr);
    }
    let valid = query_bytes(&format!("_dsboot.child1.example.{APEX}"), 59, true);
    for cut in 0..valid.len() {
        let _ = socket.send_to(&valid[..cut], addr);
    }
    for _ in 0..2000 {
        let mut flipped = valid.clone();
        let at = (rng.next() as usize) % flipped.len();
        flipped[at] ^= 1 << (rng.next() % 8);
        let _ = socket.send_to(&flipped, addr);
    }
    // Oversized names, long labels, a compression loop, four OPT records.
    let mut long = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for _ in 0..8 {
        long.push(63);
        long.extend_from_slice(&[b'x'; 63]);
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert_eq!(
        query_raw(addr, &long).map(|r| r[3] & 0x0f),
        Some(1),
        "FORMERR for a 513-octet name"
    );
    let looped = [0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
    assert_eq!(query_raw(addr, &looped).map(|r| r[3] & 0x0f), Some(1));
    let mut opts = valid.clone();
    opts[11] = 4;
    for _ in 0..3 {
        opts.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    assert_eq!(query_raw(addr, &opts).map(|r| r[3] & 0x0f), Some(1));

    // TCP: garbage, a length longer than the data, a connection closed mid-message,
    // and pipelined queries on one connection.
    for junk in [rng.bytes(100), vec![0xff, 0xff, 1, 2, 3], vec![0, 5, 1]] {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let _ = stream.write_all(&junk);
        }
    }
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    for _ in 0..3 {
        stream
            .write_all(&(valid.len() as u16).to_be_bytes())
            .expect("write");
        stream.write_all(&valid).expect("write");
    }
    for _ in 0..3 {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).expect("length");
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer).expect("answer");
        let m = hickory_proto::op::Message::from_vec(&answer).expect("parses");
        assert_eq!(m.answers.len(), 2, "CDS + RRSIG over TCP");
    }

    std::thread::sleep(Duration::from_millis(200));
    assert!(server.alive(), "crashed:\n{}", server.log_text());
    let m =
        query(addr, &format!("_dsboot.child1.example.{APEX}"), 59, true).expect("still answers");
    assert_eq!(m.answers.len(), 2);
}

/// A burst from several sockets at once: the UDP threads take many
/// datagrams per system call (recvmmsg) and answer them in one (sendmmsg);
/// every query must come back once, to the socket that asked, with its own
/// ID and the right answer.
#[test]
fn a_burst_from_many_clients_is_answered_in_full_and_to_each_sender() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let setup = setup(20);
    let addr = setup.addr;
    let _server = Serve::start(&setup.config, addr, APEX);

    const CLIENTS: usize = 4;
    const EACH: u16 = 100;
    let sockets: Vec<std::net::UdpSocket> = (0..CLIENTS)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    // Interleaved: every socket sends its whole burst before anyone reads.
    for id in 0..EACH {
        for (c, socket) in sockets.iter().enumerate() {
            let child = usize::from(id) % 25; // 20 exist, 5 do not
            let mut q = query_bytes(&format!("_dsboot.child{child}.example.{APEX}"), 59, true);
            let tag = (c as u16) << 12 | id;
            q[..2].copy_from_slice(&tag.to_be_bytes());
            socket.send_to(&q, addr).expect("send");
        }
    }
    for (c, socket) in sockets.iter().enumerate() {
        socket
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut seen = vec![false; usize::from(EACH)];
        let mut buf = [0u8; 4096];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            assert_eq!(from, addr);
            let m = hickory_proto::op::Message::from_vec(&buf[..len]).expect("parses");
            let tag = m.metadata.id;
            assert_eq!(usize::from(tag >> 12), c, "answer for another socket");
            let id = tag & 0x0fff;
            assert!(!seen[usize::from(id)], "answered twice: {id}");
            seen[usize::from(id)] = true;
            let child = usize::from(id) % 25;
            let qname = m.queries[0].name().to_ascii();
            assert_eq!(qname, format!("_dsboot.child{child}.example.{APEX}"));
            if child < 20 {
                assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{qname}");
                assert_eq!(m.answers.len(), 2, "CDS + RRSIG for {qname}");
            } else {
                assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{qname}");
            }
            if seen.iter().all(|s| *s) {
                break;
            }
        }
        let missing = seen.iter().filter(|s| !**s).count();
        assert_eq!(missing, 0, "socket {c}: {missing} of {EACH} unanswered");
    }
}

#[test]
fn a_zone_without_a_private_key_is_not_served_and_says_why() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    many_children(&root.join("children"), 2);
    let key = signal_key(root);
    fs::remove_file(key.with_extension("private")).expect("remove .private");
    let port = free_port();
    let config = write_config(root, port);
    let log = config.with_extension("log");
    let mut child = signalbox()
        .args(["serve", "-c"])
        .arg(&config)
        .stderr(fs::File::create(&log).expect("log"))
        .spawn()
        .expect("starts");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut rcode = None;
    for _ in 0..100 {
        if let Some(m) = query(addr, APEX, 6, false) {
            rcode = Some(m.metadata.response_code);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = fs::read_to_string(&log).expect("log");
    assert_eq!(
        rcode,
        Some(hickory_proto::op::ResponseCode::ServFail),
        "{text}"
    );
    assert!(
        text.contains("cannot sign") && text.contains("no .private file"),
        "{text}"
    );
}

#[test]
fn tcp_connections_are_capped_and_closed_when_idle() {
    let _alone = process::timing_sensitive();
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    many_children(&root.join("children"), 1);
    signal_key(root);
    let port = free_port();
    let config = write_config_with(
        root,
        port,
        "tcp_idle_timeout = \"1s\"\ntcp_max_connections = 2",
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let _server = Serve::start(&config, addr, APEX);
    // Closed by the server within `within`: end of stream or a reset, not a timeout.
    let closed = |stream: &mut TcpStream, within: Duration| -> bool {
        stream.set_read_timeout(Some(within)).expect("timeout");
        match stream.read(&mut [0u8; 1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    };
    let mut first = TcpStream::connect(addr).expect("connect");
    let mut second = TcpStream::connect(addr).expect("connect");
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(addr).expect("connect");
    assert!(
        closed(&mut third, Duration::from_millis(500)),
        "over the limit: closed at once"
    );
    // The two within the limit are closed once idle for 1 s.
    assert!(closed(&mut first, Duration::from_secs(3)));
    assert!(closed(&mut second, Duration::from_secs(3)));
    // And a new one works.
    let mut stream = TcpStream::connect(addr).expect("connect");
    let q = query_bytes(APEX, 6, false);
    stream
        .write_all(&(q.len() as u16).to_be_bytes())
        .expect("write");
    stream.write_all(&q).expect("write");
    let mut len = [0u8; 2];
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    stream.read_exact(&mut len).expect("an answer");
}
