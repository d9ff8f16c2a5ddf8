//! The policy: for one child zone at time `t`, given its keys, its settings
//! and (later) what the parent publishes, which CDS/CDNSKEY/CSYNC records and
//! RFC 9615 signals should exist, with a reason for every decision.
//!
//! Pure: no clock, no files, no sockets. Time is a parameter, so tests drive
//! whole rollovers with a fake clock.
//!
//! - CDS/CDNSKEY (RFC 7344 §4, RFC 8078): the complete DS set the child wants;
//!   both types always describe the same keys; the delete signal stands alone.
//! - CSYNC (RFC 7477): one record at the apex, NS plus A/AAAA only when some
//!   NS is in bailiwick.
//! - `_dsboot.<child>._signal.<ns>` (RFC 9615 §2): RRsets byte-identical to
//!   the apex ones, for every NS not at or below the child.
//!
//! Safety: the policy never invents DS intent. It never lists a key whose
//! DNSKEY is not published, never publishes other providers' keys without one
//! of ours, and never truncates a name.

mod csync;
mod delegation;
mod dsboot;
mod follow;
mod lifecycle;
mod select;

use std::{fmt, sync::Arc};

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

pub use delegation::{DelegationState, delegation_state, keys_at_parent, signalled_keys};
pub use follow::FollowedApex;
pub use lifecycle::{Lifecycle, next_event};

use crate::{
    config::ChildSettings,
    dns::{Ds, Rdata, RecordSet, name::display},
    dnssec,
    keys::{Key, Role},
};

/// TTL of CDS/CDNSKEY when neither `signal_ttl` nor a DNSKEY TTL is known.
pub const DEFAULT_SIGNAL_TTL: u32 = 3600;

/// What the parent was seen to publish for the child (the parent observer
/// fills this in; until then it is absent and key metadata stands in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentView {
    /// The DS RRset at the parent.
    pub ds: Vec<Ds>,
    /// The NS RRset of the delegation, when it was read.
    pub ns: Option<Vec<Name>>,
    /// When it was observed.
    pub observed_at: Option<Timestamp>,
}

/// Everything the policy needs about one child zone.
#[derive(Debug, Clone, Copy)]
pub struct ZoneInput<'a> {
    /// The child zone.
    pub zone: &'a Name,
    /// Its resolved settings.
    pub settings: &'a ChildSettings,
    /// Its keys (readable ones; a zone with unreadable keys is held by the caller).
    pub keys: &'a [Arc<Key>],
    /// The parent's DS, when observed.
    pub parent: Option<&'a ParentView>,
    /// The zone's current SOA serial, for CSYNC.
    pub soa_serial: Option<u32>,
    /// What the zone's signer serves at the apex (sidecar mode).
    pub followed: Option<&'a FollowedApex>,
    /// The other providers' KSKs as fetched and validated (`foreign_from`,
    /// [`crate::providers`]), joined like `foreign_keys`.
    pub foreign: &'a [crate::dns::Dnskey],
}

/// In, out, or neither: the verdict of one decision line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The key is in the CDS/CDNSKEY set.
    In,
    /// The key is not.
    Out,
    /// A note about the zone.
    Note,
    /// Something the operator should fix; nothing unsafe is published.
    Warning,
    /// Something that stops a signal from being published.
    Error,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::In => "in",
            Verdict::Out => "out",
            Verdict::Note => "note",
            Verdict::Warning => "warning",
            Verdict::Error => "error",
        })
    }
}

/// Which key a decision is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    /// Key tag.
    pub tag: u16,
    /// Algorithm number.
    pub algorithm: u8,
    /// Role; `None` for a foreign key.
    pub role: Option<Role>,
    /// Where the key stands (phase, and DSState when known).
    pub state: String,
}

/// One decision with its reason: a `;` line in `signals`, a log event in the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The zone.
    pub zone: Name,
    /// The key concerned, if any.
    pub key: Option<KeyRef>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why.
    pub why: String,
}

