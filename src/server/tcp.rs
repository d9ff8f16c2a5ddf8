//! TCP (RFC 7766): two-octet length framing, several queries per connection
//! answered in order, an idle timeout, and a cap on open connections.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

use super::{Answer, SharedSnapshot, Transport, respond};
use crate::dns::wire::put_framed;

/// Binds a listening socket (with SO_REUSEADDR, so restarts do not wait).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections until the runtime stops.
pub async fn serve(
    listener: TcpListener,
    snapshot: SharedSnapshot,
    idle: Duration,
    max_connections: usize,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Over the limit: close at once rather than queue (RFC 7766 §6.2.2).
            tracing::debug!(%peer, "TCP connection limit reached");
            drop(stream);
            continue;
        };
        let snapshot = snapshot.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, peer.ip(), snapshot, idle).await {
                tracing::debug!(%peer, error = %e, "TCP connection ended");
            }
            drop(permit);
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: std::net::IpAddr,
    snapshot: SharedSnapshot,
    idle: Duration,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut packet = vec![0u8; 65_535];
    let mut out = Vec::with_capacity(4096);
    let mut framed = Vec::with_capacity(4096);
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(idle, stream.read_exact(&mut len)).await {
            Err(_) => return Ok(()), // idle
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r?,
        };
        let len = usize::from(u16::from_be_bytes(len)); // RFC 1035 §4.2.2 length prefix
        match tokio::time::timeout(idle, stream.read_exact(&mut packet[..len])).await {
            Err(_) => return Ok(()),
            Ok(r) => r?,
        };
        let answer = {
            let current = snapshot.load();
            respond(&current, &packet[..len], Transport::Tcp, peer, &mut out)
        };
        match answer {
            // Garbage on a stream: the framing may be lost; close.
            Answer::Drop => return Ok(()),
            Answer::Message => {
                framed.clear();
                put_framed(&mut framed, &out).map_err(io::Error::other)?;
                stream.write_all(&framed).await?;
            }
            Answer::Transfer(mut transfer) => {
                let started = std::time::Instant::now();
                while let Some(message) = transfer.next_message() {
                    framed.clear();
                    put_framed(&mut framed, &message).map_err(io::Error::other)?;
                    stream.write_all(&framed).await?;
                }
                tracing::info!(
                    %peer,
                    records = transfer.records,
                    messages = transfer.messages,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "transfer sent"
                );
            }
        }
    }
}
