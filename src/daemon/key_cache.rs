//! The key caches (`keys::dir::cache`) between runs: read and decoded on
//! their own thread from the start (while a warm start loads its saved
//! zones), and taken in before the first round's scan, so a warm start
//! `stat`s its key files instead of reading them; written (by the zone
//! saver's thread) after every full round that learnt something and at
//! shutdown.
//!
//! Keys of the zones served here (the signalling zones signalbox signs)
//! are never restored from a cache: their `.private` files must be read.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use hickory_proto::rr::Name;

use super::Daemon;
use crate::keys::dir::{CacheError, KeyDirectory, Restored};

/// One key directory to restore: where it is, and its cache file.
#[derive(Debug, Clone)]
struct CacheJob {
    dir: PathBuf,
    cache: PathBuf,
}

/// What restoring one directory's cache gave.
enum Outcome {
    /// The directory, seeded from its cache.
    Restored(Box<KeyDirectory>, Restored),
    /// The cache file could not be read.
    Unreadable(std::io::Error),
    /// The cache was refused (damaged, of another directory, replaced).
    Refused(CacheError),
}

/// One directory's restore, timed.
struct Done {
    job: CacheJob,
    outcome: Outcome,
    elapsed: Duration,
}

/// The key caches being restored in the background (issue 15: at a
/// million keys, reading and decoding the cache takes as long as loading
/// the saved zone, so the two run side by side on the two cores).
#[derive(Default)]
pub(super) struct CacheRestore {
    /// The thread, or the jobs left to run in the round (its spawn failed).
    running: Option<Result<JoinHandle<Vec<Done>>, Jobs>>,
}

/// Restores to run, and the zones whose keys they leave out.
type Jobs = (Vec<CacheJob>, BTreeSet<Name>);

impl CacheRestore {
    /// Starts restoring the caches of `dirs` (each directory with its cache
    /// file) on a thread; keys of the zones in `signed` are left out.
    pub(super) fn start(dirs: Vec<(PathBuf, PathBuf)>, signed: BTreeSet<Name>) -> Self {
        let jobs: Vec<CacheJob> = dirs
            .into_iter()
            .map(|(dir, cache)| CacheJob { dir, cache })
            .collect();
        let (thread_jobs, thread_signed) = (jobs.clone(), signed.clone());
        let running = std::thread::Builder::new()
            .name("key-cache".into())
            .spawn(move || restore_all(thread_jobs, &thread_signed))
            .map_err(|e| {
                tracing::warn!(
                    "cannot start the key cache thread: {e}; the caches are read in the first round"
                );
                (jobs, signed)
            });
        CacheRestore {
            running: Some(running),
        }
    }

    /// Waits for the restores; empty when there were none or they were
    /// taken already.
    fn finish(&mut self) -> Vec<Done> {
        match self.running.take() {
            None => Vec::new(),
            Some(Ok(thread)) => thread.join().unwrap_or_else(|_| {
                tracing::error!("the key cache thread panicked: reading every key file");
                Vec::new()
            }),
            Some(Err((jobs, signed))) => restore_all(jobs, &signed),
        }
    }
}

/// Restores each directory of `jobs` into a fresh [`KeyDirectory`].
fn restore_all(jobs: Vec<CacheJob>, signed: &BTreeSet<Name>) -> Vec<Done> {
    let mut done = Vec::new();
    for job in jobs {
        let started = Instant::now();
        let outcome = match std::fs::read(&job.cache) {
            Ok(data) => {
                let mut dir = KeyDirectory::new(job.dir.clone());
                match dir.restore(&data, |zone| signed.contains(zone)) {
                    Ok(restored) => Outcome::Restored(Box::new(dir), restored),
                    Err(e) => Outcome::Refused(e),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => Outcome::Unreadable(e),
        };
        done.push(Done {
            job,
            outcome,
            elapsed: started.elapsed(),
        });
    }
    done
}

impl Daemon {
    /// The key directories with their cache files, and the zones signed
    /// here, for [`CacheRestore::start`].
    pub(super) fn start_key_cache_restore(&self) -> CacheRestore {
        let dirs = self
            .keys
            .dirs()
            .map(|dir| (dir.clone(), self.state.key_cache_path(dir)))
            .collect();
        let signed = self
            .config
            .signaling_zones
            .iter()
            .map(|zone| zone.apex.clone())
            .collect();
        CacheRestore::start(dirs, signed)
    }

    /// Takes in every key directory restored from its saved cache (waiting
    /// for the restore thread), where there is one.
    pub(super) fn restore_key_caches(&mut self) {
        for done in self.key_caches.finish() {
            let (dir, cache) = (&done.job.dir, &done.job.cache);
            match done.outcome {
                Outcome::Restored(restored_dir, restored) => {
                    if self.keys.install_restored(*restored_dir) {
                        tracing::info!(
                            dir = %dir.display(),
                            keys = restored.keys,
                            left_out = restored.left_out,
                            elapsed_ms = done.elapsed.as_millis() as u64,
                            "key cache restored: only key files changed since are read"
                        );
                    }
                }
                Outcome::Unreadable(e) => tracing::warn!(
                    cache = %cache.display(),
                    "cannot read the key cache: {e}; reading every key file"
                ),
                Outcome::Refused(e) => tracing::warn!(
                    dir = %dir.display(),
                    cache = %cache.display(),
                    "{e}: reading every key file"
                ),
            }
        }
    }

    /// Hands the key caches that changed to the saver.
    pub(super) fn save_key_caches(&mut self) {
        for (dir, data) in self.keys.stale_caches() {
            self.saver.write_file(self.state.key_cache_path(&dir), data);
        }
    }

    /// After a reload: restored keys of zones now signed here are read
    /// again, with their private keys.
    pub(super) fn reread_signing_keys(&mut self) {
        let zones = &self.zones;
        let count = self.keys.reread_not_loaded(|zone| zones.contains_key(zone));
        if count > 0 {
            tracing::info!(
                keys = count,
                "keys of newly served zones are read again, with their private keys"
            );
        }
    }
}
