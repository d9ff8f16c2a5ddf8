//! Following a signer (sidecar mode): signalbox reads a zone's apex from
//! its primary, like a secondary that only cares about the apex.
//!
//! The SOA is polled every `refresh` (a lost NOTIFY costs at most that
//! much), and a NOTIFY from the primary (accepted by
//! [`crate::server::inbound`]) triggers a poll at once. On a new serial the
//! apex SOA, DNSKEY, CDS, CDNSKEY and NS are read by query, TSIG-signed when
//! `follow.tsig` is set, and must all come from one version: the SOA is read
//! again last and a change in between means read again. What was read is a
//! fact for the policy ([`FollowedApex`]).

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;
use tokio::{
    sync::mpsc,
    time::{Instant, sleep_until},
};

use crate::{
    client::{self, Options},
    config::FollowConfig,
    dns::{
        Dnskey, Ds,
        message::{self, Message},
        name::display,
        wire::{self, flags, rcode},
    },
    policy::FollowedApex,
    tsig,
};

/// Why the apex could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The query failed (timeout, TSIG, malformed answer).
    #[error("{zone} at {primary}: {source}")]
    Query {
        /// The zone.
        zone: String,
        /// The primary.
        primary: SocketAddr,
        /// The failure.
        source: client::ClientError,
    },
    /// The primary answered, but not as an authority for the zone.
    #[error("{zone} at {primary}: {what}")]
    Answer {
        /// The zone.
        zone: String,
        /// The primary.
        primary: SocketAddr,
        /// What was wrong.
        what: String,
    },
}

/// One followed zone.
#[derive(Debug, Clone)]
pub struct Followed {
    /// The zone.
    pub zone: Name,
    /// Its `follow` table.
    pub config: FollowConfig,
    /// The TSIG key, when `follow.tsig` names one.
    pub key: Option<tsig::Key>,
}

async fn ask(followed: &Followed, rtype: RecordType) -> Result<Message, FollowError> {
    let zone = display(&followed.zone);
    let primary = followed.config.primary;
    let options = Options {
        timeout: Duration::from_secs(2),
        udp_tries: 2,
        tsig: followed.key.clone(),
        ..Options::default()
    };
    let query = message::query(wire::random_id(), &followed.zone, rtype, false, true);
    let reply = client::exchange(primary, query, &options)
        .await
        .map_err(|source| FollowError::Query {
            zone: zone.clone(),
            primary,
            source,
        })?;
    if reply.rcode != rcode::NOERROR || !reply.has(flags::AA) {
        return Err(FollowError::Answer {
            zone,
            primary,
            what: format!(
                "{rtype}: {}{} (is the zone loaded there?)",
                rcode::name(reply.rcode),
                if reply.has(flags::AA) {
                    ""
                } else {
                    ", not authoritative"
                }
            ),
        });
    }
    Ok(reply)
}

/// The SOA serial the primary serves.
pub async fn serial(followed: &Followed) -> Result<u32, FollowError> {
    let reply = ask(followed, RecordType::SOA).await?;
    reply
        .answers(&followed.zone, RecordType::SOA)
        .find_map(|r| crate::zone::store::soa_serial_of(&r.rdata))
        .ok_or_else(|| FollowError::Answer {
            zone: display(&followed.zone),
            primary: followed.config.primary,
            what: "no SOA in the answer".into(),
        })
}

