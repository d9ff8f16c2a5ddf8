//! The daemon: the one event loop that wires key directories, policy,
//! signer and server together (ARCHITECTURE.md: only `daemon` spawns tasks
//! and owns channels).
//!
//! Hot path: a key directory changes -> inotify event -> short debounce ->
//! rescan of that directory (only changed files are read) -> policy for the
//! zones whose keys changed -> changes to the signalling zones -> safety brake
//! -> re-sign the touched RRsets -> new snapshot swapped in, new serial.
//! Besides events: a timer for the next key timing event (Publish, Activate,
//! SyncPublish... at time T wakes the daemon at T), a periodic full rescan,
//! polling where inotify does not work, and a short re-read while BIND is
//! half-way through rewriting a key's files.

mod brake;
pub mod control;
mod round;
mod serve;
mod sidecar;
mod watch;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, mpsc},
    time::Duration,
};

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;
use jiff::Timestamp;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc as tmpsc;

pub use round::{RoundInput, RoundReport};
pub use serve::serve;

use crate::{
    config::{Config, SignalingZoneConfig},
    dns::name::display,
    model::KeyStore,
    parent::{
        SignalingTarget,
        agent::{self, AgentConfig, AgentPaths},
    },
    policy::{FollowedApex, ParentView},
    server::{self, SharedSnapshot, Snapshot},
    state::{StateDir, StateError},
    tsig::Keyring,
    zone::{ZoneStore, journal::Journal, persist},
};

