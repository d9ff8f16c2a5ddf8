//! Publishing into a signer's zone by UPDATE (RFC 2136) with TSIG, and
//! proving every write by reading it back.
//!
//! One UPDATE per RRset change replaces the whole RRset atomically: the
//! prerequisite is the RRset exactly as it was just read (RFC 2136 §2.4.2,
//! "RRset exists (value dependent)", or §2.4.3 "does not exist"), so two
//! writers cannot interleave; then "delete RRset" and the new records. The
//! answer is not trusted (docs/INTEROP.md: Knot 3.2 answers NOERROR and drops
//! CDS/CDNSKEY): the RRset is queried from the server afterwards and a
//! write that is not visible is an error, logged with the likely server
//! setting, counted, and retried only after a growing pause. A periodic
//! check catches writes the signer reverts later (BIND's key manager
//! removes a delete signal).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hickory_proto::rr::{Name, RecordType};
use tokio::{
    sync::mpsc,
    time::{Instant, sleep_until},
};

use crate::{
    client::{self, ClientError, Options, TcpFallback},
    dns::{
        message,
        name::{canonical_wire, display},
        wire::{self, CLASS_ANY, CLASS_IN, CLASS_NONE, opcode, put_u16, put_u32, rcode},
    },
    tsig,
    vital::{Ends, Vitals},
};

/// How often everything written is checked again.
const VERIFY_EVERY: Duration = Duration::from_secs(300);
/// Longest pause after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The RRset signalbox wants at `owner`: `rdatas` empty = none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Owner.
    pub owner: Name,
    /// Type.
    pub rtype: RecordType,
    /// TTL.
    pub ttl: u32,
    /// Wire RDATA, sorted.
    pub rdatas: Vec<Vec<u8>>,
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No answer, TSIG failure, malformed answer.
    #[error("{zone} at {server}: {source}")]
    Exchange {
        /// The zone.
        zone: String,
        /// The server.
        server: SocketAddr,
        /// The failure.
        source: ClientError,
    },
    /// The server said no.
    #[error("{zone} at {server}: UPDATE of {what} answered {rcode}{hint}")]
    Refused {
        /// The zone.
        zone: String,
        /// The server.
        server: SocketAddr,
        /// The RRset.
        what: String,
        /// The RCODE.
        rcode: String,
        /// What to check on the server.
        hint: String,
    },
    /// NOERROR, but the RRset is not what was written.
    #[error(
        "{zone} at {server}: UPDATE of {what} answered NOERROR but the server serves {got} record(s) \
         instead of {wanted}: the write was dropped or reverted{hint}"
    )]
    NotVisible {
        /// The zone.
        zone: String,
        /// The server.
        server: SocketAddr,
        /// The RRset.
        what: String,
        /// Records served.
        got: usize,
        /// Records written.
        wanted: usize,
        /// What to check on the server.
        hint: String,
    },
}

/// Where and how to write one zone.
#[derive(Debug, Clone)]
pub struct Target {
    /// The zone (UPDATE's zone section).
    pub zone: Name,
    /// The server.
    pub server: SocketAddr,
    /// The TSIG key.
    pub key: Option<tsig::Key>,
}

impl Target {
    fn options(&self) -> Options {
        Options {
            timeout: Duration::from_secs(2),
            udp_tries: 2,
            tcp: TcpFallback::OnSilence,
            tsig: self.key.clone(),
        }
    }

    fn exchange_error(&self, source: ClientError) -> PublishError {
        PublishError::Exchange {
            zone: display(&self.zone),
            server: self.server,
            source,
        }
    }

    /// The RRset the server serves now (sorted wire RDATA) and its TTL.
    pub async fn read(
        &self,
        owner: &Name,
        rtype: RecordType,
    ) -> Result<(Vec<Vec<u8>>, u32), PublishError> {
        let query = message::query(wire::random_id(), owner, rtype, false, false);
        let reply = client::exchange(self.server, query, &self.options())
            .await
            .map_err(|e| self.exchange_error(e))?;
        if !matches!(reply.rcode, rcode::NOERROR | rcode::NXDOMAIN) {
            return Err(PublishError::Refused {
                zone: display(&self.zone),
                server: self.server,
                what: format!("{} {rtype} (reading it)", display(owner)),
                rcode: rcode::name(reply.rcode),
                hint: String::new(),
            });
        }
        let mut rdatas: Vec<Vec<u8>> = reply
            .answers(owner, rtype)
            .map(|r| r.rdata.clone())
            .collect();
        let ttl = reply
            .answers(owner, rtype)
            .map(|r| r.ttl)
            .min()
            .unwrap_or(0);
        rdatas.sort();
        rdatas.dedup();
        Ok((rdatas, ttl))
    }

