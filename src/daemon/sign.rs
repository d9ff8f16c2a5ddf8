//! A new version of one served signalling zone: its own apex (SOA, NS,
//! DNSKEY and its own CDS/CDNSKEY, from its keys), the round's `_dsboot`
//! changes, a new serial (RFC 1982, recorded before it is served so a crash
//! never serves one twice; a zone whose serial cannot be recorded is held,
//! `serial_mark.rs`), signatures for what changed plus those due for
//! refresh (RFC 4034 §3.1.5), the IXFR journal entry (RFC 1995) and a
//! background save.
//!
//! A zone that cannot be signed keeps serving its last signed version until
//! its signatures expire, then SERVFAIL: never answers no validator accepts.

use std::sync::Arc;

use hickory_proto::rr::Name;
use jiff::Timestamp;

use super::{
    Daemon,
    save::SaveJob,
    serial_mark::{SerialError, SerialMark},
};
use crate::{
    dns::name::display,
    plan::is_noop,
    policy::{self, ZoneInput},
    state::ZoneState,
    zone::{Change, ZoneSigner, content, journal::Diff, serial},
};

/// What [`Daemon::update_zone`] made of a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ZoneUpdate {
    /// A new signed version with this serial.
    Signed {
        /// The new serial.
        serial: u32,
        /// Owners whose data changed.
        changed_names: usize,
    },
    /// Signing failed: the zone is marked unsignable (its last version is
    /// served until its signatures expire).
    Unsignable,
}

impl Daemon {
    /// Applies `changes` (plus its own apex) to the served zone `apex`;
    /// `None` when nothing changed, nothing is due and `every_zone` (the
    /// first round after a start) does not ask for a version anyway.
    pub(super) fn update_zone(
        &mut self,
        apex: &Name,
        mut changes: Vec<Change>,
        full: bool,
        every_zone: bool,
        now: Timestamp,
    ) -> Option<ZoneUpdate> {
        let (own_apex, signer) = self.own_apex(apex, now)?;
        changes.push(own_apex);
        let zone = self.zones.get(apex)?;
        let options = &zone.config.options;
        let any_change = changes.iter().any(|c| !is_noop(&zone.store, c));
        // A full scan for due signatures only on full rounds, the hourly tick
        // and when the zone's keys changed: one key change stays cheap.
        let keys_changed = zone.signer != signer.fingerprint();
        let check_refresh = full || keys_changed || zone.store.is_empty();
        let refresh = check_refresh
            && (zone.store.is_empty() || zone.store.needs_refresh(&signer, now, options));
        // A held zone tries again every round until it gets its version.
        let held = self.serial_hold.holds(apex);
        if !any_change && !refresh && !every_zone && zone.broken.is_none() && !held {
            return None;
        }
        let serial = match self.next_serial(apex, now)? {
            Ok(serial) => serial,
            Err(e) => {
                tracing::error!(zone = display(apex), "{e}");
                let children = changes
                    .iter()
                    .filter_map(|c| crate::plan::child_of(&c.owner, apex));
                self.serial_hold.hold(apex, children);
                return None;
            }
        };
        self.serial_hold.release(apex);
        Some(self.sign_version(apex, changes, &signer, serial, refresh, now))
    }

    /// The zone's own apex RRsets from its keys, and the signer they give;
    /// schedules the zone's next key event.
    fn own_apex(&mut self, apex: &Name, now: Timestamp) -> Option<(Change, ZoneSigner)> {
        let zone_name = display(apex);
        let config = self.zones.get(apex)?.config.clone();
        let report = config.keys.as_ref().and_then(|dir| self.keys.report(dir));
        let keys = report
            .and_then(|r| r.zones.get(apex).map(<[_]>::to_vec))
            .unwrap_or_default();
        if let Some(report) = report {
            for issue in report.issues_for(apex) {
                tracing::warn!(zone = zone_name, "{issue}");
            }
        }
        self.schedule.set(apex, policy::next_event(&keys, now));
        let settings = config.settings.resolve();
        let own = policy::compute(
            &ZoneInput {
                zone: apex,
                settings: &settings,
                keys: &keys,
                parent: None,
                soa_serial: None,
                followed: None,
                foreign: &[],
            },
            now,
        );
        own.trace();
        let change = Change {
            owner: apex.clone(),
            rrsets: Some(content::apex_rrsets(&config, &keys, &own, now)),
        };
        let mut signer = ZoneSigner::from_keys(&keys, now);
        signer.progress = Some(Arc::clone(&self.signing));
        for problem in &signer.problems {
            tracing::error!(zone = zone_name, "{problem}");
        }
        Some((change, signer))
    }

