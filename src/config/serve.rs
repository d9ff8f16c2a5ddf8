//! Validation of the serving parts of the config: `[server]`, `[state]` and
//! the signing/SOA options of a `[[signaling_zone]]`.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use hickory_proto::rr::Name;

use serde::Deserialize;
use toml::Spanned;

use super::SerialPolicy;
use super::zone_options::{AclEntryError, parse_prefix};
use super::{
    AclEntry, SafetyConfig, ServerConfig, StateConfig, WatchConfig, WatchMode, ZoneOptions,
    checker::Checker, duration::ConfigDuration,
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: Option<Vec<Spanned<String>>>,
    udp_threads: Option<Spanned<i64>>,
    edns_udp_size: Option<Spanned<i64>>,
    tcp_idle_timeout: Option<Spanned<ConfigDuration>>,
    tcp_max_connections: Option<Spanned<i64>>,
    tcp_max_connections_per_source: Option<Spanned<i64>>,
    tcp_io_timeout: Option<Spanned<ConfigDuration>>,
    tcp_max_queries: Option<Spanned<i64>>,
    tcp_max_lifetime: Option<Spanned<ConfigDuration>>,
    rrl: Option<super::rrl::RawRrl>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    dir: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatch {
    mode: Option<WatchMode>,
    debounce: Option<Spanned<ConfigDuration>>,
    poll_interval: Option<Spanned<ConfigDuration>>,
    rescan_interval: Option<Spanned<ConfigDuration>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSafety {
    max_change_share: Option<Spanned<f64>>,
    min_changes: Option<Spanned<i64>>,
}

/// The zone options of a `[[signaling_zone]]` table (its own fields there).
pub(super) struct RawZoneOptions {
    pub(super) ttl: Option<Spanned<ConfigDuration>>,
    pub(super) dnskey_ttl: Option<Spanned<ConfigDuration>>,
    pub(super) soa_mname: Option<Spanned<String>>,
    pub(super) soa_rname: Option<Spanned<String>>,
    pub(super) soa_refresh: Option<Spanned<ConfigDuration>>,
    pub(super) soa_retry: Option<Spanned<ConfigDuration>>,
    pub(super) soa_expire: Option<Spanned<ConfigDuration>>,
    pub(super) soa_minimum: Option<Spanned<ConfigDuration>>,
    pub(super) signature_validity: Option<Spanned<ConfigDuration>>,
    pub(super) signature_refresh: Option<Spanned<ConfigDuration>>,
    pub(super) signature_jitter: Option<Spanned<ConfigDuration>>,
    pub(super) signature_inception_offset: Option<Spanned<ConfigDuration>>,
    pub(super) serial_policy: Option<SerialPolicy>,
    pub(super) secondaries: Option<Vec<Spanned<String>>>,
    pub(super) allow_transfer: Option<Vec<Spanned<String>>>,
    pub(super) notify_key: Option<Spanned<String>>,
    pub(super) journal_versions: Option<Spanned<i64>>,
    pub(super) journal_size: Option<Spanned<String>>,
    pub(super) journal_age: Option<Spanned<ConfigDuration>>,
}

impl Checker<'_> {
    pub(super) fn server(&mut self, raw: &RawServer) -> ServerConfig {
        let defaults = ServerConfig::default();
        let listen = match &raw.listen {
            None => defaults.listen,
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, addr)| {
                    self.address(
                        addr,
                        &format!("server.listen[{i}]"),
                        "\"127.0.0.1:5353\", \"[::1]:5353\"",
                    )
                })
                .collect(),
        };
        let udp_threads = self.int_in(&raw.udp_threads, "server.udp_threads", 0..=256, 0) as usize;
        let edns_udp_size = self.int_in(
            &raw.edns_udp_size,
            "server.edns_udp_size",
            512..=4096,
            i64::from(defaults.edns_udp_size),
        ) as u16;
        let tcp_max_connections = self.int_in(
            &raw.tcp_max_connections,
            "server.tcp_max_connections",
            1..=65_535,
            defaults.tcp_max_connections as i64,
        ) as usize;
        let mut server = ServerConfig {
            listen,
            udp_threads,
            edns_udp_size,
            tcp_idle_timeout: raw
                .tcp_idle_timeout
                .as_ref()
                .map_or(defaults.tcp_idle_timeout, |d| d.get_ref().0),
            tcp_max_connections,
            ..defaults
        };
        self.tcp_limits(raw, &mut server);
        server.rrl = self.rrl(raw.rrl.as_ref());
        server
    }

    /// The `[server]` limits that keep TCP slots from being held forever
    /// (RFC 7766 §10), into `server` (whose `tcp_max_connections` is set).
    fn tcp_limits(&mut self, raw: &RawServer, server: &mut ServerConfig) {
        let defaults = ServerConfig::default();
        let cap = server.tcp_max_connections;
        let per_source = self.int_in(
            &raw.tcp_max_connections_per_source,
            "server.tcp_max_connections_per_source",
            1..=65_535,
            defaults.tcp_max_connections_per_source as i64,
        ) as usize;
        server.tcp_max_connections_per_source = match &raw.tcp_max_connections_per_source {
            Some(value) if per_source > cap => {
                self.error(
                    value.span(),
                    "server.tcp_max_connections_per_source".to_string(),
                    format!("must not exceed server.tcp_max_connections ({cap})"),
                );
                cap
            }
            _ => per_source.min(cap),
        };
        server.tcp_io_timeout = self.duration_at_least(
            &raw.tcp_io_timeout,
            "server.tcp_io_timeout",
            defaults.tcp_io_timeout,
            Duration::from_millis(100),
        );
        server.tcp_max_queries = self.int_in(
            &raw.tcp_max_queries,
            "server.tcp_max_queries",
            0..=i64::from(u32::MAX),
            i64::from(defaults.tcp_max_queries),
        ) as u32;
        server.tcp_max_lifetime = self.duration_at_least(
            &raw.tcp_max_lifetime,
            "server.tcp_max_lifetime",
            defaults.tcp_max_lifetime,
            Duration::from_secs(1),
        );
    }

    pub(super) fn state(&mut self, raw: &RawState, base: &Path) -> StateConfig {
        StateConfig {
            dir: match &raw.dir {
                Some(dir) => self.path(dir, base),
                None => super::normalize_path(&base.join("state")),
            },
        }
    }

    /// Loads the TSIG key files; returns their paths and the key names.
    pub(super) fn tsig_keys(
        &mut self,
        raw: &[Spanned<String>],
        base: &Path,
    ) -> (Vec<PathBuf>, Vec<Name>) {
        let mut paths = Vec::new();
        let mut names = Vec::new();
        for (i, file) in raw.iter().enumerate() {
            let path = self.path(file, base);
            match crate::tsig::parse_key_file(&path) {
                Ok(keys) => names.extend(keys.into_iter().map(|k| k.name)),
                Err(e) => self.error(file.span(), format!("tsig_keys[{i}]"), e.to_string()),
            }
            paths.push(path);
        }
        (paths, names)
    }

    pub(super) fn watch(&mut self, raw: &RawWatch) -> WatchConfig {
        let d = WatchConfig::default();
        WatchConfig {
            mode: raw.mode.unwrap_or(d.mode),
            debounce: self.duration_at_least(
                &raw.debounce,
                "watch.debounce",
                d.debounce,
                Duration::from_millis(0),
            ),
            poll_interval: self.duration_at_least(
                &raw.poll_interval,
                "watch.poll_interval",
                d.poll_interval,
                Duration::from_millis(100),
            ),
            rescan_interval: self.duration_at_least(
                &raw.rescan_interval,
                "watch.rescan_interval",
                d.rescan_interval,
                Duration::from_secs(1),
            ),
        }
    }

    pub(super) fn safety(&mut self, raw: &RawSafety) -> SafetyConfig {
        let d = SafetyConfig::default();
        let max_change_share = match &raw.max_change_share {
            None => d.max_change_share,
            Some(v) if (0.0..=1.0).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                self.error(
                    v.span(),
                    "safety.max_change_share".into(),
                    "a share between 0.0 and 1.0 (0.1 = 10%)".into(),
                );
                d.max_change_share
            }
        };
        let min_changes = match &raw.min_changes {
            None => d.min_changes,
            Some(v) if *v.get_ref() >= 0 => *v.get_ref() as usize,
            Some(v) => {
                self.error(
                    v.span(),
                    "safety.min_changes".into(),
                    "must be 0 or more".into(),
                );
                d.min_changes
            }
        };
        SafetyConfig {
            max_change_share,
            min_changes,
        }
    }

    pub(super) fn zone_options(&mut self, raw: &RawZoneOptions, key: &str) -> ZoneOptions {
        let options = self.zone_timers(raw, key);
        let secondaries = raw
            .secondaries
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, addr)| {
                self.address(addr, &format!("{key}.secondaries[{i}]"), "\"127.0.0.2:53\"")
            })
            .collect();
        let allow_transfer = self.allow_transfer(raw, key);
        let journal = self.journal_limits(raw, key);
        let options = ZoneOptions {
            secondaries,
            allow_transfer,
            journal,
            notify_key: raw
                .notify_key
                .as_ref()
                .and_then(|n| self.name(n, &format!("{key}.notify_key"))),
            soa_mname: raw
                .soa_mname
                .as_ref()
                .and_then(|n| self.name(n, &format!("{key}.soa_mname"))),
            soa_rname: raw
                .soa_rname
                .as_ref()
                .and_then(|n| self.name(n, &format!("{key}.soa_rname"))),
            ..options
        };
        self.signature_timing(raw, key, &options);
        options
    }

    /// TTLs, SOA timers and signature timing (each at most 2^31-1 seconds,
    /// RFC 2181 §8), and the serial policy.
    fn zone_timers(&mut self, raw: &RawZoneOptions, key: &str) -> ZoneOptions {
        let d = ZoneOptions::default();
        let mut secs = |v: &Option<Spanned<ConfigDuration>>, field: &str, default: u32| -> u32 {
            match v {
                None => default,
                Some(v) => match u32::try_from(v.get_ref().0.as_secs()) {
                    Ok(s) if s <= i32::MAX as u32 => s,
                    _ => {
                        self.error(
                            v.span(),
                            format!("{key}.{field}"),
                            "longer than 2^31-1 seconds".into(),
                        );
                        default
                    }
                },
            }
        };
        ZoneOptions {
            ttl: secs(&raw.ttl, "ttl", d.ttl),
            dnskey_ttl: raw
                .dnskey_ttl
                .as_ref()
                .map(|_| secs(&raw.dnskey_ttl, "dnskey_ttl", 0)),
            soa_mname: None,
            soa_rname: None,
            soa_refresh: secs(&raw.soa_refresh, "soa_refresh", d.soa_refresh),
            soa_retry: secs(&raw.soa_retry, "soa_retry", d.soa_retry),
            soa_expire: secs(&raw.soa_expire, "soa_expire", d.soa_expire),
            soa_minimum: secs(&raw.soa_minimum, "soa_minimum", d.soa_minimum),
            signature_validity: secs(
                &raw.signature_validity,
                "signature_validity",
                d.signature_validity,
            ),
            signature_refresh: secs(
                &raw.signature_refresh,
                "signature_refresh",
                d.signature_refresh,
            ),
            signature_jitter: secs(
                &raw.signature_jitter,
                "signature_jitter",
                d.signature_jitter,
            ),
            signature_inception_offset: secs(
                &raw.signature_inception_offset,
                "signature_inception_offset",
                d.signature_inception_offset,
            ),
            serial_policy: raw.serial_policy.unwrap_or_default(),
            ..ZoneOptions::default()
        }
    }

    /// `allow_transfer`: address prefixes and `key:NAME` entries.
    fn allow_transfer(&mut self, raw: &RawZoneOptions, key: &str) -> Vec<AclEntry> {
        raw.allow_transfer
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, entry)| {
                let text = entry.get_ref().trim();
                let parsed = match text.strip_prefix("key:") {
                    Some(name) => crate::dns::parse_name(name)
                        .map(AclEntry::Key)
                        .map_err(AclEntryError::from),
                    None => parse_prefix(text),
                };
                match parsed {
                    Ok(entry) => Some(entry),
                    Err(why) => {
                        self.error(
                            entry.span(),
                            format!("{key}.allow_transfer[{i}]"),
                            why.to_string(),
                        );
                        None
                    }
                }
            })
            .collect()
    }

    /// The IXFR journal bounds.
    fn journal_limits(&mut self, raw: &RawZoneOptions, key: &str) -> super::JournalLimits {
        let mut journal = super::JournalLimits::default();
        if let Some(v) = &raw.journal_versions {
            match usize::try_from(*v.get_ref()) {
                Ok(n) if n >= 1 => journal.versions = n,
                _ => self.error(
                    v.span(),
                    format!("{key}.journal_versions"),
                    "must be 1 or more".into(),
                ),
            }
        }
        if let Some(v) = &raw.journal_size {
            match parse_size(v.get_ref()) {
                Ok(n) => journal.bytes = n,
                Err(why) => self.error(v.span(), format!("{key}.journal_size"), why.to_string()),
            }
        }
        if let Some(v) = &raw.journal_age {
            journal.age = v.get_ref().0;
        }
        journal
    }

    /// Signatures are refreshed before they expire, and not at once.
    fn signature_timing(&mut self, raw: &RawZoneOptions, key: &str, options: &ZoneOptions) {
        let span = raw
            .signature_refresh
            .as_ref()
            .or(raw.signature_validity.as_ref())
            .or(raw.signature_jitter.as_ref())
            .map_or(0..0, Spanned::span);
        if options.signature_refresh + options.signature_jitter >= options.signature_validity {
            self.error(
                span.clone(),
                format!("{key}.signature_refresh"),
                format!(
                    "signature_refresh ({}) + signature_jitter ({}) must be shorter than signature_validity ({}), \
                     or signatures would be refreshed as soon as they are made",
                    super::duration::format(Duration::from_secs(options.signature_refresh.into())),
                    super::duration::format(Duration::from_secs(options.signature_jitter.into())),
                    super::duration::format(Duration::from_secs(options.signature_validity.into())),
                ),
            );
        }
        if options.signature_refresh == 0 {
            self.error(
                span,
                format!("{key}.signature_refresh"),
                "must be more than 0s".into(),
            );
        }
    }
}

