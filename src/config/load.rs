//! Reading and validating the TOML file.

use std::{ops::Range, path::Path};

use hickory_proto::rr::Name;
use serde::Deserialize;
use toml::Spanned;

use super::SerialPolicy;
use super::{
    CdsMode, Config, ConfigError, ConfigErrors, Origin, SignalingZoneConfig, ZoneConfig,
    ZoneSetConfig,
    checker::Checker,
    duration::ConfigDuration,
    parent::{RawNotify, RawParent, RawResolver},
    serve::{RawSafety, RawServer, RawState, RawWatch, RawZoneOptions},
    sidecar::{RawFollow, RawPublish},
};

/// The only config version this signalbox reads.
pub const VERSION: i64 = 1;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: Option<Spanned<i64>>,
    #[serde(default)]
    zone: Vec<Spanned<RawZone>>,
    #[serde(default)]
    zones: Vec<Spanned<RawZone>>,
    #[serde(default)]
    signaling_zone: Vec<Spanned<RawSignalingZone>>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    watch: RawWatch,
    #[serde(default)]
    safety: RawSafety,
    #[serde(default)]
    resolver: RawResolver,
    #[serde(default)]
    notify: RawNotify,
    #[serde(default)]
    parent: RawParent,
    #[serde(default)]
    metrics: super::metrics::RawMetrics,
    #[serde(default)]
    hooks: super::hooks::RawHooks,
    #[serde(default)]
    report: super::report::RawReport,
    #[serde(default)]
    tsig_keys: Vec<Spanned<String>>,
}

/// `[[zone]]` and `[[zones]]` share one shape; `name` is only allowed in
/// `[[zone]]` (checked after parsing, with a clear message).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZone {
    pub(super) name: Option<Spanned<String>>,
    pub(super) keys: Option<Spanned<String>>,
    pub(super) nameservers: Option<Vec<Spanned<String>>>,
    pub(super) cds: Option<Spanned<CdsMode>>,
    pub(super) confirm_delete: Option<bool>,
    pub(super) digests: Option<Vec<Spanned<String>>>,
    pub(super) cdnskey: Option<bool>,
    pub(super) signal_ttl: Option<Spanned<ConfigDuration>>,
    pub(super) csync: Option<bool>,
    pub(super) keep_signals: Option<bool>,
    pub(super) csync_flags: Option<Vec<Spanned<String>>>,
    pub(super) foreign_keys: Option<Vec<Spanned<String>>>,
    pub(super) follow: Option<Spanned<RawFollow>>,
    pub(super) publish: Option<Spanned<RawPublish>>,
    pub(super) foreign_from: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) foreign_refresh: Option<Spanned<ConfigDuration>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignalingZone {
    apex: Spanned<String>,
    keys: Option<Spanned<String>>,
    publish: Option<Spanned<RawPublish>>,
    nameservers: Vec<Spanned<String>>,
    cds: Option<Spanned<CdsMode>>,
    confirm_delete: Option<bool>,
    digests: Option<Vec<Spanned<String>>>,
    cdnskey: Option<bool>,
    signal_ttl: Option<Spanned<ConfigDuration>>,
    foreign_keys: Option<Vec<Spanned<String>>>,
    ttl: Option<Spanned<ConfigDuration>>,
    dnskey_ttl: Option<Spanned<ConfigDuration>>,
    soa_mname: Option<Spanned<String>>,
    soa_rname: Option<Spanned<String>>,
    soa_refresh: Option<Spanned<ConfigDuration>>,
    soa_retry: Option<Spanned<ConfigDuration>>,
    soa_expire: Option<Spanned<ConfigDuration>>,
    soa_minimum: Option<Spanned<ConfigDuration>>,
    signature_validity: Option<Spanned<ConfigDuration>>,
    signature_refresh: Option<Spanned<ConfigDuration>>,
    signature_jitter: Option<Spanned<ConfigDuration>>,
    signature_inception_offset: Option<Spanned<ConfigDuration>>,
    serial_policy: Option<SerialPolicy>,
    secondaries: Option<Vec<Spanned<String>>>,
    allow_transfer: Option<Vec<Spanned<String>>>,
    notify_key: Option<Spanned<String>>,
    journal_versions: Option<Spanned<i64>>,
    journal_size: Option<Spanned<String>>,
    journal_age: Option<Spanned<ConfigDuration>>,
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read config file: {e}"),
        }])
    })?;
    parse(path, &text)
}

