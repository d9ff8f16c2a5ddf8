//! The model: which child zones exist, with which settings and keys.
//!
//! Joins the configuration with what the key directories hold. A `[[zone]]`
//! names one zone; a `[[zones]]` set covers every zone with keys in its
//! directory. A `[[zone]]` whose name a set also covers takes the set's
//! settings for every field it leaves unset (its key directory included). A
//! zone found in two sets' directories is an error and is held.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use hickory_proto::rr::Name;

use crate::{
    config::{ChildSettings, Config, PartialSettings},
    dns::name::display,
    keys::{
        Key,
        dir::{KeyDirectory, KeyIssue, ScanReport},
    },
    policy::{ParentView, ZoneInput},
};

/// One child zone as the policy will see it.
#[derive(Debug, Clone)]
pub struct ChildZone {
    /// The zone.
    pub name: Name,
    /// Settings with defaults applied.
    pub settings: ChildSettings,
    /// The key directory its keys come from.
    pub key_dir: Option<PathBuf>,
    /// Its readable keys (last good views).
    pub keys: Vec<Arc<Key>>,
    /// Why the zone is held (publish nothing new), if it is.
    pub held: Vec<String>,
    /// Problems with its key files.
    pub issues: Vec<KeyIssue>,
    /// The config table(s) it comes from, for messages.
    pub source: String,
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
        }
    }
}

/// A problem joining config and key directories (e.g. a zone in two sets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

/// Every key directory of a config, scanned incrementally.
#[derive(Debug, Default)]
pub struct KeyStore {
    dirs: BTreeMap<PathBuf, KeyDirectory>,
    reports: HashMap<PathBuf, ScanReport>,
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
            self.reports.insert(path.clone(), dir.scan(at));
        }
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

/// Every child zone of `config`, given the last scans in `store`, in name
/// order, plus the errors found joining them.
pub fn children(config: &Config, store: &KeyStore) -> (Vec<ChildZone>, Vec<ModelError>) {
    let mut errors = Vec::new();
    let signaling_apexes: Vec<&Name> = config.signaling_zones.iter().map(|s| &s.apex).collect();

    // Which sets hold keys for which zone.
    let mut set_members: BTreeMap<Name, Vec<usize>> = BTreeMap::new();
    for (i, set) in config.zone_sets.iter().enumerate() {
        let Some(report) = store.report(&set.keys) else {
            continue;
        };
        for zone in report.zones.keys().chain(report.held.keys()) {
            if signaling_apexes.contains(&zone) {
                continue;
            }
            let members = set_members.entry(zone.clone()).or_default();
            if !members.contains(&i) {
                members.push(i);
            }
        }
    }

    let mut out: BTreeMap<Name, ChildZone> = BTreeMap::new();
    let conflict = |zone: &Name, sets: &[usize], errors: &mut Vec<ModelError>| -> Option<String> {
        if sets.len() < 2 {
            return None;
        }
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
            display(zone),
            names.join(" and ")
        );
        errors.push(ModelError(message.clone()));
        Some(message)
    };

    for zone_cfg in &config.zones {
        let mut sets = set_members.get(&zone_cfg.name).cloned().unwrap_or_default();
        // A [[zone]] naming one set's directory belongs to that set alone.
        if let Some(dir) = &zone_cfg.keys {
            if let Some(own) = sets
                .iter()
                .copied()
                .find(|i| &config.zone_sets[*i].keys == dir)
            {
                sets = vec![own];
            }
        }
        let mut held = Vec::new();
        if let Some(message) = conflict(&zone_cfg.name, &sets, &mut errors) {
            held.push(message);
        }
        let base = sets
            .first()
            .map(|i| config.zone_sets[*i].settings.clone())
            .unwrap_or_default();
        let key_dir = zone_cfg
            .keys
            .clone()
            .or_else(|| sets.first().map(|i| config.zone_sets[*i].keys.clone()));
        let mut source = zone_cfg.origin.to_string();
        if let Some(i) = sets.first() {
            source.push_str(&format!(", over {}", config.zone_sets[*i].origin));
        }
        let child = assemble(
            &zone_cfg.name,
            zone_cfg.settings.over(&base),
            key_dir,
            store,
            held,
            source,
        );
        out.insert(zone_cfg.name.clone(), child);
    }

    for (zone, sets) in &set_members {
        if out.contains_key(zone) {
            continue;
        }
        let mut held = Vec::new();
        if let Some(message) = conflict(zone, sets, &mut errors) {
            held.push(message);
        }
        let Some(first) = sets.first().map(|i| &config.zone_sets[*i]) else {
            continue;
        };
        let child = assemble(
            zone,
            first.settings.clone(),
            Some(first.keys.clone()),
            store,
            held,
            first.origin.to_string(),
        );
        out.insert(zone.clone(), child);
    }
    (out.into_values().collect(), errors)
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
            keys = report.zones.get(name).cloned().unwrap_or_default();
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
        settings: settings.resolve(),
        key_dir,
        keys,
        held,
        issues,
        source,
    }
}
