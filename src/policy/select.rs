//! Choosing the keys of the CDS/CDNSKEY set, per mode.
//!
//! - `auto`: BIND's rule exactly (lib/dns/dnssec.c `syncpublish`): format
//!   v1.2 never; with a `.state`, DSState rumoured or omnipresent; without,
//!   SyncPublish reached and SyncDelete not passed. One stricter point: a key
//!   whose DNSKEY is not published is left out (BIND would list it if its
//!   SyncPublish came before its Publish).
//! - `always`: the ready KSKs if any, else the ones in service (Knot `always`).
//! - `rollover`: the ready KSKs, only while there are any (Knot `rollover`).
//! - `double-ds`: ready and in-service KSKs together, the two newest.
//! - `none`: nothing; `delete`: the RFC 8078 delete signal alone.
//!
//! Foreign keys (RFC 8901 model 2) join any non-empty set of ours.

use jiff::Timestamp;

use super::{Decision, KeyRef, Lifecycle, Verdict, ZoneInput};
use crate::{
    config::CdsMode,
    dns::Dnskey,
    dnssec,
    keys::{Key, KeyState, TimingEvent, bind::timestamp},
};

/// The outcome of key selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Publish CDS/CDNSKEY for these keys (empty = publish none).
    Keys(Vec<Dnskey>),
    /// Publish the delete signal.
    Delete,
}

fn key_ref(key: &Key, life: &Lifecycle) -> KeyRef {
    let mut state = life.phase().to_string();
    if let Some(ds) = key.state.as_ref().and_then(|s| s.ds) {
        state.push_str(&format!(", DSState {ds}"));
    }
    KeyRef {
        tag: key.tag,
        algorithm: key.dnskey.algorithm,
        role: Some(key.role()),
        state,
    }
}

/// The decisions of one zone's selection, as they are made.
struct Log<'a> {
    zone: &'a hickory_proto::rr::Name,
    decisions: &'a mut Vec<Decision>,
}

impl Log<'_> {
    /// A decision about the zone as a whole.
    fn zone(&mut self, verdict: Verdict, why: String) {
        self.decisions.push(Decision::zone(self.zone, verdict, why));
    }

    /// A decision about one of its keys.
    fn key(&mut self, key: &Key, life: &Lifecycle, verdict: Verdict, why: String) {
        self.decisions.push(Decision {
            zone: self.zone.clone(),
            key: Some(key_ref(key, life)),
            verdict,
            why,
        });
    }
}

/// Chooses the keys; pushes one decision per key and per mode outcome.
pub fn select(input: &ZoneInput<'_>, now: Timestamp, decisions: &mut Vec<Decision>) -> Selection {
    let mode = input.settings.cds;
    let mut log = Log {
        zone: input.zone,
        decisions,
    };
    let lives: Vec<(&Key, Lifecycle)> = input
        .keys
        .iter()
        .map(|k| (k.as_ref(), Lifecycle::of(k, now, input.parent)))
        .collect();
    if input.keys.is_empty() && !matches!(mode, CdsMode::None | CdsMode::Delete) {
        log.zone(
            Verdict::Warning,
            "no keys found for this zone: nothing to publish".into(),
        );
    }
    let chosen = match mode {
        CdsMode::None => {
            log.zone(Verdict::Note, "cds = \"none\": no CDS/CDNSKEY".into());
            return Selection::Keys(Vec::new());
        }
        CdsMode::Delete => {
            delete_signal(&lives, &mut log);
            return Selection::Delete;
        }
        CdsMode::Auto => {
            let mut chosen = Vec::new();
            for (key, life) in &lives {
                let (verdict, why) = auto_rule(key, life, now);
                if verdict == Verdict::In {
                    chosen.push(*key);
                }
                log.key(key, life, verdict, why);
            }
            chosen
        }
        CdsMode::Always | CdsMode::Rollover | CdsMode::DoubleDs => {
            knot_selection(mode, &lives, &mut log)
        }
    };
    let mut set: Vec<Dnskey> = chosen.iter().map(|k| k.dnskey.clone()).collect();
    join_foreign(
        &mut set,
        &input.settings.foreign_keys,
        Listed::ByHand,
        &mut log,
    );
    join_foreign(&mut set, input.foreign, Listed::Fetched, &mut log);
    Selection::Keys(set)
}

