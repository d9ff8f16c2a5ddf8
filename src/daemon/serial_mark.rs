//! The serial high-water mark of each served zone, and holding a zone whose
//! next serial cannot be recorded.
//!
//! A secondary only transfers a serial newer than its own (RFC 1982 §3.1,
//! RFC 1995 §2, RFC 1996 §4.7): serving a serial lower than (or equal to,
//! with other data) one already served leaves every secondary on the old
//! data. So every new serial is written to `zones/<apex>.toml` (atomically,
//! fsynced) *before* the version carrying it is served, and a restart
//! continues past it even when the saved zone is lost or damaged
//! (docs/ARCHITECTURE.md, "State on disk").
//!
//! When that write fails (a full or read-only disk) or the record cannot be
//! read, the zone is held: the last good version stays served, no new
//! version is made, and the children it would have changed are recomputed
//! by a retry round, first after a second, then with a pause doubling up to
//! `RETRY_MAX` (which also bounds how often the error is logged).

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use hickory_proto::rr::Name;

use super::RoundInput;
use crate::state::{StateDir, StateError};

/// The last serial recorded for a zone.
pub(super) enum SerialMark {
    /// Read or written; `None` when the zone never had one.
    Known(Option<u32>),
    /// The record exists but cannot be read: the zone is held until it can.
    Unreadable(StateError),
}

impl SerialMark {
    /// The recorded serial, when known.
    pub(super) fn known(&self) -> Option<u32> {
        match self {
            SerialMark::Known(mark) => *mark,
            SerialMark::Unreadable(_) => None,
        }
    }

    /// Reads a zone's record from the state directory.
    pub(super) fn read(state: &StateDir, apex: &Name) -> SerialMark {
        match state.load_zone(apex) {
            Ok(record) => SerialMark::Known(record.map(|r| r.serial)),
            Err(e) => SerialMark::Unreadable(e),
        }
    }
}

/// Why a zone gets no new version now.
#[derive(Debug, thiserror::Error)]
pub(super) enum SerialError {
    /// The high-water mark cannot be read.
    #[error(
        "{source}: this file records the last serial served, so the zone keeps serving serial \
         {serving} and gets no new version until it reads cleanly. Fix: write `serial = N` into it, \
         N the serial your secondaries have (`dig @secondary ZONE SOA`), or remove it to continue \
         from serial {serving}"
    )]
    Unreadable {
        /// The read error (names the file).
        source: StateError,
        /// The serial served now.
        serving: u32,
    },
    /// The new serial could not be recorded.
    #[error(
        "cannot record serial {serial} before serving it: {source}; holding the zone at serial \
         {serving} (its last good version) and retrying"
    )]
    NotRecorded {
        /// The serial the new version would have had.
        serial: u32,
        /// The write error (names the file).
        source: StateError,
        /// The serial served now.
        serving: u32,
    },
}

/// Zones held because their next serial could not be recorded, and when
/// to try again.
#[derive(Debug, Default)]
pub(super) struct SerialHold {
    /// Held zones.
    zones: BTreeSet<Name>,
    /// Children whose changes were held: recomputed by the retry round.
    children: BTreeSet<Name>,
    /// Retry rounds that found a zone still held.
    attempts: u32,
    /// When the retry round is due.
    due: Option<Instant>,
}

/// Longest pause between two retry rounds.
const RETRY_MAX: Duration = Duration::from_secs(30);

impl SerialHold {
    /// Holds `zone`, noting the children its changes were for.
    pub(super) fn hold(&mut self, zone: &Name, children: impl IntoIterator<Item = Name>) {
        self.zones.insert(zone.clone());
        self.children.extend(children);
        if self.due.is_none() {
            let pause = Duration::from_secs(1 << self.attempts.min(5)).min(RETRY_MAX);
            self.due = Some(Instant::now() + pause);
        }
    }

    /// `zone` got its new version.
    pub(super) fn release(&mut self, zone: &Name) {
        if self.zones.remove(zone) {
            tracing::info!(
                zone = crate::dns::name::display(zone),
                "serial recorded again: the zone is updated"
            );
        }
        if self.zones.is_empty() {
            self.attempts = 0;
            self.due = None;
            self.children.clear();
        }
    }

    /// True while `zone` is held.
    pub(super) fn holds(&self, zone: &Name) -> bool {
        self.zones.contains(zone)
    }

    /// True when `child`'s changes wait for a held zone's retry round.
    pub(super) fn holds_child(&self, child: &Name) -> bool {
        self.children.contains(child)
    }

    /// When the retry round is due, while a zone is held.
    pub(super) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The retry round: the held children, and a check of every signature
    /// (a held full round may have had some due).
    pub(super) fn retry_round(&mut self) -> RoundInput {
        self.due = None;
        self.attempts = self.attempts.saturating_add(1);
        RoundInput {
            names: std::mem::take(&mut self.children),
            refresh: true,
            ..RoundInput::default()
        }
    }
}
