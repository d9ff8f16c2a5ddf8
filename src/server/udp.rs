//! UDP: one OS thread per core, each blocking on its own `SO_REUSEPORT`
//! socket with a large receive buffer, taking up to 64 datagrams per system
//! call (recvmmsg, through nix) into reused buffers and sending the batch's
//! answers in one (sendmmsg, through rustix, which says how many went out):
//! no allocation per packet. Answers pass response rate limiting
//! ([`super::rrl`]) before they are sent, on a clock read once per batch.

use std::{
    io::{self, IoSlice, IoSliceMut},
    net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket},
    os::fd::{AsRawFd, RawFd},
    sync::Arc,
    thread,
    time::Duration,
};

use nix::{
    errno::Errno,
    sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg},
};
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
use socket2::{Domain, Protocol, Socket, Type};

use super::counters::{ByRcode, QueryCounters, rcode_of};
use super::{
    Answer, SharedSnapshot, Transport, respond_echo,
    rrl::{self, AnswerClass, Rrl, RrlThread, Verdict},
};
use crate::vital::{Ends, Vitals};

/// Receive buffer per socket: Knot's ~208 KiB default dropped queries under
/// load here (docs/ARCHITECTURE.md, "The query path").
const RECV_BUFFER: usize = 4 << 20;

fn socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Binds `threads` sockets on `addr` and starts a thread on each; with
/// `rrl`, thread `i` counts as the limiter's thread `first_thread + i`.
pub fn spawn(
    addr: SocketAddr,
    threads: usize,
    snapshot: SharedSnapshot,
    rrl: Option<&Arc<Rrl>>,
    counters: &Arc<QueryCounters>,
    first_thread: usize,
    vitals: &Vitals,
) -> io::Result<()> {
    // Bind all first, so a failure leaves no thread behind.
    let sockets = (0..threads.max(1))
        .map(|_| socket(addr))
        .collect::<io::Result<Vec<_>>>()?;
    for (i, socket) in sockets.into_iter().enumerate() {
        let snapshot = snapshot.clone();
        let rrl = rrl.map(|r| r.thread(first_thread + i));
        let counted = (Arc::clone(counters), first_thread + i);
        // A UDP thread never returns: if it panics, the daemon exits
        // non-zero so its supervisor restarts it (issue 13 item 9).
        vitals.thread(format!("udp-{addr}-{i}"), Ends::Never, move || {
            serve(socket, snapshot, rrl, counted)
        })?;
    }
    Ok(())
}

/// Datagrams taken per system call (docs/ARCHITECTURE.md, "The query path":
/// batches of 64).
const BATCH: usize = 64;
/// Largest query read. A longer datagram is dropped (and counted in the
/// debug log): no DNS query over UDP comes near it.
const QUERY_MAX: usize = 8192;

/// One receive slot per datagram of a batch, and one answer buffer each.
struct Batch {
    queries: Box<[[u8; QUERY_MAX]; BATCH]>,
    answers: Vec<Vec<u8>>,
    /// Where each answer goes, in `answers` order.
    peers: Vec<SocketAddrAny>,
    /// Bytes and sender of each received datagram (None: truncated or not
    /// an IP sender; dropped).
    received: [(usize, Option<SocketAddr>); BATCH],
    headers: MultiHeaders<SockaddrStorage>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            // Built on the heap: 512 KiB would not fit a small thread stack.
            queries: vec![[0; QUERY_MAX]; BATCH]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("BATCH slots")),
            answers: (0..BATCH).map(|_| Vec::with_capacity(4096)).collect(),
            peers: Vec::with_capacity(BATCH),
            received: [(0, None); BATCH],
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Blocks for at least one datagram, takes up to `BATCH` (recvmmsg with
    /// MSG_WAITFORONE); returns how many. The senders' addresses are read
    /// only for the datagrams the kernel filled in.
    fn receive(&mut self, fd: RawFd) -> nix::Result<usize> {
        let mut slices = self
            .queries
            .each_mut()
            .map(|q| [IoSliceMut::new(&mut q[..])]);
        let results = recvmmsg(
            fd,
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )?;
        let mut n = 0;
        for (slot, message) in self.received.iter_mut().zip(results) {
            let peer = message.address.as_ref().and_then(socket_addr);
            if message.flags.contains(MsgFlags::MSG_TRUNC) {
                tracing::debug!(peer = ?peer, "UDP datagram over {QUERY_MAX} octets dropped");
                *slot = (0, None);
            } else {
                *slot = (message.bytes, peer);
            }
            n += 1;
        }
        Ok(n)
    }

    /// Sends answers `from..` (sendmmsg); returns how many the kernel took.
    fn send(&mut self, socket: &UdpSocket, from: usize) -> rustix::io::Result<usize> {
        let answers = &self.answers;
        let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| [IoSlice::new(&answers[i])]);
        let mut controls: [SendAncillaryBuffer<'_, '_, '_>; BATCH] =
            std::array::from_fn(|_| SendAncillaryBuffer::default());
        let mut messages: Vec<MMsgHdr<'_>> = self.peers[from..]
            .iter()
            .zip(&iovs[from..])
            .zip(controls.iter_mut())
            .map(|((peer, iov), control)| MMsgHdr::new_with_addr(peer, iov, control))
            .collect();
        sendmmsg(socket, &mut messages, SendFlags::empty())
    }
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())));
    }
    address.as_sockaddr_in6().map(|v6| {
        SocketAddr::V6(SocketAddrV6::new(
            v6.ip(),
            v6.port(),
            v6.flowinfo(),
            v6.scope_id(),
        ))
    })
}

