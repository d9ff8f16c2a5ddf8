//! NOTIFY to secondaries (RFC 1996): after every new serial, each configured
//! secondary is told over UDP with a SOA question (RFC 1996 §3.7), TSIG-
//! signed when a key is configured (RFC 8945 §5.3), retransmitted with a
//! doubling wait (RFC 1996 §3.6) by the one NOTIFY sender in
//! [`crate::client::notify`]. The answer is logged; a secondary that never
//! answers is logged too, and finds the new serial at its next SOA refresh.

use std::{net::SocketAddr, time::Duration};

use hickory_proto::rr::{Name, RecordType};

use crate::{
    client::{
        Options, TcpFallback,
        notify::{self, NotifyError, Outcome},
    },
    dns::{name::display, wire::rcode},
    tsig,
};

/// The first wait for an answer; doubled for each of the [`TRIES`] (1, 2,
/// 4, 8, 16 s).
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// Tries before giving up.
const TRIES: u32 = 5;

/// How NOTIFYs to secondaries are sent: UDP only, TSIG when `key` is set.
fn options(key: Option<tsig::Key>) -> Options {
    Options {
        timeout: FIRST_WAIT,
        udp_tries: TRIES,
        tcp: TcpFallback::OnTruncation,
        tsig: key,
    }
}

/// Sends NOTIFY for `apex` at `serial` to `target` until it answers or the
/// retries run out. Meant to run as its own task; abort it when a newer
/// serial supersedes it.
pub async fn notify(apex: Name, serial: u32, target: SocketAddr, key: Option<tsig::Key>) {
    let zone = display(&apex);
    match notify::send(target, &apex, RecordType::SOA, None, &options(key), None).await {
        Outcome::Acknowledged => {
            tracing::info!(zone, serial, %target, "NOTIFY acknowledged");
        }
        Outcome::Rejected(code) | Outcome::Failed(NotifyError::Rcode(code)) => {
            tracing::warn!(zone, serial, %target, rcode = rcode::name(code), "NOTIFY answered with an error");
        }
        Outcome::Failed(error) => {
            tracing::warn!(zone, serial, %target, %error, "NOTIFY not acknowledged");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{message, parse_name};

    #[test]
    fn notify_message_layout() {
        let m = message::notify(
            0x1234,
            &parse_name("_signal.ns1.example.net.").expect("valid"),
            RecordType::SOA,
        );
        assert_eq!(&m[..12], &[0x12, 0x34, 0x24, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&m[m.len() - 4..], &[0, 6, 0, 1]);
    }

    #[test]
    fn retries_wait_one_to_sixteen_seconds() {
        let o = options(None);
        let waits: Vec<u64> = (0..o.udp_tries)
            .map(|i| (o.timeout * 2u32.pow(i)).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16]);
        assert_eq!(o.tcp, TcpFallback::OnTruncation);
    }
}
