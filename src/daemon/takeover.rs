//! Taking over from another primary (issue 15: an active/standby pair).
//!
//! Two signalbox nodes share a configuration and the key directories; one
//! serves, the other is started when the first dies and takes over its
//! service address (VRRP, a floating IP, a DNS change: outside signalbox).
//! Each keeps its own state directory. The secondaries must then neither see
//! a serial go back (RFC 1982 §3.1, RFC 1995 §2) nor be sent an IXFR diff
//! made against another node's version of a serial: both nodes sign, ECDSA
//! signatures are randomised, so the same serial holds different RRSIGs on
//! each node, and one node's diff applied to the other's version leaves the
//! secondary with a zone neither made.
//!
//! So before it makes a new serial and before it transfers anything (the
//! saved zones are answered from the start; transfers are refused until
//! then), the daemon asks every secondary of every served zone for its SOA
//! with DNSSEC records (DO=1, RFC 4035 §3.1.1), and
//! - continues its serials above the newest any secondary has (RFC 1982
//!   comparison), beside its own high-water mark;
//! - drops its IXFR journal unless every secondary that answered holds
//!   exactly this node's served version: the same serial *and* the same SOA
//!   RRSIG signature octets; a secondary that does not answer may hold
//!   anything, so it counts against the journal too, and new serials then
//!   jump [`UNANSWERED_MARGIN`] past everything known, so this node does not
//!   make again a serial another node made while that secondary was cut
//!   off. An IXFR from any other
//!   version then gets the whole zone instead (RFC 1995 §4), once; the
//!   zone is saved whole at once, so the dropped diffs do not come back
//!   from its change log at the next start.
//!
//! Every secondary is asked at once, over UDP (0.5 s, then 1 s; TCP only
//! for a truncated answer), as soon as the configuration is read, beside
//! the saved zones' load: one that does not answer delays the first round
//! (not the first answer) by what is left of its 1.5 s once the zones are
//! loaded (at a million children, nothing), is logged and left out; on a
//! cold start (nothing served yet, so nothing to transfer and no journal)
//! the first round scans and signs meanwhile and takes the answers before
//! its first new serial ([`Daemon::settle_takeover`]). Those
//! that answered are asked again when their answers are more than a second
//! old by then (the other node may have made a serial meanwhile), which
//! costs one round trip; when none answers the node goes on with its own records, as a
//! single primary always did. docs/ARCHITECTURE.md ("State on disk") has the
//! procedure; `tests/it/standby.rs` runs it with a Knot secondary.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use hickory_proto::rr::{Name, RecordType};

use super::Daemon;
use crate::{
    client::{self, Options, TcpFallback},
    dns::{
        Rrsig, message,
        name::display,
        wire::{self, flags, rcode},
    },
    zone::{journal::Journal, serial, store::soa_serial_of},
};

/// How far serials jump when a secondary did not answer at start
/// ([`decide`]): more versions than another node would make while this one
/// was not running and that secondary was cut off.
const UNANSWERED_MARGIN: u32 = 100_000;

/// A version of a zone as a secondary holds it or this node serves it:
/// its serial and the signature octets of its SOA RRSIGs, which tell two
/// nodes' versions of one serial apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    serial: u32,
    soa_signatures: Vec<Vec<u8>>,
}

/// Why a secondary's view is unknown.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error("{0}")]
    Query(#[from] client::ClientError),
    #[error("answered {0} (does it have the zone?)")]
    Answer(String),
    #[error("no SOA in the answer")]
    NoSoa,
}

/// One secondary's answer to "what do you hold": the zone, the secondary,
/// and its version or why it is unknown.
type Answer = (Name, SocketAddr, Result<Version, AskError>);

/// What the secondaries of each zone said: the versions they hold, and how
/// many did not say.
type Answers = HashMap<Name, (Vec<(SocketAddr, Version)>, usize)>;

