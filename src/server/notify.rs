//! NOTIFY to secondaries (RFC 1996): after every new serial, each configured
//! secondary is told over UDP, with retries and backoff, TSIG-signed when a
//! key is configured. The answer is logged; a secondary that never answers
//! is logged too, and finds the new serial at its next SOA refresh.

use std::{net::SocketAddr, time::Duration};

use hickory_proto::rr::Name;
use tokio::net::UdpSocket;

use crate::{
    dns::{
        name::canonical_wire,
        wire::{random_id, unix_now},
    },
    tsig,
};

/// Tries and the wait before each retry.
const BACKOFF: [u64; 5] = [1, 2, 4, 8, 16];

/// The NOTIFY message for `apex` with ID `id`: opcode NOTIFY, AA, one SOA
/// question (RFC 1996 §3.7).
pub fn message(apex: &Name, id: u16) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&[0x24, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend(canonical_wire(apex));
    out.extend_from_slice(&6u16.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out
}

/// Sends NOTIFY for `apex` at `serial` to `target` until it answers or the
/// retries run out. Meant to run as its own task; abort it when a newer
/// serial supersedes it.
pub async fn notify(apex: Name, serial: u32, target: SocketAddr, key: Option<tsig::Key>) {
    let zone = crate::dns::name::display(&apex);
    let bind: SocketAddr = if target.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(zone, %target, error = %e, "cannot send NOTIFY");
            return;
        }
    };
    for (attempt, wait) in BACKOFF.iter().enumerate() {
        let id = random_id();
        let mut query = message(&apex, id);
        let request_mac = key
            .as_ref()
            .map(|k| tsig::sign(&mut query, k, None, unix_now(), 0));
        if let Err(e) = socket.send_to(&query, target).await {
            tracing::warn!(zone, %target, error = %e, "NOTIFY send failed");
        }
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(*wait);
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
            let Ok(Ok((len, from))) = received else { break };
            let answer = &buf[..len];
            if from != target
                || len < 12
                || u16::from_be_bytes([answer[0], answer[1]]) != id
                || answer[2] & 0x80 == 0
            {
                continue;
            }
            let rcode = answer[3] & 0x0f;
            if let (Some(k), Some(mac)) = (&key, &request_mac) {
                let signed = matches!(tsig::find(answer), Ok(Some(t)) if tsig::verify_response(k, answer, &t, mac));
                if !signed {
                    tracing::warn!(zone, %target, "NOTIFY answer without a valid TSIG: ignored");
                    continue;
                }
            }
            if rcode == 0 {
                tracing::info!(zone, serial, %target, attempt = attempt + 1, "NOTIFY acknowledged");
            } else {
                tracing::warn!(zone, serial, %target, rcode, "NOTIFY answered with an error");
            }
            return;
        }
        tracing::debug!(zone, %target, attempt = attempt + 1, "no answer to NOTIFY, retrying");
    }
    tracing::warn!(zone, serial, %target, "NOTIFY unanswered after {} tries", BACKOFF.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse_name;

    #[test]
    fn notify_message_layout() {
        let m = message(
            &parse_name("_signal.ns1.example.net.").expect("valid"),
            0x1234,
        );
        assert_eq!(&m[..12], &[0x12, 0x34, 0x24, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&m[m.len() - 4..], &[0, 6, 0, 1]);
    }
}
