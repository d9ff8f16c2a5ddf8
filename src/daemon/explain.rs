//! `signalbox explain ZONE [--json]`: one child's whole story, from the
//! running daemon (issue 14). One typed [`Explanation`], rendered as text or
//! JSON, built from what the daemon holds, with the policy run once more
//! for now and for the child's next timing event:
//!
//! - `state`: where the delegation stands ([`crate::policy::DelegationState`])
//!   and, when held, why;
//! - `keys[]`: each key with its role, phase at this moment (the policy's
//!   [`crate::policy::Lifecycle`]), BIND's `DSState`, every timing event,
//!   and whether the signals name it;
//! - `signals`: the apex CDS/CDNSKEY (RFC 7344 §4, RFC 8078) and CSYNC (RFC
//!   7477) the policy wants now, and `decisions[]`, each with its reason;
//! - `published[]`: where the signals are and whether that matches: each
//!   `_dsboot.<child>._signal.<ns>` owner (RFC 9615 §2) in a served or
//!   signer-hosted signalling zone, and the apex RRsets written by UPDATE;
//! - `parent`: the DS and NS the parent observer last saw, or, without an
//!   observer, the keys whose metadata says their DS is at the parent;
//! - `notify[]`: per kind (CDS, CSYNC), whether a generalized NOTIFY (RFC
//!   9859) is owed, waiting for the nameservers to agree (RFC 9975) or held,
//!   and the last one sent with its result (asked of the parent agent);
//! - `parent_check`: the last parent's-eye check made before a NOTIFY
//!   (`crate::check`, the `[notify] profile`): when, before which NOTIFY,
//!   the outcome (`bootstrap`, `rollover`, `delete`, `nothing-to-do`,
//!   `refused`), and each finding with its RFC section;
//! - `next_event`: the next key timing event, which keys it concerns, and
//!   what the signals and the state become then;
//! - `error_reports[]`: the RFC 9567 error reports received about the
//!   child (`[report] agent`), the last ones, oldest first: `time`,
//!   `qname`, `qtype`, `ede` (the extended DNS error code) and `source`.
//!
//! JSON field names are the interface scripts use; times are RFC 3339.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use jiff::Timestamp;
use serde::Serialize;

mod text;

use super::Daemon;
use crate::{
    check::Verdict,
    dns::{
        RecordSet,
        name::{canonical_wire, display, dsboot_name},
    },
    model::{self, ChildZone},
    parent::agent::ChildNotifies,
    plan,
    policy::{self, Lifecycle, ZoneInput, ZoneSignals},
    zone::content,
};

/// Everything `explain` says about one child.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The child zone.
    pub zone: String,
    /// Its delegation state (`bootstrapping`, `rolling`, `in_sync`,
    /// `insecure`, `deleting`, `held`, `error`).
    pub state: &'static str,
    /// Why it is held, when it is.
    pub held: Option<String>,
    /// The config table(s) it comes from.
    pub source: String,
    /// Its key directory.
    pub key_directory: Option<PathBuf>,
    /// Its keys.
    pub keys: Vec<KeyStory>,
    /// What the policy wants now.
    pub signals: Signals,
    /// Every decision, with its reason.
    pub decisions: Vec<DecisionLine>,
    /// Where the signals are published.
    pub published: Vec<Publication>,
    /// What the parent has.
    pub parent: ParentSide,
    /// Generalized NOTIFYs, per kind (empty when no parent agent runs).
    pub notify: Vec<NotifyStory>,
    /// The last parent's-eye check before a NOTIFY.
    pub parent_check: Option<ParentCheckStory>,
    /// The next key timing event.
    pub next_event: Option<NextEvent>,
    /// RFC 9567 error reports received about it, oldest first.
    pub error_reports: Vec<super::error_reports::ErrorReport>,
    /// When this was computed.
    pub at: String,
}

