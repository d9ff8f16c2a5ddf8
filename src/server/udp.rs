//! UDP: one OS thread per core, each blocking on its own `SO_REUSEPORT`
//! socket with a large receive buffer, taking and sending up to 64
//! datagrams per system call (recvmmsg/sendmmsg) into reused buffers: no
//! allocation per packet.

use std::{
    io::{self, IoSlice, IoSliceMut},
    net::{IpAddr, SocketAddr, UdpSocket},
    os::fd::{AsRawFd, RawFd},
    thread,
};

use nix::{
    errno::Errno,
    sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg},
};
use socket2::{Domain, Protocol, Socket, Type};

use super::{Answer, SharedSnapshot, Transport, respond};

/// Receive buffer per socket: Knot's ~208 KiB default dropped queries under
/// load here (PERFORMANCE.md).
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

/// Binds `threads` sockets on `addr` and starts a thread on each.
pub fn spawn(addr: SocketAddr, threads: usize, snapshot: SharedSnapshot) -> io::Result<()> {
    // Bind all first, so a failure leaves no thread behind.
    let sockets = (0..threads.max(1))
        .map(|_| socket(addr))
        .collect::<io::Result<Vec<_>>>()?;
    for (i, socket) in sockets.into_iter().enumerate() {
        let snapshot = snapshot.clone();
        thread::Builder::new()
            .name(format!("udp-{addr}-{i}"))
            .spawn(move || serve(socket, snapshot))?;
    }
    Ok(())
}

/// Datagrams taken or sent per system call (PERFORMANCE.md: batch 64).
const BATCH: usize = 64;
/// Largest query read; a longer datagram (no DNS query is) is dropped.
const QUERY_MAX: usize = 8192;

/// One receive slot per datagram of a batch, and one answer buffer each.
struct Batch {
    queries: Box<[[u8; QUERY_MAX]; BATCH]>,
    answers: Vec<Vec<u8>>,
    /// Bytes and sender of each received datagram (None: truncated, dropped).
    received: [(usize, Option<SockaddrStorage>); BATCH],
    /// Where each answer goes, in `answers` order.
    peers: [Option<SockaddrStorage>; BATCH],
    recv_headers: MultiHeaders<SockaddrStorage>,
    send_headers: MultiHeaders<SockaddrStorage>,
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
            received: [(0, None); BATCH],
            peers: [None; BATCH],
            recv_headers: MultiHeaders::preallocate(BATCH, None),
            send_headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Blocks for at least one datagram, takes up to `BATCH` (recvmmsg with
    /// MSG_WAITFORONE); returns how many.
    fn receive(&mut self, fd: RawFd) -> nix::Result<usize> {
        let mut slices = self
            .queries
            .each_mut()
            .map(|q| [IoSliceMut::new(&mut q[..])]);
        let results = recvmmsg(
            fd,
            &mut self.recv_headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )?;
        let mut n = 0;
        for (slot, message) in self.received.iter_mut().zip(results) {
            let truncated = message.flags.contains(MsgFlags::MSG_TRUNC);
            *slot = (message.bytes, message.address.filter(|_| !truncated));
            n += 1;
        }
        Ok(n)
    }

    /// Sends answers `0..count` (sendmmsg); returns how many the kernel took.
    fn send(&mut self, fd: RawFd, from: usize, count: usize) -> nix::Result<usize> {
        let answers = &self.answers;
        let slices: [[IoSlice<'_>; 1]; BATCH] =
            std::array::from_fn(|i| [IoSlice::new(&answers[i])]);
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        let sent = sendmmsg(
            fd,
            &mut self.send_headers,
            slices[from..count].iter(),
            &self.peers[from..count],
            no_cmsgs,
            MsgFlags::empty(),
        )?;
        Ok(sent.count())
    }
}

fn peer_ip(address: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

fn serve(socket: UdpSocket, snapshot: SharedSnapshot) {
    let fd = socket.as_raw_fd();
    let mut batch = Batch::new();
    loop {
        let received = match batch.receive(fd) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "UDP receive failed");
                continue;
            }
        };
        // One snapshot per batch: every answer of a batch comes from the same
        // zone version.
        let current = snapshot.load();
        let mut answers = 0;
        for i in 0..received {
            let (len, Some(address)) = batch.received[i] else {
                continue;
            };
            let Some(ip) = peer_ip(&address) else {
                continue;
            };
            let out = &mut batch.answers[answers];
            if let Answer::Message =
                respond(&current, &batch.queries[i][..len], Transport::Udp, ip, out)
            {
                batch.peers[answers] = Some(address);
                answers += 1;
            }
        }
        drop(current);
        let mut sent = 0;
        while sent < answers {
            match batch.send(fd, sent, answers) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    // Skip the datagram the kernel refused (a bad peer
                    // address, say) and carry on with the rest.
                    tracing::debug!(error = %e, "UDP send failed");
                    sent += 1;
                }
            }
        }
    }
}
