//! What `signalbox status` reports, as one typed value: the text the
//! command prints by default and the JSON of `status --json` (issue 14)
//! are two renderings of the same [`StatusReport`], so they never disagree.
//!
//! JSON field names are the interface scripts use: `zones[]` (`apex`,
//! `serial`, `names`, `signed`, `not_signed_reason`, `serial_held`),
//! `children` (child zones per delegation state: `bootstrapping`,
//! `rolling`, `in_sync`, `insecure`, `deleting`, `held`, `error`),
//! `safety_brake` (`holding`, `affected`, `published`, `limit`), `rrl`
//! (null when off; `rate`, `slip`, prefixes, `checked`, `dropped`,
//! `slipped`, `exempt`),
//! `key_directories[]` (`dir`, `zones`, `held_since`, `held_reason`,
//! `zones_held[]` with `zone` and `reasons`), `followed[]` and `update`.

use std::{fmt::Write, path::PathBuf, sync::atomic::Ordering::Relaxed};

use serde::Serialize;

use super::{Daemon, brake};
use crate::dns::name::display;

/// Everything `status` says.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// signalbox's version.
    pub version: &'static str,
    /// Every signalling zone served.
    pub zones: Vec<ZoneStatus>,
    /// Child zones per delegation state (every state, zeros included).
    pub children: std::collections::BTreeMap<&'static str, usize>,
    /// The safety brake.
    pub safety_brake: BrakeStatus,
    /// Response rate limiting of UDP answers; `None` when off.
    pub rrl: Option<RrlStatus>,
    /// Key directories that are held or hold zones.
    pub key_directories: Vec<KeyDirectoryStatus>,
    /// Zones followed at a signer.
    pub followed: Vec<FollowedStatus>,
    /// UPDATE writes into signers, when any zone is published by UPDATE.
    pub update: Option<UpdateStatus>,
    /// RFC 9567 error reports taken since start (`[report] agent`), by
    /// extended DNS error code, and those refused by the per-source limit.
    pub error_reports: ErrorReportStatus,
}

/// Error reports received as the monitoring agent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ErrorReportStatus {
    /// Taken since start.
    pub total: u64,
    /// By extended DNS error code.
    pub by_code: std::collections::BTreeMap<u16, u64>,
    /// Refused by the per-source limit.
    pub rate_limited: u64,
}

/// One served signalling zone.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneStatus {
    /// Its apex.
    pub apex: String,
    /// The serial served.
    pub serial: u32,
    /// Owner names.
    pub names: usize,
    /// False when it could not be signed.
    pub signed: bool,
    /// Why it is not signed.
    pub not_signed_reason: Option<String>,
    /// Its next serial could not be recorded: no new version is served.
    pub serial_held: bool,
}

/// The safety brake.
#[derive(Debug, Clone, Serialize)]
pub struct BrakeStatus {
    /// A change is held until `signalbox confirm`.
    pub holding: bool,
    /// Children the held change touches.
    pub affected: Option<usize>,
    /// Children published.
    pub published: Option<usize>,
    /// The most one round may change.
    pub limit: Option<usize>,
}

/// Response rate limiting (`[server.rrl]`) and what it did since start.
#[derive(Debug, Clone, Serialize)]
pub struct RrlStatus {
    /// Answers per second per source prefix and answer class.
    pub rate: u32,
    /// Every `slip`-th limited answer goes out truncated (TC=1).
    pub slip: u32,
    /// IPv4 source prefix length.
    pub ipv4_prefix: u8,
    /// IPv6 source prefix length.
    pub ipv6_prefix: u8,
    /// Exempt prefixes configured.
    pub exempt_prefixes: usize,
    /// Answers checked.
    pub checked: u64,
    /// Limited answers dropped.
    pub dropped: u64,
    /// Limited answers sent truncated.
    pub slipped: u64,
    /// Answers to exempt sources.
    pub exempt: u64,
}

/// A key directory with something to report.
#[derive(Debug, Clone, Serialize)]
pub struct KeyDirectoryStatus {
    /// The directory.
    pub dir: PathBuf,
    /// Child zones with keys in it.
    pub zones: usize,
    /// Held since (RFC 3339) because it cannot be listed.
    pub held_since: Option<String>,
    /// Why it is held.
    pub held_reason: Option<String>,
    /// Zones held by a key that cannot be read (all of them).
    pub zones_held: Vec<HeldZone>,
}

/// A zone held by its keys.
#[derive(Debug, Clone, Serialize)]
pub struct HeldZone {
    /// The zone.
    pub zone: String,
    /// Why.
    pub reasons: Vec<String>,
}

/// A zone followed at a signer.
#[derive(Debug, Clone, Serialize)]
pub struct FollowedStatus {
    /// The zone.
    pub zone: String,
    /// The signer asked.
    pub primary: String,
    /// The serial read.
    pub serial: u32,
    /// CDS records at its apex.
    pub cds: usize,
    /// CDNSKEY records at its apex.
    pub cdnskey: usize,
    /// When it was read.
    pub read_at: String,
}

