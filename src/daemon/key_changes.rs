//! Key-directory changes on their way to a round, and the ones that cut
//! into a long full round.
//!
//! The watch (`watch.rs`) notes the directory and file of each change here
//! as it comes; they wait for the debounce (`[watch] debounce`, 100 ms:
//! BIND writes a key's `.key`, `.private` and `.state` one after the other)
//! and then become a round that rescans only those files.
//!
//! A full round at a million children runs for seconds: the periodic
//! rescan, and the first round after a warm start, which an operator's
//! restart makes the moment they are most likely to touch a key. A change
//! seen meanwhile used to wait for its end (14.6 s at 1M, issue 15).
//! Instead the full round lets it *cut in* ([`Daemon::cut_in`]): a whole
//! round of its own over just the files named (scan, plan, compare, brake,
//! apply, publish), served at once, at three points:
//!
//! 1. **as the key directories are listed** (a `readdir` and a `stat` per
//!    file, seconds at 1M files, on another thread): before the listing
//!    starts, then every [`LISTING_POLL`] while it runs
//!    ([`Daemon::scan_cutting_in`]). The store is not
//!    touched by the listing until it is taken; the files and directories
//!    a cut-in read meanwhile are looked at again once it is (the listing
//!    may predate them: a file created after the `readdir` passed it would
//!    count as gone). Before the first listing of a warm start, the store
//!    holds only what the key caches restored, which may miss keys the last
//!    process served from (after a kill -9, or a failed write, a cache can
//!    be behind). A change is let in then only for zones a clean shutdown
//!    recorded as complete in a cache with the checksum it recorded
//!    (`keys/complete.json`, `key_cache.rs`), and only if none of the
//!    zone's other cached files changed while stopped (a rollover that went
//!    on may have made keys no cache knows: that zone then waits for the
//!    listing, for good). The cut-in plans only those zones, reads every
//!    file of a key new to the store, and reads the served zones' own keys
//!    (never cached: they sign);
//! 2. **once the listing is taken**: the children whose keys it found
//!    changed (files changed while stopped, or missed by the watch) go
//!    first, at most [`LISTED_FIRST`] of them, with any waiting change;
//! 3. **once the children are joined**, before the policy: the children a
//!    cut-in recomputed are joined again from the store, so the full round
//!    plans them from the same facts and finds nothing left to change.
//!
//! A change still in its debounce is waited for (at most the debounce) at
//! each point. The full round plans no earlier than its latest cut-in
//! (planned at an earlier time, it would revert a child a cut-in served
//! after a timing event). Whole-directory rescans (an overflowed watch, polling) wait
//! for the end of the round, as before. A cut-in's NOTIFYs, parent-agent
//! reports and metrics go to the event loop at once ([`CutIn`]), not at the
//! end of the full round. No cut-in on a cold start: the served zones are
//! still empty, and one child's signals alone would be served and
//! transferred ahead of the rest (a served zone that stays empty, one that
//! cannot be signed, keeps them off). A warm start's cut-ins also wait
//! until the secondaries were asked what they hold (no new serial before).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use hickory_proto::rr::Name;
use jiff::Timestamp;
use tokio::{sync::mpsc::UnboundedSender, time::Instant};

use super::{
    Daemon, RoundInput,
    round::{CutInPoint, Progress},
};
use crate::{
    dns::name::display, keys::dir::Listing, metrics::RoundFacts, parent::ChildReport, tsig,
};

/// At most this many children whose keys the full round's listing found
/// changed are served ahead of the rest: more, and serving them first
/// would cost nearly a second full round.
const LISTED_FIRST: usize = 10_000;

/// How often a full round's listing looks for key changes to let in.
const LISTING_POLL: Duration = Duration::from_millis(10);

/// How soon a directory with keys mid-rewrite is looked at again.
const FLUX_RETRY: Duration = Duration::from_millis(200);

/// What changed: a file of a directory, or (`None`) anything in it.
pub type Touched = (PathBuf, Option<String>);

/// Key-directory changes waiting for the debounce to end.
struct Waiting {
    /// Directories to rescan whole.
    dirs: BTreeSet<PathBuf>,
    /// Single files to rescan, per directory.
    files: BTreeMap<PathBuf, BTreeSet<String>>,
    /// When the waiting changes become a round.
    deadline: Option<Instant>,
    /// When the first key file change of the waiting ones was seen.
    first_seen: Option<Instant>,
    /// How long changes wait (`[watch] debounce`).
    debounce: Duration,
}