/// Why the daemon stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config is invalid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigErrors),
    /// The state directory is unusable.
    #[error("{0}")]
    State(#[from] StateError),
    /// Sockets could not be opened.
    #[error("{0}")]
    Server(#[from] server::ServerError),
    /// Anything else that stops the daemon.
    #[error("{0}")]
    Other(String),
}

/// One signalling zone as served.
struct ZoneRuntime {
    config: SignalingZoneConfig,
    store: ZoneStore,
    /// Differences between recent versions, for IXFR.
    journal: Arc<Journal>,
    broken: Option<String>,
    /// The keys it was last signed with: a change means re-signing all.
    signer: Vec<(bool, u8, u16)>,
}

/// Saves zones (and their journals) in the background, the latest version
/// of each winning, at most once per `PERSIST_INTERVAL`: a saved zone is a
/// head start and the brake's memory, not the truth (the key files are), so
/// a burst of changes costs one write, not one per change.
struct Persister {
    tx: mpsc::Sender<SaveJob>,
}

/// A zone and its journal to save.
struct SaveJob {
    zone_path: PathBuf,
    zone: ZoneStore,
    journal_path: PathBuf,
    journal: Arc<Journal>,
}

/// Shortest time between two saves.
const PERSIST_INTERVAL: Duration = Duration::from_secs(2);

impl Persister {
    fn start() -> Self {
        let (tx, rx) = mpsc::channel::<SaveJob>();
        let spawned = std::thread::Builder::new().name("persist".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut latest: HashMap<PathBuf, SaveJob> = HashMap::new();
                latest.insert(first.zone_path.clone(), first);
                let started = std::time::Instant::now();
                loop {
                    while let Ok(job) = rx.try_recv() {
                        latest.insert(job.zone_path.clone(), job);
                    }
                    let left = PERSIST_INTERVAL.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(job) => {
                            latest.insert(job.zone_path.clone(), job);
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                for job in latest.into_values() {
                    // The journal first: on a crash between the two writes it
                    // leads past the zone, which loading handles.
                    let saved = crate::state::write_atomically(&job.journal_path, &job.journal.encode())
                        .and_then(|()| persist::save(&job.zone_path, &job.zone));
                    match saved {
                        Ok(()) => tracing::debug!(path = %job.zone_path.display(), serial = job.zone.serial(), "zone saved"),
                        Err(e) => tracing::error!("{e}"),
                    }
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the zone-saving thread; zones are not saved");
        }
        Persister { tx }
    }

    fn save(&self, job: SaveJob) {
        let _ = self.tx.send(job);
    }
}

/// The daemon's state between rounds.
pub struct Daemon {
    config_path: PathBuf,
    config: Config,
    keys: KeyStore,
    state: StateDir,
    zones: BTreeMap<Name, ZoneRuntime>,
    snapshot: SharedSnapshot,
    /// Unix second -> zones with a key timing event then.
    schedule: BTreeMap<i64, BTreeSet<Name>>,
    scheduled: FxHashMap<Name, i64>,
    /// Zones to recompute next round (held back by the brake).
    pending: BTreeSet<Name>,
    held: Option<brake::Verdict>,
    confirmed: bool,
    first_round: bool,
    persist: Persister,
    keyring: Arc<Keyring>,
    /// The parent agent runs (`[resolver]` servers set, `[notify]` enabled).
    agent_active: bool,
    /// What the parent was last seen to publish, per child.
    parent_views: HashMap<Name, ParentView>,
    /// Fingerprints last reported to the agent, per child.
    reported: FxHashMap<Name, (u64, u64)>,
    /// Children to report even if unchanged (their parent view changed).
    force_report: std::collections::HashSet<Name>,
    /// The signer's apex per followed child (sidecar mode).
    followed: HashMap<Name, FollowedApex>,
    /// Where NOTIFYs from followed zones' primaries go.
    inbox: Option<Arc<crate::server::inbound::FollowInbox>>,
    /// UPDATE publishers per zone (`publish`).
    publishers: HashMap<Name, tmpsc::UnboundedSender<crate::publish::Wanted>>,
    /// What was last asked of each hosted signalling zone.
    published_state: sidecar::PublishedState,
    /// Publisher counters (written, failed, dropped).
    publish_counters: Arc<crate::publish::Counters>,
}

impl Daemon {
    /// Loads the config, the state directory and the zones saved there (a
    /// warm start serves them at once); nothing is computed yet.
    pub fn new(config_path: &Path) -> Result<Self, DaemonError> {
        let config = crate::config::load(config_path)?;
        if config.signaling_zones.is_empty()
            && !config
                .zones
                .iter()
                .any(|z| z.follow.is_some() || z.publish.is_some())
        {
            return Err(DaemonError::Other(format!(
                "{}: nothing to do: no [[signaling_zone]], and no [[zone]] with follow or publish",
                config_path.display()
            )));
        }
        let state = StateDir::open(&config.state.dir)?;
        let keys = KeyStore::new(&config);
        let keyring = Arc::new(
            Keyring::load(&config.tsig_keys).map_err(|e| DaemonError::Other(e.to_string()))?,
        );
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::new(
            Vec::new(),
            config.server.edns_udp_size,
        )));
        let mut daemon = Daemon {
            config_path: config_path.to_path_buf(),
            config,
            keys,
            state,
            zones: BTreeMap::new(),
            snapshot,
            schedule: BTreeMap::new(),
            scheduled: FxHashMap::default(),
            pending: BTreeSet::new(),
            held: None,
            confirmed: false,
            first_round: true,
            persist: Persister::start(),
            keyring,
            agent_active: false,
            parent_views: HashMap::new(),
            reported: FxHashMap::default(),
            force_report: std::collections::HashSet::new(),
            followed: HashMap::new(),
            inbox: None,
            publishers: HashMap::new(),
            published_state: HashMap::new(),
            publish_counters: Arc::default(),
        };
        daemon.sync_zones();
        daemon.publish();
        Ok(daemon)
    }

    /// Makes `zones` match the config: new zones start from their saved
    /// version when there is one.
    fn sync_zones(&mut self) {
        let wanted: BTreeMap<Name, SignalingZoneConfig> = self
            .config
            .signaling_zones
            .iter()
            // Zones hosted by a signer are written by UPDATE, not served.
            .filter(|s| s.publish.is_none())
            .map(|s| (s.apex.clone(), s.clone()))
            .collect();
        self.zones.retain(|apex, _| wanted.contains_key(apex));
        for (apex, config) in wanted {
            if let Some(zone) = self.zones.get_mut(&apex) {
                zone.config = config;
                continue;
            }
            let path = self.state.zone_store_path(&apex);
            let store = match persist::load(&path) {
                Ok(Some(store)) if store.apex() == &apex => {
                    tracing::info!(
                        zone = display(&apex),
                        serial = store.serial(),
                        names = store.len(),
                        "warm start: serving the saved zone"
                    );
                    store
                }
                Ok(_) => ZoneStore::new(apex.clone()),
                Err(e) => {
                    tracing::warn!(zone = display(&apex), "{e}; cold start");
                    ZoneStore::new(apex.clone())
                }
            };
            // The journal may run past the saved zone (saved less often):
            // keep only what leads to the zone's serial.
            let mut journal = match Journal::load(&self.state.journal_path(&apex)) {
                Ok(Some(j)) if !store.is_empty() => j,
                Ok(_) => Journal::default(),
                Err(e) => {
                    tracing::warn!(zone = display(&apex), "{e}; starting the journal afresh");
                    Journal::default()
                }
            };
            journal.truncate_to(store.serial());
            self.zones.insert(
                apex,
                ZoneRuntime {
                    journal: Arc::new(journal),
                    config,
                    store,
                    broken: None,
                    signer: Vec::new(),
                },
            );
        }
    }

    /// The signalling zones as the consistency gate checks them: their
    /// servers and the DNSKEYs they are served with.
    fn signaling_targets(&self) -> Vec<SignalingTarget> {
        self.zones
            .values()
            .map(|zone| SignalingTarget {
                apex: zone.config.apex.clone(),
                ns_host: zone.config.ns_host(),
                hosts: zone.config.nameservers.clone(),
                dnskeys: zone
                    .store
                    .apex_node()
                    .and_then(|n| n.rrset(hickory_proto::rr::RecordType::DNSKEY))
                    .map(|set| {
                        set.rdatas()
                            .iter()
                            .filter_map(|r| crate::dns::Dnskey::from_wire(r).ok())
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Where the parent agent keeps its files.
    fn agent_paths(&self) -> AgentPaths {
        AgentPaths::in_state_dir(self.state.path())
    }

    /// Starts the parent agent when the config asks for it; seeds the
    /// parent views from the last run.
    fn start_agent(&mut self) -> Option<agent::AgentHandle> {
        let config = &self.config;
        if config.resolver.servers.is_empty() || !config.notify.enabled {
            tracing::info!(
                "no generalized NOTIFY and no parent observer: [resolver] servers is empty or [notify] enabled = false"
            );
            return None;
        }
        let paths = self.agent_paths();
        self.parent_views = agent::saved_views(&paths);
        self.agent_active = true;
        Some(agent::start(
            AgentConfig {
                resolver: config.resolver.clone(),
                notify: config.notify.clone(),
                parent: config.parent.clone(),
            },
            paths,
        ))
    }

    /// Starts following the `[[zone]]`s with `follow`: their primaries'
    /// NOTIFYs are accepted from now on.
    fn start_followers(&mut self) -> Option<tmpsc::UnboundedReceiver<(Name, FollowedApex)>> {
        let mut followed = Vec::new();
        let mut acls = Vec::new();
        for zone in &self.config.zones {
            let Some(follow) = &zone.follow else { continue };
            let key = follow
                .tsig
                .as_ref()
                .and_then(|name| self.keyring.get(name).cloned());
            acls.push(crate::server::inbound::FollowAcl {
                zone: zone.name.clone(),
                primary: follow.primary.ip(),
                key: follow.tsig.clone(),
            });
            followed.push(crate::follow::Followed {
                zone: zone.name.clone(),
                config: follow.clone(),
                key,
            });
        }
        if followed.is_empty() {
            return None;
        }
        let (tx, rx) = tmpsc::unbounded_channel();
        self.inbox = Some(Arc::new(crate::server::inbound::FollowInbox::new(acls, tx)));
        self.publish();
        Some(crate::follow::start(followed, rx))
    }

    /// Takes a changed parent view; returns whether the child must be
    /// recomputed.
    fn parent_view(&mut self, zone: Name, view: ParentView) -> bool {
        let same = self
            .parent_views
            .get(&zone)
            .is_some_and(|old| old.ds == view.ds && old.ns == view.ns);
        self.parent_views.insert(zone.clone(), view);
        if !same {
            self.force_report.insert(zone);
        }
        !same
    }

    /// The snapshot the server answers from.
    pub fn snapshot(&self) -> SharedSnapshot {
        self.snapshot.clone()
    }

    /// Re-reads the config; a bad one is rejected and the old one stays.
    pub fn reload(&mut self) -> Result<String, String> {
        let config = crate::config::load(&self.config_path).map_err(|e| e.to_string())?;
        if config.signaling_zones.is_empty()
            && !config
                .zones
                .iter()
                .any(|z| z.follow.is_some() || z.publish.is_some())
        {
            return Err("the new config has nothing to do (no [[signaling_zone]], no follow or publish): not applied".into());
        }
        if config.server != self.config.server {
            tracing::warn!(
                "[server] changed: listen addresses and threads change at the next restart"
            );
        }
        if config.state != self.config.state {
            tracing::warn!("[state] changed: the state directory changes at the next restart");
        }
        let keyring = Keyring::load(&config.tsig_keys).map_err(|e| e.to_string())?;
        let mut config = config;
        config.server = self.config.server.clone();
        config.state = self.config.state.clone();
        self.keyring = Arc::new(keyring);
        self.keys.reconfigure(&config);
        self.config = config;
        self.sync_zones();
        Ok(format!("{} reloaded", self.config_path.display()))
    }

    /// Lets the next round through the safety brake.
    pub fn confirm(&mut self) -> String {
        self.confirmed = true;
        match &self.held {
            Some(brake::Verdict::Hold { affected, .. }) => {
                format!("confirmed: applying the held change to {affected} child zone(s)")
            }
            _ => {
                "confirmed (nothing is held now; the next round may go past the brake once)".into()
            }
        }
    }

    /// A status report.
    pub fn status(&self) -> String {
        let mut out = String::new();
        for zone in self.zones.values() {
            out.push_str(&format!(
                "zone {} serial {} names {}{}\n",
                display(zone.store.apex()),
                zone.store.serial(),
                zone.store.len(),
                zone.broken
                    .as_ref()
                    .map_or_else(String::new, |b| format!(" NOT SIGNED: {b}"))
            ));
        }
        match &self.held {
            Some(brake::Verdict::Hold {
                affected,
                published,
                limit,
                ..
            }) => out.push_str(&format!(
                "safety brake: HOLDING a change to {affected} of {published} child zones (limit {limit})\n"
            )),
            _ => out.push_str("safety brake: not holding\n"),
        }
        for (zone, apex) in &self.followed {
            out.push_str(&format!(
                "following {} at {}: serial {}, {} CDS, {} CDNSKEY, read {}\n",
                display(zone),
                apex.primary,
                apex.serial,
                apex.cds.len(),
                apex.cdnskey.len(),
                apex.read_at
            ));
        }
        if !self.publishers.is_empty() {
            use std::sync::atomic::Ordering::Relaxed;
            let c = &self.publish_counters;
            out.push_str(&format!(
                "UPDATE: {} written, {} failed, {} dropped or reverted by the server\n",
                c.written.load(Relaxed),
                c.failed.load(Relaxed),
                c.dropped.load(Relaxed)
            ));
        }
        out
    }

    fn schedule_zone(&mut self, name: &Name, next: Option<Timestamp>) {
        self.unschedule_zone(name);
        if let Some(next) = next {
            let at = next.as_second();
            self.schedule.entry(at).or_default().insert(name.clone());
            self.scheduled.insert(name.clone(), at);
        }
    }

    fn unschedule_zone(&mut self, name: &Name) {
        if let Some(at) = self.scheduled.remove(name) {
            if let Some(set) = self.schedule.get_mut(&at) {
                set.remove(name);
                if set.is_empty() {
                    self.schedule.remove(&at);
                }
            }
        }
    }

    /// NOTIFY every secondary of `apex` about `serial`, superseding any
    /// NOTIFY still being retried for an older serial.
    fn notify_secondaries(
        &self,
        apex: &Name,
        serial: u32,
        running: &mut HashMap<(Name, std::net::SocketAddr), tokio::task::JoinHandle<()>>,
    ) {
        let Some(zone) = self.zones.get(apex) else {
            return;
        };
        let key = zone
            .config
            .options
            .notify_key
            .as_ref()
            .and_then(|n| self.keyring.get(n))
            .cloned();
        for target in &zone.config.options.secondaries {
            if let Some(old) = running.remove(&(apex.clone(), *target)) {
                old.abort();
            }
            let task = tokio::spawn(server::notify::notify(
                apex.clone(),
                serial,
                *target,
                key.clone(),
            ));
            running.insert((apex.clone(), *target), task);
        }
        running.retain(|_, task| !task.is_finished());
    }

    /// When the next key timing event is due (Unix seconds).
    fn next_event(&self) -> Option<i64> {
        self.schedule.keys().next().copied()
    }

    /// The zones whose timing events are due at `now`.
    fn due(&mut self, now: Timestamp) -> BTreeSet<Name> {
        let mut due = BTreeSet::new();
        while let Some((&at, _)) = self.schedule.first_key_value() {
            if at > now.as_second() {
                break;
            }
            if let Some(names) = self.schedule.remove(&at) {
                for name in names {
                    self.scheduled.remove(&name);
                    due.insert(name);
                }
            }
        }
        due
    }
}
