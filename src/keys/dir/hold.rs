//! Holds: a key directory that cannot be listed, or a key file that cannot
//! be read, holds the zones concerned with their last signals (nothing new
//! is published for them, nothing withdrawn) until it reads cleanly again.
//! Partial reads are not deletions (docs/ARCHITECTURE.md, "Rules of the
//! house"). Each hold is logged when it starts, when its cause changes and
//! when it ends, never once per scan.

use std::{io, path::Path};

use hickory_proto::rr::Name;
use jiff::Timestamp;

use super::{KeyIssue, ListError, Severity};
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