/// Validates config text that was read from `path` (used for error
/// messages and as the base of relative paths).
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let mut check = Checker::new(path, text);
    let parsed = toml::Deserializer::parse(text)
        .map_err(|e| (String::new(), e))
        .and_then(|de| {
            serde_path_to_error::deserialize::<_, RawConfig>(de)
                .map_err(|e| (clean_key_path(&e.path().to_string()), e.into_inner()))
        });
    let raw = match parsed {
        Ok(raw) => raw,
        Err((key, e)) => {
            check.error(
                e.span().unwrap_or(0..0),
                key,
                e.message().trim().to_string(),
            );
            return Err(check.into_errors());
        }
    };
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let config = check.config(raw, &base, path);
    match check.into_errors() {
        ConfigErrors(errors) if errors.is_empty() => Ok(config),
        errors => Err(errors),
    }
}

/// Drops the internal segments `toml::Spanned` adds to serde paths.
fn clean_key_path(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    path.split('.')
        .filter(|segment| !segment.starts_with("$__serde_spanned"))
        .collect::<Vec<_>>()
        .join(".")
}

impl Checker<'_> {
    fn config(&mut self, raw: RawConfig, base: &Path, file: &Path) -> Config {
        self.version(&raw);
        let zones: Vec<ZoneConfig> = raw
            .zone
            .iter()
            .enumerate()
            .filter_map(|(i, table)| self.zone(table, i, base, !raw.zones.is_empty()))
            .collect();
        let zone_sets: Vec<ZoneSetConfig> = raw
            .zones
            .iter()
            .enumerate()
            .filter_map(|(i, table)| self.zone_set(table, i, base))
            .collect();
        let signaling_zones: Vec<SignalingZoneConfig> = raw
            .signaling_zone
            .iter()
            .enumerate()
            .filter_map(|(i, table)| self.signaling_zone(table, i, base))
            .collect();
        self.duplicates(&raw, &zones, &zone_sets, &signaling_zones);
        let server = self.server(&raw.server);
        let state = self.state(&raw.state, base);
        let watch = self.watch(&raw.watch);
        let safety = self.safety(&raw.safety);
        let (tsig_keys, key_names) = self.tsig_keys(&raw.tsig_keys, base);
        self.transfer_keys_exist(&raw, &signaling_zones, &key_names);
        self.sidecar_keys_exist(&raw, &zones, &signaling_zones, &key_names);
        let resolver = self.resolver(&raw.resolver);
        self.foreign_from_resolvable(&raw.zone, &zones, &resolver);
        let mut notify = self.notify(&raw.notify);
        let parent = self.parent(&raw.parent);
        let metrics = self.metrics(&raw.metrics);
        let hooks = self.hooks(&raw.hooks, base);
        let report = self.report(&raw.report);
        notify.report_channel = report.agent.clone();
        Config {
            metrics,
            hooks,
            report,
            tsig_keys,
            watch,
            safety,
            resolver,
            notify,
            parent,
            server,
            state,
            file: file.to_path_buf(),
            zones,
            zone_sets,
            signaling_zones,
        }
    }

    /// `version` is there and is the one this signalbox reads.
    fn version(&mut self, raw: &RawConfig) {
        match &raw.version {
            None => self.error(
                0..0,
                "version".into(),
                format!("missing: write `version = {VERSION}` at the top"),
            ),
            Some(v) if *v.get_ref() != VERSION => self.error(
                v.span(),
                "version".into(),
                format!(
                    "config version {} is not supported (this signalbox reads version {VERSION})",
                    v.get_ref()
                ),
            ),
            Some(_) => {}
        }
    }

    /// No zone, key directory or signalling zone is configured twice.
    fn duplicates(
        &mut self,
        raw: &RawConfig,
        zones: &[ZoneConfig],
        zone_sets: &[ZoneSetConfig],
        signaling_zones: &[SignalingZoneConfig],
    ) {
        for (i, zone) in zones.iter().enumerate() {
            if let Some(first) = zones[..i].iter().find(|z| z.name == zone.name) {
                let span = raw.zone[i]
                    .get_ref()
                    .name
                    .as_ref()
                    .map_or(0..0, Spanned::span);
                self.error(
                    span,
                    format!("{}.name", zone.origin.table),
                    format!(
                        "zone {} is already configured in {}",
                        crate::dns::name::display(&zone.name),
                        first.origin
                    ),
                );
            }
        }
        for (i, set) in zone_sets.iter().enumerate() {
            if let Some(first) = zone_sets[..i].iter().find(|s| s.keys == set.keys) {
                let span = raw.zones[i]
                    .get_ref()
                    .keys
                    .as_ref()
                    .map_or(0..0, Spanned::span);
                self.error(
                    span,
                    format!("{}.keys", set.origin.table),
                    format!(
                        "directory {} is already the key directory of {}: every zone would be matched by two sets",
                        set.keys.display(),
                        first.origin
                    ),
                );
            }
        }
        for (i, sz) in signaling_zones.iter().enumerate() {
            if let Some(first) = signaling_zones[..i].iter().find(|s| s.apex == sz.apex) {
                self.error(
                    raw.signaling_zone[i].get_ref().apex.span(),
                    format!("{}.apex", sz.origin.table),
                    format!(
                        "signaling zone {} is already configured in {}",
                        crate::dns::name::display(&sz.apex),
                        first.origin
                    ),
                );
            }
        }
    }

    /// The TSIG keys a signalling zone's `allow_transfer` and `notify_key`
    /// name are in `tsig_keys`.
    fn transfer_keys_exist(
        &mut self,
        raw: &RawConfig,
        signaling_zones: &[SignalingZoneConfig],
        key_names: &[Name],
    ) {
        for (i, sz) in signaling_zones.iter().enumerate() {
            let raw_sz = raw.signaling_zone[i].get_ref();
            let named: Vec<(&Name, Option<&Spanned<String>>)> = sz
                .options
                .allow_transfer
                .iter()
                .filter_map(|e| match e {
                    super::AclEntry::Key(name) => Some((name, None)),
                    super::AclEntry::Prefix(..) => None,
                })
                .chain(
                    sz.options
                        .notify_key
                        .iter()
                        .map(|n| (n, raw_sz.notify_key.as_ref())),
                )
                .collect();
            for (name, span) in named {
                if !key_names.contains(name) {
                    self.error(
                        span.map_or_else(|| raw.signaling_zone[i].span(), Spanned::span),
                        sz.origin.table.to_string(),
                        format!(
                            "TSIG key {} is not in any file listed in tsig_keys",
                            crate::dns::name::display(name)
                        ),
                    );
                }
            }
        }
    }

    /// The TSIG keys `follow` and `publish` name are in `tsig_keys`.
    fn sidecar_keys_exist(
        &mut self,
        raw: &RawConfig,
        zones: &[ZoneConfig],
        signaling_zones: &[SignalingZoneConfig],
        key_names: &[Name],
    ) {
        // Keys named by follow/publish must exist too.
        let mut named: Vec<(String, &Name, Range<usize>)> = Vec::new();
        // (Spans only when no table was dropped, so indices line up.)
        let aligned = zones.len() == raw.zone.len();
        for (i, zone) in zones.iter().enumerate() {
            let span = if aligned { raw.zone[i].span() } else { 0..0 };
            if let Some(name) = zone.follow.as_ref().and_then(|f| f.tsig.as_ref()) {
                named.push((
                    format!("{}.follow.tsig", zone.origin.table),
                    name,
                    span.clone(),
                ));
            }
            if let Some(name) = zone.follow.as_ref().and_then(|f| f.notify_key.as_ref()) {
                named.push((
                    format!("{}.follow.notify_key", zone.origin.table),
                    name,
                    span.clone(),
                ));
            }
            if let Some(name) = zone.publish.as_ref().and_then(|p| p.tsig.as_ref()) {
                named.push((format!("{}.publish.tsig", zone.origin.table), name, span));
            }
        }
        for (i, sz) in signaling_zones.iter().enumerate() {
            if let Some(name) = sz.publish.as_ref().and_then(|p| p.tsig.as_ref()) {
                let span = if signaling_zones.len() == raw.signaling_zone.len() {
                    raw.signaling_zone[i].span()
                } else {
                    0..0
                };
                named.push((format!("{}.publish.tsig", sz.origin.table), name, span));
            }
        }
        for (key, name, span) in named {
            if !key_names.contains(name) {
                self.error(
                    span,
                    key,
                    format!(
                        "TSIG key {} is not in any file listed in tsig_keys",
                        crate::dns::name::display(name)
                    ),
                );
            }
        }
    }

    /// Where a table starts (its `[[header]]` line).
    fn origin(&self, table: String, span: Range<usize>) -> Origin {
        Origin {
            table,
            line: self.line_col(span.start).0,
        }
    }

    fn zone(
        &mut self,
        table: &Spanned<RawZone>,
        i: usize,
        base: &Path,
        have_sets: bool,
    ) -> Option<ZoneConfig> {
        let key = format!("zone[{i}]");
        let raw = table.get_ref();
        let Some(name_value) = &raw.name else {
            self.error(
                table.span(),
                key,
                "missing `name` (the child zone, e.g. \"example.com.\")".into(),
            );
            return None;
        };
        let name = self.name(name_value, &format!("{key}.name"));
        let keys = raw.keys.as_ref().map(|k| self.path(k, base));
        if keys.is_none() && !have_sets && raw.follow.is_none() {
            self.error(
                name_value.span(),
                format!("{key}.keys"),
                "missing: a [[zone]] needs `keys` (its BIND key directory) or `follow` (its signer) \
                 unless a [[zones]] set provides keys"
                    .into(),
            );
        }
        let settings = self.settings(raw, &key);
        let follow = raw
            .follow
            .as_ref()
            .and_then(|f| self.follow(f.get_ref(), &format!("{key}.follow")));
        let publish = raw
            .publish
            .as_ref()
            .and_then(|p| self.publish(p.get_ref(), &format!("{key}.publish"), true));
        let foreign_from = self.foreign_from(raw, &key);
        Some(ZoneConfig {
            name: name?,
            keys,
            settings,
            follow,
            publish,
            foreign_from,
            origin: self.origin(key, table.span()),
        })
    }

    fn zone_set(
        &mut self,
        table: &Spanned<RawZone>,
        i: usize,
        base: &Path,
    ) -> Option<ZoneSetConfig> {
        let key = format!("zones[{i}]");
        let raw = table.get_ref();
        if let Some(name) = &raw.name {
            self.error(
                name.span(),
                format!("{key}.name"),
                "not allowed in [[zones]]: a set covers every zone with keys in its directory; \
                 use a [[zone]] table to set one zone apart"
                    .into(),
            );
        }
        let Some(keys) = &raw.keys else {
            self.error(
                table.span(),
                format!("{key}.keys"),
                "missing: a [[zones]] set needs `keys`, the shared BIND key directory".into(),
            );
            return None;
        };
        let keys = self.path(keys, base);
        for (what, span) in [
            ("follow", raw.follow.as_ref().map(Spanned::span)),
            ("publish", raw.publish.as_ref().map(Spanned::span)),
            ("foreign_from", raw.foreign_from.as_ref().map(Spanned::span)),
            (
                "foreign_refresh",
                raw.foreign_refresh.as_ref().map(Spanned::span),
            ),
        ] {
            if let Some(span) = span {
                self.error(
                    span,
                    format!("{key}.{what}"),
                    "allowed only in a [[zone]] table (one signer zone each)".into(),
                );
            }
        }
        let settings = self.settings(raw, &key);
        Some(ZoneSetConfig {
            keys,
            settings,
            origin: self.origin(key, table.span()),
        })
    }

    fn signaling_zone(
        &mut self,
        table: &Spanned<RawSignalingZone>,
        i: usize,
        base: &Path,
    ) -> Option<SignalingZoneConfig> {
        let key = format!("signaling_zone[{i}]");
        let raw = table.get_ref();
        let apex = self.name(&raw.apex, &format!("{key}.apex"));
        if let Some(apex) = &apex {
            let first = apex
                .iter()
                .next()
                .map(|l| l.eq_ignore_ascii_case(b"_signal"));
            if first != Some(true) || apex.num_labels() < 2 {
                self.error(
                    raw.apex.span(),
                    format!("{key}.apex"),
                    "a signaling zone's apex is `_signal.<ns-host>.` (RFC 9615 §2)".into(),
                );
            }
        }
        let nameservers = self.names(&raw.nameservers, &format!("{key}.nameservers"));
        if raw.nameservers.is_empty() {
            self.error(
                table.span(),
                format!("{key}.nameservers"),
                "empty: the signaling zone needs its own NS RRset".into(),
            );
        }
        let partial = RawZone {
            name: None,
            keys: None,
            nameservers: None,
            cds: raw.cds.clone(),
            confirm_delete: raw.confirm_delete,
            digests: raw.digests.clone(),
            cdnskey: raw.cdnskey,
            signal_ttl: raw.signal_ttl.clone(),
            csync: None,
            keep_signals: None,
            csync_flags: None,
            foreign_keys: raw.foreign_keys.clone(),
            follow: None,
            publish: None,
            foreign_from: None,
            foreign_refresh: None,
        };
        let settings = self.settings(&partial, &key);
        let options = self.zone_options(
            &RawZoneOptions {
                ttl: raw.ttl.clone(),
                dnskey_ttl: raw.dnskey_ttl.clone(),
                soa_mname: raw.soa_mname.clone(),
                soa_rname: raw.soa_rname.clone(),
                soa_refresh: raw.soa_refresh.clone(),
                soa_retry: raw.soa_retry.clone(),
                soa_expire: raw.soa_expire.clone(),
                soa_minimum: raw.soa_minimum.clone(),
                signature_validity: raw.signature_validity.clone(),
                signature_refresh: raw.signature_refresh.clone(),
                signature_jitter: raw.signature_jitter.clone(),
                signature_inception_offset: raw.signature_inception_offset.clone(),
                serial_policy: raw.serial_policy,
                secondaries: raw.secondaries.clone(),
                allow_transfer: raw.allow_transfer.clone(),
                notify_key: raw.notify_key.clone(),
                journal_versions: raw.journal_versions.clone(),
                journal_size: raw.journal_size.clone(),
                journal_age: raw.journal_age.clone(),
            },
            &key,
        );
        let publish = raw
            .publish
            .as_ref()
            .and_then(|p| self.publish(p.get_ref(), &format!("{key}.publish"), false));
        let keys = raw.keys.as_ref().map(|k| self.path(k, base));
        if keys.is_none() && raw.publish.is_none() {
            self.error(
                table.span(),
                format!("{key}.keys"),
                "missing: a signaling zone signalbox serves needs `keys` (its own key directory); \
                 one hosted by a signer needs `publish`"
                    .into(),
            );
        }
        Some(SignalingZoneConfig {
            apex: apex?,
            keys,
            publish,
            nameservers,
            settings,
            options,
            origin: self.origin(key, table.span()),
        })
    }
}