/// The waiting key changes, shared by the event loop (which notes them,
/// also while a round runs) and the round (which lets them cut in).
#[derive(Clone)]
pub(super) struct KeyChanges {
    waiting: Arc<Mutex<Waiting>>,
}

impl KeyChanges {
    /// No change waiting; a round comes `debounce` after the first.
    pub(super) fn new(debounce: Duration) -> Self {
        let waiting = Waiting {
            dirs: BTreeSet::new(),
            files: BTreeMap::new(),
            deadline: None,
            first_seen: None,
            debounce,
        };
        KeyChanges {
            waiting: Arc::new(Mutex::new(waiting)),
        }
    }

    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        // Nothing here can be left half-done by a panic.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A reload's `[watch] debounce`.
    pub(super) fn set_debounce(&self, debounce: Duration) {
        self.waiting().debounce = debounce;
    }

    /// Notes one change; the round comes a debounce after the first.
    pub(super) fn note(&self, (dir, file): Touched) {
        let mut waiting = self.waiting();
        let debounce = waiting.debounce;
        match file {
            Some(file) => {
                waiting.files.entry(dir).or_default().insert(file);
            }
            None => {
                waiting.dirs.insert(dir);
            }
        }
        waiting.deadline.get_or_insert(Instant::now() + debounce);
        waiting.first_seen.get_or_insert_with(Instant::now);
    }

    /// Rescans whole directories at once (polling).
    pub(super) fn rescan_now(&self, dirs: &[PathBuf]) {
        let mut waiting = self.waiting();
        waiting.dirs.extend(dirs.iter().cloned());
        waiting.deadline.get_or_insert(Instant::now());
    }

    /// Looks again shortly at directories whose keys are mid-rewrite,
    /// without stalling others (a key in flux is re-read by any scan of its
    /// directory, so no file needs naming).
    pub(super) fn retry_flux(&self, dirs: &[PathBuf]) {
        let mut waiting = self.waiting();
        for dir in dirs {
            waiting.files.entry(dir.clone()).or_default();
        }
        waiting.deadline.get_or_insert(Instant::now() + FLUX_RETRY);
    }

    /// When the waiting changes become a round, if any wait.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.waiting().deadline
    }

    /// The round for everything noted so far, and when its first key
    /// change was seen.
    pub(super) fn take(&self) -> (RoundInput, Option<Instant>) {
        let mut waiting = self.waiting();
        waiting.deadline = None;
        let first_seen = waiting.first_seen.take();
        let dirs = std::mem::take(&mut waiting.dirs);
        let mut files = std::mem::take(&mut waiting.files);
        files.retain(|dir, _| !dirs.contains(dir));
        let input = RoundInput {
            dirs,
            files,
            ..RoundInput::default()
        };
        (input, first_seen)
    }

    /// The files whose debounce has ended, to cut into a running full
    /// round; whole directories stay for the round after it. Files still
    /// in their debounce are waited for (at most the debounce, on the
    /// round's thread): the next chance may be seconds away.
    fn take_due_files(&self) -> Option<(RoundInput, Option<Instant>)> {
        let (deadline, debounce) = {
            let waiting = self.waiting();
            if waiting.files.is_empty() {
                return None;
            }
            (waiting.deadline?, waiting.debounce)
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait > debounce {
            return None;
        }
        std::thread::sleep(wait);
        let mut waiting = self.waiting();
        let files = std::mem::take(&mut waiting.files);
        let first_seen = waiting.first_seen.take();
        if waiting.dirs.is_empty() {
            waiting.deadline = None;
        }
        let input = RoundInput {
            files,
            ..RoundInput::default()
        };
        Some((input, first_seen))
    }
}

impl KeyChanges {
    /// Puts back files taken by [`Self::take_due_files`] that may not cut
    /// in yet: they are due at the next chance.
    fn give_back(&self, input: RoundInput, first_seen: Option<Instant>) {
        let mut waiting = self.waiting();
        for (dir, files) in input.files {
            waiting.files.entry(dir).or_default().extend(files);
        }
        if let Some(seen) = first_seen {
            let first = waiting.first_seen.get_or_insert(seen);
            *first = (*first).min(seen);
        }
        waiting.deadline = Some(Instant::now());
    }
}

