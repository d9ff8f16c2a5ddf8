//! The model: which child zones exist, with which settings and keys.
//!
//! Joins the configuration with what the key directories hold. A `[[zone]]`
//! names one zone; a `[[zones]]` set covers every zone with keys in its
//! directory. A `[[zone]]` whose name a set also covers takes the set's
//! settings for every field it leaves unset (its key directory included). A
//! zone found in two sets' directories is an error and is held.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use hickory_proto::rr::Name;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::{
    config::{ChildSettings, Config, PartialSettings},
    dns::name::display,
    keys::{
        Key,
        dir::{KeyDirectory, KeyIssue, Listing, ScanReport},
    },
    policy::{ParentView, ZoneInput},
};

/// One child zone as the policy will see it.
#[derive(Debug, Clone)]
pub struct ChildZone {
    /// The zone.
    pub name: Name,
    /// Settings with defaults applied (shared by the children of a set).
    pub settings: Arc<ChildSettings>,
    /// The key directory its keys come from.
    pub key_dir: Option<Arc<Path>>,
    /// Its readable keys (last good views).
    pub keys: Vec<Arc<Key>>,
    /// Why the zone is held (publish nothing new), if it is.
    pub held: Vec<String>,
    /// Problems with its key files.
    pub issues: Vec<KeyIssue>,
    /// The config table(s) it comes from, for messages (shared by the
    /// children of a set).
    pub source: Arc<str>,
    /// Its `[[zone]]` has `follow`: its signer's apex is the source.
    pub follows: bool,
    /// Its `[[zone]]` has `foreign_from`: it waits for the other providers'
    /// keys ([`crate::providers`]).
    pub fetches_foreign: bool,
    /// The apex types its `[[zone]]` `publish` writes by UPDATE.
    pub publish_types: Vec<hickory_proto::rr::RecordType>,
}

impl ChildZone {
    /// True when nothing new may be published for the zone.
    pub fn is_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// The policy's input for this zone.
    pub fn input<'a>(
        &'a self,
        parent: Option<&'a ParentView>,
        soa_serial: Option<u32>,
    ) -> ZoneInput<'a> {
        ZoneInput {
            zone: &self.name,
            settings: &self.settings,
            keys: &self.keys,
            parent,
            soa_serial,
            followed: None,
            foreign: &[],
        }
    }
}

/// A problem joining config and key directories (e.g. a zone in two sets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

/// When key caches are written ([`KeyStore::stale_caches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSave {
    /// At shutdown: every cache behind the keys it holds.
    Shutdown,
    /// After a full round: a cache behind by at least one key in
    /// [`RESAVE_SHARE`](crate::keys::dir::RESAVE_SHARE).
    AfterFullRound,
}

/// Every key directory of a config, scanned incrementally.
#[derive(Debug, Default)]
pub struct KeyStore {
    dirs: BTreeMap<PathBuf, KeyDirectory>,
    reports: HashMap<PathBuf, ScanReport>,
    /// Key files read since [`Self::take_files_read`].
    files_read: usize,
}

impl KeyStore {
    /// A store for the directories `config` names.
    pub fn new(config: &Config) -> Self {
        let mut store = KeyStore::default();
        store.reconfigure(config);
        store
    }

    /// Adds directories a new config names and forgets those it no longer names.
    pub fn reconfigure(&mut self, config: &Config) {
        let wanted = config.key_directories();
        self.dirs.retain(|path, _| wanted.contains(path));
        self.reports.retain(|path, _| wanted.contains(path));
        for path in wanted {
            self.dirs
                .entry(path.clone())
                .or_insert_with(|| KeyDirectory::new(path));
        }
    }

    /// Rescans every directory.
    pub fn scan(&mut self, at: Instant) {
        for (path, dir) in &mut self.dirs {
            let report = dir.scan(at);
            self.files_read += report.files_read;
            self.reports.insert(path.clone(), report);
        }
    }

