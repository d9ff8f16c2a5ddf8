//! The daemon: wires key directories, policy, signer and server together.
//!
//! Every round is level-triggered (ARCHITECTURE.md): rescan the key
//! directories, recompute every child's signals and every signalling zone's
//! content from all facts at `now`, re-sign what changed, and swap in a new
//! answer snapshot. A round that changes nothing keeps the serial.

use std::{collections::HashMap, path::Path, sync::Arc, time::Instant};

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;
use jiff::Timestamp;

use crate::{
    config::{Config, SignalingZoneConfig},
    dns::name::display,
    model::{self, KeyStore},
    policy::{self, ZoneInput, ZoneSignals},
    server::{self, SharedSnapshot, Snapshot, ZoneAnswers},
    state::{StateDir, StateError, ZoneState},
    zone::{SignedZone, ZoneContent, ZoneSigner, content, serial},
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
    /// The config serves nothing.
    #[error("{0}: no [[signaling_zone]] to serve")]
    NothingToServe(String),
}

/// One served zone and what it was built from.
struct Served {
    signed: SignedZone,
    content: Option<ZoneContent>,
    broken: Option<String>,
}

/// The daemon's state between rounds.
pub struct Daemon {
    config: Config,
    store: KeyStore,
    state: StateDir,
    zones: HashMap<Name, Served>,
    snapshot: SharedSnapshot,
}