/// How old the secondaries' answers may be when they are taken: the other
/// node of a pair may still have made a serial meanwhile (a late death), so
/// those that answered are asked again after a long load.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// The secondaries of every served zone, asked what they hold; started as
/// soon as the configuration is read ([`Daemon::new`]), so that the asks,
/// and the timeout of a secondary that does not answer, run beside the
/// saved zones' load instead of after it.
pub(super) struct SecondaryAsks {
    asks: tokio::task::JoinSet<Answer>,
    started: Instant,
}

impl SecondaryAsks {
    /// Asks every secondary of every zone at once, on `runtime`: a dead
    /// one costs its timeout once, not once per zone and secondary.
    pub(super) fn start<'a>(
        zones: impl IntoIterator<Item = (&'a Name, &'a [SocketAddr])>,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        let mut asks = tokio::task::JoinSet::new();
        for (apex, secondaries) in zones {
            for addr in secondaries.iter().copied() {
                let apex = apex.clone();
                asks.spawn_on(
                    async move {
                        let held = ask(&apex, addr).await;
                        (apex, addr, held)
                    },
                    runtime,
                );
            }
        }
        SecondaryAsks {
            asks,
            started: Instant::now(),
        }
    }

    /// What the secondaries of each zone said, those that did not say
    /// logged here.
    async fn answers(mut self) -> Answers {
        let mut seen: Answers = HashMap::new();
        while let Some(done) = self.asks.join_next().await {
            let Ok((apex, addr, held)) = done else {
                continue; // a panicked ask: that secondary is left out
            };
            let entry = seen.entry(apex.clone()).or_default();
            match held {
                Ok(held) => entry.0.push((addr, held)),
                Err(e) => {
                    entry.1 += 1;
                    tracing::warn!(
                        zone = display(&apex),
                        secondary = %addr,
                        "cannot learn the serial the secondary holds: {e}"
                    );
                }
            }
        }
        seen
    }
}

