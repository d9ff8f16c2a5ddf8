//! Sending one NOTIFY and reading its answer: the one sender both NOTIFY
//! paths use.
//!
//! A NOTIFY (RFC 1996 §3.7) is opcode NOTIFY, AA set, one question: QNAME
//! the zone apex, QTYPE SOA to tell a secondary about a new serial, or CDS /
//! CSYNC for a generalized NOTIFY to the parent's DSYNC target (RFC 9859
//! §4.2, one child per message). It is retransmitted until answered (RFC
//! 1996 §3.6), here by [`super::exchange`]: UDP with a doubling timeout,
//! then TCP when [`Options::tcp`] asks for it (RFC 9859 §4.2.1), signed and
//! checked with the TSIG key when one is set (RFC 8945 §5.3).
//!
//! What differs between the callers is a parameter: the TSIG key and the
//! retry schedule ([`Options`]), an optional per-target [`RateLimit`], and
//! what the answer means ([`Outcome`]: NOERROR acknowledges receipt;
//! REFUSED, NOTIMP and FORMERR mean "do not retry", RFC 9859 §4.2).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use hickory_proto::rr::{Name, RecordType};

use super::{ClientError, Options};
use crate::dns::{
    message,
    wire::{opcode, random_id, rcode},
};

/// How one NOTIFY ended.
#[derive(Debug)]
pub enum Outcome {
    /// NOERROR.
    Acknowledged,
    /// REFUSED, NOTIMP or FORMERR (the RCODE): the receiver does not want
    /// it; stop.
    Rejected(u16),
    /// No answer, or another error: try again later.
    Failed(NotifyError),
}

/// Why a NOTIFY was not acknowledged (and may be retried).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// No usable answer: silence, a socket error, a bad TSIG.
    #[error(transparent)]
    Exchange(#[from] ClientError),
    /// The answer is not a NOTIFY response.
    #[error("answer with opcode {0}")]
    Opcode(u8),
    /// An RCODE other than NOERROR or a rejection.
    #[error("{}", rcode::name(*.0))]
    Rcode(u16),
}

/// Sends NOTIFY(`rtype`) for `apex` to `server` (after waiting for a slot
/// of `pace`, when given) and classifies the answer. With `report_channel`
/// the NOTIFY names that monitoring agent (RFC 9567 §6.1).
pub async fn send(
    server: SocketAddr,
    apex: &Name,
    rtype: RecordType,
    report_channel: Option<&Name>,
    options: &Options,
    pace: Option<&Mutex<RateLimit>>,
) -> Outcome {
    if let Some(limit) = pace {
        let wait = limit.lock().map_or(Duration::ZERO, |mut l| {
            l.reserve(server, tokio::time::Instant::now().into_std())
        });
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    let packet = match report_channel {
        Some(agent) => message::notify_reporting_to(random_id(), apex, rtype, agent),
        None => message::notify(random_id(), apex, rtype),
    };
    match super::exchange(server, packet, options).await {
        Ok(reply) if reply.opcode() != opcode::NOTIFY => {
            Outcome::Failed(NotifyError::Opcode(reply.opcode()))
        }
        Ok(reply) => match reply.rcode {
            rcode::NOERROR => Outcome::Acknowledged,
            rcode::REFUSED | rcode::NOTIMP | rcode::FORMERR => Outcome::Rejected(reply.rcode),
            other => Outcome::Failed(NotifyError::Rcode(other)),
        },
        Err(e) => Outcome::Failed(e.into()),
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