/// One key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStory {
    /// Key tag (RFC 4034 Appendix B).
    pub tag: u16,
    /// Algorithm number.
    pub algorithm: u8,
    /// KSK, ZSK or CSK.
    pub role: String,
    /// Its phase now ("ready, DS not at parent", "active, DS at parent", ...).
    pub phase: &'static str,
    /// BIND's `DSState`, when a `.state` file says.
    pub ds_state: Option<&'static str>,
    /// The signals name it.
    pub in_signals: bool,
    /// Timing events (`Publish`, `Activate`, `SyncPublish`, ...), RFC 3339.
    pub timing: BTreeMap<&'static str, String>,
    /// Its `.key` file.
    pub file: PathBuf,
}

/// The RRsets the policy wants at the child's apex, as zone file lines.
#[derive(Debug, Clone, Serialize)]
pub struct Signals {
    /// CDS.
    pub cds: Vec<String>,
    /// CDNSKEY.
    pub cdnskey: Vec<String>,
    /// CSYNC.
    pub csync: Vec<String>,
}

/// One policy decision.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionLine {
    /// The key concerned.
    pub key_tag: Option<u16>,
    /// `in`, `out`, `note`, `warning`, `error`.
    pub verdict: String,
    /// Why.
    pub why: String,
}

/// One place the child's signals live.
#[derive(Debug, Clone, Serialize)]
pub struct Publication {
    /// `dsboot` (RFC 9615 signal) or `apex` (CDS/CDNSKEY/CSYNC by UPDATE).
    pub kind: &'static str,
    /// The owner name.
    pub owner: String,
    /// The zone it is in.
    pub zone: String,
    /// `served` here, `hosted` by a signer through UPDATE, `update` (the
    /// child's apex written into its signer), `followed` (the apex of a
    /// followed signer, which publishes it) or `operator` (an apex
    /// signalbox neither writes nor reads).
    pub by: &'static str,
    /// The RR type(s), for apex RRsets.
    pub rtype: Option<String>,
    /// Something is published there (`null`: signalbox cannot see it).
    pub present: Option<bool>,
    /// What is published is what the policy wants now (`null`: unknown).
    pub current: Option<bool>,
    /// The signalling zone's serial, for served zones.
    pub serial: Option<u32>,
}

/// The parent's side.
#[derive(Debug, Clone, Serialize)]
pub struct ParentSide {
    /// `observer` (DS and NS read at the parent) or `key metadata`.
    pub source: &'static str,
    /// When it was observed.
    pub observed_at: Option<String>,
    /// DS as `tag/algorithm/digest type`.
    pub ds: Vec<String>,
    /// The delegation's NS, when observed.
    pub ns: Option<Vec<String>>,
}

/// One kind of NOTIFY.
#[derive(Debug, Clone, Serialize)]
pub struct NotifyStory {
    /// `CDS` or `CSYNC`.
    pub qtype: String,
    /// Owed since, when owed.
    pub owed_since: Option<String>,
    /// The nameservers disagree; the NOTIFY waits (RFC 9975).
    pub waiting_for_agreement: bool,
    /// They agree, but the parent would refuse; the NOTIFY(CDS) waits
    /// (`gate = "parent"`).
    pub waiting_for_acceptance: bool,
    /// Held after `max_wait`.
    pub held: bool,
    /// Tries of the owed NOTIFY.
    pub attempts: u32,
    /// The last NOTIFY sent: time, target, result.
    pub last_sent: Option<SentStory>,
}

/// One NOTIFY sent.
#[derive(Debug, Clone, Serialize)]
pub struct SentStory {
    /// When its answer (or failure) came.
    pub time: String,
    /// The DSYNC target and address.
    pub target: String,
    /// `acknowledged`, `rejected (RCODE)`, `failed: ...`, `not sent: ...`.
    pub result: String,
}