    /// Rescans the given directories (unknown ones are ignored); returns the
    /// zones whose keys changed.
    pub fn scan_dirs<'a>(
        &mut self,
        paths: impl IntoIterator<Item = &'a PathBuf>,
        at: Instant,
    ) -> BTreeSet<Name> {
        let listings = paths
            .into_iter()
            .filter(|path| self.dirs.contains_key(*path))
            .map(|path| (path.clone(), Listing::read(path)))
            .collect();
        self.scan_listings(listings, at)
    }

    /// Rescans directories from listings read apart ([`Listing`]; unknown
    /// directories are ignored); returns the zones whose keys changed.
    pub fn scan_listings(
        &mut self,
        listings: Vec<(PathBuf, Listing)>,
        at: Instant,
    ) -> BTreeSet<Name> {
        let mut changed = BTreeSet::new();
        for (path, listing) in listings {
            if let Some(dir) = self.dirs.get_mut(&path) {
                let mut report = dir.scan_listing(listing, at);
                self.files_read += report.files_read;
                // Moved out, not kept: after a cold start it names every zone.
                changed.append(&mut report.changed);
                self.reports.insert(path.clone(), report);
            }
        }
        changed
    }

    /// Rescans the named files of one directory (unknown directories are
    /// ignored); returns the zones whose keys changed.
    pub fn scan_files(
        &mut self,
        path: &Path,
        files: &BTreeSet<String>,
        at: Instant,
    ) -> BTreeSet<Name> {
        let mut changed = BTreeSet::new();
        if let Some(dir) = self.dirs.get_mut(path) {
            let mut report = dir.scan_files(files.iter().map(String::as_str), at);
            self.files_read += report.files_read;
            changed.append(&mut report.changed);
            // Issues and holds of untouched keys are in the new report too
            // (troubled keys are always re-read).
            self.reports.insert(path.to_path_buf(), report);
        }
        changed
    }

    /// The key files read by the scans since [`Self::take_files_read`], left
    /// to be taken.
    pub fn files_read(&self) -> usize {
        self.files_read
    }

    /// The key files read by the scans since the last call.
    pub fn take_files_read(&mut self) -> usize {
        std::mem::take(&mut self.files_read)
    }

    /// Puts in `dir`, seeded from its key cache on another thread
    /// (`daemon::key_cache`), in place of the directory at its path; false
    /// (nothing changes) when that directory is no longer scanned here or
    /// was scanned already.
    pub fn install_restored(&mut self, dir: KeyDirectory) -> bool {
        match self.dirs.get_mut(dir.path()) {
            Some(have) if have.is_fresh() => {
                *have = dir;
                true
            }
            _ => false,
        }
    }

    /// Makes the next scan read the files of restored keys of zones that
    /// `signs` is now true for (see `KeyDirectory::reread_not_loaded`).
    pub fn reread_not_loaded(&mut self, signs: impl Fn(&Name) -> bool) -> usize {
        self.dirs
            .values_mut()
            .map(|dir| dir.reread_not_loaded(&signs))
            .sum()
    }

    /// The key caches to write, by directory: of every directory whose
    /// keys changed since its last one was taken (at shutdown), or only of
    /// those where enough changed to be worth it (after a full round).
    pub fn stale_caches(&mut self, when: CacheSave) -> Vec<(PathBuf, Vec<u8>)> {
        self.dirs
            .iter_mut()
            .filter(|(_, dir)| match when {
                CacheSave::Shutdown => dir.cache_stale(),
                CacheSave::AfterFullRound => dir.cache_due(),
            })
            .filter_map(|(path, dir)| Some((path.clone(), dir.cache()?)))
            .collect()
    }

    /// Per directory whose cache taken now is complete, the zones
    /// (file-name text) it leaves out (`KeyDirectory::uncached_zones`) and
    /// the checksum of the cache last taken.
    pub fn uncached_zones(&self) -> BTreeMap<PathBuf, (BTreeSet<String>, [u8; 32])> {
        self.dirs
            .iter()
            .filter_map(|(path, dir)| {
                Some((path.clone(), (dir.uncached_zones()?, dir.cache_digest()?)))
            })
            .collect()
    }

    /// True when `dir` holds a key with this stem (lower-case
    /// `K<zone>+<alg>+<tag>`), good or troubled.
    pub fn knows(&self, dir: &Path, stem: &str) -> bool {
        self.dirs.get(dir).is_some_and(|d| d.knows(stem))
    }

    /// The files of the known keys of a zone (file-name text) in `dir`.
    pub fn files_of(&self, dir: &Path, zone_text: &str) -> Vec<String> {
        self.dirs
            .get(dir)
            .map(|d| d.files_of(zone_text))
            .unwrap_or_default()
    }

    /// The directories this store scans.
    pub fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.dirs.keys()
    }

    /// Directories with a key mid-rewrite and no earlier view of it.
    pub fn dirs_in_flux(&self) -> Vec<PathBuf> {
        self.reports
            .iter()
            .filter(|(_, r)| r.has_pending_flux())
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// The last scan of `path`.
    pub fn report(&self, path: &Path) -> Option<&ScanReport> {
        self.reports.get(path)
    }

    /// All last scans.
    pub fn reports(&self) -> impl Iterator<Item = (&PathBuf, &ScanReport)> {
        self.reports.iter()
    }

    /// True when a key is mid-rewrite without an earlier view somewhere.
    pub fn has_pending_flux(&self) -> bool {
        self.reports.values().any(ScanReport::has_pending_flux)
    }
}

