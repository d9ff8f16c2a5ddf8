//! Saving served zones and their IXFR journals (RFC 1995) to the state
//! directory in the background. A saved zone is a head start for a warm
//! restart and the safety brake's memory, not the truth (the key files are).
//! The serial itself is not saved here: its high-water mark is written
//! before a version is served (`sign.rs`; docs/ARCHITECTURE.md, "State on
//! disk").
//!
//! Each new version's difference is appended to the zone's change log
//! (`zone::changes`) at once and synced: a one-child change at a million
//! children writes a few kilobytes, not the 650 MB image. The whole image
//! (with the journal file) is written when the log outgrows a sixteenth of
//! it (at least [`COMPACT_MIN`]), when a version's diff would take it past
//! that (a whole-zone re-sign), when the log cannot continue (no image yet,
//! a broken chain) or must not (the journal was dropped), coalesced: a
//! burst of those costs one write per zone. Versions are still appended
//! while such a save waits; only those made while the image itself is
//! being written wait for it. A warm start loads the image and replays the
//! log ([`load_changes`]).
//!
//! The key caches (`keys::dir::cache`) are written here too, in order with
//! the zones, so the round that made one does not wait for the disk. A key
//! cache that cannot be written is logged and left (the older one on disk
//! stays, which costs reads at the next start, never a wrong key): it is a
//! head start only, written again after the next key change.
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
    config::JournalLimits,
    vital::{Ends, Vitals},
    zone::{ZoneStore, changes, journal::Journal, persist},
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
    pub(super) changes_path: PathBuf,
}

/// What is on disk for one zone: its image and the log continuing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OnDisk {
    /// The image's size in octets.
    pub(super) image_bytes: u64,
    /// The serial the log leads to (the image's, when it is empty).
    pub(super) log_serial: u32,
    /// The log's size in octets.
    pub(super) log_bytes: u64,
}

/// The least a change log grows to before the image is rewritten.
pub(super) const COMPACT_MIN: u64 = 8 << 20;

impl OnDisk {
    /// How far the log may grow before the image is rewritten.
    fn limit(&self) -> u64 {
        COMPACT_MIN.max(self.image_bytes / 16)
    }

    /// The log has grown enough that the image should be rewritten.
    fn compaction_due(&self) -> bool {
        self.log_bytes > self.limit()
    }
}

/// What the saving thread is asked to do.
enum Message {
    /// Save this (coalesced with others for the same zone).
    Save(Box<SaveJob>),
    /// What a warm start found on disk for the zone saved at this path.
    Known(PathBuf, OnDisk),
    /// Save this whole (image, journal, a fresh log), whatever is on disk.
    Whole(Box<SaveJob>),
    /// Save everything pending now; answer with how many saves failed.
    Flush(mpsc::Sender<usize>),
    /// Write this file (a key cache) now.
    File(PathBuf, Vec<u8>),
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

    /// Saves `job` whole (image, journal and a fresh change log), even when
    /// its change could be appended: after the journal was dropped, say,
    /// whose diffs must not come back at the next start.
    pub(super) fn save_whole(&self, job: SaveJob) {
        let _ = self.tx.send(Message::Whole(Box::new(job)));
    }

    /// Tells the saver what a warm start found on disk for `zone_path`, so
    /// the next change is appended to its log rather than rewriting it.
    pub(super) fn known(&self, zone_path: PathBuf, on_disk: OnDisk) {
        let _ = self.tx.send(Message::Known(zone_path, on_disk));
    }