/// The parent's-eye check the agent made before a NOTIFY.
#[derive(Debug, Clone, Serialize)]
pub struct ParentCheckStory {
    /// When.
    pub time: String,
    /// Before which NOTIFY (`CDS`, `CSYNC`).
    pub before: String,
    /// What it found (the fields of `signalbox check --json`).
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The next key timing event and what it changes.
#[derive(Debug, Clone, Serialize)]
pub struct NextEvent {
    /// When.
    pub at: String,
    /// What happens then, per key ("KSK 12345 SyncPublish").
    pub events: Vec<String>,
    /// The signals change then.
    pub signals_change: bool,
    /// The keys the CDS/CDNSKEY will name then.
    pub signalled_keys_then: Vec<u16>,
    /// The delegation state then (with the parent as known now).
    pub state_then: &'static str,
    /// One line: "KSK 12345 SyncPublish at ..., then the CDS/CDNSKEY name 12345".
    pub summary: String,
}

/// Why `explain` has nothing to say.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// Not a zone name.
    #[error("{0:?} is not a domain name")]
    BadName(String),
    /// Not a child of this configuration.
    #[error(
        "{0} is not a child zone of this configuration (no [[zone]], no keys in a [[zones]] directory)"
    )]
    NotAChild(String),
}

impl Daemon {
    /// One child's story at `now` (without the NOTIFY part, which the
    /// parent agent answers: [`Explanation::with_notify`]).
    pub(super) fn explain(&self, zone: &str, now: Timestamp) -> Result<Explanation, ExplainError> {
        let name =
            crate::dns::parse_name(zone).map_err(|_| ExplainError::BadName(zone.to_string()))?;
        let (child, _) = model::child(&self.config, &self.keys, &name);
        let child = child.ok_or_else(|| ExplainError::NotAChild(display(&name)))?;
        let view = self.agent.views.get(&name);
        let followed = self.sidecar.followed.get(&name);
        let foreign = self.providers.keys.get(&name);
        let input = ZoneInput {
            followed,
            foreign: foreign.map_or(&[], |f| f.keys.as_slice()),
            ..child.input(view, None)
        };
        let signals = policy::compute(&input, now);
        let wanted = policy::signalled_keys(&signals).unwrap_or_default();
        let computed = policy::delegation_state(&signals, &child.keys, view, now);
        let state = if child.is_held() {
            policy::DelegationState::Held
        } else {
            self.delegations.get(&name).unwrap_or(computed)
        };
        let held = (!child.held.is_empty())
            .then(|| child.held.join("; "))
            .or_else(|| signals.hold.clone())
            .or_else(|| self.delegations.held_reason(&name).map(str::to_string))
            .or_else(|| {
                (child.fetches_foreign && foreign.is_none()).then(|| {
                    "waiting for the other providers' keys (foreign_from): none validated yet, \
                     so nothing new is published"
                        .to_string()
                })
            });
        Ok(Explanation {
            zone: display(&name),
            state: state.as_str(),
            held,
            source: child.source.to_string(),
            key_directory: child.key_dir.as_deref().map(Path::to_path_buf),
            keys: keys(&child, view, &wanted, now),
            signals: Signals {
                cds: lines(&signals.cds),
                cdnskey: lines(&signals.cdnskey),
                csync: signals.csync.as_ref().map(lines).unwrap_or_default(),
            },
            decisions: signals
                .decisions
                .iter()
                .map(|d| DecisionLine {
                    key_tag: d.key.as_ref().map(|k| k.tag),
                    verdict: d.verdict.to_string(),
                    why: d.why.clone(),
                })
                .collect(),
            published: self.publications(&child, &signals),
            parent: parent_side(&child, view, now),
            notify: Vec::new(),
            parent_check: None,
            next_event: next_event(&input, &child, &signals, view, now),
            error_reports: self.error_reports.about(&name),
            at: now.to_string(),
        })
    }