impl Daemon {
    /// Starts asking the secondaries of the served zones what they hold
    /// ([`SecondaryAsks`]), when there is a runtime to ask on (else
    /// [`Self::check_secondaries`] asks).
    pub(super) fn start_secondary_asks(&mut self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.secondary_asks = Some(self.ask_secondaries(&runtime));
        }
    }

    /// Asks every secondary of every served zone what it holds, on
    /// `runtime`.
    fn ask_secondaries(&self, runtime: &tokio::runtime::Handle) -> SecondaryAsks {
        let zones = super::served_zones(&self.config)
            .map(|zone| (&zone.apex, zone.options.secondaries.as_slice()));
        let asks = SecondaryAsks::start(zones, runtime);
        if !asks.asks.is_empty() {
            tracing::info!(
                secondaries = asks.asks.len(),
                "asking the secondaries what they hold"
            );
        }
        asks
    }

    /// Before a start's first round: what the secondaries hold, taken now
    /// ([`Self::check_secondaries`]); or, on a cold start (no zone served
    /// yet: nothing to transfer, no journal to drop), deferred to the first
    /// round's apply phase ([`Self::settle_takeover`]), so that its key scan
    /// does not wait for a secondary that does not answer (1.5 s).
    pub(super) async fn check_secondaries_or_defer(&mut self) {
        if self.zones.values().all(|zone| zone.store.is_empty()) {
            self.takeover_deferred = Some(tokio::runtime::Handle::current());
            return;
        }
        self.check_secondaries().await;
        self.takeover_pending = false;
    }

    /// Takes the secondaries' answers a cold start deferred, before the
    /// first new serial; called from the round's thread (a blocking one,
    /// which may wait on the runtime). A no-op otherwise.
    pub(super) fn settle_takeover(&mut self) {
        let Some(runtime) = self.takeover_deferred.take() else {
            return;
        };
        runtime.block_on(self.check_secondaries());
        self.takeover_pending = false;
    }

    /// Takes what the secondaries of every served zone hold (asked since
    /// start-up); raises each zone's serial floor and drops journals as
    /// the module doc says. Runs once the saved zones are served, before
    /// any transfer and before the first new serial.
    pub(super) async fn check_secondaries(&mut self) {
        let asks = match self.secondary_asks.take() {
            Some(asks) => asks,
            None => self.ask_secondaries(&tokio::runtime::Handle::current()),
        };
        let started = asks.started;
        let mut answers = asks.answers().await;
        if started.elapsed() > FRESH_FOR {
            ask_again(&mut answers).await;
        }
        for (apex, (seen, unanswered)) in answers {
            self.take_over(&apex, &seen, unanswered);
        }
    }

    /// Applies what the secondaries of `apex` hold ([`decide`]);
    /// `unanswered` secondaries may hold anything, so they count against
    /// the journal too.
    fn take_over(&mut self, apex: &Name, seen: &[(SocketAddr, Version)], unanswered: usize) {
        let Some(zone) = self.zones.get_mut(apex) else {
            return;
        };
        let zone_name = display(apex);
        let ours = (!zone.store.is_empty()).then(|| Version {
            serial: zone.store.serial(),
            soa_signatures: zone
                .store
                .apex_node()
                .and_then(|node| node.rrset(RecordType::SOA))
                .map(|set| set.rrsigs().into_iter().map(|s| s.signature).collect())
                .unwrap_or_default(),
        });
        let verdict = decide(ours.as_ref(), zone.mark.known(), seen, unanswered);
        if let Some(floor) = verdict.floor {
            if unanswered > 0 {
                tracing::warn!(
                    zone = zone_name,
                    floor,
                    own_mark = zone.mark.known(),
                    unanswered,
                    "a secondary did not say what it holds: new serials continue from {floor}, \
                     leaving room for versions another node may have made meanwhile"
                );
            } else {
                tracing::warn!(
                    zone = zone_name,
                    secondary_serial = floor,
                    own_mark = zone.mark.known(),
                    "a secondary holds a newer serial than this node made: continuing above it \
                     (a standby taking over, or a state directory restored from a backup)"
                );
            }
            zone.floor = Some(floor);
        }
        if verdict.foreign.is_empty() && unanswered == 0 {
            if !seen.is_empty() {
                tracing::info!(
                    zone = zone_name,
                    serial = ours.as_ref().map(|o| o.serial),
                    secondaries = seen.len(),
                    "the secondaries hold this node's served version"
                );
            }
        } else if !zone.journal.is_empty() {
            let foreign: Vec<String> = verdict
                .foreign
                .iter()
                .map(|(addr, serial)| format!("{addr} (serial {serial})"))
                .collect();
            tracing::warn!(
                zone = zone_name,
                secondaries = foreign.join(", "),
                unanswered,
                "secondaries hold a version this node did not serve last, or did not say: its \
                 IXFR journal is dropped (and saved so), so they get the whole zone once instead \
                 of a diff made against another version"
            );
            zone.journal = Arc::new(Journal::default());
            let job = super::save::SaveJob {
                zone_path: self.state.zone_store_path(apex),
                zone: zone.store.clone(),
                journal_path: self.state.journal_path(apex),
                journal: zone.journal.clone(),
                changes_path: self.state.changes_path(apex),
            };
            self.saver.save_whole(job);
        }
    }
}

