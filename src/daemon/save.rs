//! Saving served zones and their IXFR journals (RFC 1995) to the state
//! directory in the background. A saved zone is a head start for a warm
//! restart and the safety brake's memory, not the truth (the key files are),
//! so a burst of changes costs one write per zone, not one per change. The
//! serial itself is not saved here: its high-water mark is written before a
//! version is served (`sign.rs`; docs/ARCHITECTURE.md, "State on disk").
//!
//! Faults: a save that fails (a full disk) keeps its job and is retried with
//! a growing pause; the error is logged once, then at most once a minute
//! while it lasts, and the recovery is logged. The zone keeps being served
//! from memory meanwhile. Shutdown: [`ZoneSaver::flush`] saves every pending
//! job at once and waits for it, so the next start is warm.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use crate::{
    vital::{Ends, Vitals},
    zone::{ZoneStore, journal::Journal, persist},
};

/// Saves zones (and their journals) in the background, the latest version
/// of each winning, at most once per `PERSIST_INTERVAL`.
pub(super) struct ZoneSaver {
    tx: mpsc::Sender<Message>,
}

/// A zone and its journal to save.
pub(super) struct SaveJob {
    pub(super) zone_path: PathBuf,
    pub(super) zone: ZoneStore,
    pub(super) journal_path: PathBuf,
    pub(super) journal: Arc<Journal>,
}

/// What the saving thread is asked to do.
enum Message {
    /// Save this (coalesced with others for the same zone).
    Save(Box<SaveJob>),
    /// Save everything pending now; answer with how many saves failed.
    Flush(mpsc::Sender<usize>),
}

/// Why a flush did not complete.
#[derive(Debug, thiserror::Error)]
pub(super) enum FlushError {
    /// The saving thread is gone (it could not start, or panicked).
    #[error("the zone-saving thread is not running")]
    NotRunning,
    /// Some zones could not be written (the error was logged).
    #[error("{0} zone(s) could not be saved")]
    Failed(usize),
    /// The saves took longer than allowed.
    #[error("saving did not finish within {0:?}")]
    TimedOut(Duration),
}

/// Shortest time between two saves.
const PERSIST_INTERVAL: Duration = Duration::from_secs(2);
/// Longest pause between two attempts at a failing save.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// How often a save that keeps failing is logged again.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);
/// How often a flush that takes long says it is still saving.
const FLUSH_PROGRESS: Duration = Duration::from_secs(5);