impl Decision {
    /// A decision about the zone as a whole.
    pub fn zone(zone: &Name, verdict: Verdict, why: String) -> Self {
        Decision {
            zone: zone.clone(),
            key: None,
            verdict,
            why,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", display(&self.zone))?;
        if let Some(key) = &self.key {
            let alg = dnssec::Algorithm::from_number(key.algorithm)
                .map_or_else(|| key.algorithm.to_string(), |a| a.to_string());
            match key.role {
                Some(role) => write!(f, " key {} alg {alg} {role} ({})", key.tag, key.state)?,
                None => write!(f, " foreign key {} alg {alg} ({})", key.tag, key.state)?,
            }
        }
        write!(f, ": {}: {}", self.verdict, self.why)
    }
}

/// One RFC 9615 signalling name and its RRsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsboot {
    /// The NS host whose signalling domain holds it.
    pub ns: Name,
    /// `_dsboot.<child>._signal.<ns>`.
    pub owner: Name,
    /// Copy of the apex CDS RRset (empty when the apex has none).
    pub cds: RecordSet,
    /// Copy of the apex CDNSKEY RRset (empty when the apex has none).
    pub cdnskey: RecordSet,
}

/// What one child zone should publish, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSignals {
    /// The child zone.
    pub zone: Name,
    /// Apex CDS RRset (empty = publish none).
    pub cds: RecordSet,
    /// Apex CDNSKEY RRset (empty = publish none).
    pub cdnskey: RecordSet,
    /// Apex CSYNC RRset, when configured and a serial is known.
    pub csync: Option<RecordSet>,
    /// The RFC 9615 signals, one per usable NS host.
    pub dsboot: Vec<Dsboot>,
    /// Every decision, in order.
    pub decisions: Vec<Decision>,
    /// Why nothing new may be published for the zone (its signals stay as
    /// they are), e.g. its signer and its key directory disagree.
    pub hold: Option<String>,
}

impl ZoneSignals {
    /// True when some decision is an error.
    pub fn has_errors(&self) -> bool {
        self.decisions.iter().any(|d| d.verdict == Verdict::Error)
    }

    /// All RRsets, apex first then signals, skipping empty ones.
    pub fn rrsets(&self) -> impl Iterator<Item = &RecordSet> {
        [&self.cds, &self.cdnskey]
            .into_iter()
            .chain(self.csync.iter())
            .chain(self.dsboot.iter().flat_map(|d| [&d.cds, &d.cdnskey]))
            .filter(|set| !set.is_empty())
    }
}

impl ZoneSignals {
    /// Emits one `tracing` event per decision, with the zone and key tag as
    /// fields (the daemon's log; the CLI prints the same as `;` lines).
    pub fn trace(&self) {
        let debug = tracing::enabled!(tracing::Level::DEBUG);
        for d in &self.decisions {
            if !debug && !matches!(d.verdict, Verdict::Error | Verdict::Warning) {
                continue;
            }
            let zone = display(&d.zone);
            let tag = d.key.as_ref().map(|k| k.tag);
            let role = d.key.as_ref().and_then(|k| k.role).map(|r| r.to_string());
            match d.verdict {
                Verdict::Error => {
                    tracing::error!(zone, key_tag = tag, role, verdict = %d.verdict, "{}", d.why)
                }
                Verdict::Warning => {
                    tracing::warn!(zone, key_tag = tag, role, verdict = %d.verdict, "{}", d.why)
                }
                _ => tracing::debug!(zone, key_tag = tag, role, verdict = %d.verdict, "{}", d.why),
            }
        }
    }
}

/// The zone's signal TTL: `signal_ttl`, else the smallest TTL on its DNSKEY
/// lines, else 3600 (BIND uses the DNSKEY TTL).
pub fn signal_ttl(settings: &ChildSettings, keys: &[Arc<Key>]) -> (u32, &'static str) {
    if let Some(ttl) = settings.signal_ttl {
        return (ttl, "signal_ttl");
    }
    match keys.iter().filter_map(|k| k.ttl).min() {
        Some(ttl) => (ttl, "smallest DNSKEY TTL in the .key files"),
        None => (DEFAULT_SIGNAL_TTL, "default; no TTL in the .key files"),
    }
}

