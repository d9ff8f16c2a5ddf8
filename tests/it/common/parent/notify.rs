//! [`NotifyReceiver`]: a NOTIFY target written in Rust (UDP and TCP on one
//! port, any 127.x.y.z address) that records every message and answers per
//! [`ReceiverMode`]: the parent side of generalized NOTIFY (RFC 9859
//! section 3, NOTIFY itself RFC 1996 section 4).

use std::{
    io::{self, Read},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use super::{OPCODE_NOTIFY, zonefile::name_wire};
use crate::common::{
    process,
    wire::{read_name, write_tcp_message},
};

/// How a [`NotifyReceiver`] answers. Every message is recorded whatever the
/// mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverMode {
    /// NOERROR over UDP and TCP.
    Answer,
    /// REFUSED over UDP and TCP.
    Refuse,
    /// Never answers (TCP connections are accepted, read and left open).
    Silent,
    /// Ignores UDP, answers NOERROR over TCP.
    TcpOnly,
}

/// One message a [`NotifyReceiver`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `"udp"` or `"tcp"`.
    pub transport: &'static str,
    pub from: SocketAddr,
    pub id: u16,
    pub opcode: u8,
    pub qr: bool,
    pub aa: bool,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    /// The first question's name, lower-case with a final dot; empty when
    /// there is none or it does not parse.
    pub qname: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The whole message as received (no TCP length prefix).
    pub raw: Vec<u8>,
}

impl Received {
    fn parse(transport: &'static str, from: SocketAddr, raw: &[u8]) -> Received {
        let u16_at = |at: usize| -> u16 {
            match (raw.get(at), raw.get(at + 1)) {
                (Some(a), Some(b)) => u16::from_be_bytes([*a, *b]),
                _ => 0,
            }
        };
        let flags = u16_at(2);
        let mut r = Received {
            transport,
            from,
            id: u16_at(0),
            opcode: ((flags >> 11) & 0xf) as u8,
            qr: flags & 0x8000 != 0,
            aa: flags & 0x0400 != 0,
            qdcount: u16_at(4),
            ancount: u16_at(6),
            nscount: u16_at(8),
            arcount: u16_at(10),
            qname: String::new(),
            qtype: 0,
            qclass: 0,
            raw: raw.to_vec(),
        };
        if let Some((name, end)) = read_name(raw, 12).filter(|_| r.qdcount > 0) {
            if end + 4 <= raw.len() {
                r.qname = name;
                r.qtype = u16_at(end);
                r.qclass = u16_at(end + 2);
            }
        }
        r
    }
}

/// The response to `query`: same ID and opcode, QR and AA set, the question
/// echoed (only when there is exactly one that parses; otherwise none, and
/// FORMERR), RCODE `rcode`. None for messages shorter than a header.
pub fn notify_reply(query: &[u8], rcode: u8) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let opcode = (query[2] >> 3) & 0xf;
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    let question_end = (qdcount == 1)
        .then(|| read_name(query, 12))
        .flatten()
        .map(|(_, end)| end + 4)
        .filter(|&end| end <= query.len());
    let (rcode, question) = match question_end {
        Some(end) => (rcode, &query[12..end]),
        None => (1, &query[12..12]),
    };
    let mut reply = Vec::with_capacity(12 + question.len());
    reply.extend_from_slice(&query[..2]);
    reply.push(0x80 | (opcode << 3) | 0x04);
    reply.push(rcode & 0xf);
    reply.extend_from_slice(&u16::from(!question.is_empty()).to_be_bytes());
    reply.extend_from_slice(&[0; 6]);
    reply.extend_from_slice(question);
    Some(reply)
}

/// A NOTIFY message (RFC 1996, RFC 9859 §4.2): opcode NOTIFY, AA set, one
/// question `qname`/`qtype`/IN, nothing else. For tests that send by hand.
pub fn notify_message(id: u16, qname: &str, qtype: u16) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.extend_from_slice(&id.to_be_bytes());
    msg.push((OPCODE_NOTIFY << 3) | 0x04);
    msg.push(0);
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    msg.extend_from_slice(&name_wire(qname).unwrap_or_else(|e| panic!("{e}")));
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&1u16.to_be_bytes());
    msg
}

struct Shared {
    mode: Mutex<ReceiverMode>,
    received: Mutex<Vec<Received>>,
    arrived: Condvar,
    stop: AtomicBool,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn mode(&self) -> ReceiverMode {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, r: Received) {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r);
        self.arrived.notify_all();
    }
}

/// A NOTIFY target for tests: UDP and TCP on one port of a loopback address,
/// every message recorded, answers per [`ReceiverMode`] (changeable while
/// running). Threads stop on drop.
pub struct NotifyReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl NotifyReceiver {
    /// Listens on a fresh high port of `ip` (any 127.x.y.z works on Linux
    /// without configuration), UDP and TCP.
    pub fn start(ip: Ipv4Addr, mode: ReceiverMode) -> NotifyReceiver {
        let (udp, tcp) = process::bind_udp_tcp(ip, "a NOTIFY receiver");
        let addr = udp.local_addr().expect("receiver address");
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            received: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            stop: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });

        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set timeout");
        let udp_thread = {
            let shared = shared.clone();
            thread::spawn(move || {
                let mut buf = vec![0u8; 65535];
                while !shared.stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    let msg = &buf[..len];
                    shared.record(Received::parse("udp", from, msg));
                    let rcode = match shared.mode() {
                        ReceiverMode::Answer => 0,
                        ReceiverMode::Refuse => 5,
                        ReceiverMode::Silent | ReceiverMode::TcpOnly => continue,
                    };
                    if let Some(reply) = notify_reply(msg, rcode) {
                        let _ = udp.send_to(&reply, from);
                    }
                }
            })
        };

        tcp.set_nonblocking(true).expect("nonblocking listener");
        let tcp_thread = {
            let shared = shared.clone();
            thread::spawn(move || {
                while !shared.stop.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        Ok((stream, from)) => {
                            let conn = shared.clone();
                            let handle = thread::spawn(move || {
                                let _ = serve_connection(stream, from, &conn);
                            });
                            shared
                                .connections
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(handle);
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };

        NotifyReceiver {
            addr,
            shared,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes how later messages are answered.
    pub fn set_mode(&self, mode: ReceiverMode) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until at least `count` messages arrived or `within` passed;
    /// returns everything received by then.
    pub fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        let mut received = self
            .shared
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while received.len() < count {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            received = self
                .shared
                .arrived
                .wait_timeout(received, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        received.clone()
    }
}

impl Drop for NotifyReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let connections: Vec<JoinHandle<()>> = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for t in connections {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for NotifyReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyReceiver")
            .field("addr", &self.addr)
            .field("mode", &self.shared.mode())
            .finish()
    }
}

/// Reads length-prefixed messages until the peer closes or the receiver
/// stops, answering each per the mode at its arrival.
fn serve_connection(mut stream: TcpStream, from: SocketAddr, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    while !shared.stop.load(Ordering::Relaxed) {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        }
        while buf.len() >= 2 {
            let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
            if buf.len() < 2 + len {
                break;
            }
            let msg: Vec<u8> = buf.drain(..2 + len).skip(2).collect();
            shared.record(Received::parse("tcp", from, &msg));
            let rcode = match shared.mode() {
                ReceiverMode::Answer | ReceiverMode::TcpOnly => 0,
                ReceiverMode::Refuse => 5,
                ReceiverMode::Silent => continue,
            };
            if let Some(reply) = notify_reply(&msg, rcode) {
                write_tcp_message(&mut stream, &reply)?;
            }
        }
    }
    Ok(())
}
