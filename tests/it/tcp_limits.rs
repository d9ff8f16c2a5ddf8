//! The `[server]` TCP limits against a real `signalbox serve` (RFC 7766
//! §6.2.3, §10): stalled clients that pipeline queries and never read their
//! answers, one source opening many connections, queries per connection,
//! connection lifetime, a half-sent query, and a long transfer to a slow but
//! steady reader. Clients bind 127.0.0.x source addresses before connecting,
//! so the per-source and the global limits are told apart.

use std::{
    io::{ErrorKind, Read, Write},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol, Socket, Type};

use crate::common::{
    process::{self, free_port, run},
    serve::{Serve, operator_config, query_bytes},
    tools,
};
use crate::serve::{many_children, signal_key};

const APEX: &str = "_signal.ns1.operator.test.";
const DNSKEY: u16 = 48;

/// A `signalbox serve` of its own for one test: the timing lock (these
/// tests measure how soon the server closes), the directory, the server.
struct Limited {
    _alone: std::sync::RwLockWriteGuard<'static, ()>,
    _tmp: tempfile::TempDir,
    serve: Serve,
}

/// Serves a signalling zone for `children` children, transfers allowed to
/// 127.0.0.1, with `server_extra` lines in `[server]`; `None` when one of
/// `needed` (besides dnssec-keygen) is missing.
fn limited(needed: &[&str], children: usize, server_extra: &str) -> Option<Limited> {
    let alone = process::timing_sensitive();
    if !tools(&[&["dnssec-keygen"], needed].concat()) {
        return None;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let serve = start(tmp.path(), children, server_extra);
    Some(Limited {
        _alone: alone,
        _tmp: tmp,
        serve,
    })
}

impl Limited {
    /// A client connection from 127.0.0.1.
    fn client(&self) -> TcpStream {
        connect_from(loopback(1), self.serve.addr).expect("connect")
    }
}

fn start(root: &Path, children: usize, server_extra: &str) -> Serve {
    many_children(&root.join("children"), children);
    signal_key(root);
    let port = free_port();
    let config = operator_config(
        root,
        port,
        "allow_transfer = [\"127.0.0.1\"]",
        &format!("udp_threads = 1\n{server_extra}"),
        "",
    );
    Serve::start(&config, SocketAddr::from(([127, 0, 0, 1], port)), APEX)
}

/// A TCP connection from `source` with small socket buffers and segments
/// (so a client that does not read stalls the server's writes after a few
/// hundred answers).
fn connect_from(source: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_recv_buffer_size(4096)?;
    socket.set_send_buffer_size(4096)?;
    // A small MSS keeps the server's send buffer small too: Linux sizes it
    // from the congestion window in segments, and loopback segments are 64 kB.
    socket.set_tcp_mss(536)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(source, 0)).into())?;
    socket.connect_timeout(&server.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// `count` copies of a framed query.
fn pipelined(name: &str, qtype: u16, dnssec: bool, count: usize) -> Vec<u8> {
    let query = query_bytes(name, qtype, dnssec);
    let mut out = Vec::new();
    for _ in 0..count {
        out.extend_from_slice(&(query.len() as u16).to_be_bytes());
        out.extend_from_slice(&query);
    }
    out
}

/// A client from `source` that pipelines DNSKEY queries with DO and never
/// reads: it writes until the server stops reading (its writes would block
/// for 100 ms on end), so the server is stuck writing answers. `None` when
/// the server refused or closed the connection.
fn stalled_client(source: Ipv4Addr, server: SocketAddr) -> Option<TcpStream> {
    let mut stream = connect_from(source, server).ok()?;
    stream.set_nonblocking(true).ok()?;
    let burst = pipelined(APEX, DNSKEY, true, 64);
    let (mut blocked, mut at) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(3);
    while blocked < 5 && Instant::now() < deadline {
        match stream.write(&burst[at..]) {
            Ok(n) => {
                at = (at + n) % burst.len();
                blocked = 0;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                blocked += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => return None,
        }
    }
    Some(stream)
}

/// One framed query over a new connection from `source`; the answer's
/// length, or `None` if the server closed the connection without one.
fn tcp_answer(source: Ipv4Addr, server: SocketAddr) -> Option<usize> {
    let mut stream = connect_from(source, server).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    stream.write_all(&pipelined(APEX, 6, false, 1)).ok()?;
    read_framed(&mut stream).ok()?.map(|answer| answer.len())
}

/// Retries [`tcp_answer`] from `source` until it works or `within` passes;
/// how long it took.
fn answered_within(source: Ipv4Addr, server: SocketAddr, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if tcp_answer(source, server).is_some() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The next framed message; `None` at a clean end of stream before one.
fn read_framed(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    if stream.read(&mut len[..1])? == 0 {
        return Ok(None);
    }
    stream.read_exact(&mut len[1..])?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Reads framed answers until the server closes: (answers, how it ended:
/// `true` for a clean end of stream, `false` for a reset or a timeout).
fn answers_until_closed(stream: &mut TcpStream, within: Duration) -> (usize, bool) {
    stream.set_read_timeout(Some(within)).expect("read timeout");
    let mut answers = 0;
    loop {
        match read_framed(stream) {
            Ok(Some(_)) => answers += 1,
            Ok(None) => return (answers, true),
            Err(_) => return (answers, false),
        }
    }
}

/// Whether the server closed `stream` within `within` (after any answers it
/// had sent): end of stream or a reset, not a timeout.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut sink = [0u8; 65_536];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => return e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::TimedOut,
        }
    }
}

fn loopback(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

#[test]
fn one_source_cannot_take_every_tcp_slot() {
    // A long I/O timeout: the stalled connections stay for the whole test.
    let Some(setup) = limited(
        &[],
        1,
        "tcp_max_connections_per_source = 20\ntcp_io_timeout = \"30s\"",
    ) else {
        return;
    };
    let serve = &setup.serve;
    let attacker = loopback(2);
    let held: Vec<TcpStream> = (0..60)
        .filter_map(|_| stalled_client(attacker, serve.addr))
        .collect();
    assert!(held.len() >= 20, "only {} connections stalled", held.len());
    assert_eq!(
        tcp_answer(attacker, serve.addr),
        None,
        "a 61st connection from the stalling source is closed without an answer"
    );
    let took = answered_within(loopback(3), serve.addr, Duration::from_secs(2))
        .expect("another source is answered while one source stalls its 20 connections");
    eprintln!(
        "stalled connections from one source: {}, another source answered in {took:?}",
        held.len()
    );
}

#[test]
fn stalled_connections_do_not_starve_queries_or_transfers() {
    // The default limits (250 connections, 25 per source) but a longer I/O
    // timeout, so that every stalled client is still held when setup ends.
    let Some(setup) = limited(&["dig"], 300, "tcp_io_timeout = \"10s\"") else {
        return;
    };
    let addr = setup.serve.addr;
    // 14 sources x 25 = 350 stalling clients, more than the 250 slots.
    let started = Instant::now();
    let mut held: Vec<TcpStream> = std::thread::scope(|scope| {
        let sources: Vec<_> = (10..24)
            .map(|source| {
                scope.spawn(move || {
                    (0..25)
                        .filter_map(|_| stalled_client(loopback(source), addr))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        sources
            .into_iter()
            .flat_map(|thread| thread.join().expect("a stalling thread"))
            .collect()
    });
    let setup = started.elapsed();
    assert!(held.len() >= 250, "only {} clients stalled", held.len());
    // Every slot is held: a new client is turned away at first...
    assert_eq!(tcp_answer(loopback(1), addr), None, "all slots taken");
    // (a) ...but answered once the stalled writes hit the I/O timeout...
    let took = answered_within(loopback(1), addr, Duration::from_secs(25)).unwrap_or_else(|| {
        panic!(
            "no TCP answer within 25 s while {} clients stall",
            held.len()
        )
    });
    // (b) ...and an AXFR completes.
    let xfr_started = Instant::now();
    let mut transfer = String::new();
    while xfr_started.elapsed() < Duration::from_secs(15) {
        let (_, out, _) = run(Command::new("dig")
            .args(["+tries=1", "+time=3", "-p", &addr.port().to_string()])
            .args(["@127.0.0.1", APEX, "AXFR"]));
        if out.contains("XFR size") {
            transfer = out;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let size = transfer
        .lines()
        .find(|l| l.contains("XFR size"))
        .unwrap_or_else(|| panic!("no AXFR within 15 s:\n{transfer}"))
        .to_string();
    eprintln!(
        "{} stalling clients set up in {setup:?}; TCP query answered after {took:?}; \
         AXFR done after {:?}: {size}",
        held.len(),
        xfr_started.elapsed()
    );
    // The server closed every stalled connection it had taken.
    for (i, stream) in held.iter_mut().enumerate() {
        assert!(
            closed_by_server(stream, Duration::from_secs(10)),
            "stalled client {i} is still open"
        );
    }
}

#[test]
fn a_connection_is_closed_cleanly_after_its_query_limit() {
    let Some(setup) = limited(&[], 1, "tcp_max_queries = 3") else {
        return;
    };
    let mut stream = setup.client();
    stream
        .write_all(&pipelined(APEX, 6, false, 5))
        .expect("write");
    let (answers, clean) = answers_until_closed(&mut stream, Duration::from_secs(3));
    assert_eq!((answers, clean), (3, true), "3 answers, then end of stream");
}

#[test]
fn a_connection_is_closed_between_messages_at_its_lifetime() {
    let Some(setup) = limited(
        &[],
        1,
        "tcp_max_lifetime = \"2s\"\ntcp_idle_timeout = \"30s\"",
    ) else {
        return;
    };
    let mut stream = setup.client();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let started = Instant::now();
    let mut answered = 0;
    let query = pipelined(APEX, 6, false, 1);
    while started.elapsed() < Duration::from_secs(8) {
        if stream.write_all(&query).is_err() {
            break;
        }
        match read_framed(&mut stream) {
            Ok(Some(_)) => answered += 1,
            _ => break,
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    let age = started.elapsed();
    assert!(answered >= 3, "{answered} answers");
    assert!(
        age >= Duration::from_secs(2) && age < Duration::from_secs(4),
        "closed after {age:?} and {answered} answers"
    );
}

#[test]
fn a_half_sent_query_is_cut_off_by_the_io_timeout() {
    let Some(setup) = limited(
        &[],
        1,
        "tcp_io_timeout = \"1s\"\ntcp_idle_timeout = \"30s\"",
    ) else {
        return;
    };
    let mut stream = setup.client();
    let query = pipelined(APEX, 6, false, 1);
    stream.write_all(&query[..7]).expect("write");
    let started = Instant::now();
    assert!(closed_by_server(&mut stream, Duration::from_secs(5)));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
}

/// The I/O timeout and the lifetime are per message and between messages:
/// a transfer that takes far longer than both, to a reader that keeps
/// reading, completes.
#[test]
fn a_long_transfer_to_a_steady_reader_completes() {
    let Some(setup) = limited(
        &[],
        600,
        "tcp_io_timeout = \"1s\"\ntcp_max_lifetime = \"1s\"",
    ) else {
        return;
    };
    let mut stream = setup.client();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(&pipelined(APEX, 252, false, 1))
        .expect("AXFR query");
    let started = Instant::now();
    let (mut messages, mut soas) = (0, 0);
    while soas < 2 {
        let body = read_framed(&mut stream).ok().flatten().unwrap_or_else(|| {
            panic!(
                "transfer cut after {messages} messages, {:?}",
                started.elapsed()
            )
        });
        let message = hickory_proto::op::Message::from_vec(&body).expect("a DNS message");
        soas += message
            .answers
            .iter()
            .filter(|r| r.record_type() == hickory_proto::rr::RecordType::SOA)
            .count();
        messages += 1;
        // About 16 kB per message: ~80 kB/s, slower than the server writes.
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = started.elapsed();
    assert!(
        took > Duration::from_secs(2),
        "the transfer ({messages} messages) took only {took:?}"
    );
    eprintln!("{messages} transfer messages read in {took:?}");
}