/// UPDATE writes.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateStatus {
    /// Written and acknowledged.
    pub written: u64,
    /// Failed.
    pub failed: u64,
    /// Dropped or reverted by the server.
    pub dropped: u64,
}

impl Daemon {
    /// The status as a value.
    pub fn status_report(&self) -> StatusReport {
        let zones = self
            .zones
            .values()
            .map(|zone| ZoneStatus {
                apex: display(zone.store.apex()),
                serial: zone.store.serial(),
                names: zone.store.len(),
                signed: zone.broken.is_none(),
                not_signed_reason: zone.broken.as_ref().map(ToString::to_string),
                serial_held: self.serial_hold.holds(zone.store.apex()),
            })
            .collect();
        let safety_brake = match &self.brake.held {
            Some(brake::Verdict::Hold {
                affected,
                published,
                limit,
                ..
            }) => BrakeStatus {
                holding: true,
                affected: Some(*affected),
                published: Some(*published),
                limit: Some(*limit),
            },
            _ => BrakeStatus {
                holding: false,
                affected: None,
                published: None,
                limit: None,
            },
        };
        let mut key_directories: Vec<KeyDirectoryStatus> = self
            .keys
            .reports()
            .filter(|(_, report)| report.hold.is_some() || !report.held.is_empty())
            .map(|(dir, report)| KeyDirectoryStatus {
                dir: dir.clone(),
                zones: report.zones.len(),
                held_since: report.hold.as_ref().map(|h| h.since.to_string()),
                held_reason: report.hold.as_ref().map(|h| h.reason.clone()),
                zones_held: report
                    .held
                    .iter()
                    .map(|(zone, reasons)| HeldZone {
                        zone: display(zone),
                        reasons: reasons.clone(),
                    })
                    .collect(),
            })
            .collect();
        key_directories.sort_by(|a, b| a.dir.cmp(&b.dir));
        let followed = self
            .sidecar
            .followed
            .iter()
            .map(|(zone, apex)| FollowedStatus {
                zone: display(zone),
                primary: apex.primary.to_string(),
                serial: apex.serial,
                cds: apex.cds.len(),
                cdnskey: apex.cdnskey.len(),
                read_at: apex.read_at.to_string(),
            })
            .collect();
        let update = (!self.sidecar.publishers.is_empty()).then(|| {
            let c = &self.sidecar.counters;
            UpdateStatus {
                written: c.written.load(Relaxed),
                failed: c.failed.load(Relaxed),
                dropped: c.dropped.load(Relaxed),
            }
        });
        let rrl = self.rrl.as_ref().map(|rrl| {
            let config = rrl.config();
            let totals = rrl.totals();
            RrlStatus {
                rate: config.rate,
                slip: config.slip,
                ipv4_prefix: config.ipv4_prefix,
                ipv6_prefix: config.ipv6_prefix,
                exempt_prefixes: config.exempt.len(),
                checked: totals.checked,
                dropped: totals.dropped,
                slipped: totals.slipped,
                exempt: totals.exempt,
            }
        });
        let children = crate::policy::DelegationState::ALL
            .iter()
            .zip(self.delegations.counts())
            .map(|(state, count)| (state.as_str(), count))
            .collect();
        StatusReport {
            version: env!("CARGO_PKG_VERSION"),
            zones,
            children,
            safety_brake,
            rrl,
            key_directories,
            followed,
            update,
            error_reports: ErrorReportStatus {
                total: self.error_reports.total(),
                by_code: self.error_reports.by_code.clone(),
                rate_limited: self.error_reports.rate_limited,
            },
        }
    }
}

impl Daemon {
    /// What a round leaves for the metrics.
    pub(super) fn round_facts(
        &self,
        report: &super::RoundReport,
        duration: std::time::Duration,
        key_change_to_served: Option<std::time::Duration>,
    ) -> crate::metrics::RoundFacts {
        crate::metrics::RoundFacts {
            duration,
            brake_holding: report.held
                || matches!(self.brake.held, Some(brake::Verdict::Hold { .. })),
            key_file_errors: self
                .keys
                .reports()
                .map(|(_, report)| {
                    report
                        .issues
                        .iter()
                        .filter(|issue| issue.severity == crate::keys::dir::Severity::Error)
                        .count()
                })
                .sum(),
            key_change_to_served,
            children: self.delegations.counts(),
        }
    }
}

