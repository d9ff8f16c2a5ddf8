//! Scanning a BIND key directory, incrementally and tolerant of BIND's
//! one-file-at-a-time rewrites.
//!
//! A [`KeyDirectory`] remembers every key file it has read (size, mtime,
//! ctime, inode) and re-reads only files whose stamp changed, so a rescan of a
//! directory of 100k child keys costs a `readdir` and a `stat` per file.
//!
//! Each key keeps its *last good view*. When its files disagree (BIND is
//! between two renames), are malformed or cannot be read, the last good view
//! stays in use and the problem is reported; a disagreement is only an error
//! once it has lasted longer than the grace period (5 s by default). A key
//! with a problem and no earlier good view *holds* its zone: nothing new may be
//! published for that zone until the key can be read.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs, io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use hickory_proto::rr::Name;

use super::{
    Key, KeyFiles, PrivatePart,
    bind::{self, AssembleError, FileKind, KeyFileName, PrivateKeyFile, PublicKeyFile, StateFile},
};
use crate::dns::parse_name;

/// How long a key's files may disagree before that is an error.
pub const DEFAULT_FLUX_GRACE: Duration = Duration::from_secs(5);

/// What a problem means for the key it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The last good view of the key is still used.
    UsingLastGood,
    /// No good view exists: the key's zone is held.
    Held,
    /// Nothing is lost (a warning).
    None,
}

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Files disagree, probably mid-rewrite; re-read soon.
    InFlux,
    /// A real problem that needs an operator.
    Error,
    /// Worth knowing; nothing is lost.
    Warning,
}

/// One problem found in a key directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIssue {
    /// The zone the file belongs to, if it can be told.
    pub zone: Option<Name>,
    /// The key tag, if known from the file name.
    pub tag: Option<u16>,
    /// The file concerned (or the directory).
    pub file: PathBuf,
    /// Line in the file, 0 for the whole file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
    /// How serious it is.
    pub severity: Severity,
    /// What it means for the key.
    pub effect: Effect,
}

impl std::fmt::Display for KeyIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        write!(f, ": {}", self.message)?;
        match self.effect {
            Effect::UsingLastGood => f.write_str(" (keeping the last good view of this key)"),
            Effect::Held => f.write_str(" (no good view of this key: zone held)"),
            Effect::None => Ok(()),
        }
    }
}

/// The result of one scan: the keys of every zone found, and the problems.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// Keys per zone (good views, some possibly stale: see `issues`).
    pub zones: BTreeMap<Name, Vec<Arc<Key>>>,
    /// Zones with a key that has no good view: publish nothing new for them.
    pub held: BTreeMap<Name, Vec<String>>,
    /// Every problem found.
    pub issues: Vec<KeyIssue>,
    /// Set when the directory itself could not be read; `zones` then holds
    /// the last good views.
    pub directory_error: Option<String>,
    /// Number of files (re-)read in this scan.
    pub files_read: usize,
    /// Zones whose keys (as used: the good views) changed in this scan:
    /// a key added, removed or different.
    pub changed: BTreeSet<Name>,
}

impl ScanReport {
    /// True when some key is still being rewritten (within its grace period)
    /// and has no earlier view: a rescan shortly may resolve it.
    pub fn has_pending_flux(&self) -> bool {
        self.issues
            .iter()
            .any(|i| i.severity == Severity::InFlux && i.effect == Effect::Held)
    }

    fn add_key(&mut self, key: &Arc<Key>) {
        self.zones
            .entry(key.zone.clone())
            .or_default()
            .push(key.clone());
    }