    /// Where `child`'s signals are published, against what `signals` want.
    fn publications(&self, child: &ChildZone, signals: &ZoneSignals) -> Vec<Publication> {
        let mut out = Vec::new();
        for zone in self.zones.values() {
            let ns_host = zone.config.ns_host();
            let Ok(owner) = dsboot_name(&child.name, &ns_host) else {
                continue;
            };
            let wanted = content::dsboot_rrsets(signals, &ns_host).map(|(_, r)| r);
            let node = zone.store.node(&canonical_wire(&owner));
            let current = match (node, &wanted) {
                (None, None) => true,
                (Some(node), Some(rrsets)) => node.holds(rrsets),
                _ => false,
            };
            out.push(Publication {
                kind: "dsboot",
                owner: display(&owner),
                zone: display(zone.store.apex()),
                by: "served",
                rtype: None,
                present: Some(node.is_some()),
                current: Some(current),
                serial: Some(zone.store.serial()),
            });
        }
        for (apex, ns_host) in self.published_signaling() {
            let Ok(owner) = dsboot_name(&child.name, &ns_host) else {
                continue;
            };
            let wanted = content::dsboot_rrsets(signals, &ns_host).map(|(_, r)| r);
            let old = self
                .sidecar
                .published_state
                .get(&apex)
                .and_then(|owners| owners.get(&owner));
            out.push(Publication {
                kind: "dsboot",
                owner: display(&owner),
                zone: display(&apex),
                by: "hosted",
                rtype: None,
                present: Some(old.is_some_and(Option::is_some)),
                current: Some(old.map_or(wanted.is_none(), |old| *old == wanted)),
                serial: None,
            });
        }
        let apex = plan::apex_wanted(
            &child.name,
            &child.publish_types,
            &signals.cds,
            &signals.cdnskey,
            signals.csync.as_ref(),
        );
        if apex.is_empty() {
            out.push(self.apex_elsewhere(child, signals));
        }
        for wanted in apex {
            let present = self
                .sidecar
                .apex_state
                .get(&(wanted.owner.clone(), wanted.rtype))
                .is_some_and(|old| !old.is_empty());
            out.push(Publication {
                kind: "apex",
                owner: display(&wanted.owner),
                zone: display(&child.name),
                by: "update",
                rtype: Some(wanted.rtype.to_string()),
                present: Some(present),
                current: Some(!self.apex_differs(&wanted)),
                serial: None,
            });
        }
        out
    }
}

impl Daemon {
    /// The child's apex when signalbox does not write it: a followed
    /// signer's, compared with the signals, or the operator's, unseen.
    fn apex_elsewhere(&self, child: &ChildZone, signals: &ZoneSignals) -> Publication {
        let followed = self.sidecar.followed.get(&child.name);
        let (by, present, current) = match followed {
            Some(apex) => {
                let mut cds: Vec<Vec<u8>> = apex.cds.iter().map(|d| d.to_wire()).collect();
                let mut cdnskey: Vec<Vec<u8>> = apex.cdnskey.iter().map(|k| k.to_wire()).collect();
                let mut want_cds = signals.cds.wire_rdatas();
                let mut want_cdnskey = signals.cdnskey.wire_rdatas();
                for set in [&mut cds, &mut cdnskey, &mut want_cds, &mut want_cdnskey] {
                    set.sort();
                }
                (
                    "followed",
                    Some(!cds.is_empty() || !cdnskey.is_empty()),
                    Some(cds == want_cds && cdnskey == want_cdnskey),
                )
            }
            None => ("operator", None, None),
        };
        Publication {
            kind: "apex",
            owner: display(&child.name),
            zone: display(&child.name),
            by,
            rtype: Some("CDS/CDNSKEY".into()),
            present,
            current,
            serial: followed.map(|apex| apex.serial),
        }
    }
}

/// The zone file lines of `set`.
fn lines(set: &RecordSet) -> Vec<String> {
    set.records().map(|r| r.to_string()).collect()
}