impl StatusReport {
    /// `status --json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// "3 bootstrapping", "2 in_sync", ...: the states that have children.
    fn children_by_state(&self) -> Vec<String> {
        self.children
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(state, count)| format!("{count} {state}"))
            .collect()
    }

    /// One line (systemd's STATUS=): zones served, children by state, the
    /// safety brake, held key directories and zones, unsigned zones.
    pub fn summary_line(&self) -> String {
        let mut line = format!("serving {} signalling zones", self.zones.len());
        let children = self.children_by_state();
        if !children.is_empty() {
            let total: usize = self.children.values().sum();
            let _ = write!(line, "; {total} children ({})", children.join(", "));
        }
        if let BrakeStatus {
            holding: true,
            affected: Some(affected),
            published: Some(published),
            ..
        } = &self.safety_brake
        {
            let _ = write!(
                line,
                "; safety brake HOLDING a change to {affected} of {published} children (signalbox confirm)"
            );
        }
        let dirs_held = self
            .key_directories
            .iter()
            .filter(|d| d.held_since.is_some())
            .count();
        if dirs_held > 0 {
            let _ = write!(line, "; {dirs_held} key directories held (unreadable)");
        }
        let zones_held: usize = self
            .key_directories
            .iter()
            .map(|d| d.zones_held.len())
            .sum();
        if zones_held > 0 {
            let _ = write!(
                line,
                "; {zones_held} zones held by keys that cannot be read"
            );
        }
        let unsigned = self.zones.iter().filter(|z| !z.signed).count();
        if unsigned > 0 {
            let _ = write!(line, "; {unsigned} zones NOT SIGNED");
        }
        let serial_held = self.zones.iter().filter(|z| z.serial_held).count();
        if serial_held > 0 {
            let _ = write!(
                line,
                "; {serial_held} zones HELD (serial cannot be recorded)"
            );
        }
        line
    }

    /// The text `signalbox status` prints.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for zone in &self.zones {
            let _ = writeln!(
                out,
                "zone {} serial {} names {}{}",
                zone.apex,
                zone.serial,
                zone.names,
                zone.not_signed_reason
                    .as_ref()
                    .map_or_else(String::new, |b| format!(" NOT SIGNED: {b}"))
            );
            if zone.serial_held {
                out.push_str("  HELD: its next serial cannot be recorded (see the log)\n");
            }
        }
        let children = self.children_by_state();
        let _ = writeln!(
            out,
            "children: {} ({})",
            self.children.values().sum::<usize>(),
            if children.is_empty() {
                "none".to_string()
            } else {
                children.join(", ")
            }
        );
        match &self.safety_brake {
            BrakeStatus {
                holding: true,
                affected: Some(affected),
                published: Some(published),
                limit: Some(limit),
            } => {
                let _ = writeln!(
                    out,
                    "safety brake: HOLDING a change to {affected} of {published} child zones (limit {limit})"
                );
            }
            _ => out.push_str("safety brake: not holding\n"),
        }
        match &self.rrl {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "rrl: on, {} answers/s per /{} (IPv4) or /{} (IPv6) and answer class, slip {}, {} exempt prefix(es): \
                     {} checked, {} dropped, {} slipped (TC=1), {} exempt",
                    r.rate,
                    r.ipv4_prefix,
                    r.ipv6_prefix,
                    r.slip,
                    r.exempt_prefixes,
                    r.checked,
                    r.dropped,
                    r.slipped,
                    r.exempt
                );
            }
            None => out.push_str("rrl: off\n"),
        }
        for dir in &self.key_directories {
            if let (Some(since), Some(reason)) = (&dir.held_since, &dir.held_reason) {
                let _ = writeln!(
                    out,
                    "key directory {}: HELD since {since}: {reason}; its {} zone(s) keep their last signals until it reads cleanly again",
                    dir.dir.display(),
                    dir.zones
                );
            }
            if !dir.zones_held.is_empty() {
                let some: Vec<String> = dir
                    .zones_held
                    .iter()
                    .take(5)
                    .map(|held| format!("{} ({})", held.zone, held.reasons.join("; ")))
                    .collect();
                let _ = writeln!(
                    out,
                    "key directory {}: {} zone(s) held: {}",
                    dir.dir.display(),
                    dir.zones_held.len(),
                    some.join(", ")
                );
            }
        }
        for f in &self.followed {
            let _ = writeln!(
                out,
                "following {} at {}: serial {}, {} CDS, {} CDNSKEY, read {}",
                f.zone, f.primary, f.serial, f.cds, f.cdnskey, f.read_at
            );
        }
        if let Some(u) = &self.update {
            let _ = writeln!(
                out,
                "UPDATE: {} written, {} failed, {} dropped or reverted by the server",
                u.written, u.failed, u.dropped
            );
        }
        let e = &self.error_reports;
        if e.total > 0 || e.rate_limited > 0 {
            let codes: Vec<String> = e
                .by_code
                .iter()
                .map(|(code, n)| format!("{n} with extended error {code}"))
                .collect();
            let _ = writeln!(
                out,
                "error reports: {} since start ({}), {} over a source's limit (signalbox explain ZONE lists them)",
                e.total,
                codes.join(", "),
                e.rate_limited
            );
        }
        out
    }
}