impl ZoneSaver {
    pub(super) fn start(vitals: &Vitals) -> Self {
        let (tx, rx) = mpsc::channel::<Message>();
        let spawned = vitals.thread("persist".into(), Ends::WhenInputCloses, move || {
            Saver::default().run(&rx)
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the zone-saving thread; zones are not saved");
        }
        ZoneSaver { tx }
    }

    pub(super) fn save(&self, job: SaveJob) {
        let _ = self.tx.send(Message::Save(Box::new(job)));
    }

    /// Saves every pending job now and waits up to `within` for it, saying
    /// every few seconds that it is still saving (a large zone takes a while).
    pub(super) fn flush(&self, within: Duration) -> Result<(), FlushError> {
        let (ack_tx, ack_rx) = mpsc::channel();
        self.tx
            .send(Message::Flush(ack_tx))
            .map_err(|_| FlushError::NotRunning)?;
        let started = Instant::now();
        loop {
            let left = within.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(FlushError::TimedOut(within));
            }
            match ack_rx.recv_timeout(left.min(FLUSH_PROGRESS)) {
                Ok(0) => return Ok(()),
                Ok(failed) => return Err(FlushError::Failed(failed)),
                Err(mpsc::RecvTimeoutError::Timeout) => tracing::warn!(
                    elapsed_s = started.elapsed().as_secs(),
                    "still saving zones before exiting"
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(FlushError::NotRunning),
            }
        }
    }
}

/// The saving thread's state: jobs not yet written (or whose write failed).
#[derive(Default)]
struct Saver {
    pending: HashMap<PathBuf, SaveJob>,
    /// Consecutive failed attempts, for the retry pause.
    failures: u32,
    /// When a failure was last logged.
    logged_at: Option<Instant>,
}

impl Saver {
    fn run(mut self, rx: &mpsc::Receiver<Message>) {
        loop {
            // Idle: wait for a job, or (after a failure) for the retry pause.
            let first = if self.pending.is_empty() {
                rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
            } else {
                rx.recv_timeout(self.retry_pause())
            };
            match first {
                Ok(message) => {
                    if self.take(message) {
                        continue;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            // Coalesce what arrives within the interval; a flush cuts it short.
            let started = Instant::now();
            loop {
                let left = PERSIST_INTERVAL.saturating_sub(started.elapsed());
                if left.is_zero() {
                    self.save_pending();
                    break;
                }
                match rx.recv_timeout(left) {
                    Ok(message) => {
                        if self.take(message) {
                            break;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.save_pending();
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        self.save_pending();
                        return;
                    }
                }
            }
        }
    }

    /// Notes a job, or answers a flush (saving everything first); true when
    /// a flush was answered.
    fn take(&mut self, message: Message) -> bool {
        match message {
            Message::Save(job) => {
                self.pending.insert(job.zone_path.clone(), *job);
                false
            }
            Message::Flush(ack) => {
                let failed = self.save_pending();
                let _ = ack.send(failed);
                true
            }
        }
    }

    /// The pause before retrying failed saves: 2 s, doubling up to a minute.
    fn retry_pause(&self) -> Duration {
        PERSIST_INTERVAL
            .saturating_mul(1 << self.failures.min(6))
            .min(RETRY_MAX)
    }

    /// Writes every pending job; failed ones stay pending. Returns how many
    /// failed.
    fn save_pending(&mut self) -> usize {
        let mut failed = Vec::new();
        for (path, job) in self.pending.drain() {
            // The journal first: on a crash between the two writes it
            // leads past the zone, which loading handles.
            let saved = crate::state::write_atomically(&job.journal_path, &job.journal.encode())
                .and_then(|()| persist::save(&job.zone_path, &job.zone));
            match saved {
                Ok(()) => tracing::debug!(
                    path = %job.zone_path.display(),
                    serial = job.zone.serial(),
                    "zone saved"
                ),
                Err(e) => failed.push((path, job, e)),
            }
        }
        let count = failed.len();
        if count == 0 {
            if self.failures > 0 {
                tracing::info!(attempts = self.failures, "zones saved again after failures");
            }
            self.failures = 0;
            self.logged_at = None;
            return 0;
        }
        self.failures = self.failures.saturating_add(1);
        let due = self
            .logged_at
            .is_none_or(|at| at.elapsed() >= FAILURE_LOG_EVERY);
        for (path, job, e) in failed {
            if due {
                tracing::error!(
                    serial = job.zone.serial(),
                    attempts = self.failures,
                    retry_in_s = self.retry_pause().as_secs(),
                    "cannot save the zone: {e}; still serving it from memory, retrying \
                     (a restart now would serve an older saved version first)"
                );
            }
            self.pending.insert(path, job);
        }
        if due {
            self.logged_at = Some(Instant::now());
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse_name;

    #[test]
    fn a_failed_save_is_kept_and_retried_by_the_next_flush() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("zones");
        let apex = parse_name("_signal.ns1.example.net.").expect("valid");
        let saver = ZoneSaver::start(&crate::vital::Vitals::detached());
        saver.save(SaveJob {
            zone_path: dir.join("z.zone"),
            zone: ZoneStore::new(apex),
            journal_path: dir.join("z.journal"),
            journal: Arc::new(Journal::default()),
        });
        // The directory is missing: the save fails and stays pending.
        let within = Duration::from_secs(10);
        assert!(matches!(saver.flush(within), Err(FlushError::Failed(1))));
        std::fs::create_dir(&dir).expect("mkdir");
        saver
            .flush(within)
            .expect("saved once the directory exists");
        assert!(dir.join("z.zone").exists() && dir.join("z.journal").exists());
    }
}
