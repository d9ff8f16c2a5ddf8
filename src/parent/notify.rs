//! Sending one generalized NOTIFY (RFC 9859 §4.2): opcode NOTIFY, AA, one
//! question with QNAME = the child apex and QTYPE CDS (any CDS or CDNSKEY
//! change) or CSYNC; one child per message. UDP with retransmission, then
//! TCP (RFC 9859 §4.2.1); NOERROR acknowledges receipt (the scan itself may
//! still fail later); REFUSED, NOTIMP and FORMERR mean "do not retry".

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use hickory_proto::rr::{Name, RecordType};

use crate::{
    client::{self, Options, TcpFallback},
    dns::{
        message,
        wire::{self, opcode, rcode},
    },
};

/// How one NOTIFY ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// NOERROR.
    Acknowledged,
    /// REFUSED, NOTIMP or FORMERR: the target does not want it; stop.
    Rejected(String),
    /// No answer, or another error: try again later.
    Failed(String),
}

/// Sends NOTIFY(`rrtype`) for `child` to `target`.
pub async fn send(
    target: SocketAddr,
    child: &Name,
    rrtype: RecordType,
    udp_timeout: Duration,
    udp_tries: u32,
) -> Outcome {
    let packet = message::notify(wire::random_id(), child, rrtype);
    let options = Options {
        timeout: udp_timeout,
        udp_tries,
        tcp: TcpFallback::OnSilence,
        tsig: None,
    };
    match client::exchange(target, packet, &options).await {
        Ok(reply) if reply.opcode() != opcode::NOTIFY => {
            Outcome::Failed(format!("answer with opcode {}", reply.opcode()))
        }
        Ok(reply) => match reply.rcode {
            rcode::NOERROR => Outcome::Acknowledged,
            rcode::REFUSED | rcode::NOTIMP | rcode::FORMERR => {
                Outcome::Rejected(rcode::name(reply.rcode))
            }
            other => Outcome::Failed(rcode::name(other)),
        },
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// A per-target rate limit (RFC 9859 §4.3 makes receivers rate-limit;
/// a sender that paces itself is not dropped): at most `per_second`
/// NOTIFYs start per target per second; 0 = unlimited.
#[derive(Debug)]
pub struct RateLimit {
    per_second: u32,
    next: HashMap<SocketAddr, Instant>,
}

impl RateLimit {
    /// A limit of `per_second` per target.
    pub fn new(per_second: u32) -> Self {
        RateLimit {
            per_second,
            next: HashMap::new(),
        }
    }

    /// Reserves the next slot for `target`; returns how long to wait for it.
    pub fn reserve(&mut self, target: SocketAddr, now: Instant) -> Duration {
        if self.per_second == 0 {
            return Duration::ZERO;
        }
        let step = Duration::from_secs(1) / self.per_second;
        let slot = self.next.get(&target).copied().unwrap_or(now).max(now);
        self.next.insert(target, slot + step);
        if self.next.len() > 10_000 {
            self.next.retain(|_, t| *t > now);
        }
        slot - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_spaces_sends_per_target() {
        let mut limit = RateLimit::new(10);
        let now = Instant::now();
        let a: SocketAddr = "127.0.0.1:1".parse().expect("valid");
        let b: SocketAddr = "127.0.0.1:2".parse().expect("valid");
        assert_eq!(limit.reserve(a, now), Duration::ZERO);
        assert_eq!(limit.reserve(a, now), Duration::from_millis(100));
        assert_eq!(limit.reserve(a, now), Duration::from_millis(200));
        assert_eq!(limit.reserve(b, now), Duration::ZERO);
        let mut unlimited = RateLimit::new(0);
        for _ in 0..100 {
            assert_eq!(unlimited.reserve(a, now), Duration::ZERO);
        }
    }
}
