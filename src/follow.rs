//! Following a signer (sidecar mode): signalbox reads a zone's apex from
//! its primary, like a secondary that only cares about the apex.
//!
//! The SOA is polled every `refresh` (a lost NOTIFY costs at most that
//! much), and a NOTIFY from the primary (accepted by
//! [`crate::server::inbound`]) triggers a check soon (RFC 1996 §4.7): a
//! burst of NOTIFYs for a zone is one entry in the bounded [`Pending`] set,
//! and a zone's NOTIFY-triggered checks are at least a second apart
//! (`follow::schedule`), a NOTIFY during the wait remembered. On a new serial the
//! apex SOA, DNSKEY, CDS, CDNSKEY and NS are read by query, TSIG-signed when
//! `follow.tsig` is set, and must all come from one version: the SOA is read
//! again last and a change in between means read again. What was read is a
//! fact for the policy ([`FollowedApex`]).

use std::{net::SocketAddr, sync::Arc, time::Duration};

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
    vital::{Ends, Vitals},
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

/// When each followed zone was last confirmed current: the last SOA check
/// that succeeded (the same serial seen again, or a new apex read whole).
/// Seeded with the start time, so a signer unreachable from the start shows
/// a growing lag too. `signalbox_follow_lag_seconds` is now minus this.
#[derive(Debug, Default)]
pub struct Confirmed(std::sync::Mutex<std::collections::BTreeMap<String, Timestamp>>);

impl Confirmed {
    fn note(&self, zone: &Name, at: Timestamp) {
        let mut zones = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        zones.insert(display(zone), at);
    }

    /// Seconds since each followed zone was last confirmed, at `now`.
    pub fn lags(&self, now: Timestamp) -> Vec<(String, f64)> {
        let zones = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        zones
            .iter()
            .map(|(zone, at)| {
                let lag = now.duration_since(*at).as_secs_f64().max(0.0);
                (zone.clone(), lag)
            })
            .collect()
    }
}

/// What [`start`] hands back.
pub struct Following {
    /// Where NOTIFYs go (the daemon hands it to the server's inbox).
    pub pending: Arc<Pending>,
    /// Every newly read apex.
    pub apexes: mpsc::UnboundedReceiver<(Name, FollowedApex)>,
    /// When each zone was last confirmed current.
    pub confirmed: Arc<Confirmed>,
}

/// Starts following `zones`.
pub fn start(zones: Vec<Followed>, vitals: &Vitals) -> Following {
    let names: Vec<Name> = zones.iter().map(|f| f.zone.clone()).collect();
    let pending = Arc::new(Pending::new(&names, pending::CAPACITY));
    let confirmed = Arc::new(Confirmed::default());
    let started = Timestamp::now();
    for zone in &names {
        confirmed.note(zone, started);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    vitals.task(
        "follower",
        Ends::WhenInputCloses,
        follow_all(zones, pending.clone(), tx, Arc::clone(&confirmed)),
    );
    Following {
        pending,
        apexes: rx,
        confirmed,
    }
}

/// One followed zone as the follower keeps it.
struct FollowState {
    followed: Followed,
    /// The serial last read.
    last: Option<u32>,
    /// Failed checks in a row.
    failures: u32,
    /// The apex last read.
    apex: Option<FollowedApex>,
}

/// The follower: checks each zone when [`Schedule`] says it is due, after
/// taking what NOTIFYs arrived from `pending`.
async fn follow_all(
    zones: Vec<Followed>,
    pending: Arc<Pending>,
    tx: mpsc::UnboundedSender<(Name, FollowedApex)>,
    confirmed: Arc<Confirmed>,
) {
    let mut schedule = Schedule::new(zones.len(), Instant::now(), NOTIFY_INTERVAL);
    let mut states: Vec<FollowState> = zones
        .into_iter()
        .map(|followed| FollowState {
            followed,
            last: None,
            failures: 0,
            apex: None,
        })
        .collect();
    loop {
        let next = schedule
            .next()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            () = pending.wait() => {}
            () = sleep_until(next) => {}
        }
        for zone in pending.take() {
            schedule.notified(zone);
        }
        for zone in schedule.due(Instant::now()) {
            let Some(state) = states.get_mut(zone) else {
                continue;
            };
            pending.checking(zone);
            let next_poll = state.check(&tx, &confirmed).await;
            schedule.checked(zone, Instant::now(), next_poll);
        }
    }
}

impl FollowState {
    /// Checks the SOA and reads the apex when the serial is new; returns
    /// the wait until the next poll.
    async fn check(
        &mut self,
        tx: &mpsc::UnboundedSender<(Name, FollowedApex)>,
        confirmed: &Confirmed,
    ) -> Duration {
        let followed = &self.followed;
        let z = display(&followed.zone);
        let result = match serial(followed).await {
            Ok(s) if Some(s) == self.last => Ok(None),
            Ok(_) => read_apex(followed, Timestamp::now()).await.map(Some),
            Err(e) => Err(e),
        };
        match result {
            Ok(read) => {
                self.failures = 0;
                confirmed.note(&followed.zone, Timestamp::now());
                if let Some(mut apex) = read {
                    if let Some(old) = self.apex.as_ref().filter(|old| old.ns == apex.ns) {
                        apex.ns_serial = old.ns_serial;
                    }
                    tracing::info!(
                        zone = z,
                        serial = apex.serial,
                        cds = apex.cds.len(),
                        cdnskey = apex.cdnskey.len(),
                        ns = apex.ns.len(),
                        "read the signer's apex"
                    );
                    self.last = Some(apex.serial);
                    self.apex = Some(apex.clone());
                    let _ = tx.send((followed.zone.clone(), apex));
                }
                followed.config.refresh
            }
            Err(e) => {
                self.failures += 1;
                let wait = followed
                    .config
                    .refresh
                    .min(Duration::from_secs(1 << self.failures.min(8)));
                tracing::warn!(
                    zone = z,
                    retry_in_s = wait.as_secs_f64(),
                    "cannot read the signer: {e}; the last good view stays"
                );
                wait
            }
        }
    }
}

mod pending;
mod schedule;

pub use pending::{Pending, PendingCounts, Queued};
use schedule::{NOTIFY_INTERVAL, Schedule};