    /// The next serial: past both the high-water mark and what is served,
    /// recorded (fsynced) before it is served; an error when it cannot be
    /// recorded or the record cannot be read (the zone is then held).
    fn next_serial(&mut self, apex: &Name, now: Timestamp) -> Option<Result<u32, SerialError>> {
        let zone = self.zones.get_mut(apex)?;
        let serving = zone.store.serial();
        let mark = match &zone.mark {
            SerialMark::Known(mark) => *mark,
            // Read again: the operator may have fixed it.
            SerialMark::Unreadable(_) => match SerialMark::read(&self.state, apex) {
                SerialMark::Known(mark) => mark,
                SerialMark::Unreadable(source) => {
                    return Some(Err(SerialError::Unreadable { source, serving }));
                }
            },
        };
        let current = [
            mark,
            (!zone.store.is_empty()).then_some(serving),
            zone.floor,
        ]
        .into_iter()
        .flatten()
        .reduce(|a, b| if serial::is_newer(a, b) { a } else { b });
        let new_serial = serial::next(zone.config.options.serial_policy, current, now);
        if let Err(source) = self
            .state
            .save_zone(apex, &ZoneState { serial: new_serial })
        {
            return Some(Err(SerialError::NotRecorded {
                serial: new_serial,
                source,
                serving,
            }));
        }
        zone.mark = SerialMark::Known(Some(new_serial));
        Some(Ok(new_serial))
    }

    /// Signs the zone's next version with `serial`, re-signing every RRset
    /// due when `resign_due`, in one pass so the version's journal entry
    /// holds everything that changed (a refresh in a second pass would leave
    /// the first pass's removals out of the IXFR diff). On success records
    /// the journal entry and saves the zone in the background.
    fn sign_version(
        &mut self,
        apex: &Name,
        changes: Vec<Change>,
        signer: &ZoneSigner,
        new_serial: u32,
        resign_due: bool,
        now: Timestamp,
    ) -> ZoneUpdate {
        let zone_name = display(apex);
        let Some(zone) = self.zones.get_mut(apex) else {
            return ZoneUpdate::Unsignable;
        };
        let options = &zone.config.options;
        let mut next = zone.store.clone();
        match next.apply(changes, resign_due, signer, new_serial, now, options) {
            Ok(stats) => {
                tracing::info!(
                    zone = zone_name,
                    serial = new_serial,
                    names = stats.names,
                    changed_names = stats.changed_names,
                    rrsets_signed = stats.rrsets_signed,
                    signatures = stats.signatures,
                    resign_due,
                    "zone updated"
                );
                if !zone.store.is_empty() {
                    if let Some(diff) =
                        Diff::between(&zone.store, &next, stats.touched.iter().map(|w| &w[..]))
                    {
                        Arc::make_mut(&mut zone.journal).push(diff, &options.journal);
                    }
                }
                zone.store = next;
                zone.broken = None;
                zone.signer = signer.fingerprint();
                self.saver.save(SaveJob {
                    zone_path: self.state.zone_store_path(apex),
                    zone: zone.store.clone(),
                    journal_path: self.state.journal_path(apex),
                    journal: zone.journal.clone(),
                    changes_path: self.state.changes_path(apex),
                });
                ZoneUpdate::Signed {
                    serial: new_serial,
                    changed_names: stats.changed_names,
                }
            }
            Err(e) => {
                let until = zone.store.earliest_expiration();
                tracing::error!(
                    zone = zone_name,
                    signatures_valid_until = until,
                    "cannot sign: {e}; {}",
                    if zone.store.is_empty() {
                        "the zone is not served (SERVFAIL)"
                    } else {
                        "serving the last signed version until its signatures expire"
                    }
                );
                zone.broken = Some(e.to_string());
                ZoneUpdate::Unsignable
            }
        }
    }
}
