//! [`CorruptingProxy`]: the negative control of the validation tests. It
//! sits between Unbound and a signaling server and flips a byte of one record
//! type's RDATA, so a "validated" verdict is shown to mean something (a
//! damaged RRset must fail RFC 4035 section 5.3 signature checks).

use super::{
    fqdn,
    process::bind_udp_tcp,
    wire::{read_name, read_tcp_message, write_tcp_message},
};
use std::{
    fmt,
    io::{self},
    net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

/// The CDS record type number (RFC 7344 section 3.1), for
/// [`CorruptingProxy::start`].
pub const CDS: u16 = 59;

/// A UDP+TCP DNS forwarder that damages one RRset: in responses to queries
/// whose QNAME equals `victim` (case-insensitively) and whose QTYPE is
/// `rtype`, the last RDATA byte of the first answer record of type `rtype`
/// (not its RRSIG) is inverted. Everything else passes unchanged. Each query
/// is forwarded on a fresh upstream socket/connection. Stops on drop.
pub struct CorruptingProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    corrupted: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl CorruptingProxy {
    /// Listens on a fresh 127.0.0.1 port (UDP and TCP) and forwards to
    /// `upstream`. `rtype` is the record type number ([`CDS`], [`CDNSKEY`]...).
    pub fn start(upstream: SocketAddr, victim: &str, rtype: u16) -> Self {
        let (udp, tcp) = bind_udp_tcp(Ipv4Addr::LOCALHOST, "the proxy");
        let addr = udp.local_addr().expect("proxy address");
        let victim = Arc::new(fqdn(victim));
        let stop = Arc::new(AtomicBool::new(false));
        let corrupted = Arc::new(AtomicUsize::new(0));

        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set timeout");
        let udp_thread = {
            let (stop, victim, corrupted) = (stop.clone(), victim.clone(), corrupted.clone());
            thread::spawn(move || {
                let mut buf = vec![0u8; 65535];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, client)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    let query = buf[..len].to_vec();
                    let Ok(reply_socket) = udp.try_clone() else {
                        continue;
                    };
                    let (victim, corrupted) = (victim.clone(), corrupted.clone());
                    thread::spawn(move || {
                        if let Ok(mut answer) = forward_udp(upstream, &query) {
                            if corrupt(&mut answer, &victim, rtype) {
                                corrupted.fetch_add(1, Ordering::Relaxed);
                            }
                            let _ = reply_socket.send_to(&answer, client);
                        }
                    });
                }
            })
        };

        tcp.set_nonblocking(true).expect("nonblocking listener");
        let tcp_thread = {
            let (stop, victim, corrupted) = (stop.clone(), victim.clone(), corrupted.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        Ok((stream, _)) => {
                            let (victim, corrupted) = (victim.clone(), corrupted.clone());
                            thread::spawn(move || {
                                let _ = serve_tcp(stream, upstream, &victim, rtype, &corrupted);
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(20));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };

        CorruptingProxy {
            addr,
            stop,
            corrupted,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    /// Where the proxy listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many responses it has damaged so far.
    pub fn corrupted(&self) -> usize {
        self.corrupted.load(Ordering::Relaxed)
    }
}

impl Drop for CorruptingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for CorruptingProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorruptingProxy")
            .field("addr", &self.addr)
            .field("corrupted", &self.corrupted())
            .finish()
    }
}

fn forward_udp(upstream: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.connect(upstream)?;
    socket.set_read_timeout(Some(Duration::from_secs(3)))?;
    socket.send(query)?;
    let mut buf = vec![0u8; 65535];
    let len = socket.recv(&mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

fn serve_tcp(
    mut client: TcpStream,
    upstream: SocketAddr,
    victim: &str,
    rtype: u16,
    corrupted: &AtomicUsize,
) -> io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    loop {
        let Some(query) = read_tcp_message(&mut client)? else {
            return Ok(());
        };
        let mut server = TcpStream::connect_timeout(&upstream, Duration::from_secs(3))?;
        server.set_read_timeout(Some(Duration::from_secs(5)))?;
        write_tcp_message(&mut server, &query)?;
        let Some(mut answer) = read_tcp_message(&mut server)? else {
            return Ok(());
        };
        if corrupt(&mut answer, victim, rtype) {
            corrupted.fetch_add(1, Ordering::Relaxed);
        }
        write_tcp_message(&mut client, &answer)?;
    }
}

/// Damages `msg` in place if it answers `victim`/`rtype`; true if it did.
fn corrupt(msg: &mut [u8], victim: &str, rtype: u16) -> bool {
    let u16_at = |m: &[u8], at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]))
    };
    let (Some(qdcount), Some(ancount)) = (u16_at(msg, 4), u16_at(msg, 6)) else {
        return false;
    };
    if qdcount != 1 {
        return false;
    }
    let Some((qname, mut pos)) = read_name(msg, 12) else {
        return false;
    };
    if qname != victim || u16_at(msg, pos) != Some(rtype) {
        return false;
    }
    pos += 4;
    for _ in 0..ancount {
        let Some(end) = skip_name(msg, pos) else {
            return false;
        };
        let (Some(rr_type), Some(rdlen)) = (u16_at(msg, end), u16_at(msg, end + 8)) else {
            return false;
        };
        let rdata = end + 10;
        let rdend = rdata + rdlen as usize;
        if rdend > msg.len() {
            return false;
        }
        if rr_type == rtype && rdlen > 0 {
            msg[rdend - 1] ^= 0xff;
            return true;
        }
        pos = rdend;
    }
    false
}

fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)? as usize;
        if len == 0 {
            return Some(pos + 1);
        }
        if len & 0xc0 == 0xc0 {
            return Some(pos + 2);
        }
        pos += 1 + len;
    }
}
