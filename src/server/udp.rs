//! UDP: one OS thread per core, each blocking on its own `SO_REUSEPORT`
//! socket with a large receive buffer, answering into a reused buffer.

use std::{io, net::SocketAddr, net::UdpSocket, thread};

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

fn serve(socket: UdpSocket, snapshot: SharedSnapshot) {
    let mut packet = [0u8; 65_535];
    let mut out = Vec::with_capacity(65_535);
    loop {
        let (len, peer) = match socket.recv_from(&mut packet) {
            Ok(received) => received,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "UDP receive failed");
                continue;
            }
        };
        let current = snapshot.load();
        if let Answer::Message = respond(
            &current,
            &packet[..len],
            Transport::Udp,
            peer.ip(),
            &mut out,
        ) {
            if let Err(e) = socket.send_to(&out, peer) {
                tracing::debug!(error = %e, %peer, "UDP send failed");
            }
        }
    }
}