/// Every child zone of `config`, given the last scans in `store`, in
/// canonical name order, plus the errors found joining them.
///
/// The common case, a zone found in exactly one `[[zones]]` set and named
/// by no `[[zone]]`, is assembled straight from the set's scan while it is
/// walked: at a million children, looking each one up again in the scans
/// (by `Name`, whose comparisons are slow) cost seconds.
pub fn children(config: &Config, store: &KeyStore) -> (Vec<ChildZone>, Vec<ModelError>) {
    let mut errors = Vec::new();
    // Zones in the sets' scans: name -> the sets holding it. With one set
    // (the usual case) no zone can be in two, and this map of every name
    // is not built.
    let several_sets = config.zone_sets.len() > 1;
    let mut sets_of: FxHashMap<Name, Vec<usize>> = FxHashMap::default();
    // Everything else (named by a [[zone]], in two sets, held) takes the
    // long way, below.
    let mut rest: FxHashSet<Name> = FxHashSet::default();
    for (i, set) in config.zone_sets.iter().enumerate().filter(|_| several_sets) {
        if let Some(report) = store.report(&set.keys) {
            for name in report.zones.keys().chain(report.held.keys()) {
                let sets = sets_of.entry(name.clone()).or_default();
                if !sets.contains(&i) {
                    sets.push(i);
                }
            }
        }
    }
    let sets = config
        .zone_sets
        .iter()
        .filter_map(|s| store.report(&s.keys));
    let zones: usize = sets.map(|r| r.zones.len()).sum();
    let mut out: Vec<(Vec<u8>, ChildZone)> = Vec::with_capacity(zones + config.zones.len());
    // The simple ones, walking each set's scan once.
    for set in &config.zone_sets {
        let Some(report) = store.report(&set.keys) else {
            continue;
        };
        let mut issues: FxHashMap<&Name, Vec<KeyIssue>> = FxHashMap::default();
        let mut everyone: Vec<KeyIssue> = Vec::new(); // about the directory itself
        for issue in &report.issues {
            match &issue.zone {
                Some(zone) => issues.entry(zone).or_default().push(issue.clone()),
                None => everyone.push(issue.clone()),
            }
        }
        let settings = Arc::new(set.settings.resolve());
        let source: Arc<str> = set.origin.to_string().into();
        let key_dir: Arc<Path> = set.keys.as_path().into();
        rest.extend(report.held.keys().cloned());
        for (name, keys) in report.zones.iter() {
            let simple = config.zone(name).is_none()
                && (!several_sets || sets_of.get(name).is_some_and(|s| s.len() == 1))
                && !report.held.contains_key(name)
                && !config.signaling_zones.iter().any(|s| &s.apex == name);
            if !simple {
                rest.insert(name.clone());
                continue;
            }
            let mut held = Vec::new();
            if let (Some(error), true) = (&report.directory_error, keys.is_empty()) {
                held.push(error.clone());
            }
            let child = ChildZone {
                name: name.clone(),
                settings: Arc::clone(&settings),
                key_dir: Some(Arc::clone(&key_dir)),
                keys: keys.to_vec(),
                held,
                issues: everyone
                    .iter()
                    .cloned()
                    .chain(issues.remove(name).unwrap_or_default())
                    .collect(),
                source: Arc::clone(&source),
                follows: false,
                fetches_foreign: false,
                publish_types: Vec::new(),
            };
            out.push((crate::dns::name::canonical_key(name), child));
        }
    }
    rest.extend(config.zones.iter().map(|z| z.name.clone()));
    for name in rest {
        if let Some(child) = child_with_errors(config, store, &name, &mut errors) {
            out.push((crate::dns::name::canonical_key(&name), child));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    (out.into_iter().map(|(_, c)| c).collect(), errors)
}

/// The child zone `name`, if the config (a `[[zone]]`, or a set holding its
/// keys) makes it one; a zone in two sets comes back held, with the error.
pub fn child(
    config: &Config,
    store: &KeyStore,
    name: &Name,
) -> (Option<ChildZone>, Vec<ModelError>) {
    let mut errors = Vec::new();
    let child = child_with_errors(config, store, name, &mut errors);
    (child, errors)
}

fn child_with_errors(
    config: &Config,
    store: &KeyStore,
    name: &Name,
    errors: &mut Vec<ModelError>,
) -> Option<ChildZone> {
    if config.signaling_zones.iter().any(|s| &s.apex == name) {
        return None;
    }
    // The sets whose directories hold keys for the zone.
    let mut sets: Vec<usize> = config
        .zone_sets
        .iter()
        .enumerate()
        .filter(|(_, set)| {
            store
                .report(&set.keys)
                .is_some_and(|r| r.zones.contains_key(name) || r.held.contains_key(name))
        })
        .map(|(i, _)| i)
        .collect();
    let zone_cfg = config.zone(name);
    // A [[zone]] naming one set's directory belongs to that set alone.
    if let Some(dir) = zone_cfg.and_then(|z| z.keys.as_ref()) {
        if let Some(own) = sets
            .iter()
            .copied()
            .find(|i| &config.zone_sets[*i].keys == dir)
        {
            sets = vec![own];
        }
    }
    if zone_cfg.is_none() && sets.is_empty() {
        return None;
    }
    let mut held = Vec::new();
    if sets.len() > 1 {
        let names: Vec<String> = sets
            .iter()
            .map(|i| {
                let set = &config.zone_sets[*i];
                format!("{} ({})", set.origin, set.keys.display())
            })
            .collect();
        let message = format!(
            "zone {} has keys in the directories of two [[zones]] sets: {}; \
             add a [[zone]] entry whose `keys` names one of the directories, or move its keys",
            display(name),
            names.join(" and ")
        );
        errors.push(ModelError(message.clone()));
        held.push(message);
    }
    let set = sets.first().map(|i| &config.zone_sets[*i]);
    let base = set.map(|s| s.settings.clone()).unwrap_or_default();
    let (settings, key_dir, source) = match zone_cfg {
        Some(z) => {
            let mut source = z.origin.to_string();
            if let Some(set) = set {
                source.push_str(&format!(", over {}", set.origin));
            }
            (
                z.settings.over(&base),
                z.keys.clone().or_else(|| set.map(|s| s.keys.clone())),
                source,
            )
        }
        None => (
            base,
            set.map(|s| s.keys.clone()),
            set.map(|s| s.origin.to_string()).unwrap_or_default(),
        ),
    };
    let mut child = assemble(name, settings, key_dir, store, held, source);
    child.follows = zone_cfg.is_some_and(|z| z.follow.is_some());
    child.fetches_foreign = zone_cfg.is_some_and(|z| z.foreign_from.is_some());
    child.publish_types = zone_cfg
        .and_then(|z| z.publish.as_ref())
        .map(|p| p.types.clone())
        .unwrap_or_default();
    Some(child)
}

fn assemble(
    name: &Name,
    settings: PartialSettings,
    key_dir: Option<PathBuf>,
    store: &KeyStore,
    mut held: Vec<String>,
    source: String,
) -> ChildZone {
    let mut keys = Vec::new();
    let mut issues = Vec::new();
    match key_dir.as_deref().map(|d| (d, store.report(d))) {
        Some((_, Some(report))) => {
            keys = report
                .zones
                .get(name)
                .map(<[_]>::to_vec)
                .unwrap_or_default();
            issues = report.issues_for(name).cloned().collect();
            if let Some(reasons) = report.held.get(name) {
                held.extend(reasons.iter().cloned());
            }
            if let Some(error) = &report.directory_error {
                if keys.is_empty() {
                    held.push(error.clone());
                }
            }
        }
        Some((dir, None)) => held.push(format!("key directory {} not scanned", dir.display())),
        None => {}
    }
    ChildZone {
        name: name.clone(),
        settings: Arc::new(settings.resolve()),
        key_dir: key_dir.map(Arc::from),
        keys,
        held,
        issues,
        source: source.into(),
        follows: false,
        fetches_foreign: false,
        publish_types: Vec::new(),
    }
}