    /// Replaces the RRset `wanted` (whatever the server had is `current`)
    /// and reads it back.
    pub async fn write(&self, wanted: &Wanted, current: &[Vec<u8>]) -> Result<(), PublishError> {
        let what = format!("{} {}", display(&wanted.owner), wanted.rtype);
        let packet = update_message(wire::random_id(), &self.zone, wanted, current);
        let reply = client::exchange(self.server, packet, &self.options())
            .await
            .map_err(|e| self.exchange_error(e))?;
        if reply.rcode != rcode::NOERROR {
            return Err(PublishError::Refused {
                zone: display(&self.zone),
                server: self.server,
                what,
                rcode: rcode::name(reply.rcode),
                hint: refused_hint(reply.rcode, wanted.rtype),
            });
        }
        let (got, _) = self.read(&wanted.owner, wanted.rtype).await?;
        if got != wanted.rdatas {
            return Err(PublishError::NotVisible {
                zone: display(&self.zone),
                server: self.server,
                what,
                got: got.len(),
                wanted: wanted.rdatas.len(),
                hint: dropped_hint(wanted.rtype),
            });
        }
        Ok(())
    }
}

fn refused_hint(code: u16, rtype: RecordType) -> String {
    match (code, rtype) {
        (rcode::REFUSED, RecordType::CDS | RecordType::CDNSKEY) => {
            " (check the server's update-policy / allow-update (BIND) or acl action update (Knot) for this key; \
             BIND inline-signing zones also refuse CDS/CDNSKEY at the apex: \"bad CDS RRset\" in its log; \
             use a dynamic zone, or let the signer publish them)"
                .into()
        }
        (rcode::REFUSED, _) => {
            " (check the server's update-policy / allow-update (BIND) or acl action update (Knot) for this key)".into()
        }
        (rcode::NOTAUTH, _) => " (the server is not authoritative for the zone, or the TSIG key is unknown)".into(),
        (rcode::NOTZONE, _) => " (the name is outside the zone)".into(),
        (rcode::YXRRSET | rcode::NXRRSET, _) => " (someone else changed the RRset meanwhile)".into(),
        _ => String::new(),
    }
}

fn dropped_hint(rtype: RecordType) -> String {
    match rtype {
        RecordType::CDS | RecordType::CDNSKEY => {
            " (Knot 3.2 drops CDS/CDNSKEY sent by UPDATE and answers NOERROR: with Knot, let `cds-cdnskey-publish` \
             publish them and `follow` the zone; BIND's key manager removes a delete signal)"
                .into()
        }
        _ => " (is the zone dynamic on the server, and not being reloaded from a file?)".into(),
    }
}

/// The UPDATE that replaces `wanted` when the server holds `current`.
pub fn update_message(id: u16, zone: &Name, wanted: &Wanted, current: &[Vec<u8>]) -> Vec<u8> {
    let prereqs = current.len().max(1) as u16;
    let updates = 1 + wanted.rdatas.len() as u16;
    let mut out = message::header(id, opcode::UPDATE, 0, [1, prereqs, updates, 0]);
    // Zone section (RFC 2136 §2.3): the zone, SOA, IN.
    message::push_question(&mut out, zone, RecordType::SOA);
    let owner = canonical_wire(&wanted.owner);
    let rtype = u16::from(wanted.rtype);
    let rr = |out: &mut Vec<u8>, class: u16, ttl: u32, rdata: &[u8]| {
        out.extend_from_slice(&owner);
        put_u16(out, rtype);
        put_u16(out, class);
        put_u32(out, ttl);
        put_u16(out, rdata.len() as u16);
        out.extend_from_slice(rdata);
    };
    // Prerequisites: exactly what was read (RFC 2136 §2.4.2 / §2.4.3).
    if current.is_empty() {
        rr(&mut out, CLASS_NONE, 0, &[]);
    } else {
        for rdata in current {
            rr(&mut out, CLASS_IN, 0, rdata);
        }
    }
    // Updates: delete the RRset (§2.5.2), add the new records (§2.5.1).
    rr(&mut out, CLASS_ANY, 0, &[]);
    for rdata in &wanted.rdatas {
        rr(&mut out, CLASS_IN, wanted.ttl, rdata);
    }
    out
}

/// Counters of one publisher.
#[derive(Debug, Default)]
pub struct Counters {
    /// Writes made and seen.
    pub written: AtomicU64,
    /// Writes refused or failed.
    pub failed: AtomicU64,
    /// Writes answered NOERROR but not visible (dropped or reverted).
    pub dropped: AtomicU64,
}

struct Slot {
    wanted: Wanted,
    /// Written and seen as wanted.
    done: bool,
    failures: u32,
    next: Instant,
}