/// Reads the apex (one consistent version).
pub async fn read_apex(followed: &Followed, now: Timestamp) -> Result<FollowedApex, FollowError> {
    for _ in 0..3 {
        let before = serial(followed).await?;
        let dnskey = ask(followed, RecordType::DNSKEY).await?;
        let cds = ask(followed, RecordType::CDS).await?;
        let cdnskey = ask(followed, RecordType::CDNSKEY).await?;
        let ns = ask(followed, RecordType::NS).await?;
        if serial(followed).await? != before {
            continue; // the zone changed while we read it
        }
        let zone = &followed.zone;
        let ttl = |m: &Message, t| m.answers(zone, t).map(|r| r.ttl).min().unwrap_or(0);
        let mut names: Vec<Name> = ns
            .answers(zone, RecordType::NS)
            .filter_map(|r| r.target().map(|n| n.to_lowercase()))
            .collect();
        names.sort();
        names.dedup();
        return Ok(FollowedApex {
            primary: followed.config.primary.to_string(),
            serial: before,
            ns_serial: before,
            cds: cds
                .answers(zone, RecordType::CDS)
                .filter_map(|r| Ds::from_wire(&r.rdata).ok())
                .collect(),
            cds_ttl: ttl(&cds, RecordType::CDS),
            cdnskey: cdnskey
                .answers(zone, RecordType::CDNSKEY)
                .filter_map(|r| Dnskey::from_wire(&r.rdata).ok())
                .collect(),
            cdnskey_ttl: ttl(&cdnskey, RecordType::CDNSKEY),
            ns: names,
            dnskeys: dnskey
                .answers(zone, RecordType::DNSKEY)
                .filter_map(|r| Dnskey::from_wire(&r.rdata).ok())
                .collect(),
            read_at: now,
        });
    }
    Err(FollowError::Answer {
        zone: display(&followed.zone),
        primary: followed.config.primary,
        what: "the serial kept changing while the apex was read".into(),
    })
}

/// Starts following `zones`: NOTIFYs arrive on `notified`; every newly
/// read apex goes out on the returned channel.
pub fn start(
    zones: Vec<Followed>,
    mut notified: mpsc::UnboundedReceiver<Name>,
) -> mpsc::UnboundedReceiver<(Name, FollowedApex)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut state: HashMap<Name, (Followed, Option<u32>, Instant, u32)> = zones
            .into_iter()
            .map(|f| (f.zone.clone(), (f, None, Instant::now(), 0)))
            .collect();
        let mut apexes: HashMap<Name, FollowedApex> = HashMap::new();
        loop {
            let next = state.values().map(|(_, _, at, _)| *at).min();
            let mut due: Vec<Name> = Vec::new();
            tokio::select! {
                Some(zone) = notified.recv() => due.push(zone),
                _ = sleep_until(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))) => {
                    let now = Instant::now();
                    due.extend(state.iter().filter(|(_, (_, _, at, _))| *at <= now).map(|(z, _)| z.clone()));
                }
            }
            for zone in due {
                let Some((followed, last, at, failures)) = state.get_mut(&zone) else {
                    continue;
                };
                let z = display(&zone);
                let previous = apexes.get(&zone).cloned();
                let result = match serial(followed).await {
                    Ok(s) if Some(s) == *last => Ok(None),
                    Ok(_) => read_apex(followed, Timestamp::now()).await.map(Some),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(read) => {
                        *failures = 0;
                        *at = Instant::now() + followed.config.refresh;
                        if let Some(mut apex) = read {
                            if let Some(old) = previous.filter(|old| old.ns == apex.ns) {
                                apex.ns_serial = old.ns_serial;
                            }
                            apexes.insert(zone.clone(), apex.clone());
                            tracing::info!(
                                zone = z,
                                serial = apex.serial,
                                cds = apex.cds.len(),
                                cdnskey = apex.cdnskey.len(),
                                ns = apex.ns.len(),
                                "read the signer's apex"
                            );
                            *last = Some(apex.serial);
                            let _ = tx.send((zone.clone(), apex));
                        }
                    }
                    Err(e) => {
                        *failures += 1;
                        let wait = followed
                            .config
                            .refresh
                            .min(Duration::from_secs(1 << (*failures).min(8)));
                        *at = Instant::now() + wait;
                        tracing::warn!(
                            zone = z,
                            retry_in_s = wait.as_secs_f64(),
                            "cannot read the signer: {e}; the last good view stays"
                        );
                    }
                }
            }
        }
    });
    rx
}