    /// The problems that concern `zone` (or the directory as a whole).
    pub fn issues_for<'a>(&'a self, zone: &'a Name) -> impl Iterator<Item = &'a KeyIssue> + 'a {
        self.issues
            .iter()
            .filter(move |i| i.zone.as_ref().is_none_or(|z| z == zone))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Stamp {
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

#[derive(Debug, Clone)]
enum Content {
    Key(Arc<PublicKeyFile>),
    Private(Arc<PrivateKeyFile>),
    State(Arc<StateFile>),
    PermissionDenied,
    Bad { line: usize, message: String },
}

#[derive(Debug, Clone)]
struct CachedFile {
    /// The name as found on disk.
    file_name: String,
    name: KeyFileName,
    stamp: Stamp,
    content: Content,
}

#[derive(Debug, Default)]
struct KeySlot {
    good: Option<Arc<Key>>,
    flux_since: Option<Instant>,
}

/// One BIND key directory, scanned incrementally.
#[derive(Debug)]
pub struct KeyDirectory {
    path: PathBuf,
    grace: Duration,
    files: HashMap<String, CachedFile>,
    keys: HashMap<String, KeySlot>,
}

impl KeyDirectory {
    /// A directory not scanned yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        KeyDirectory {
            path: path.into(),
            grace: DEFAULT_FLUX_GRACE,
            files: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    /// Sets how long files may disagree before it is an error.
    pub fn with_flux_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Scans the directory; `at` is the monotonic time of the scan (a
    /// parameter so tests can drive the grace period).
    pub fn scan(&mut self, at: Instant) -> ScanReport {
        let mut report = ScanReport::default();
        match self.refresh_files(&mut report) {
            Ok(()) => {}
            Err(e) => {
                let message = format!("cannot read key directory: {e}");
                report.issues.push(KeyIssue {
                    zone: None,
                    tag: None,
                    file: self.path.clone(),
                    line: 0,
                    message: message.clone(),
                    severity: Severity::Error,
                    effect: Effect::UsingLastGood,
                });
                report.directory_error = Some(message);
                for key in self.keys.values().filter_map(|slot| slot.good.as_ref()) {
                    report.add_key(key);
                }
                sort_keys(&mut report);
                return report;
            }
        }

        // Group the files of each key.
        let mut stems: BTreeMap<&str, [Option<&CachedFile>; 3]> = BTreeMap::new();
        for file in self.files.values() {
            let slot = stems.entry(file.name.stem.as_str()).or_default();
            slot[file.name.kind as usize] = Some(file);
        }
        for (stem, slot) in &self.keys {
            if !stems.contains_key(stem.as_str()) {
                if let Some(key) = &slot.good {
                    report.changed.insert(key.zone.clone());
                }
            }
        }
        self.keys
            .retain(|stem, _| stems.contains_key(stem.as_str()));

        for (stem, [key_file, private_file, state_file]) in stems {
            let slot = self.keys.entry(stem.to_string()).or_default();
            let Some(key_file) = key_file else {
                // BIND renames files into place, so a `.key` never vanishes
                // mid-rewrite: without it there is no key, only leftovers.
                if let Some(old) = slot.good.take() {
                    report.changed.insert(old.zone.clone());
                }
                if let Some(orphan) = private_file.or(state_file) {
                    report.issues.push(KeyIssue {
                        zone: zone_of(&orphan.name),
                        tag: Some(orphan.name.tag),
                        file: self.path.join(&orphan.file_name),
                        line: 0,
                        message: "no matching .key file: ignored".to_string(),
                        severity: Severity::Warning,
                        effect: Effect::None,
                    });
                }
                continue;
            };
            let name = &key_file.name;
            let issue =
                |file: &CachedFile, line: usize, message: String, severity: Severity| KeyIssue {
                    zone: zone_of(&file.name),
                    tag: Some(file.name.tag),
                    file: self.path.join(&file.file_name),
                    line,
                    message,
                    severity,
                    effect: Effect::None,
                };
            let mut problems = Vec::new();
            let public = match &key_file.content {
                Content::Key(public) => Some(public.clone()),
                Content::Bad { line, message } => {
                    problems.push(issue(key_file, *line, message.clone(), Severity::Error));
                    None
                }
                _ => {
                    problems.push(issue(
                        key_file,
                        0,
                        "permission denied".to_string(),
                        Severity::Error,
                    ));
                    None
                }
            };
            let private = match private_file.map(|f| (f, &f.content)) {
                None => PrivatePart::Absent,
                Some((_, Content::Private(p))) => PrivatePart::Present(p.clone()),
                Some((f, Content::PermissionDenied)) => {
                    problems.push(issue(
                        f,
                        0,
                        "permission denied: using the .key and .state files only \
                         (counts as private-key format v1.3)"
                            .to_string(),
                        Severity::Warning,
                    ));
                    PrivatePart::Unreadable
                }
                Some((f, Content::Bad { line, message })) => {
                    problems.push(issue(f, *line, message.clone(), Severity::Error));
                    PrivatePart::Unreadable
                }
                Some((f, _)) => {
                    problems.push(issue(
                        f,
                        0,
                        "unexpected content".to_string(),
                        Severity::Error,
                    ));
                    PrivatePart::Unreadable
                }
            };
            let state = match state_file.map(|f| (f, &f.content)) {
                None => None,
                Some((_, Content::State(s))) => Some(s.clone()),
                Some((f, Content::Bad { line, message })) => {
                    problems.push(issue(f, *line, message.clone(), Severity::Error));
                    None
                }
                Some((f, _)) => {
                    problems.push(issue(
                        f,
                        0,
                        "permission denied".to_string(),
                        Severity::Error,
                    ));
                    None
                }
            };
            if let (Some(state), Some(f)) = (&state, state_file) {
                if !state.unknown_tags.is_empty() {
                    problems.push(issue(
                        f,
                        0,
                        format!("unknown tags skipped: {}", state.unknown_tags.join(", ")),
                        Severity::Warning,
                    ));
                }
            }

            let unreadable = problems.iter().any(|p| p.severity == Severity::Error);
            let assembled = match (&public, unreadable) {
                (Some(public), false) => Some(bind::assemble(
                    name,
                    public,
                    private,
                    state.as_deref(),
                    KeyFiles {
                        key: self.path.join(&key_file.file_name),
                        private: private_file.map(|f| self.path.join(&f.file_name)),
                        state: state_file.map(|f| self.path.join(&f.file_name)),
                    },
                )),
                _ => None,
            };
            match assembled {
                Some(Ok(key)) => {
                    slot.flux_since = None;
                    if slot.good.as_deref() != Some(&key) {
                        report.changed.insert(key.zone.clone());
                        if let Some(old) = &slot.good {
                            report.changed.insert(old.zone.clone());
                        }
                        slot.good = Some(Arc::new(key));
                    }
                }
                Some(Err(AssembleError::InFlux(why))) => {
                    let since = *slot.flux_since.get_or_insert(at);
                    let lasted = at.saturating_duration_since(since);
                    if lasted > self.grace {
                        problems.push(issue(
                            key_file,
                            0,
                            format!("key files disagree for {}s: {why}", lasted.as_secs()),
                            Severity::Error,
                        ));
                    } else {
                        problems.push(issue(
                            key_file,
                            0,
                            format!("key files disagree (being rewritten?), re-reading: {why}"),
                            Severity::InFlux,
                        ));
                    }
                }
                Some(Err(AssembleError::Unusable(why))) => {
                    slot.flux_since = None;
                    problems.push(issue(key_file, 0, why, Severity::Error));
                }
                None => slot.flux_since = None,
            }
            let blocking = problems.iter().any(|p| p.severity != Severity::Warning);
            for mut problem in problems {
                if problem.severity != Severity::Warning {
                    problem.effect = if slot.good.is_some() {
                        Effect::UsingLastGood
                    } else {
                        Effect::Held
                    };
                }
                report.issues.push(problem);
            }
            if blocking && slot.good.is_none() {
                if let Some(zone) = zone_of(name) {
                    report
                        .held
                        .entry(zone)
                        .or_default()
                        .push(format!("key {} cannot be read", name.tag));
                }
            }
            if let Some(key) = &slot.good {
                report.add_key(key);
            }
        }
        sort_keys(&mut report);
        report
    }

    /// Re-reads the directory listing and every file whose stamp changed.
    fn refresh_files(&mut self, report: &mut ScanReport) -> io::Result<()> {
        let mut seen: HashMap<String, CachedFile> = HashMap::with_capacity(self.files.len());
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            let Ok(file_name) = entry.file_name().into_string() else {
                continue;
            };
            let Some(name) = bind::filename::parse(&file_name) else {
                continue;
            };
            let path = entry.path();
            let meta = match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => meta,
                // Vanished between readdir and stat, or not a file: skip.
                _ => continue,
            };
            let stamp = Stamp::of(&meta);
            if let Some(cached) = self.files.remove(&file_name) {
                if cached.stamp == stamp {
                    seen.insert(file_name, cached);
                    continue;
                }
            }
            report.files_read += 1;
            let content = read_content(&path, name.kind);
            seen.insert(
                file_name.clone(),
                CachedFile {
                    file_name,
                    name,
                    stamp,
                    content,
                },
            );
        }
        self.files = seen;
        Ok(())
    }
}

fn read_content(path: &Path, kind: FileKind) -> Content {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Content::PermissionDenied,
        Err(e) => {
            return Content::Bad {
                line: 0,
                message: format!("cannot read: {e}"),
            };
        }
    };
    let parsed = match kind {
        FileKind::Key => bind::keyfile::parse(&text).map(|f| Content::Key(Arc::new(f))),
        FileKind::Private => bind::private::parse(&text).map(|f| Content::Private(Arc::new(f))),
        FileKind::State => bind::state::parse(&text).map(|f| Content::State(Arc::new(f))),
    };
    parsed.unwrap_or_else(|e| Content::Bad {
        line: e.line,
        message: e.message,
    })
}

fn zone_of(name: &KeyFileName) -> Option<Name> {
    parse_name(&name.zone_text).ok()
}

fn sort_keys(report: &mut ScanReport) {
    for keys in report.zones.values_mut() {
        keys.sort_by_key(|k| (k.algorithm, k.tag));
    }
}
