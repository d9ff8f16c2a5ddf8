//! The daemon: the one event loop that wires key directories, policy,
//! signer and server together. Only the daemon decides what runs: the other
//! modules start work through a `start` function the daemon calls, and the
//! daemon owns the channels between them (docs/ARCHITECTURE.md, "Rules of
//! the house").
//!
//! Hot path: a key directory changes -> inotify event -> short debounce ->
//! rescan of that directory (only changed files are read) -> policy for the
//! zones whose keys changed -> changes to the signalling zones -> safety brake
//! -> re-sign the touched RRsets -> new snapshot swapped in, new serial.
//! Besides events: a timer for the next key timing event (Publish, Activate,
//! SyncPublish... at time T wakes the daemon at T), a periodic full rescan,
//! polling where inotify does not work, and a short re-read while BIND is
//! half-way through rewriting a key's files.

mod after_round;
mod agent_link;
mod brake;
pub mod control;
mod delegations;
pub mod error_reports;
pub mod explain;
mod facts;
mod key_cache;
mod key_changes;
mod providers;
mod round;
mod save;
mod schedule;
mod serial_mark;
mod serve;
mod service;
mod sidecar;
mod sign;
pub mod status;
mod takeover;
mod watch;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;
use tokio::sync::mpsc::UnboundedReceiver;

pub use round::{RoundInput, RoundReport};
pub use serve::serve;