/// One NOTIFY to send to a secondary (RFC 1996).
#[derive(Debug, Clone)]
pub(super) struct NotifyJob {
    /// The zone.
    pub apex: Name,
    /// Its new serial.
    pub serial: u32,
    /// The secondary.
    pub target: SocketAddr,
    /// The TSIG key to sign it with.
    pub key: Option<tsig::Key>,
}

/// What a cut-in round owes the world, handed to the event loop at once.
pub(super) struct CutIn {
    /// NOTIFYs for the zones it gave a new serial.
    pub notifies: Vec<NotifyJob>,
    /// Children whose signals changed, for the parent agent.
    pub child_reports: Vec<ChildReport>,
    /// For the metrics.
    pub facts: RoundFacts,
}

/// Where a running round finds key changes that may cut in, and hands on
/// what each cut-in did.
pub(super) struct CutIns {
    /// The waiting key changes.
    pub changes: KeyChanges,
    /// To the event loop.
    pub done: UnboundedSender<CutIn>,
}

impl Daemon {
    /// Runs a round for the key files whose debounce ended, and, once the
    /// listing is taken, the children it found changed (when at most
    /// [`LISTED_FIRST`]), inside a full round (see the module doc for where
    /// and why); returns the names it recomputed (children and names no
    /// longer children), `None` when nothing cut in.
    pub(super) fn cut_in(&mut self, point: CutInPoint<'_>) -> Option<BTreeSet<Name>> {
        let listed = match point {
            CutInPoint::ListingTaken(names) => Some(names),
            _ => None,
        };
        let changes = self.cut_ins.as_ref()?.changes.clone();
        // A cold start: nothing is served yet (see the module doc).
        if self.zones.values().any(|zone| zone.store.is_empty()) {
            return None;
        }
        let listed = listed
            .filter(|names| !names.is_empty() && names.len() <= LISTED_FIRST)
            .cloned();
        let (mut input, first_seen) = match (changes.take_due_files(), listed) {
            (Some((mut input, seen)), listed) => {
                input.names = listed.unwrap_or_default();
                (input, seen)
            }
            (None, Some(names)) => (
                RoundInput {
                    names,
                    ..RoundInput::default()
                },
                None,
            ),
            (None, None) => return None,
        };
        let named_zones = if self.known_keys.listed {
            None
        } else {
            match self.complete_before_listing(&mut input) {
                Some(zones) => Some(zones),
                None => {
                    changes.give_back(input, first_seen);
                    return None;
                }
            }
        };
        if let Some(read) = &mut self.known_keys.read_while_listing {
            read.dirs.extend(input.dirs.iter().cloned());
            for (dir, files) in &input.files {
                read.files
                    .entry(dir.clone())
                    .or_default()
                    .extend(files.iter().cloned());
            }
        }
        let progress = Progress::new();
        let mut scanned = self.scan(&input, &progress);
        // A cut-in plans only its own children: a directory that reads
        // again would widen its scan to every zone of it, which before the
        // listing means planning from caches that may lack keys.
        scanned.every_child = false;
        if let Some(zones) = &named_zones {
            let named = |name: &Name| zones.contains(&display(name).to_ascii_lowercase());
            scanned.children.retain(|child| named(&child.name));
            scanned.gone.retain(|name| named(name));
        }
        let names: BTreeSet<Name> = scanned
            .children
            .iter()
            .map(|child| child.name.clone())
            .chain(scanned.gone.iter().cloned())
            .collect();
        if names.is_empty() {
            // Nothing a round after the full one would not see either
            // (the listing read the file already, or it is no key).
            return None;
        }
        let shown: Vec<String> = names
            .iter()
            .take(8)
            .map(crate::dns::name::display)
            .collect();
        tracing::debug!(names = shown.join(" "), "cutting in");
        let now = Timestamp::now();
        self.cut_in_at = Some(now);
        // A new version only for a real change: the first round's own
        // version of every zone comes at its end.
        let mut report = self.run_phases(scanned, &input, now, &progress, false);
        let served = first_seen
            .filter(|_| report.new_versions > 0)
            .map(|seen| seen.elapsed());
        report.log(
            "key change cut into the full round",
            &progress,
            Some((point.as_str(), input.names.len())),
            served,
        );
        let notifies = report
            .new_serials
            .iter()
            .flat_map(|(apex, serial)| self.notify_jobs(apex, *serial))
            .collect();
        if !report.flux_dirs.is_empty() {
            changes.retry_flux(&report.flux_dirs);
        }
        let facts = self.round_facts(&report, progress.elapsed(), served);
        let cut_in = CutIn {
            notifies,
            child_reports: std::mem::take(&mut report.child_reports),
            facts,
        };
        if let Some(cut_ins) = &self.cut_ins {
            // The event loop outlives every round it runs.
            let _ = cut_ins.done.send(cut_in);
        }
        Some(names)
    }