fn keys(
    child: &ChildZone,
    view: Option<&policy::ParentView>,
    wanted: &[(u16, u8)],
    now: Timestamp,
) -> Vec<KeyStory> {
    child
        .keys
        .iter()
        .map(|key| KeyStory {
            tag: key.tag,
            algorithm: key.dnskey.algorithm,
            role: key.role().to_string(),
            phase: Lifecycle::of(key, now, view).phase(),
            ds_state: key.state.as_ref().and_then(|s| s.ds).map(|s| s.as_str()),
            in_signals: wanted.contains(&(key.tag, key.dnskey.algorithm)),
            timing: key
                .timing
                .iter()
                .map(|(event, at)| (event.key_file_tag(), at.to_string()))
                .collect(),
            file: key.files.key_path(),
        })
        .collect()
}

fn parent_side(child: &ChildZone, view: Option<&policy::ParentView>, now: Timestamp) -> ParentSide {
    match view {
        Some(view) => ParentSide {
            source: "observer",
            observed_at: view.observed_at.map(|t| t.to_string()),
            ds: view.ds.iter().map(crate::dns::Ds::short_form).collect(),
            ns: view.ns.as_ref().map(|ns| ns.iter().map(display).collect()),
        },
        None => ParentSide {
            source: "key metadata",
            observed_at: None,
            ds: policy::keys_at_parent(&child.keys, None, now)
                .iter()
                .map(|(tag, alg)| format!("{tag}/{alg}"))
                .collect(),
            ns: None,
        },
    }
}

/// The next timing event of `child`'s keys and what the policy says then.
fn next_event(
    input: &ZoneInput<'_>,
    child: &ChildZone,
    now_signals: &ZoneSignals,
    view: Option<&policy::ParentView>,
    now: Timestamp,
) -> Option<NextEvent> {
    let at = policy::next_event(&child.keys, now)?;
    let events: Vec<String> = child
        .keys
        .iter()
        .flat_map(|key| {
            key.timing
                .iter()
                .filter(move |(_, t)| *t == at)
                .map(move |(event, _)| {
                    format!("{} {} {}", key.role(), key.tag, event.key_file_tag())
                })
        })
        .collect();
    let then = policy::compute(input, at);
    let changes = then.cds != now_signals.cds
        || then.cdnskey != now_signals.cdnskey
        || then.csync != now_signals.csync;
    let keys_then: Vec<u16> = policy::signalled_keys(&then)
        .unwrap_or_default()
        .into_iter()
        .map(|(tag, _)| tag)
        .collect();
    let state_then = policy::delegation_state(&then, &child.keys, view, at).as_str();
    let outcome = if !changes {
        "the signals stay as they are".to_string()
    } else if policy::signalled_keys(&then).is_none() {
        "the delete signal is published".to_string()
    } else if keys_then.is_empty() {
        "the CDS/CDNSKEY are withdrawn".to_string()
    } else {
        let tags: Vec<String> = keys_then.iter().map(u16::to_string).collect();
        format!("the CDS/CDNSKEY name {}", tags.join(", "))
    };
    Some(NextEvent {
        at: at.to_string(),
        summary: format!(
            "{} at {at}, then {outcome} ({state_then})",
            events.join(", ")
        ),
        events,
        signals_change: changes,
        signalled_keys_then: keys_then,
        state_then,
    })
}

impl Explanation {
    /// Adds the parent agent's answer about the child's NOTIFYs.
    pub fn with_notify(mut self, answer: ChildNotifies) -> Self {
        self.parent_check = answer.check.map(|c| ParentCheckStory {
            time: c.time.to_string(),
            before: c.kind.rtype().to_string(),
            verdict: c.verdict,
        });
        self.notify = answer
            .states
            .into_iter()
            .map(|s| NotifyStory {
                qtype: s.kind.rtype().to_string(),
                owed_since: s.owed_since.map(|t| t.to_string()),
                waiting_for_agreement: s.waiting_for_agreement,
                waiting_for_acceptance: s.waiting_for_acceptance,
                held: s.held,
                attempts: s.attempts,
                last_sent: s.last.map(|l| SentStory {
                    time: l.time.to_string(),
                    target: l.target,
                    result: l.result,
                }),
            })
            .collect();
        self
    }

    /// `explain --json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