use crate::{
    config::{Config, SignalingZoneConfig},
    dns::name::display,
    model::KeyStore,
    server::{self, SharedSnapshot, Snapshot},
    state::{StateDir, StateError},
    tsig::{KeyFileError, Keyring},
    vital::{Death, Vitals},
    zone::{ZoneStore, journal::Journal, persist},
};
use agent_link::AgentLink;
use save::ZoneSaver;
use schedule::KeySchedule;
use serial_mark::{SerialHold, SerialMark};

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
    /// The config names nothing to serve, follow or publish.
    #[error("{}: nothing to do: no [[signaling_zone]], and no [[zone]] with follow or publish", .0.display())]
    NothingToDo(PathBuf),
    /// A TSIG key file could not be read.
    #[error("{0}")]
    Keyring(#[from] KeyFileError),
    /// Another daemon holds the control socket.
    #[error("{0}")]
    ControlSocket(std::io::Error),
    /// The metrics endpoint could not listen.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics {
        /// `[metrics] listen`.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A signal handler could not be installed.
    #[error("cannot install a {signal} handler: {source}")]
    Signal {
        /// SIGHUP or SIGTERM.
        signal: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A vital part stopped (the process exits non-zero so its supervisor
    /// restarts it).
    #[error("{0}")]
    Died(#[from] Death),
    /// Work on a blocking thread (start-up, a round, a reload) panicked or
    /// was cancelled.
    #[error("a round, reload or start-up failed: {0}")]
    Round(#[from] tokio::task::JoinError),
}

/// Why a reload was refused (the old config stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new config is invalid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigErrors),
    /// The new config names nothing to do.
    #[error(
        "the new config has nothing to do (no [[signaling_zone]], no follow or publish): not applied"
    )]
    NothingToDo,
    /// A TSIG key file of the new config could not be read.
    #[error("{0}")]
    Keyring(#[from] KeyFileError),
}

/// One signalling zone as served.
struct ZoneRuntime {
    config: SignalingZoneConfig,
    store: ZoneStore,
    /// Differences between recent versions, for IXFR.
    journal: Arc<Journal>,
    broken: Option<String>,
    /// The keys it was last signed with (a saved zone's: the signers of
    /// its apex): a change means checking every signature.
    signer: Vec<(bool, u8, u16)>,
    /// The serial high-water mark (`zones/<apex>.toml`).
    mark: SerialMark,
    /// The newest serial a secondary held at start, when newer than the
    /// mark: new serials go above it too ([`takeover`]).
    floor: Option<u32>,
}

/// The daemon's state between rounds.
pub struct Daemon {
    config_path: PathBuf,
    config: Config,
    keys: KeyStore,
    state: StateDir,
    zones: BTreeMap<Name, ZoneRuntime>,
    snapshot: SharedSnapshot,
    /// Each zone's next key timing event.
    schedule: KeySchedule,
    /// What the safety brake holds back.
    brake: brake::BrakeState,
    /// Every child's delegation state.
    delegations: delegations::Delegations,
    /// Where events go (the log, and `[hooks] exec`).
    events: crate::event::Events,
    /// How far a signing run is (the service status during a cold start).
    signing: Arc<crate::zone::signer::SigningProgress>,
    /// True until the first round has run.
    first_round: bool,
    /// True until the secondaries were asked what they hold (`takeover`):
    /// until then the saved zones are served but not transferred (what
    /// the secondaries say may drop the journal).
    takeover_pending: bool,
    /// The secondaries being asked what they hold, until
    /// [`Daemon::check_secondaries`] takes their answers.
    secondary_asks: Option<takeover::SecondaryAsks>,
    /// A cold start's first round takes the secondaries' answers itself,
    /// on this runtime, before its first new serial
    /// ([`Daemon::settle_takeover`]), instead of waiting for them before it
    /// scans.
    takeover_deferred: Option<tokio::runtime::Handle>,
    /// Saves zones in the background.
    saver: ZoneSaver,
    /// Zones held because their next serial could not be recorded.
    serial_hold: SerialHold,
    /// TSIG keys.
    keyring: Arc<Keyring>,
    /// What the parent agent knows and was told.
    agent: AgentLink,
    /// Followed signers and UPDATE publishers.
    sidecar: sidecar::Sidecar,
    /// Starts the vital threads and tasks ([`crate::vital`]).
    vitals: Vitals,
    /// Where their deaths are reported (taken by the event loop).
    deaths: Option<UnboundedReceiver<Death>>,
    /// The UDP response rate limiter, once serving with it enabled.
    rrl: Option<Arc<crate::server::rrl::Rrl>>,
    /// The RFC 9567 monitoring agent the server answers for, with
    /// `[report] agent`.
    report_agent: Option<Arc<crate::server::report::ReportAgent>>,
    /// Where it queues the reports (taken by the event loop).
    report_queue: Option<tokio::sync::mpsc::Receiver<crate::server::report::ReportQuery>>,
    /// The reports received.
    error_reports: error_reports::ErrorReports,
    /// The other providers' KSKs per child with `foreign_from`.
    providers: providers::ProviderLink,
    /// The key caches being restored, until the first round takes them.
    key_caches: key_cache::CacheRestore,
    /// Key changes that may cut into a full round, once the event loop
    /// runs (`key_changes.rs`).
    cut_ins: Option<key_changes::CutIns>,
    /// What the key store is known to hold after a warm start.
    known_keys: key_cache::KnownKeys,
    /// The time the latest cut-in planned at (`key_changes.rs`), until the
    /// full round it cut into plans.
    cut_in_at: Option<jiff::Timestamp>,
}

impl Daemon {
    /// Loads the config, the state directory and the zones saved there (a
    /// warm start serves them at once); nothing is computed yet.
    pub fn new(config_path: &Path) -> Result<Self, DaemonError> {
        let config = crate::config::load(config_path)?;
        if !has_work(&config) {
            return Err(DaemonError::NothingToDo(config_path.to_path_buf()));
        }
        let state = StateDir::open(&config.state.dir)?;
        let keys = KeyStore::new(&config);
        let keyring = Arc::new(Keyring::load(&config.tsig_keys)?);
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::new(
            Vec::new(),
            config.server.edns_udp_size,
        )));
        let (vitals, deaths) = Vitals::new();
        let (report_agent, report_queue) = match &config.report.agent {
            Some(agent) => {
                let (agent, queue) = crate::server::report::ReportAgent::new(agent);
                (Some(Arc::new(agent)), Some(queue))
            }
            None => (None, None),
        };
        // Kept (and read back) only while signalbox is the agent.
        let error_reports = match config.report.agent {
            Some(_) => error_reports::ErrorReports::load(state.path().join("error-reports.log")),
            None => error_reports::ErrorReports::default(),
        };
        let mut daemon = Daemon {
            config_path: config_path.to_path_buf(),
            config,
            keys,
            state,
            zones: BTreeMap::new(),
            snapshot,
            schedule: KeySchedule::default(),
            brake: brake::BrakeState::default(),
            delegations: delegations::Delegations::default(),
            events: crate::event::Events::log_only(),
            signing: Arc::default(),
            first_round: true,
            takeover_pending: true,
            secondary_asks: None,
            takeover_deferred: None,
            saver: ZoneSaver::start(&vitals),
            serial_hold: SerialHold::default(),
            keyring,
            agent: AgentLink::default(),
            sidecar: sidecar::Sidecar::default(),
            vitals,
            deaths: Some(deaths),
            rrl: None,
            report_agent,
            report_queue,
            error_reports,
            providers: providers::ProviderLink::default(),
            key_caches: key_cache::CacheRestore::default(),
            cut_ins: None,
            known_keys: key_cache::KnownKeys::default(),
            cut_in_at: None,
        };
        // Beside the saved zones' load (`key_cache.rs`, `takeover.rs`).
        daemon.start_key_cache_restore();
        daemon.start_secondary_asks();
        daemon.sync_zones();
        daemon.publish_snapshot();
        Ok(daemon)
    }

    /// Makes `zones` match the config: new zones start from their saved
    /// version when there is one.
    fn sync_zones(&mut self) {
        let wanted: BTreeMap<Name, SignalingZoneConfig> = served_zones(&self.config)
            .map(|s| (s.apex.clone(), s.clone()))
            .collect();
        self.zones.retain(|apex, _| wanted.contains_key(apex));
        for (apex, config) in wanted {
            if let Some(zone) = self.zones.get_mut(&apex) {
                zone.config = config;
                continue;
            }
            let zone = self.load_zone(apex.clone(), config);
            self.zones.insert(apex, zone);
        }
        // What was asked of a zone no longer hosted by a signer (removed,
        // or served here now) says nothing of what is published: kept, the
        // brake would compare with it instead of the served zone, and miss
        // withdrawals.
        let hosted: Vec<Name> = self
            .published_signaling()
            .into_iter()
            .map(|(apex, _)| apex)
            .collect();
        self.sidecar
            .published_state
            .retain(|apex, _| hosted.contains(apex));
    }

    /// A zone as saved in the state directory: its serial high-water mark,
    /// its signed data (a warm start) and journal. A damaged file is named
    /// in an error and the zone starts cold; its serial still continues
    /// past the mark (docs/ARCHITECTURE.md, "State on disk").
    fn load_zone(&self, apex: Name, config: SignalingZoneConfig) -> ZoneRuntime {
        let zone_name = display(&apex);
        let mark = SerialMark::read(&self.state, &apex);
        let continues = match &mark {
            SerialMark::Known(Some(serial)) => format!("its serial continues from {serial}"),
            SerialMark::Known(None) => "it has no serial record, so its serial restarts".into(),
            SerialMark::Unreadable(e) => {
                tracing::error!(
                    zone = zone_name,
                    "{e}: it records the last serial served; the zone gets no new version until \
                     it reads cleanly (write `serial = N` into it, N the serial your secondaries \
                     have, or remove it)"
                );
                "its serial record is unreadable too".into()
            }
        };
        let path = self.state.zone_store_path(&apex);
        let store = match persist::load(&path) {
            Ok(Some(store)) if store.apex() == &apex => {
                tracing::info!(
                    zone = zone_name,
                    serial = store.serial(),
                    names = store.len(),
                    "warm start: serving the saved zone"
                );
                store
            }
            Ok(Some(other)) => {
                tracing::error!(
                    zone = zone_name,
                    path = %path.display(),
                    "the saved zone is for {}, not this zone; cold start ({continues}); it is \
                     replaced at the next save",
                    display(other.apex())
                );
                ZoneStore::new(apex.clone())
            }
            Ok(None) => ZoneStore::new(apex.clone()),
            Err(e) => {
                tracing::error!(
                    zone = zone_name,
                    "{e}; cold start: the zone is re-signed from its key files and {continues}. \
                     Nothing to do: the file is replaced at the next save (remove it to silence \
                     this; if it recurs, check the disk)"
                );
                ZoneStore::new(apex.clone())
            }
        };
        // The journal may run past the saved zone (saved less often):
        // keep only what leads to the zone's serial.
        let journal_path = self.state.journal_path(&apex);
        let mut journal = match Journal::load(&journal_path) {
            Ok(Some(j)) if !store.is_empty() => j,
            Ok(_) => Journal::default(),
            Err(e) => {
                tracing::error!(
                    zone = zone_name,
                    "{e}; starting the journal afresh (secondaries fall back to AXFR); the file \
                     is replaced at the next save"
                );
                Journal::default()
            }
        };
        journal.truncate_to(store.serial());
        // The versions after the image, from its change log.
        let (store, on_disk) = if store.is_empty() {
            (store, None)
        } else {
            let image_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            save::load_changes(
                &zone_name,
                &self.state.changes_path(&apex),
                store,
                image_bytes,
                &mut journal,
                &config.options.journal,
            )
        };
        if let Some(on_disk) = on_disk {
            self.saver.known(path, on_disk);
        }
        let signer = store.apex_signers();
        ZoneRuntime {
            journal: Arc::new(journal),
            config,
            store,
            broken: None,
            signer,
            mark,
            floor: None,
        }
    }

    /// The snapshot the server answers from.
    pub fn snapshot(&self) -> SharedSnapshot {
        self.snapshot.clone()
    }

    /// Re-reads the config; a bad one is rejected and the old one stays.
    pub fn reload(&mut self) -> Result<String, ReloadError> {
        let config = crate::config::load(&self.config_path)?;
        if !has_work(&config) {
            return Err(ReloadError::NothingToDo);
        }
        if config.server != self.config.server {
            tracing::warn!(
                "[server] changed: listen addresses, threads, TCP limits and [server.rrl] change at the next restart"
            );
        }
        if config.state != self.config.state {
            tracing::warn!("[state] changed: the state directory changes at the next restart");
        }
        if config.report != self.config.report {
            tracing::warn!("[report] changed: the monitoring agent changes at the next restart");
        }
        if providers::foreign_from_of(&config) != providers::foreign_from_of(&self.config) {
            tracing::warn!(
                "foreign_from changed: what is fetched changes at the next restart; \
                 a zone newly given foreign_from publishes nothing new until then"
            );
        }
        if publishing(&config) != publishing(&self.config) {
            tracing::warn!(
                "publish changed: UPDATE publishers start and change at the next restart; \
                 a signalling zone no longer hosted is served from now on, one newly hosted is \
                 no longer served and gets nothing written until then"
            );
        }
        let keyring = Keyring::load(&config.tsig_keys)?;
        let mut config = config;
        config.server = self.config.server.clone();
        config.state = self.config.state.clone();
        config.report = self.config.report.clone();
        config.notify.report_channel = self.config.report.agent.clone();
        self.keyring = Arc::new(keyring);
        self.keys.reconfigure(&config);
        self.events.reconfigure(&config.hooks);
        self.config = config;
        self.sync_zones();
        self.reread_signing_keys();
        Ok(format!("{} reloaded", self.config_path.display()))
    }

    /// Lets the next round through the safety brake.
    pub fn confirm(&mut self) -> String {
        self.brake.confirmed = true;
        match &self.brake.held {
            Some(brake::Verdict::Hold { affected, .. }) => {
                format!("confirmed: applying the held change to {affected} child zone(s)")
            }
            _ => {
                "confirmed (nothing is held now; the next round may go past the brake once)".into()
            }
        }
    }

    /// One line for the service manager (systemd's STATUS=): zones
    /// served, children by state, the safety brake, what is held.
    pub fn status_line(&self) -> String {
        self.status_report().summary_line()
    }

    /// The text of `signalbox status`.
    pub fn status(&self) -> String {
        self.status_report().to_text()
    }

    /// The NOTIFYs that tell every secondary of `apex` about `serial`.
    fn notify_jobs(&self, apex: &Name, serial: u32) -> Vec<key_changes::NotifyJob> {
        let Some(zone) = self.zones.get(apex) else {
            return Vec::new();
        };
        let key = zone
            .config
            .options
            .notify_key
            .as_ref()
            .and_then(|n| self.keyring.get(n))
            .cloned();
        zone.config
            .options
            .secondaries
            .iter()
            .map(|target| key_changes::NotifyJob {
                apex: apex.clone(),
                serial,
                target: *target,
                key: key.clone(),
            })
            .collect()
    }
}

/// Every zone written by UPDATE and where (`publish` of signalling zones
/// and of `[[zone]]`s): what the running publishers were started for.
fn publishing(config: &Config) -> Vec<(&Name, &crate::config::PublishConfig)> {
    let hosted = config
        .signaling_zones
        .iter()
        .filter_map(|s| Some((&s.apex, s.publish.as_ref()?)));
    let apexes = config
        .zones
        .iter()
        .filter_map(|z| Some((&z.name, z.publish.as_ref()?)));
    hosted.chain(apexes).collect()
}

/// The signalling zones served here; those hosted by a signer are written
/// by UPDATE, not served.
fn served_zones(config: &Config) -> impl Iterator<Item = &SignalingZoneConfig> {
    config
        .signaling_zones
        .iter()
        .filter(|s| s.publish.is_none())
}

/// True when `config` gives the daemon something to serve, follow or publish.
fn has_work(config: &Config) -> bool {
    !config.signaling_zones.is_empty()
        || config
            .zones
            .iter()
            .any(|z| z.follow.is_some() || z.publish.is_some())
}