fn serve(
    socket: UdpSocket,
    snapshot: SharedSnapshot,
    mut rrl: Option<RrlThread>,
    (counters, thread): (Arc<QueryCounters>, usize),
) {
    let fd = socket.as_raw_fd();
    let mut batch = Batch::new();
    let mut tally = ByRcode::default();
    let mut failures: u32 = 0;
    loop {
        let received = match batch.receive(fd) {
            Ok(n) => {
                failures = 0;
                n
            }
            Err(Errno::EINTR) => continue,
            Err(e) => {
                // A persistent error (ENOMEM, say) must not spin or flood
                // the log: back off up to a second.
                failures = failures.saturating_add(1);
                if failures.is_power_of_two() {
                    tracing::warn!(error = %e, failures, "UDP receive failed");
                }
                thread::sleep(Duration::from_millis(u64::from(failures.min(1000))));
                continue;
            }
        };
        // One snapshot per batch: every answer of a batch comes from the same
        // zone version.
        let current = snapshot.load();
        let now = rrl.as_ref().map_or(0, |r| r.rrl().now());
        // Which zone version answers (a remembered limited query is only
        // reused on the version that answered it).
        let version = Arc::as_ptr(&current) as usize;
        batch.peers.clear();
        for i in 0..received {
            let (len, Some(peer)) = batch.received[i] else {
                continue;
            };
            let k = batch.peers.len();
            let query = &batch.queries[i][..len];
            let out = &mut batch.answers[k];
            // A flood repeating one query is limited without answering it.
            let early = match rrl.as_mut() {
                Some(limiter) => limiter.repeat(peer.ip(), query, version, now, out),
                None => None,
            };
            match early {
                Some(Verdict::Drop) => continue,
                Some(Verdict::Slip) => {
                    batch.peers.push(SocketAddrAny::from(peer));
                    continue;
                }
                Some(Verdict::Send) | None => {}
            }
            let (Answer::Message, echo) =
                respond_echo(&current, query, Transport::Udp, peer.ip(), out)
            else {
                continue;
            };
            if let (Some(limiter), None) = (rrl.as_mut(), early) {
                let class = AnswerClass::of(out, echo.qtype);
                let verdict = limiter.check(peer.ip(), class, echo.signed, now);
                if verdict != Verdict::Send {
                    limiter.remember(peer.ip(), query, version, class, out, echo.question_end);
                }
                match verdict {
                    Verdict::Send => {}
                    Verdict::Drop => continue,
                    Verdict::Slip => rrl::slip(out, echo.question_end),
                }
            }
            batch.peers.push(SocketAddrAny::from(peer));
        }
        drop(current);
        if let Some(limiter) = rrl.as_mut() {
            limiter.flush();
        }
        // Answers going out, by RCODE: one add per RCODE seen per batch.
        for answer in &batch.answers[..batch.peers.len()] {
            tally[usize::from(rcode_of(answer))] += 1;
        }
        counters.add_udp(thread, &mut tally);
        // All answers of the batch in one system call; if the kernel stops
        // at a datagram it cannot send, that one is skipped and the rest go.
        let mut sent = 0;
        while sent < batch.peers.len() {
            match batch.send(&socket, sent) {
                Ok(n) => sent += n.max(1),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, peer = ?batch.peers[sent], "UDP send failed");
                    sent += 1;
                }
            }
        }
    }
}
