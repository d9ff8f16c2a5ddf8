//! [`NotifyListener`]: catches the signers' NOTIFYs (RFC 1996 section 4)
//! with their arrival times (Knot 3.2 sends them over TCP, BIND 9.18 over
//! UDP) and answers NOERROR so the signer does not retry.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use super::wait_until;
use crate::common::{
    fqdn,
    process::bind_udp_tcp,
    wire::{read_name, read_tcp_message, write_tcp_message},
};

/// One NOTIFY a [`NotifyListener`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notified {
    /// When it arrived.
    pub at: Instant,
    /// `"udp"` or `"tcp"`.
    pub transport: &'static str,
    pub from: SocketAddr,
    /// The question name, lower-case, fully qualified.
    pub qname: String,
    /// The serial of the SOA in the answer section, when there is one.
    pub serial: Option<u32>,
}

/// A NOTIFY target on a fresh 127.0.0.1 port, UDP and TCP (Knot 3.2 sends
/// NOTIFY over TCP, BIND 9.18 over UDP): records every NOTIFY (opcode 4,
/// QR clear) with its arrival time and answers NOERROR (so the signer does
/// not retry). Stops on drop.
pub struct NotifyListener {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Notified>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl NotifyListener {
    /// Binds and starts listening.
    pub fn start() -> NotifyListener {
        let (udp, tcp) = bind_udp_tcp(Ipv4Addr::LOCALHOST, "the NOTIFY listener");
        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set timeout");
        tcp.set_nonblocking(true).expect("nonblocking listener");
        let addr = udp.local_addr().expect("listener address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let udp_thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = vec![0u8; 65535];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some(reply) = record_notify(&seen, "udp", from, &buf[..len]) {
                        let _ = udp.send_to(&reply, from);
                    }
                }
            })
        };
        let tcp_thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        Ok((stream, from)) => {
                            let seen = seen.clone();
                            thread::spawn(move || serve_tcp(stream, from, &seen));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        NotifyListener {
            addr,
            seen,
            stop,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything received so far, in arrival order.
    pub fn seen(&self) -> Vec<Notified> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits up to `within` for a NOTIFY for `zone` that arrived at or after
    /// `since` and whose serial is at least `serial` (any serial when None,
    /// serial arithmetic otherwise). Returns the first such.
    pub fn wait_for(
        &self,
        zone: &str,
        since: Instant,
        serial: Option<u32>,
        within: Duration,
    ) -> Option<Notified> {
        let zone = fqdn(zone);
        wait_until(within, || {
            self.seen().into_iter().find(|n| {
                n.qname == zone
                    && n.at >= since
                    && match (serial, n.serial) {
                        (None, _) => true,
                        (Some(want), Some(got)) => {
                            got == want || (got.wrapping_sub(want) as i32) > 0
                        }
                        (Some(_), None) => false,
                    }
            })
        })
    }
}

impl Drop for NotifyListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Records `msg` if it is a NOTIFY; returns the reply to send.
fn record_notify(
    seen: &Mutex<Vec<Notified>>,
    transport: &'static str,
    from: SocketAddr,
    msg: &[u8],
) -> Option<Vec<u8>> {
    let at = Instant::now();
    let (qname, serial, reply) = parse_notify(msg)?;
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Notified {
            at,
            transport,
            from,
            qname,
            serial,
        });
    Some(reply)
}

/// One TCP connection: length-prefixed messages until EOF or 10 s idle.
fn serve_tcp(mut stream: TcpStream, from: SocketAddr, seen: &Mutex<Vec<Notified>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    while let Ok(Some(msg)) = read_tcp_message(&mut stream) {
        if let Some(reply) = record_notify(seen, "tcp", from, &msg) {
            if write_tcp_message(&mut stream, &reply).is_err() {
                return;
            }
        }
    }
}

/// For a NOTIFY query: (qname, SOA serial if present, NOERROR reply).
fn parse_notify(msg: &[u8]) -> Option<(String, Option<u32>, Vec<u8>)> {
    if msg.len() < 12 || msg[2] & 0x80 != 0 || (msg[2] >> 3) & 0xf != 4 {
        return None;
    }
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    let ancount = u16::from_be_bytes([msg[6], msg[7]]);
    if qdcount != 1 {
        return None;
    }
    let (qname, end) = read_name(msg, 12)?;
    let question_end = end + 4;
    if question_end > msg.len() {
        return None;
    }
    let mut serial = None;
    let mut pos = question_end;
    for _ in 0..ancount {
        let (_, name_end) = read_name(msg, pos)?;
        let rtype = u16::from_be_bytes([*msg.get(name_end)?, *msg.get(name_end + 1)?]);
        let rdlen = u16::from_be_bytes([*msg.get(name_end + 8)?, *msg.get(name_end + 9)?]) as usize;
        let rdata = name_end + 10;
        if rtype == 6 {
            let (_, after_mname) = read_name(msg, rdata)?;
            let (_, after_rname) = read_name(msg, after_mname)?;
            let s = msg.get(after_rname..after_rname + 4)?;
            serial = Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
        }
        pos = rdata + rdlen;
    }
    let mut reply = Vec::with_capacity(question_end);
    reply.extend_from_slice(&msg[..2]);
    reply.push(0x80 | (4 << 3) | 0x04);
    reply.push(0);
    reply.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    reply.extend_from_slice(&msg[12..question_end]);
    Some((qname, serial, reply))
}
