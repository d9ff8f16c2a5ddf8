//! The signalbox configuration: versioned TOML (`version = 1`).
//!
//! ```toml
//! version = 1
//!
//! [[zone]]                       # one child zone
//! name = "example.com."
//! keys = "keys/example.com"      # its BIND key directory
//! nameservers = ["ns1.example.net.", "ns2.example.org."]
//! cds = "auto"                   # auto | always | rollover | double-ds | none | delete
//!
//! [[zones]]                      # every zone with keys in this directory
//! keys = "keys/children"
//! nameservers = ["ns1.example.net."]
//!
//! [[signaling_zone]]             # a zone _signal.<ns-host> signalbox serves
//! apex = "_signal.ns1.example.net."
//! keys = "keys/_signal.ns1.example.net"
//! nameservers = ["ns1.example.net."]
//! ```
//!
//! Unknown keys are errors; every error names the file, line and key path.
//! Relative paths are relative to the config file's directory. A `[[zone]]`
//! for a name that a `[[zones]]` set also covers overrides the set field by
//! field.

mod checker;
pub mod duration;
mod hooks;
mod load;
mod metrics;
mod parent;
mod providers;
mod report;
mod rrl;
mod serve;
mod settings;
mod sidecar;
mod zone_options;

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use hickory_proto::rr::Name;

pub use hooks::HooksConfig;
pub use load::{load, parse};
pub use metrics::MetricsConfig;
pub use parent::{Gate, NotifyConfig, OnTimeout, ParentConfig, ResolverConfig};
pub use providers::ForeignFrom;
pub use report::ReportConfig;
pub use rrl::{RRL_RATE_MAX, RrlConfig};
pub use sidecar::{FollowConfig, PublishConfig};
pub use zone_options::{AclEntry, JournalLimits, SerialPolicy, ZoneOptions};

use crate::{dns::Dnskey, dnssec::DigestType};

/// How a zone's CDS/CDNSKEY set is chosen (README: "CDS modes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CdsMode {
    /// BIND's own rule: what `named` publishes at the apex.
    Auto,
    /// The DS set the parent should hold now, permanently (Knot `always`).
    Always,
    /// The same, only while it differs from the parent (Knot `rollover`).
    Rollover,
    /// Ready and active KSKs together, permanently (Knot `double-ds`).
    DoubleDs,
    /// Nothing.
    None,
    /// The RFC 8078 delete signal: remove all DS at the parent.
    Delete,
}

impl CdsMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CdsMode::Auto => "auto",
            CdsMode::Always => "always",
            CdsMode::Rollover => "rollover",
            CdsMode::DoubleDs => "double-ds",
            CdsMode::None => "none",
            CdsMode::Delete => "delete",
        }
    }
}

impl fmt::Display for CdsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the config file a table came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Key path of the table, e.g. `zone[2]`.
    pub table: String,
    /// 1-based line of the table.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (line {})", self.table, self.line)
    }
}

/// Per-zone settings as written in one table; `None` = not set there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialSettings {
    /// `nameservers`: the zone's NS set, where `_dsboot` signals go.
    pub nameservers: Option<Vec<Name>>,
    /// `cds`.
    pub cds: Option<CdsMode>,
    /// `digests`.
    pub digests: Option<Vec<DigestType>>,
    /// `cdnskey`.
    pub cdnskey: Option<bool>,
    /// `signal_ttl`, seconds.
    pub signal_ttl: Option<u32>,
    /// `csync`.
    pub csync: Option<bool>,
    /// `csync_flags`, as a CSYNC flags field.
    pub csync_flags: Option<u16>,
    /// `keep_signals`: keep `_dsboot` signals after the parent has a DS.
    pub keep_signals: Option<bool>,
    /// `foreign_keys`: other providers' KSKs (RFC 8901 model 2).
    pub foreign_keys: Option<Vec<Dnskey>>,
}

impl PartialSettings {
    /// These settings with every unset field taken from `base`.
    pub fn over(&self, base: &PartialSettings) -> PartialSettings {
        PartialSettings {
            nameservers: self
                .nameservers
                .clone()
                .or_else(|| base.nameservers.clone()),
            cds: self.cds.or(base.cds),
            digests: self.digests.clone().or_else(|| base.digests.clone()),
            cdnskey: self.cdnskey.or(base.cdnskey),
            signal_ttl: self.signal_ttl.or(base.signal_ttl),
            csync: self.csync.or(base.csync),
            csync_flags: self.csync_flags.or(base.csync_flags),
            keep_signals: self.keep_signals.or(base.keep_signals),
            foreign_keys: self
                .foreign_keys
                .clone()
                .or_else(|| base.foreign_keys.clone()),
        }
    }