    /// Writes `data` to `path` atomically, after what was asked before.
    pub(super) fn write_file(&self, path: PathBuf, data: Vec<u8>) {
        let _ = self.tx.send(Message::File(path, data));
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
    /// What is on disk per zone, once known.
    on_disk: HashMap<PathBuf, OnDisk>,
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
                // Into the log at once when it continues what is on disk;
                // the whole image too when the log cannot take it, is due
                // for compaction, or a whole save is waiting anyway (the
                // newest version goes with it).
                let appended = self.append(&job);
                let whole = !appended
                    || self.pending.contains_key(&job.zone_path)
                    || self
                        .on_disk
                        .get(&job.zone_path)
                        .is_some_and(OnDisk::compaction_due);
                if whole {
                    self.pending.insert(job.zone_path.clone(), *job);
                }
                false
            }
            Message::Whole(job) => {
                self.on_disk.remove(&job.zone_path);
                self.pending.insert(job.zone_path.clone(), *job);
                false
            }
            Message::Known(path, on_disk) => {
                self.on_disk.insert(path, on_disk);
                false
            }
            Message::Flush(ack) => {
                let failed = self.save_pending();
                let _ = ack.send(failed);
                true
            }
            Message::File(path, data) => {
                let started = Instant::now();
                match crate::state::write_atomically(&path, &data) {
                    Ok(()) => tracing::debug!(
                        path = %path.display(),
                        octets = data.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "key cache written"
                    ),
                    Err(e) => tracing::warn!(
                        "{e}: the key cache is not written (the next start reads more key files)"
                    ),
                }
                false
            }
        }
    }

    /// Appends the job's new versions to its zone's change log when the log
    /// continues what is on disk and they fit under the compaction limit (a
    /// whole-zone re-sign does not: the image is rewritten instead); true
    /// when the job's version is on disk.
    fn append(&mut self, job: &SaveJob) -> bool {
        let Some(disk) = self.on_disk.get_mut(&job.zone_path) else {
            return false;
        };
        if disk.log_serial == job.zone.serial() {
            return true;
        }
        let Some(diffs) = job.journal.since(disk.log_serial) else {
            return false;
        };
        let size: u64 = diffs.iter().map(|d| d.size() as u64).sum();
        if diffs.last().map(|d| d.to) != Some(job.zone.serial())
            || disk.log_bytes + size > disk.limit()
        {
            return false;
        }
        match changes::append(&job.changes_path, &diffs) {
            Ok(written) => {
                disk.log_serial = job.zone.serial();
                disk.log_bytes += written as u64;
                tracing::debug!(
                    path = %job.changes_path.display(),
                    serial = disk.log_serial,
                    written,
                    "changes appended"
                );
                true
            }
            Err(e) => {
                tracing::warn!("{e}; saving the whole zone instead");
                self.on_disk.remove(&job.zone_path);
                false
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
            // The journal first: on a crash between the writes it leads
            // past the zone, which loading handles; the log last: until it
            // is started afresh the old one replays nothing onto the new
            // image (none of its diffs starts at the image's serial).
            let saved = crate::state::write_atomically(&job.journal_path, &job.journal.encode())
                .and_then(|()| persist::save(&job.zone_path, &job.zone))
                .and_then(|image_bytes| {
                    changes::create(&job.changes_path, job.zone.serial())?;
                    Ok(image_bytes)
                });
            match saved {
                Ok(image_bytes) => {
                    tracing::debug!(
                        path = %job.zone_path.display(),
                        serial = job.zone.serial(),
                        bytes = image_bytes,
                        "zone saved whole"
                    );
                    self.on_disk.insert(
                        path,
                        OnDisk {
                            image_bytes,
                            log_serial: job.zone.serial(),
                            log_bytes: 0,
                        },
                    );
                }
                Err(e) => {
                    self.on_disk.remove(&path);
                    failed.push((path, job, e));
                }
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

/// A warm start's zone: `image` (the saved zone, serial B) with the change
/// log at `path` replayed onto it, every replayed diff pushed onto
/// `journal`; and what is on disk, for [`ZoneSaver::known`] (`None` when the
/// log cannot be continued: the next save writes everything).
pub(super) fn load_changes(
    zone_name: &str,
    path: &std::path::Path,
    image: ZoneStore,
    image_bytes: u64,
    journal: &mut Journal,
    limits: &JournalLimits,
) -> (ZoneStore, Option<OnDisk>) {
    let log = match changes::read(path) {
        Ok(Some(log)) => log,
        Ok(None) => return (image, None),
        Err(e) => {
            tracing::error!(
                zone = zone_name,
                "{e}; serving the saved image without the changes after it (the first round \
                 recomputes them); the log is started afresh at the next save"
            );
            return (image, None);
        }
    };
    if log.dropped_tail > 0 {
        tracing::warn!(
            zone = zone_name,
            octets = log.dropped_tail,
            "the change log ends in a record cut short (a crash while appending): the versions \
             before it are kept"
        );
    }
    let image_serial = image.serial();
    if log.base != image_serial {
        // A crash between writing a new image and starting its log: the
        // old log belongs to the image before (its diffs end where this
        // image starts, or it is older still).
        tracing::warn!(
            zone = zone_name,
            log_base = log.base,
            image_serial,
            "the change log continues another image: not replayed; it is started afresh at \
             the next save"
        );
        return (image, None);
    }
    match changes::replay(&image, log.diffs) {
        Some((store, applied)) => {
            for diff in &applied {
                journal.push(diff.clone(), limits);
            }
            if !applied.is_empty() {
                tracing::info!(
                    zone = zone_name,
                    from = image_serial,
                    serial = store.serial(),
                    changes = applied.len(),
                    "warm start: replayed the change log onto the saved image"
                );
            }
            // Appending continues after the whole records only.
            let on_disk = (log.dropped_tail == 0).then_some(OnDisk {
                image_bytes,
                log_serial: store.serial(),
                log_bytes: log.bytes,
            });
            (store, on_disk)
        }
        None => {
            tracing::error!(
                zone = zone_name,
                "the change log does not fit the saved image (a diff removes a record the image \
                 lacks): serving the image; the log is started afresh at the next save"
            );
            (image, None)
        }
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
            changes_path: dir.join("z.changes"),
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