/// `delete`: the RFC 8078 delete signal, with a warning when no key whose
/// DS is at the parent could sign it.
fn delete_signal(lives: &[(&Key, Lifecycle)], log: &mut Log<'_>) {
    let signer = lives
        .iter()
        .any(|(_, l)| l.signs_keys && l.published && l.activated && !l.retired());
    log.zone(
        Verdict::Note,
        "cds = \"delete\" (confirmed): CDS 0 0 0 00 / CDNSKEY 0 3 0 AA== alone: \
         the parent is asked to remove every DS (RFC 8078 §4)"
            .into(),
    );
    if !signer {
        log.zone(
            Verdict::Warning,
            "no published, active KSK: the delete signal must be signed by a key \
             whose DS is at the parent or the parent cannot validate it"
                .into(),
        );
    }
}

/// `always`, `rollover` and `double-ds`: Knot's rules over the KSKs.
fn knot_selection<'k>(
    mode: CdsMode,
    lives: &[(&'k Key, Lifecycle)],
    log: &mut Log<'_>,
) -> Vec<&'k Key> {
    let any_ready = lives.iter().any(|(_, l)| l.ready());
    let mut candidates: Vec<&(&Key, Lifecycle)> = Vec::new();
    for entry in lives {
        let (key, life) = entry;
        let (take, why) = knot_rule(mode, life, any_ready);
        if take {
            candidates.push(entry);
        } else {
            log.key(key, life, Verdict::Out, why);
        }
    }
    if mode == CdsMode::DoubleDs && candidates.len() > 2 {
        candidates.sort_by_key(|(k, _)| (newest_time(k), k.tag));
        let dropped = candidates.len() - 2;
        for (key, life) in candidates.drain(..dropped) {
            log.key(
                key,
                life,
                Verdict::Out,
                "double-ds keeps only the two newest KSKs".into(),
            );
        }
    }
    let mut chosen = Vec::new();
    for (key, life) in candidates {
        let why = match (mode, life.ready()) {
            (CdsMode::DoubleDs, true) => "double-ds: ready KSK (DS not at parent yet)",
            (CdsMode::DoubleDs, false) => "double-ds: KSK in service (DS at parent)",
            (_, true) => "ready KSK: its DS is what the parent should hold now",
            (_, false) => "KSK in service and no ready successor: the parent's DS stays",
        };
        chosen.push(*key);
        log.key(key, life, Verdict::In, why.into());
    }
    if chosen.is_empty() {
        let why = match mode {
            CdsMode::Rollover if lives.iter().any(|(_, l)| l.in_service()) => {
                "rollover: at rest (no ready KSK; the parent's DS is current): no CDS/CDNSKEY"
            }
            _ => "no ready or in-service KSK: no CDS/CDNSKEY (never invent DS intent)",
        };
        log.zone(Verdict::Note, why.into());
    }
    chosen
}

/// Where a foreign key comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listed {
    /// `foreign_keys`.
    ByHand,
    /// `foreign_from`: fetched from the provider, its own signature checked.
    Fetched,
}

/// Foreign keys (RFC 8901 model 2) join a non-empty set of ours; alone they
/// would ask the parent to drop our DS.
fn join_foreign(set: &mut Vec<Dnskey>, foreign: &[Dnskey], listed: Listed, log: &mut Log<'_>) {
    if foreign.is_empty() {
        return;
    }
    if set.is_empty() {
        log.zone(
            Verdict::Note,
            format!(
                "{} foreign key(s) not published alone: a CDS set without one of our own keys \
                 would ask the parent to drop our DS",
                foreign.len()
            ),
        );
        return;
    }
    for key in foreign {
        let duplicate = set.contains(key);
        log.decisions.push(Decision {
            zone: log.zone.clone(),
            key: Some(KeyRef {
                tag: dnssec::key_tag(key),
                algorithm: key.algorithm,
                role: None,
                state: match listed {
                    Listed::ByHand => "foreign_keys".into(),
                    Listed::Fetched => "foreign_from".into(),
                },
            }),
            verdict: Verdict::In,
            why: match (duplicate, listed) {
                (true, Listed::ByHand) => "listed in foreign_keys and already in the set".into(),
                (true, Listed::Fetched) => {
                    "fetched from foreign_from and already in the set".into()
                }
                (false, Listed::ByHand) => {
                    "another provider's KSK (RFC 8901 model 2): every provider publishes the full set"
                        .into()
                }
                (false, Listed::Fetched) => {
                    "another provider's KSK, fetched from its nameservers and signing its DNSKEY \
                     RRset (foreign_from; RFC 8901 model 2)"
                        .into()
                }
            },
        });
        if !duplicate {
            set.push(key.clone());
        }
    }
}