impl Daemon {
    /// Loads the config and state directory; nothing is served yet.
    pub fn new(config_path: &Path) -> Result<Self, DaemonError> {
        let config = crate::config::load(config_path)?;
        if config.signaling_zones.is_empty() {
            return Err(DaemonError::NothingToServe(
                config_path.display().to_string(),
            ));
        }
        let state = StateDir::open(&config.state.dir)?;
        let store = KeyStore::new(&config);
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::new(
            Vec::new(),
            config.server.edns_udp_size,
        )));
        Ok(Daemon {
            config,
            store,
            state,
            zones: HashMap::new(),
            snapshot,
        })
    }

    /// The snapshot the server answers from.
    pub fn snapshot(&self) -> SharedSnapshot {
        self.snapshot.clone()
    }

    /// One round: rescan, recompute, re-sign what changed, swap the snapshot.
    pub fn round(&mut self, now: Timestamp) {
        let started = Instant::now();
        self.store.scan(started);
        while self.store.has_pending_flux()
            && started.elapsed() <= crate::keys::dir::DEFAULT_FLUX_GRACE
        {
            std::thread::sleep(std::time::Duration::from_millis(100));
            self.store.scan(Instant::now());
        }
        let (children, errors) = model::children(&self.config, &self.store);
        for error in errors {
            tracing::error!("{error}");
        }
        let mut signals: Vec<ZoneSignals> = Vec::with_capacity(children.len());
        for child in &children {
            for issue in &child.issues {
                tracing::warn!(zone = display(&child.name), key_tag = issue.tag, "{issue}");
            }
            if child.is_held() {
                tracing::warn!(
                    zone = display(&child.name),
                    reasons = child.held.join("; "),
                    "zone held: no signals published for it"
                );
                continue;
            }
            let zone_signals = policy::compute(&child.input(None, None), now);
            zone_signals.trace();
            signals.push(zone_signals);
        }
        for sz in self.config.signaling_zones.clone() {
            self.refresh_zone(&sz, &signals, now);
        }
        let answers: Vec<Arc<ZoneAnswers>> = self
            .config
            .signaling_zones
            .iter()
            .filter_map(|sz| self.zones.get(&sz.apex).map(|served| (sz, served)))
            .map(|(sz, served)| {
                Arc::new(match &served.broken {
                    Some(why) if served.signed.nodes.is_empty() => {
                        ZoneAnswers::broken(&sz.apex, why.clone())
                    }
                    _ => ZoneAnswers::build(&served.signed),
                })
            })
            .collect();
        for zone in &answers {
            tracing::info!("serving {zone}");
        }
        self.snapshot.store(Arc::new(Snapshot::new(
            answers,
            self.config.server.edns_udp_size,
        )));
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "round done"
        );
    }

    fn refresh_zone(&mut self, sz: &SignalingZoneConfig, children: &[ZoneSignals], now: Timestamp) {
        let apex = display(&sz.apex);
        let keys = self
            .store
            .report(&sz.keys)
            .and_then(|r| r.zones.get(&sz.apex).cloned())
            .unwrap_or_default();
        if let Some(report) = self.store.report(&sz.keys) {
            for issue in report.issues_for(&sz.apex) {
                tracing::warn!(zone = apex, "{issue}");
            }
        }
        let own_settings = sz.settings.resolve();
        let own = policy::compute(
            &ZoneInput {
                zone: &sz.apex,
                settings: &own_settings,
                keys: &keys,
                parent: None,
                soa_serial: None,
            },
            now,
        );
        own.trace();
        let content = content::signaling_zone(sz, &keys, &own, children, now);
        let signer = ZoneSigner::from_keys(&keys, now);
        for problem in &signer.problems {
            tracing::error!(zone = apex, "{problem}");
        }
        let served = self.zones.entry(sz.apex.clone()).or_insert_with(|| Served {
            signed: SignedZone::new(sz.apex.clone()),
            content: None,
            broken: None,
        });
        let now_secs = now.as_second().clamp(0, i64::from(u32::MAX)) as u32;
        let expiring = served.signed.earliest_expiration().is_some_and(|exp| {
            exp.wrapping_sub(now_secs) <= sz.options.signature_refresh
                || exp.wrapping_sub(now_secs) >= 0x8000_0000
        });
        if served.content.as_ref() == Some(&content) && !expiring && served.broken.is_none() {
            return;
        }
        // The serial in memory, or on the first round the one saved last time.
        let old_serial = if served.signed.nodes.is_empty() {
            match self.state.load_zone(&sz.apex) {
                Ok(state) => state.map(|s| s.serial),
                Err(e) => {
                    tracing::error!(zone = apex, "{e}; starting serials afresh");
                    None
                }
            }
        } else {
            Some(served.signed.serial)
        };
        let new_serial = serial::next(sz.options.serial_policy, old_serial, now);
        match served
            .signed
            .update(&content, &signer, new_serial, now, &sz.options)
        {
            Ok(stats) => {
                tracing::info!(
                    zone = apex,
                    serial = new_serial,
                    names = stats.names,
                    rrsets_signed = stats.rrsets_signed,
                    signatures = stats.signatures,
                    rrsets_kept = stats.rrsets_kept,
                    "zone signed"
                );
                if let Err(e) = self
                    .state
                    .save_zone(&sz.apex, &ZoneState { serial: new_serial })
                {
                    tracing::error!(zone = apex, "{e}");
                }
                served.content = Some(content);
                served.broken = None;
            }
            Err(e) => {
                // Never serve expiring signatures silently: say so every round.
                let until = served.signed.earliest_expiration();
                tracing::error!(
                    zone = apex,
                    signatures_valid_until = until,
                    "cannot sign: {e}; {}",
                    if served.signed.nodes.is_empty() {
                        "the zone is not served (SERVFAIL)"
                    } else {
                        "serving the last signed version until its signatures expire"
                    }
                );
                served.broken = Some(e.to_string());
            }
        }
    }
}

/// Runs `signalbox serve` until SIGINT/SIGTERM.
pub async fn serve(config_path: &Path) -> Result<(), DaemonError> {
    let mut daemon = Daemon::new(config_path)?;
    let snapshot = daemon.snapshot();
    let server_config = daemon.config.server.clone();
    let resign_every = std::time::Duration::from_secs(600);
    let mut daemon = tokio::task::spawn_blocking(move || {
        daemon.round(Timestamp::now());
        daemon
    })
    .await
    .map_err(|e| DaemonError::NothingToServe(format!("first round failed: {e}")))?;
    let bound = server::start(&server_config, snapshot).await?;
    for addr in &bound {
        tracing::info!(%addr, "serving");
    }
    let mut ticker = tokio::time::interval(resign_every);
    ticker.tick().await;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| {
        DaemonError::NothingToServe(format!("cannot install signal handler: {e}"))
    })?;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                daemon = tokio::task::spawn_blocking(move || {
                    daemon.round(Timestamp::now());
                    daemon
                })
                .await
                .map_err(|e| DaemonError::NothingToServe(format!("round failed: {e}")))?;
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    tracing::info!("shutting down");
    Ok(())
}
