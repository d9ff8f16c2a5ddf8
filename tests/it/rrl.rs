//! Response rate limiting (issue 13 item 3) against a real `signalbox
//! serve`: signed DNSKEY answers are many times their query's size, so a
//! burst from one source prefix beyond `rate` is dropped except every
//! `slip`-th answer, sent as a TC=1 reply without records (NSD's and Knot's
//! RRL); a source in another /24 is answered in full meanwhile; an exempt
//! source is never limited; `enabled = false` answers everything; `status`
//! shows what was done. Clients bind 127.0.x.y source addresses (loopback
//! takes any 127/8 source) so prefixes are told apart.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    time::Duration,
};

use hickory_proto::op::Message;

use crate::common::{
    output,
    process::{self, free_port},
    serve::{Serve, query_bytes},
    signalbox, tools,
};
use crate::serve::signal_key;

const APEX: &str = "_signal.ns1.operator.test.";
const DNSKEY: u16 = 48;

/// A server of its own (timing lock, directory, process) with `rrl` as
/// the body of `[server.rrl]`.
struct Limited {
    _alone: std::sync::RwLockWriteGuard<'static, ()>,
    _tmp: tempfile::TempDir,
    config: PathBuf,
    serve: Serve,
}

fn limited(rrl: &str) -> Option<Limited> {
    let alone = process::timing_sensitive();
    if !tools(&["dnssec-keygen"]) {
        return None;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    signal_key(root);
    fs::create_dir_all(root.join("children")).expect("mkdir");
    let port = free_port();
    let config = write_config(root, port, rrl);
    let serve = Serve::start(&config, SocketAddr::from(([127, 0, 0, 1], port)), APEX);
    Some(Limited {
        _alone: alone,
        _tmp: tmp,
        config,
        serve,
    })
}

fn write_config(root: &Path, port: u16, rrl: &str) -> PathBuf {
    let path = root.join("signalbox.toml");
    fs::write(
        &path,
        format!(
            r#"version = 1
[[zones]]
keys = "children"
nameservers = ["ns1.operator.test."]

[[signaling_zone]]
apex = "{APEX}"
keys = "signal"
nameservers = ["ns1.operator.test."]

[server]
listen = ["127.0.0.1:{port}"]
udp_threads = 2

[server.rrl]
{rrl}

[state]
dir = "state"
"#
        ),
    )
    .expect("write config");
    path
}

/// What came back for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    /// A full answer with this many answer records.
    Full(usize),
    /// A TC=1 reply without records (a slip).
    Truncated,
}

fn parse(buf: &[u8]) -> Option<Got> {
    let m = Message::from_vec(buf).ok()?;
    Some(if m.metadata.truncation {
        assert!(
            m.answers.is_empty() && m.authorities.is_empty(),
            "a slipped reply carries no records: {m:?}"
        );
        Got::Truncated
    } else {
        Got::Full(m.answers.len())
    })
}

fn client(from: Ipv4Addr) -> UdpSocket {
    let socket = UdpSocket::bind((from, 0)).expect("bind client");
    socket
        .set_read_timeout(Some(Duration::from_millis(400)))
        .expect("timeout");
    socket
}

/// `n` DNSKEY queries from `from`, one at a time, each waiting for its
/// answer (no retry): what came back, `None` for nothing.
fn one_by_one(from: Ipv4Addr, server: SocketAddr, n: usize) -> Vec<Option<Got>> {
    let socket = client(from);
    let packet = query_bytes(APEX, DNSKEY, true);
    let mut buf = [0u8; 65_535];
    (0..n)
        .map(|_| {
            socket.send_to(&packet, server).expect("send");
            socket
                .recv_from(&mut buf)
                .ok()
                .and_then(|(len, _)| parse(&buf[..len]))
        })
        .collect()
}

/// `n` DNSKEY queries from `from` sent at once, while another thread
/// reads every reply (so the client's receive buffer never overflows)
/// until the server has been quiet for 400 ms.
fn burst(from: Ipv4Addr, server: SocketAddr, n: usize) -> Vec<Got> {
    let socket = client(from);
    let reader = socket.try_clone().expect("clone");
    let replies = std::thread::spawn(move || {
        let mut buf = [0u8; 65_535];
        let mut got = Vec::new();
        while let Ok((len, _)) = reader.recv_from(&mut buf) {
            got.extend(parse(&buf[..len]));
        }
        got
    });
    let packet = query_bytes(APEX, DNSKEY, true);
    for _ in 0..n {
        socket.send_to(&packet, server).expect("send");
    }
    replies.join().expect("reader")
}

fn full(got: &[Option<Got>]) -> usize {
    got.iter()
        .filter(|g| matches!(g, Some(Got::Full(n)) if *n > 0))
        .count()
}