    /// Applies the defaults: `cds = "auto"`, `digests = ["sha256"]`,
    /// `cdnskey = true`, no CSYNC, CSYNC flags immediate + soaminimum.
    pub fn resolve(&self) -> ChildSettings {
        ChildSettings {
            nameservers: self.nameservers.clone().unwrap_or_default(),
            cds: self.cds.unwrap_or(CdsMode::Auto),
            digests: self
                .digests
                .clone()
                .unwrap_or_else(|| vec![DigestType::Sha256]),
            cdnskey: self.cdnskey.unwrap_or(true),
            signal_ttl: self.signal_ttl,
            csync: self.csync.unwrap_or(false),
            csync_flags: self
                .csync_flags
                .unwrap_or(crate::dns::Csync::FLAG_IMMEDIATE | crate::dns::Csync::FLAG_SOAMINIMUM),
            foreign_keys: self.foreign_keys.clone().unwrap_or_default(),
            keep_signals: self.keep_signals.unwrap_or(false),
        }
    }
}

/// The settings of one child zone with defaults applied: what the policy reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSettings {
    /// NS host names (absolute, lower case).
    pub nameservers: Vec<Name>,
    /// CDS mode.
    pub cds: CdsMode,
    /// Digest types of the CDS records, in config order.
    pub digests: Vec<DigestType>,
    /// Publish CDNSKEY besides CDS.
    pub cdnskey: bool,
    /// TTL override for CDS/CDNSKEY.
    pub signal_ttl: Option<u32>,
    /// Publish a CSYNC record.
    pub csync: bool,
    /// CSYNC flags.
    pub csync_flags: u16,
    /// Foreign KSKs merged into the CDS/CDNSKEY set.
    pub foreign_keys: Vec<Dnskey>,
    /// Keep `_dsboot` signals once the parent has a DS (RFC 9615 §5.1
    /// advises removing them).
    pub keep_signals: bool,
}

/// A `[[zone]]` table: one child zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    /// The zone name.
    pub name: Name,
    /// Its key directory; `None` = from the `[[zones]]` set holding its keys.
    pub keys: Option<PathBuf>,
    /// Settings written in this table.
    pub settings: PartialSettings,
    /// `follow`: read the apex from the signer.
    pub follow: Option<FollowConfig>,
    /// `publish`: write apex RRsets into the signer by UPDATE.
    pub publish: Option<PublishConfig>,
    /// `foreign_from`: fetch the other providers' KSKs (RFC 8901).
    pub foreign_from: Option<ForeignFrom>,
    /// Where it was written.
    pub origin: Origin,
}

/// A `[[zones]]` table: every zone with keys in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSetConfig {
    /// The shared key directory.
    pub keys: PathBuf,
    /// Settings for every zone of the set.
    pub settings: PartialSettings,
    /// Where it was written.
    pub origin: Origin,
}

/// `[server]`: where and how `serve` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// UDP and TCP on each address.
    pub listen: Vec<SocketAddr>,
    /// UDP threads per address; 0 = one per core.
    pub udp_threads: usize,
    /// Largest UDP answer to an EDNS query (RFC 6891 §6.2.5; 1232 avoids fragmentation).
    pub edns_udp_size: u16,
    /// A TCP connection idle this long is closed (RFC 7766 §6.2.3).
    pub tcp_idle_timeout: Duration,
    /// Most TCP connections open at once; over it a new one is closed at
    /// once (RFC 7766 §10).
    pub tcp_max_connections: usize,
    /// Most TCP connections open at once from one source: an IPv4 address
    /// (/32) or an IPv6 /64 (RFC 7766 §10); never more than
    /// `tcp_max_connections`.
    pub tcp_max_connections_per_source: usize,
    /// A message once started must be read, and every answer or transfer
    /// message written, within this long (Knot's `tcp-io-timeout`), else the
    /// connection is closed.
    pub tcp_io_timeout: Duration,
    /// Most queries answered on one connection (0 = no limit; NSD's
    /// `tcp-query-count`); a transfer counts as one. The connection is then
    /// closed cleanly after the last answer.
    pub tcp_max_queries: u32,
    /// A connection this old is closed cleanly between messages, never in
    /// the middle of an answer or a transfer (RFC 7766 §10).
    pub tcp_max_lifetime: Duration,
    /// `[server.rrl]`: response rate limiting of UDP answers.
    pub rrl: RrlConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 53))],
            udp_threads: 0,
            edns_udp_size: 1232,
            tcp_idle_timeout: Duration::from_secs(10),
            tcp_max_connections: 250,
            tcp_max_connections_per_source: 25,
            tcp_io_timeout: Duration::from_secs(2),
            tcp_max_queries: 1000,
            tcp_max_lifetime: Duration::from_secs(120),
            rrl: RrlConfig::default(),
        }
    }
}

/// How key directories are watched (`[watch]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// inotify, falling back to polling where it cannot be set up.
    Auto,
    /// inotify only.
    Inotify,
    /// Polling only (NFS and other file systems without inotify).
    Poll,
}