/// Asks the secondaries that answered again, and takes their new answers
/// instead (one that does not answer now counts as unanswered): what they
/// said before the saved zones loaded may be seconds old. Those that did
/// not answer stay unanswered, already covered by [`UNANSWERED_MARGIN`].
async fn ask_again(answers: &mut Answers) {
    let answered: Vec<(Name, Vec<SocketAddr>)> = answers
        .iter()
        .filter(|(_, (seen, _))| !seen.is_empty())
        .map(|(apex, (seen, _))| (apex.clone(), seen.iter().map(|(addr, _)| *addr).collect()))
        .collect();
    if answered.is_empty() {
        return;
    }
    tracing::debug!(
        zones = answered.len(),
        "asking the secondaries that answered again: their answers came before the saved zones loaded"
    );
    let zones = answered
        .iter()
        .map(|(apex, addrs)| (apex, addrs.as_slice()));
    let again = SecondaryAsks::start(zones, &tokio::runtime::Handle::current());
    let mut again = again.answers().await;
    for (apex, asked) in &answered {
        let (seen, _) = again.remove(apex).unwrap_or_default();
        if let Some(entry) = answers.get_mut(apex) {
            // Not answering now (or an ask that failed) counts as unanswered.
            entry.1 += asked.len().saturating_sub(seen.len());
            entry.0 = seen;
        }
    }
}

/// What to do about what the secondaries hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Verdict {
    /// Continue above this serial (newer than anything this node made).
    floor: Option<u32>,
    /// Secondaries holding another version than the served one, with
    /// their serial: the journal must go.
    foreign: Vec<(SocketAddr, u32)>,
}

/// The pure decision: `ours` is the version served (none on a cold start),
/// `mark` the serial high-water mark, `seen` what each secondary holds.
fn decide(
    ours: Option<&Version>,
    mark: Option<u32>,
    seen: &[(SocketAddr, Version)],
    unanswered: usize,
) -> Verdict {
    let newer = |a: u32, b: u32| if serial::is_newer(a, b) { a } else { b };
    let newest = seen.iter().map(|(_, held)| held.serial).reduce(newer);
    let own = [mark, ours.map(|o| o.serial)]
        .into_iter()
        .flatten()
        .reduce(newer);
    let mut floor = newest.filter(|n| own.is_none_or(|own| serial::is_newer(*n, own)));
    if unanswered > 0 {
        // A secondary that did not answer may hold serials made by the
        // other node after everything this node knows of: leave them room,
        // so this node does not make one of them again with other
        // signatures (RFC 1982 §3.1 allows any step below 2^31).
        let known = [own, newest].into_iter().flatten().reduce(newer);
        floor = Some(known.unwrap_or(0).wrapping_add(UNANSWERED_MARGIN));
    }
    let foreign = seen
        .iter()
        .filter(|(_, held)| {
            ours.is_none_or(|ours| {
                held.serial != ours.serial
                    || !held
                        .soa_signatures
                        .iter()
                        .any(|sig| ours.soa_signatures.contains(sig))
            })
        })
        .map(|(addr, held)| (*addr, held.serial))
        .collect();
    Verdict { floor, foreign }
}