fn status(config: &Path) -> String {
    let (code, out, err) = output(signalbox().arg("status").arg("-c").arg(config));
    assert_eq!(code, 0, "{out}{err}");
    out
}

/// The number before `what` on the `rrl:` line of `status`.
fn counted(status: &str, what: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with("rrl: on"))
        .unwrap_or_else(|| panic!("no rrl line in status:\n{status}"));
    line.split(", ")
        .chain(line.split(": "))
        .find_map(|part| {
            part.strip_suffix(what)?
                .trim()
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {what:?} count in {line:?}"))
}

#[test]
fn a_burst_beyond_the_rate_is_dropped_and_slipped_while_another_prefix_is_answered() {
    let Some(server) = limited("rate = 10\nslip = 2") else {
        return;
    };
    let addr = server.serve.addr;
    let flooder = Ipv4Addr::new(127, 0, 0, 1);
    let got = burst(flooder, addr, 100);
    let answered = got
        .iter()
        .filter(|g| matches!(g, Got::Full(n) if *n > 0))
        .count();
    let slipped = got.iter().filter(|g| **g == Got::Truncated).count();
    let limited = 100 - answered;
    eprintln!("burst of 100: {answered} answered, {slipped} TC=1, {limited} limited");
    // The burst is `rate` (10), plus what refills while it is sent.
    assert!(
        (10..=15).contains(&answered),
        "{answered}/100 answered in a burst at rate 10\n{}",
        server.serve.log_text()
    );
    // Every second limited answer slips (one socket: one UDP thread).
    assert!(
        slipped.abs_diff(limited / 2) <= 1,
        "{slipped} TC=1 replies for {limited} limited answers at slip 2"
    );

    // Meanwhile, another /24 is answered in full, and the limited /24 is
    // still limited.
    let other = one_by_one(Ipv4Addr::new(127, 0, 1, 1), addr, 8);
    assert_eq!(full(&other), 8, "another prefix: {other:?}");
    let again = burst(flooder, addr, 40);
    assert!(
        again.iter().filter(|g| matches!(g, Got::Full(_))).count() <= 15,
        "the limited prefix stays limited: {again:?}"
    );

    let text = status(&server.config);
    let (dropped, tc) = (counted(&text, "dropped"), counted(&text, "slipped (TC=1)"));
    let slipped_again = again.iter().filter(|g| **g == Got::Truncated).count();
    assert_eq!(
        tc as usize,
        slipped + slipped_again,
        "status counts every TC=1 reply sent:\n{text}"
    );
    assert!(dropped >= (limited - slipped) as u64, "{text}");
    assert!(
        server
            .serve
            .log_text()
            .contains("response rate limiting started"),
        "limiting is logged:\n{}",
        server.serve.log_text()
    );
}

#[test]
fn an_exempt_source_is_never_limited() {
    let Some(server) = limited("rate = 5\nexempt = [\"127.0.0.0/24\", \"::1\"]") else {
        return;
    };
    let addr = server.serve.addr;
    let exempt = one_by_one(Ipv4Addr::new(127, 0, 0, 1), addr, 60);
    assert_eq!(full(&exempt), 60, "exempt source: {exempt:?}");
    // Not exempt, same rate: limited (sent at once: one by one, the
    // timeouts of the dropped ones would let the bucket refill).
    let other = burst(Ipv4Addr::new(127, 0, 2, 1), addr, 60);
    let answered = other.iter().filter(|g| matches!(g, Got::Full(_))).count();
    assert!(answered <= 10, "a source not exempt: {other:?}");
    let text = status(&server.config);
    assert!(counted(&text, "exempt") >= 60, "{text}");
}

#[test]
fn rrl_disabled_answers_everything() {
    let Some(server) = limited("enabled = false\nrate = 5") else {
        return;
    };
    let got = one_by_one(Ipv4Addr::new(127, 0, 0, 1), server.serve.addr, 60);
    assert_eq!(full(&got), 60, "{got:?}");
    let text = status(&server.config);
    assert!(text.contains("rrl: off"), "{text}");
}

#[test]
fn rrl_is_on_by_default_at_200_per_second() {
    let Some(server) = limited("") else {
        return;
    };
    let text = status(&server.config);
    assert!(
        text.contains("rrl: on, 200 answers/s per /24 (IPv4) or /56 (IPv6)")
            && text.contains("slip 2"),
        "{text}"
    );
    let got = burst(Ipv4Addr::new(127, 0, 3, 1), server.serve.addr, 400);
    let answered = got.iter().filter(|g| matches!(g, Got::Full(_))).count();
    // The client may miss replies in a burst; the server's counts do not.
    let text = status(&server.config);
    let limited = counted(&text, "dropped") + counted(&text, "slipped (TC=1)");
    assert!(
        (140..=200).contains(&limited) && answered <= 260,
        "400 at once at the default rate: {limited} limited, {answered} answered\n{text}"
    );
}