/// BIND's rule for one key (lib/dns/dnssec.c `syncpublish`/`syncdelete`).
fn auto_rule(key: &Key, life: &Lifecycle, now: Timestamp) -> (Verdict, String) {
    if key.is_legacy_format() {
        let (major, minor) = key.private.format();
        return (
            Verdict::Out,
            format!(
                "private-key format v{major}.{minor}: BIND never publishes CDS for pre-v1.3 keys"
            ),
        );
    }
    if life.deleted {
        return (Verdict::Out, "Delete reached: the key is removed".into());
    }
    let by_bind = if let Some(ds) = key.state.as_ref().and_then(|s| s.ds) {
        match ds {
            KeyState::Rumoured | KeyState::Omnipresent => {
                Ok(format!("DSState {ds}: BIND publishes CDS/CDNSKEY"))
            }
            KeyState::Hidden | KeyState::Unretentive => {
                Err(format!("DSState {ds}: BIND withdraws CDS/CDNSKEY"))
            }
        }
    } else {
        let sync_publish = key.timing.get(TimingEvent::SyncPublish);
        let sync_delete = key.timing.get(TimingEvent::SyncDelete);
        match (sync_publish, sync_delete) {
            (_, Some(del)) if del < now => {
                Err(format!("SyncDelete {} has passed", timestamp::format(del)))
            }
            (Some(publ), _) if publ <= now => {
                Ok(format!("SyncPublish {} reached", timestamp::format(publ)))
            }
            (Some(publ), _) => Err(format!(
                "SyncPublish {} not reached yet",
                timestamp::format(publ)
            )),
            (None, _) => Err(if key.state.is_some() {
                "no DSState and no SyncPublish".to_string()
            } else {
                "no .state file and no SyncPublish".to_string()
            }),
        }
    };
    match by_bind {
        Err(why) => (Verdict::Out, why),
        Ok(why) if !life.published => (
            Verdict::Out,
            format!(
                "{why}, but the DNSKEY is not published: left out (signalbox never signals an unpublished key)"
            ),
        ),
        Ok(why) if !life.signs_keys => (Verdict::In, format!("{why} (note: not a KSK)")),
        Ok(why) => (Verdict::In, why),
    }
}

/// Whether the Knot-style modes take a key, and why not.
fn knot_rule(mode: CdsMode, life: &Lifecycle, any_ready: bool) -> (bool, String) {
    if !life.signs_keys {
        return (
            false,
            "not a KSK/CSK: its DS never belongs at the parent".into(),
        );
    }
    if life.retired() {
        return (
            false,
            format!("{}: neither ready nor in service", life.phase()),
        );
    }
    if !life.published || !life.activated {
        return (
            false,
            format!("{}: not ready until published and active", life.phase()),
        );
    }
    match mode {
        CdsMode::DoubleDs => (true, String::new()),
        _ if life.ready() => (true, String::new()),
        CdsMode::Always if !any_ready => (true, String::new()),
        CdsMode::Always => (
            false,
            "a ready successor exists: its DS replaces this one".into(),
        ),
        _ => (false, "DS already at the parent".into()),
    }
}

/// The time that makes a key "newer": Activate, else Publish, else Created.
fn newest_time(key: &Key) -> Option<Timestamp> {
    [
        TimingEvent::Activate,
        TimingEvent::Publish,
        TimingEvent::Created,
    ]
    .into_iter()
    .find_map(|e| key.timing.get(e))
}