    /// Lists `dirs` on another thread, letting key changes cut in
    /// meanwhile (at a million files the listing takes seconds), and takes
    /// the listings; returns the zones whose keys changed. The files a
    /// cut-in read while the listing ran are looked at again after it: the
    /// listing may have been read before them (a file created after the
    /// `readdir` passed it would otherwise count as gone).
    pub(super) fn scan_cutting_in(
        &mut self,
        dirs: &[PathBuf],
        at: std::time::Instant,
    ) -> BTreeSet<Name> {
        let owned = dirs.to_vec();
        self.known_keys.read_while_listing = Some(RoundInput::default());
        // What waits already goes first, whatever the listing's pace.
        self.cut_in(CutInPoint::WhileListing);
        let listings = std::thread::scope(|scope| {
            let reading = scope.spawn(move || {
                owned
                    .into_iter()
                    .map(|dir| {
                        let listing = Listing::read(&dir);
                        (dir, listing)
                    })
                    .collect()
            });
            while !reading.is_finished() {
                if self.cut_in(CutInPoint::WhileListing).is_none() {
                    std::thread::sleep(LISTING_POLL);
                }
            }
            reading
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        let read = self
            .known_keys
            .read_while_listing
            .take()
            .unwrap_or_default();
        let mut changed = self.keys.scan_listings(listings, at);
        changed.append(&mut self.keys.scan_dirs(&read.dirs, at));
        for (dir, files) in &read.files {
            changed.append(&mut self.keys.scan_files(dir, files, at));
        }
        changed
    }

    /// Before the first listing of a warm start: the zones (file-name
    /// text) of `input`'s files when each is a zone whose keys a complete
    /// cache restored (`key_cache.rs`) and none of its other known files
    /// changed while stopped (a rollover that went on meanwhile may have
    /// made keys no cache knows: that zone waits for the listing); `None`
    /// otherwise. Adds the other files of those zones and of each named
    /// key new to the store, and the directories of the zones served here
    /// (their keys are never cached: they are read to sign).
    fn complete_before_listing(&mut self, input: &mut RoundInput) -> Option<BTreeSet<String>> {
        let at = std::time::Instant::now();
        let mut named = BTreeSet::new();
        for (dir, files) in &mut input.files {
            let except = self.known_keys.complete.get(dir)?;
            let parsed: Vec<_> = files
                .iter()
                .filter_map(|file| Some((file.clone(), crate::keys::bind::filename::parse(file)?)))
                .collect();
            let zones: BTreeSet<String> = parsed.iter().map(|(_, n)| n.zone_text.clone()).collect();
            if zones.iter().any(|zone| except.contains(zone)) {
                return None;
            }
            let others: BTreeSet<String> = zones
                .iter()
                .flat_map(|zone| self.keys.files_of(dir, zone))
                .filter(|file| !files.contains(file))
                .collect();
            // Any of them read again (its stamp changed) is enough, and
            // for good: read now, it would look unchanged next time.
            let read_before = self.keys.files_read();
            if !self.keys.scan_files(dir, &others, at).is_empty()
                || self.keys.files_read() > read_before
            {
                if let Some(except) = self.known_keys.complete.get_mut(dir) {
                    except.extend(zones);
                }
                return None;
            }
            files.extend(others);
            // A key the store does not know: all of its files.
            for (file, name) in &parsed {
                if !self.keys.knows(dir, &name.stem) {
                    if let Some((stem, _)) = file.rsplit_once('.') {
                        for ext in ["key", "private", "state"] {
                            files.insert(format!("{stem}.{ext}"));
                        }
                    }
                }
            }
            named.extend(zones);
        }
        input.dirs = self
            .zones
            .values()
            .filter_map(|zone| zone.config.keys.clone())
            .collect();
        Some(named)
    }
}
