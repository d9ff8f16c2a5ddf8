//! The key caches (`keys::dir::cache`) between runs: read and decoded on
//! their own thread while the saved zones load, and taken in before the
//! first round's scan, so a warm start `stat`s its key files instead of
//! reading them; written (by
//! the zone saver's thread) at shutdown, and after a full round when enough
//! keys changed to be worth encoding them all ([`CacheSave`]).
//!
//! Keys of the zones served here (the signalling zones signalbox signs)
//! are never restored from a cache: their `.private` files must be read.
//!
//! A clean shutdown, once the caches are on disk, also writes
//! `keys/complete.json`: which directories' caches hold every key the
//! process knew, the zones whose keys they leave out (a key with a problem
//! or in flux) and each cache's SHA-256 checksum (a write that failed
//! leaves an older file, with another checksum). Only directories this
//! process listed, or restored from such a cache, are named. The next start
//! reads and removes it ([`KnownKeys`]). Until its first round has listed every key directory,
//! only those zones may see a key change cut into that round
//! (`key_changes.rs`): for them the restored keys are what the last process
//! served from. After a kill -9 there is no such file (a cache may be
//! behind by a few keys, [`CacheSave::AfterFullRound`]) and key changes
//! wait for the listing.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use hickory_proto::rr::Name;

use super::Daemon;
use crate::{
    keys::dir::{CacheError, KeyDirectory, Restored},
    model::CacheSave,
};

/// One key directory to restore: where it is, and its cache file.
#[derive(Debug, Clone)]
pub(super) struct CacheJob {
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
pub(super) struct Done {
    job: CacheJob,
    outcome: Outcome,
    elapsed: Duration,
}

/// The key caches' restore: at a million keys, reading and decoding the
/// cache takes about 3 s, so it runs on its own thread beside the saved
/// zones' load (issue 15). That costs the first answer 0.3-0.5 s (the two
/// fault in fresh memory side by side; BENCHMARKS.md), and makes the
/// restored keys ready by the time the server answers: a key change right
/// after a warm start can then cut into the first round at once
/// (`key_changes.rs`) instead of 2.5 s later.
#[derive(Default)]
pub(super) enum CacheRestore {
    /// Not started: the first round restores the caches itself.
    #[default]
    NotStarted,
    /// Running on its thread.
    Running(JoinHandle<Vec<Done>>),
    /// Its thread could not start: the first round restores these.
    Pending(Jobs),
    /// Taken by the first round.
    Taken,
}

/// What the key store is known to hold after a warm start.
#[derive(Debug, Default)]
pub(super) struct KnownKeys {
    /// The directories restored from a cache that holds every key the last
    /// process knew, with the zones (file-name text) whose keys it leaves
    /// out: those `keys/complete.json` named at start, with the checksum of
    /// the cache restored.
    pub complete: BTreeMap<PathBuf, BTreeSet<String>>,
    /// Every key directory was listed since the start: the store knows
    /// every file.
    pub listed: bool,
    /// While a full round's listing runs: the directories and files key
    /// changes that cut in read meanwhile (the listing may be older than
    /// what they saw).
    pub read_while_listing: Option<crate::daemon::RoundInput>,
    /// `keys/complete.json` as read at start, until the restore is taken
    /// in (then `complete` holds what it vouched for).
    recorded: BTreeMap<PathBuf, CompleteDir>,
}

/// `keys/complete.json`: the caches that hold every key the process knew
/// at its clean shutdown.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CompleteCaches {
    /// One entry per such directory.
    dirs: Vec<CompleteDir>,
}

/// One directory of [`CompleteCaches`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CompleteDir {
    /// The key directory, as configured.
    path: PathBuf,
    /// Zones (file-name text) with a key the cache leaves out.
    except: BTreeSet<String>,
    /// The SHA-256 checksum the cache ends with (hex): a cache whose
    /// write failed is an older file, with another checksum.
    digest: String,
}

/// Hex of a cache checksum.
fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where [`CompleteCaches`] is kept.
fn complete_path(state: &Path) -> PathBuf {
    state.join("keys").join("complete.json")
}

/// Reads and removes `keys/complete.json` (removed at once: should this
/// process die without its clean shutdown, the next start must not trust
/// caches it may have written meanwhile). Nothing when it is missing,
/// damaged or cannot be removed.
fn take_complete(state: &Path) -> BTreeMap<PathBuf, CompleteDir> {
    let path = complete_path(state);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
        Err(e) => {
            tracing::warn!(file = %path.display(), "cannot read: {e}");
            return BTreeMap::new();
        }
    };
    let removed = std::fs::remove_file(&path)
        .and_then(|()| std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all());
    if let Err(e) = removed {
        tracing::warn!(file = %path.display(), "cannot remove: {e}; key changes wait for the first listing");
        return BTreeMap::new();
    }
    match serde_json::from_slice::<CompleteCaches>(&text) {
        Ok(complete) => complete
            .dirs
            .into_iter()
            .map(|dir| (dir.path.clone(), dir))
            .collect(),
        Err(e) => {
            tracing::warn!(file = %path.display(), "damaged, ignored: {e}");
            BTreeMap::new()
        }
    }
}