/// The SOA serial and SOA RRSIG signatures `addr` serves for `apex`.
async fn ask(apex: &Name, addr: SocketAddr) -> Result<Version, AskError> {
    // UDP only, 0.5 s then 1 s: a secondary that is down delays the start
    // by 1.5 s at most.
    let options = Options {
        timeout: Duration::from_millis(500),
        udp_tries: 2,
        tcp: TcpFallback::OnTruncation,
        ..Options::default()
    };
    let query = message::query(wire::random_id(), apex, RecordType::SOA, false, true);
    let reply = client::exchange(addr, query, &options).await?;
    if reply.rcode != rcode::NOERROR || !reply.has(flags::AA) {
        return Err(AskError::Answer(format!(
            "{}{}",
            rcode::name(reply.rcode),
            if reply.has(flags::AA) {
                ""
            } else {
                " without AA"
            }
        )));
    }
    let serial = reply
        .answers(apex, RecordType::SOA)
        .find_map(|r| soa_serial_of(&r.rdata))
        .ok_or(AskError::NoSoa)?;
    let soa_signatures = reply
        .answers(apex, RecordType::RRSIG)
        .filter_map(|r| Rrsig::from_wire(&r.rdata))
        .filter(|sig| sig.type_covered == RecordType::SOA)
        .map(|sig| sig.signature)
        .collect();
    Ok(Version {
        serial,
        soa_signatures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(serial: u32, sig: u8) -> Version {
        Version {
            serial,
            soa_signatures: vec![vec![sig; 64]],
        }
    }

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn secondaries_on_this_nodes_version_change_nothing() {
        let ours = Version {
            serial: 10,
            soa_signatures: vec![vec![1; 64]],
        };
        let verdict = decide(
            Some(&ours),
            Some(10),
            &[(at(1), held(10, 1)), (at(2), held(10, 1))],
            0,
        );
        assert_eq!(verdict, Verdict::default());
    }

    #[test]
    fn an_unanswered_secondary_leaves_room_above_everything_known() {
        let ours = Version {
            serial: 10,
            soa_signatures: vec![vec![1; 64]],
        };
        // One answered with this node's version, one did not answer: it may
        // hold serials 11, 12 ... made by the other node meanwhile.
        let verdict = decide(Some(&ours), Some(10), &[(at(1), held(10, 1))], 1);
        assert_eq!(verdict.floor, Some(10 + UNANSWERED_MARGIN));
        assert!(verdict.foreign.is_empty());
        // Near the top of the serial space the step wraps (RFC 1982).
        let verdict = decide(None, Some(u32::MAX - 5), &[], 1);
        assert_eq!(verdict.floor, Some(UNANSWERED_MARGIN - 6));
    }

    #[test]
    fn the_same_serial_signed_elsewhere_drops_the_journal() {
        // Both nodes made serial 10 (the secondary lagged when the other
        // node took over): same number, other signatures.
        let ours = Version {
            serial: 10,
            soa_signatures: vec![vec![1; 64]],
        };
        let verdict = decide(Some(&ours), Some(10), &[(at(1), held(10, 2))], 0);
        assert_eq!(verdict.floor, None);
        assert_eq!(verdict.foreign, [(at(1), 10)]);
    }

    #[test]
    fn a_newer_secondary_raises_the_floor_and_a_lagging_one_drops_the_journal() {
        let ours = Version {
            serial: 10,
            soa_signatures: vec![vec![1; 64]],
        };
        let verdict = decide(
            Some(&ours),
            Some(11),
            &[(at(1), held(15, 3)), (at(2), held(9, 4))],
            0,
        );
        assert_eq!(verdict.floor, Some(15));
        assert_eq!(verdict.foreign, [(at(1), 15), (at(2), 9)]);
        // Across the wrap of the serial space (RFC 1982): 5 is newer than
        // 4294967290.
        let verdict = decide(None, Some(4_294_967_290), &[(at(1), held(5, 3))], 0);
        assert_eq!(verdict.floor, Some(5));
        // A cold start with no record: above whatever the secondaries hold.
        assert_eq!(decide(None, None, &[(at(1), held(7, 3))], 0).floor, Some(7));
    }

    /// An answer from before the saved zones loaded is not taken as it is:
    /// the secondary is asked again, and one that does not answer now
    /// counts as unanswered (new serials then jump the margin), whatever it
    /// said before. Zones none of whose secondaries answered are not asked.
    #[test]
    fn answers_from_before_the_load_are_asked_again() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        // Receives and never answers: a secondary gone since.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let gone = silent.local_addr().expect("addr");
        let apex = crate::dns::parse_name("_signal.example.").expect("name");
        let quiet = crate::dns::parse_name("_signal.example.net.").expect("name");
        let mut answers: Answers = HashMap::new();
        answers.insert(apex.clone(), (vec![(gone, held(7, 1))], 0));
        answers.insert(quiet.clone(), (Vec::new(), 2));
        runtime.block_on(ask_again(&mut answers));
        assert_eq!(answers[&apex], (Vec::new(), 1));
        assert_eq!(answers[&quiet], (Vec::new(), 2));
        // Asked once, for the zone's SOA; nothing for the zone not asked.
        silent
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let (len, _) = silent.recv_from(&mut buf).expect("an SOA query");
        assert!(len > 12);
    }
}