/// Computes what `input.zone` should publish at `now`.
pub fn compute(input: &ZoneInput<'_>, now: Timestamp) -> ZoneSignals {
    // A followed zone without `nameservers` uses its signer's NS set, and
    // the signer's serial for CSYNC.
    let adjusted;
    let followed_input;
    let input = match input.followed {
        Some(f) => {
            let settings = if input.settings.nameservers.is_empty() && !f.ns.is_empty() {
                adjusted = ChildSettings {
                    nameservers: f.ns.clone(),
                    ..input.settings.clone()
                };
                &adjusted
            } else {
                input.settings
            };
            followed_input = ZoneInput {
                settings,
                soa_serial: input.soa_serial.or(Some(f.ns_serial)),
                ..*input
            };
            &followed_input
        }
        None => input,
    };
    let zone = input.zone.clone();
    let mut decisions = Vec::new();
    let (ttl, ttl_source) = signal_ttl(input.settings, input.keys);
    let selection = select::select(input, now, &mut decisions);
    let (cds, cdnskey) = apex_sets(input, &selection, ttl);
    explain_sets(input, &selection, &cds, (ttl, ttl_source), &mut decisions);
    let mut hold = None;
    let (cds, cdnskey) = match input.followed {
        None => (cds, cdnskey),
        Some(f) => {
            let own = (!input.keys.is_empty()).then_some((&cds, &cdnskey));
            if own.is_none() {
                // Without keys the selection above only explained an empty
                // key set; the signer's apex is the whole story.
                decisions.clear();
            }
            match follow::resolve(&zone, f, own, &mut decisions) {
                Ok(sets) => sets,
                Err(why) => {
                    hold = Some(why.to_string());
                    (cds, cdnskey)
                }
            }
        }
    };
    let csync = csync::csync(input, ttl, &mut decisions);
    let dsboot = dsboot::signals(input, &cds, &cdnskey, &mut decisions);
    ZoneSignals {
        zone,
        cds,
        cdnskey,
        csync,
        dsboot,
        decisions,
        hold,
    }
}

/// The apex CDS and CDNSKEY RRsets for `selection`: one CDS per key and
/// digest type (RFC 7344 §4), the CDNSKEYs unless `cdnskey = false`, or the
/// RFC 8078 §4 delete signal.
fn apex_sets(
    input: &ZoneInput<'_>,
    selection: &select::Selection,
    ttl: u32,
) -> (RecordSet, RecordSet) {
    let zone = input.zone;
    let (cds, cdnskey) = match selection {
        select::Selection::Delete => (
            vec![Rdata::Cds(Ds::delete())],
            vec![Rdata::Cdnskey(crate::dns::Dnskey::delete())],
        ),
        select::Selection::Keys(keys) => (
            keys.iter()
                .flat_map(|key| {
                    input
                        .settings
                        .digests
                        .iter()
                        .map(|d| Rdata::Cds(dnssec::ds(zone, key, *d)))
                })
                .collect(),
            keys.iter().map(|key| Rdata::Cdnskey(key.clone())).collect(),
        ),
    };
    let cds = RecordSet::new(zone.clone(), RecordType::CDS, ttl, cds);
    let cdnskey = RecordSet::new(
        zone.clone(),
        RecordType::CDNSKEY,
        ttl,
        if input.settings.cdnskey {
            cdnskey
        } else {
            Vec::new()
        },
    );
    (cds, cdnskey)
}

/// The decision that says what the apex sets hold and their TTL.
fn explain_sets(
    input: &ZoneInput<'_>,
    selection: &select::Selection,
    cds: &RecordSet,
    (ttl, ttl_source): (u32, &str),
    decisions: &mut Vec<Decision>,
) {
    let zone = input.zone;
    if matches!(selection, select::Selection::Delete) {
        decisions.push(Decision::zone(
            zone,
            Verdict::Note,
            format!("TTL {ttl} ({ttl_source})"),
        ));
    } else if !cds.is_empty() {
        let what = if input.settings.cdnskey {
            "CDS and CDNSKEY"
        } else {
            "CDS (cdnskey = false)"
        };
        let digests: Vec<&str> = input.settings.digests.iter().map(|d| d.name()).collect();
        decisions.push(Decision {
            zone: zone.clone(),
            key: None,
            verdict: Verdict::Note,
            why: format!(
                "{what}, digests {}, TTL {ttl} ({ttl_source})",
                digests.join(" ")
            ),
        });
    }
}

#[cfg(test)]
mod tests;