/// Starts a publisher for `target`: send it the RRsets wanted (a later one
/// for the same owner and type replaces an earlier one).
pub fn start(
    target: Target,
    counters: Arc<Counters>,
    vitals: &Vitals,
) -> mpsc::UnboundedSender<Wanted> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Wanted>();
    let part = format!("UPDATE publisher for {}", display(&target.zone));
    vitals.task(part, Ends::WhenInputCloses, async move {
        let mut slots: BTreeMap<(Vec<u8>, u16), Slot> = BTreeMap::new();
        // Set when the server refused a CDS/CDNSKEY UPDATE: a delete signal
        // is then never sent (it could wedge an inline-signing BIND zone).
        let mut refused_cds = false;
        let mut verify_at = Instant::now() + VERIFY_EVERY;
        loop {
            let next = slots
                .values()
                .filter(|s| !s.done)
                .map(|s| s.next)
                .min()
                .unwrap_or(verify_at)
                .min(verify_at);
            tokio::select! {
                wanted = rx.recv() => {
                    let Some(wanted) = wanted else { return };
                    let key = (canonical_wire(&wanted.owner), u16::from(wanted.rtype));
                    match slots.get_mut(&key) {
                        Some(slot) if slot.wanted == wanted => {}
                        Some(slot) => {
                            slot.wanted = wanted;
                            slot.done = false;
                            slot.next = slot.next.max(Instant::now());
                        }
                        None => {
                            slots.insert(key, Slot { wanted, done: false, failures: 0, next: Instant::now() });
                        }
                    }
                }
                _ = sleep_until(next) => {}
            }
            let now = Instant::now();
            if now >= verify_at {
                verify_at = now + VERIFY_EVERY;
                for slot in slots.values_mut().filter(|s| s.done) {
                    slot.done = false; // checked (and rewritten if reverted) below
                }
            }
            let due: Vec<(Vec<u8>, u16)> = slots
                .iter()
                .filter(|(_, s)| !s.done && s.next <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for key in due {
                let Some(slot) = slots.get_mut(&key) else {
                    continue;
                };
                let w = &slot.wanted;
                let zone = display(&target.zone);
                let owner = display(&w.owner);
                let rtype = w.rtype.to_string();
                let is_delete_signal = matches!(w.rtype, RecordType::CDS | RecordType::CDNSKEY)
                    && w.rdatas
                        .iter()
                        .any(|r| r.get(..2) == Some(&[0, 0]) && r.get(3) == Some(&0));
                if is_delete_signal && refused_cds {
                    tracing::error!(zone, owner, rtype, server = %target.server, "not sending a delete signal by UPDATE to a server that refused a CDS/CDNSKEY UPDATE");
                    slot.done = true;
                    continue;
                }
                let result = match target.read(&w.owner, w.rtype).await {
                    // RDATA decide; a signer may reset TTLs (BIND sets CDS
                    // to dnskey-ttl), and fighting that would loop.
                    Ok((current, _)) if current == w.rdatas => Ok(false),
                    Ok((current, _)) => target.write(w, &current).await.map(|()| true),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(wrote) => {
                        if wrote {
                            counters.written.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(zone, owner, rtype, server = %target.server, records = w.rdatas.len(), "UPDATE written and read back");
                        }
                        slot.done = true;
                        slot.failures = 0;
                    }
                    Err(e) => {
                        if matches!(&e, PublishError::NotVisible { .. }) {
                            counters.dropped.fetch_add(1, Ordering::Relaxed);
                        } else {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        if matches!(&e, PublishError::Refused { rcode, .. } if rcode == "REFUSED")
                            && matches!(w.rtype, RecordType::CDS | RecordType::CDNSKEY)
                        {
                            refused_cds = true;
                        }
                        slot.failures += 1;
                        // Back off instead of fighting the signer in a loop.
                        let wait =
                            Duration::from_secs(2u64 << slot.failures.min(11)).min(MAX_BACKOFF);
                        slot.next = Instant::now() + wait;
                        tracing::error!(retry_in_s = wait.as_secs(), "{e}");
                    }
                }
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse_name;

    #[test]
    fn update_replaces_the_rrset_with_a_value_prerequisite() {
        let zone = parse_name("example.com.").expect("valid");
        let wanted = Wanted {
            owner: zone.clone(),
            rtype: RecordType::CSYNC,
            ttl: 300,
            rdatas: vec![vec![0, 0, 0, 7, 0, 3, 0, 1, 0x20]],
        };
        let m = message::parse(&update_message(9, &zone, &wanted, &[])).expect("parses");
        assert_eq!(m.opcode(), opcode::UPDATE);
        // Zone section = the question; prerequisite "does not exist" (NONE);
        // updates: delete RRset (ANY) then add (IN).
        assert_eq!(m.question.as_ref().map(|q| q.1), Some(6));
        assert_eq!(m.answer.len(), 1);
        assert_eq!((m.answer[0].class, m.answer[0].rtype), (CLASS_NONE, 62));
        assert_eq!(m.authority.len(), 2);
        assert_eq!(m.authority[0].class, CLASS_ANY);
        assert_eq!((m.authority[1].class, m.authority[1].ttl), (CLASS_IN, 300));
        // With a current RRset: value-dependent prerequisite, TTL 0.
        let old = vec![vec![0, 0, 0, 6, 0, 3, 0, 1, 0x20]];
        let m = message::parse(&update_message(9, &zone, &wanted, &old)).expect("parses");
        assert_eq!((m.answer[0].class, m.answer[0].ttl), (CLASS_IN, 0));
        assert_eq!(m.answer[0].rdata, old[0]);
    }
}
