//! Saving served zones and their IXFR journals to the state directory in
//! the background. A saved zone is a head start for a warm restart and the
//! safety brake's memory, not the truth (the key files are), so a burst of
//! changes costs one write per zone, not one per change.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, mpsc},
    time::Duration,
};

use crate::zone::{ZoneStore, journal::Journal, persist};

/// Saves zones (and their journals) in the background, the latest version
/// of each winning, at most once per `PERSIST_INTERVAL`: a saved zone is a
/// head start and the brake's memory, not the truth (the key files are), so
/// a burst of changes costs one write, not one per change.
pub(super) struct ZoneSaver {
    tx: mpsc::Sender<SaveJob>,
}

/// A zone and its journal to save.
pub(super) struct SaveJob {
    pub(super) zone_path: PathBuf,
    pub(super) zone: ZoneStore,
    pub(super) journal_path: PathBuf,
    pub(super) journal: Arc<Journal>,
}

/// Shortest time between two saves.
const PERSIST_INTERVAL: Duration = Duration::from_secs(2);

impl ZoneSaver {
    pub(super) fn start() -> Self {
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
        ZoneSaver { tx }
    }

    pub(super) fn save(&self, job: SaveJob) {
        let _ = self.tx.send(job);
    }
}
