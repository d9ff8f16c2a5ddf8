//! Holds: a key directory that cannot be listed, or a key file that cannot
//! be read, holds the zones concerned with their last signals (nothing new
//! is published for them, nothing withdrawn) until it reads cleanly again.
//! Partial reads are not deletions (docs/ARCHITECTURE.md, "Rules of the
//! house"). Each hold is logged when it starts, when its cause changes and
//! when it ends, never once per scan; every scan report carries the holds
//! and problems of the keys still troubled.

use std::{io, path::Path};

use hickory_proto::rr::Name;
use jiff::Timestamp;

use super::{Effect, KeyDirectory, KeyIssue, ListError, ScanReport, Severity};
use crate::dns::name::display;

/// A key directory that cannot be listed, since when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryHold {
    /// When the directory first failed to list (wall clock).
    pub since: Timestamp,
    /// Why, as the last failed listing said.
    pub reason: String,
    /// The kind of failure, for logging only when it changes.
    cause: (u8, Option<io::ErrorKind>),
}

impl DirectoryHold {
    /// Logs the end of the hold.
    pub(super) fn log_released(&self, dir: &Path) {
        let held_s = Timestamp::now().duration_since(self.since).as_secs().max(0);
        tracing::info!(
            dir = %dir.display(),
            held_s,
            "key directory reads cleanly again: its zones are recomputed"
        );
    }
}

/// Notes a failed listing of `dir`: starts the hold, or updates its reason,
/// logging only when the kind of failure is new.
pub(super) fn note(
    hold: &mut Option<DirectoryHold>,
    dir: &Path,
    error: &ListError,
    reason: &str,
    zones: usize,
) {
    let cause = error.cause();
    match hold {
        None => {
            tracing::error!(
                dir = %dir.display(),
                zones,
                reason,
                "key directory held: it cannot be read completely, so its zones keep their last signals (nothing published, nothing withdrawn) until it reads cleanly again"
            );
            *hold = Some(DirectoryHold {
                since: Timestamp::now(),
                reason: reason.to_string(),
                cause,
            });
        }
        Some(held) => {
            if held.cause != cause {
                tracing::error!(
                    dir = %dir.display(),
                    zones,
                    reason,
                    was = held.reason,
                    "key directory still held, for another reason"
                );
                held.cause = cause;
            }
            held.reason = reason.to_string();
        }
    }
}

/// Logs a key whose files could (`was`) or can (`now`) not be read, when
/// that changes.
pub(super) fn note_key(was: bool, now: bool, zone: Option<&Name>, tag: u16, issues: &[KeyIssue]) {
    let zone = zone.map(display).unwrap_or_default();
    match (was, now) {
        (false, true) => {
            let why = issues
                .iter()
                .find(|i| i.severity != Severity::Warning)
                .map(ToString::to_string)
                .unwrap_or_default();
            tracing::error!(
                zone,
                key_tag = tag,
                why,
                "zone held: a key file cannot be read; its last signals stay until it can"
            );
        }
        (true, false) => {
            tracing::info!(
                zone,
                key_tag = tag,
                "key file readable again: zone recomputed"
            );
        }
        _ => {}
    }
}

impl KeyDirectory {
    /// The report of a scan that could not list the directory: nothing
    /// changed, every zone keeps its last good keys, the directory is held.
    pub(super) fn held_report(&mut self, error: &ListError) -> ScanReport {
        let message = format!("cannot read key directory: {error}");
        note(
            &mut self.hold,
            &self.path,
            error,
            &message,
            self.zones.len(),
        );
        let mut report = ScanReport::default();
        report.issues.push(KeyIssue {
            zone: None,
            tag: None,
            file: self.path.clone(),
            line: 0,
            message: message.clone(),
            severity: Severity::Error,
            effect: Effect::HeldWithLastGood,
        });
        report.directory_error = Some(message);
        report.hold = self.hold.clone();
        self.report_troubled(&mut report);
        report.zones = self.zones.clone();
        report
    }

    /// Adds the problems and holds of every troubled key to `report`.
    pub(super) fn report_troubled(&self, report: &mut ScanReport) {
        for stem in &self.troubled {
            if let Some(slot) = self.slots.get(&**stem) {
                report.issues.extend(slot.issues().iter().cloned());
                if let Some(hold) = slot.held() {
                    report
                        .held
                        .entry(hold.zone.clone())
                        .or_default()
                        .push(hold.why.clone());
                }
            }
        }
    }
}