/// Why a `journal_size` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// No leading number.
    #[error("{text:?} is not a size like \"64MiB\"")]
    NotASize {
        /// The size as written.
        text: String,
    },
    /// A unit other than B, KiB, MiB, GiB.
    #[error("{text:?}: unknown unit {unit:?} (KiB, MiB, GiB)")]
    UnknownUnit {
        /// The size as written.
        text: String,
        /// The unit.
        unit: String,
    },
    /// More octets than a `usize` holds.
    #[error("{text:?} is too large")]
    TooLarge {
        /// The size as written.
        text: String,
    },
}

/// `64MiB`, `512KiB`, `1GiB`, or a number of octets.
fn parse_size(text: &str) -> Result<usize, SizeError> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: usize = number.parse().map_err(|_| SizeError::NotASize {
        text: text.to_string(),
    })?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => {
            return Err(SizeError::UnknownUnit {
                text: text.to_string(),
                unit: other.to_string(),
            });
        }
    };
    n.checked_mul(factor).ok_or_else(|| SizeError::TooLarge {
        text: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(
            parse_size("64 TiB").expect_err("TiB").to_string(),
            "\"64 TiB\": unknown unit \"TiB\" (KiB, MiB, GiB)"
        );
        let refused = |text| parse_size(text).expect_err(text);
        assert!(matches!(refused("MiB"), SizeError::NotASize { .. }));
        let digits = "99999999999999999999G";
        assert!(matches!(refused(digits), SizeError::NotASize { .. }));
        assert!(matches!(
            refused("9999999999999999G"),
            SizeError::TooLarge { .. }
        ));
    }

    #[test]
    fn prefixes() {
        let v4 = "127.0.0.1".parse().expect("ip");
        assert_eq!(parse_prefix("127.0.0.1"), Ok(AclEntry::Prefix(v4, 32)));
        assert_eq!(
            parse_prefix("127.0.0.0/33").expect_err("/33").to_string(),
            "\"127.0.0.0/33\": prefix length must be 0..=32"
        );
        assert!(matches!(
            parse_prefix("key.example."),
            Err(AclEntryError::NotAnEntry { .. })
        ));
    }
}