/// `[watch]`: reacting to key changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    /// inotify, polling, or both.
    pub mode: WatchMode,
    /// Quiet time after a change before rescanning (BIND writes three files).
    pub debounce: Duration,
    /// How often directories are polled when polling.
    pub poll_interval: Duration,
    /// How often everything is rescanned and recomputed regardless.
    pub rescan_interval: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            mode: WatchMode::Auto,
            debounce: Duration::from_millis(100),
            poll_interval: Duration::from_secs(2),
            rescan_interval: Duration::from_secs(600),
        }
    }
}

/// `[safety]`: the brake on mass changes.
///
/// One round may withdraw or change the signals of at most
/// `max(ceil(max_change_share * published), min(min_changes, published / 2))`
/// children, where `published` counts the children with published signals
/// (served, in a signer-hosted signalling zone, or at a child apex written by
/// UPDATE). The share governs large deployments; `min_changes` keeps the
/// brake from firing on routine batches of a mid-sized one; and the half
/// keeps a small deployment protected too: losing more than half of a few
/// children's signals at once is held like losing 10% of a million.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetyConfig {
    /// Share of the child zones with published signals that one round may
    /// withdraw or change before the brake holds (default 0.1).
    pub max_change_share: f64,
    /// ... but the brake does not hold this many changes or fewer (default
    /// 100), as long as they are at most half of the published children.
    pub min_changes: usize,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            max_change_share: 0.1,
            min_changes: 100,
        }
    }
}

impl SafetyConfig {
    /// The most children one round may withdraw or change, of `published`
    /// (the rule is on [`SafetyConfig`]).
    pub fn limit(&self, published: usize) -> usize {
        let share = (published as f64 * self.max_change_share).ceil() as usize;
        share.max(self.min_changes.min(published / 2))
    }
}

/// `[state]`: signalbox's own state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// The directory (default `state` next to the config file).
    pub dir: PathBuf,
}

/// A `[[signaling_zone]]` table: a zone `_signal.<ns-host>` (RFC 9615 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalingZoneConfig {
    /// The apex, `_signal.<ns-host>.`.
    pub apex: Name,
    /// Its own key directory (a zone signalbox signs and serves).
    pub keys: Option<PathBuf>,
    /// Hosted (and signed) by a signer: signalbox writes its `_dsboot`
    /// RRsets there by UPDATE instead of serving it.
    pub publish: Option<PublishConfig>,
    /// Its own NS RRset.
    pub nameservers: Vec<Name>,
    /// Settings for its own apex CDS/CDNSKEY (so its delegation can be
    /// maintained the same way); `nameservers` and `csync` do not apply.
    pub settings: PartialSettings,
    /// SOA, TTL and signing options.
    pub options: ZoneOptions,
    /// Where it was written.
    pub origin: Origin,
}

impl SignalingZoneConfig {
    /// The NS host whose signals this zone carries: the apex minus `_signal`.
    pub fn ns_host(&self) -> Name {
        self.apex.base_name()
    }
}

/// A loaded, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// `[[zone]]` tables.
    pub zones: Vec<ZoneConfig>,
    /// `[[zones]]` tables.
    pub zone_sets: Vec<ZoneSetConfig>,
    /// `[[signaling_zone]]` tables.
    pub signaling_zones: Vec<SignalingZoneConfig>,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[state]`.
    pub state: StateConfig,
    /// `[watch]`.
    pub watch: WatchConfig,
    /// `[safety]`.
    pub safety: SafetyConfig,
    /// `[resolver]`.
    pub resolver: ResolverConfig,
    /// `[notify]`.
    pub notify: NotifyConfig,
    /// `[parent]`.
    pub parent: ParentConfig,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
    /// `[hooks]`.
    pub hooks: HooksConfig,
    /// `[report]`: RFC 9567 error reporting.
    pub report: ReportConfig,
    /// `tsig_keys`: TSIG key files (`tsig-keygen` format).
    pub tsig_keys: Vec<PathBuf>,
}

impl Config {
    /// Every key directory the config names, each once, in config order.
    pub fn key_directories(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let all = self
            .zones
            .iter()
            .filter_map(|z| z.keys.clone())
            .chain(self.zone_sets.iter().map(|s| s.keys.clone()))
            .chain(self.signaling_zones.iter().filter_map(|s| s.keys.clone()));
        for dir in all {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        dirs
    }

    /// The `[[zone]]` table for `name`, if any.
    pub fn zone(&self, name: &Name) -> Option<&ZoneConfig> {
        self.zones.iter().find(|z| &z.name == name)
    }

    /// The signaling zone that carries signals for NS host `ns`, if configured.
    pub fn signaling_zone_for(&self, ns: &Name) -> Option<&SignalingZoneConfig> {
        self.signaling_zones.iter().find(|s| &s.ns_host() == ns)
    }
}

/// One configuration error: file, line, column, key path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// Key path, e.g. `zone[1].cds` (empty for syntax errors).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a configuration could not be loaded: every error found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Lexically normalises a path (`a/./b/../c` -> `a/c`) so that two spellings
/// of one directory compare equal without touching the file system.
pub fn normalize_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests;