/// Restores to run, and the zones whose keys they leave out.
type Jobs = (Vec<CacheJob>, BTreeSet<Name>);

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
    /// here (their keys are left out of a restore).
    fn key_cache_jobs(&self) -> Jobs {
        let jobs = self
            .keys
            .dirs()
            .map(|dir| CacheJob {
                dir: dir.clone(),
                cache: self.state.key_cache_path(dir),
            })
            .collect();
        // The zones `sync_zones` serves (hosted ones are written by
        // UPDATE and signed by their signer: their keys may be restored).
        let signed = self
            .config
            .signaling_zones
            .iter()
            .filter(|zone| zone.publish.is_none())
            .map(|zone| zone.apex.clone())
            .collect();
        (jobs, signed)
    }

    /// Starts restoring the key caches on a thread (see [`CacheRestore`]).
    pub(super) fn start_key_cache_restore(&mut self) {
        if !matches!(self.key_caches, CacheRestore::NotStarted) {
            return;
        }
        self.known_keys.recorded = take_complete(self.state.path());
        let (jobs, signed) = self.key_cache_jobs();
        let (thread_jobs, thread_signed) = (jobs.clone(), signed.clone());
        self.key_caches = match std::thread::Builder::new()
            .name("key-cache".into())
            .spawn(move || restore_all(thread_jobs, &thread_signed))
        {
            Ok(thread) => CacheRestore::Running(thread),
            Err(e) => {
                tracing::warn!(
                    "cannot start the key cache thread: {e}; the caches are read in the first round"
                );
                CacheRestore::Pending((jobs, signed))
            }
        };
    }

    /// Takes in every key directory restored from its saved cache (waiting
    /// for the restore thread, or restoring here when none ran), where
    /// there is one.
    pub(super) fn restore_key_caches(&mut self) {
        let done = match std::mem::replace(&mut self.key_caches, CacheRestore::Taken) {
            CacheRestore::NotStarted => {
                self.known_keys.recorded = take_complete(self.state.path());
                let (jobs, signed) = self.key_cache_jobs();
                restore_all(jobs, &signed)
            }
            CacheRestore::Running(thread) => thread.join().unwrap_or_else(|_| {
                tracing::error!("the key cache thread panicked: reading every key file");
                Vec::new()
            }),
            CacheRestore::Pending((jobs, signed)) => restore_all(jobs, &signed),
            CacheRestore::Taken => Vec::new(),
        };
        let mut complete = std::mem::take(&mut self.known_keys.recorded);
        for done in done {
            let (dir, cache) = (&done.job.dir, &done.job.cache);
            match done.outcome {
                Outcome::Restored(restored_dir, restored) => {
                    let digest = restored_dir.cache_digest().map(|d| hex(&d));
                    if self.keys.install_restored(*restored_dir) {
                        // Complete only if it is the cache recorded so.
                        if let Some(recorded) = complete.remove(dir) {
                            if Some(&recorded.digest) == digest.as_ref() {
                                self.known_keys
                                    .complete
                                    .insert(dir.clone(), recorded.except);
                            }
                        }
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

    /// At a clean shutdown, once the key caches are saved: writes which of
    /// them hold every key known now (see the module doc).
    pub(super) fn mark_key_caches_complete(&self) {
        // A directory neither listed by this process nor restored from a
        // complete cache may lack keys the last process served from (after
        // its kill -9): its cache proves nothing.
        let known = &self.known_keys;
        let dirs: Vec<CompleteDir> = self
            .keys
            .uncached_zones()
            .into_iter()
            .filter_map(|(path, (mut except, digest))| {
                if !known.listed {
                    // Not listed here: the zones left out of the cache it
                    // was restored from are still left out.
                    except.extend(known.complete.get(&path)?.iter().cloned());
                }
                let digest = hex(&digest);
                Some(CompleteDir {
                    path,
                    except,
                    digest,
                })
            })
            .collect();
        let path = complete_path(self.state.path());
        let written = serde_json::to_vec(&CompleteCaches { dirs })
            .map_err(std::io::Error::other)
            .and_then(|json| {
                std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
                crate::state::write_atomically(&path, &json).map_err(std::io::Error::other)
            });
        if let Err(e) = written {
            tracing::warn!(file = %path.display(), "cannot write: {e}; after the next start, key changes wait for its first listing");
        }
    }

    /// Hands the key caches that changed to the saver (`when`: see
    /// [`CacheSave`]).
    pub(super) fn save_key_caches(&mut self, when: CacheSave) {
        for (dir, data) in self.keys.stale_caches(when) {
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
