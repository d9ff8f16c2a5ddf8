//! The parent's verdict from what was scanned: pure, so every rule is
//! unit-tested with made-up servers (`tests`), and the same code judges
//! what `signalbox check` and the daemon's NOTIFY job scan
//! (`crate::parent::scan`).

use std::collections::BTreeSet;

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use signatures::{check_continuity, dnskey_signers, signatures_everywhere, signers};

use super::{
    ApexSets, Facts, Finding, Outcome, ServerAnswer, Severity, Verdict,
    profile::{Profile, Reads},
};
use crate::{
    dns::{Dnskey, Ds, name::is_at_or_below},
    dnssec::{DigestType, ds, key_tag},
};

/// Collects findings.
#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, severity: Severity, rule: &'static str, message: String) {
        self.0.push(Finding {
            severity,
            message,
            rule,
            csync: false,
        });
    }

    /// An error about the CSYNC record only.
    fn csync_error(&mut self, rule: &'static str, message: String) {
        self.0.push(Finding {
            severity: Severity::Error,
            message,
            rule,
            csync: true,
        });
    }

    fn error(&mut self, rule: &'static str, message: String) {
        self.add(Severity::Error, rule, message);
    }

    fn warning(&mut self, rule: &'static str, message: String) {
        self.add(Severity::Warning, rule, message);
    }

    /// Errors that make the parent refuse the DS change (CSYNC's apart).
    fn has_errors(&self) -> bool {
        self.0
            .iter()
            .any(|f| f.severity == Severity::Error && !f.csync)
    }
}

/// The apex RRsets parsed.
struct Parsed {
    dnskeys: Vec<Dnskey>,
    cds: Vec<Ds>,
    cdnskeys: Vec<Dnskey>,
}

/// Judges `facts` as the parent of `profile` would at `now`.
pub fn evaluate(facts: &Facts, profile: &Profile, now: Timestamp) -> Verdict {
    let mut found = Findings::default();
    let asked: Vec<String> = facts.servers.iter().map(ServerAnswer::who).collect();
    let reference = consistent_answer(facts, &mut found);
    let parent_ds = match &facts.parent {
        Ok(side) => Some(side.ds.clone()),
        Err(e) => {
            found.error(
                "RFC 7344 §4.1",
                format!("the parent's DS RRset could not be read: {e}"),
            );
            None
        }
    };
    let mut authenticated = false;
    let mut outcome = Outcome::Refused;
    let mut csync_fate = None;
    if let Some(sets) = reference {
        let parsed = parse(sets, &mut found);
        let signing = dnskey_signers(&facts.child, sets, &parsed.dnskeys, now);
        csync_fate = csync(
            facts,
            sets,
            &parsed.dnskeys,
            parent_ds.as_deref(),
            now,
            &mut found,
        );
        let pending = !parsed.cds.is_empty() || !parsed.cdnskeys.is_empty();
        if !pending {
            outcome = Outcome::NothingToDo;
        } else if let Some(parent_ds) = &parent_ds {
            let wanted = wanted_ds(&facts.child, &parsed, profile, &mut found);
            // A delete with no DS changes nothing (an unsigned child may
            // well carry it): nothing to verify.
            if !(wanted == Wanted::Delete && parent_ds.is_empty()) {
                signatures_everywhere(facts, sets, &parsed, &signing, parent_ds, now, &mut found);
            }
            outcome = match wanted {
                Wanted::Delete if parent_ds.is_empty() => Outcome::NothingToDo,
                Wanted::Delete => Outcome::Delete,
                Wanted::Ds(wanted) => {
                    check_continuity(&facts.child, &parsed, &signing, &wanted, &mut found);
                    let mut current = parent_ds.clone();
                    current.sort();
                    if parent_ds.is_empty() {
                        authenticated = check_bootstrap(facts, sets, profile, &mut found);
                        Outcome::Bootstrap
                    } else if wanted == current {
                        Outcome::NothingToDo
                    } else {
                        Outcome::Rollover
                    }
                }
                Wanted::Invalid => Outcome::Refused,
            };
        }
    }
    if found.has_errors() {
        outcome = Outcome::Refused;
    }
    if let Some(problem) = found.0.iter().find(|f| f.csync) {
        csync_fate = Some(format!("refused: {} ({})", problem.message, problem.rule));
    }
    found.0.sort_by_key(|f| f.severity);
    let expected_by = expected_by(outcome, authenticated, profile, now);
    Verdict {
        child: facts.child.clone(),
        profile: profile.name,
        outcome,
        authenticated,
        summary: summary(outcome, authenticated, profile, &found),
        csync: csync_fate,
        expected_by,
        asked,
        findings: found.0,
    }
}

/// The RRsets every server serves, or `None` (with the findings) when a
/// server did not answer or two disagree: a parent aborts then (RFC 9975
/// §3: every address of every nameserver must give the same answer).
fn consistent_answer<'a>(facts: &'a Facts, found: &mut Findings) -> Option<&'a ApexSets> {
    const RULE: &str = "RFC 9975 §3";
    if facts.nameservers.is_empty() {
        found.error(RULE, "no nameservers are known for the child".into());
        return None;
    }
    for ns in &facts.nameservers {
        if !facts.servers.iter().any(|s| s.host == *ns) {
            let why = facts
                .unresolved
                .iter()
                .find(|(host, _)| host == ns)
                .map_or("no address to ask", |(_, e)| e.as_str());
            found.error(RULE, format!("{}: {why}", crate::dns::name::display(ns)));
        }
    }
    let mut reference: Option<(&ServerAnswer, &ApexSets)> = None;
    for server in &facts.servers {
        let sets = match &server.sets {
            Ok(sets) => sets,
            Err(e) => {
                found.error(RULE, format!("{}: {e}", server.who()));
                continue;
            }
        };
        let Some((first, first_sets)) = reference else {
            reference = Some((server, sets));
            continue;
        };
        for (rtype, a, b) in [
            ("DNSKEY", &first_sets.dnskey, &sets.dnskey),
            ("CDS", &first_sets.cds, &sets.cds),
            ("CDNSKEY", &first_sets.cdnskey, &sets.cdnskey),
            ("CSYNC", &first_sets.csync, &sets.csync),
        ] {
            if a.rdatas != b.rdatas {
                let message = format!(
                    "{} serves another {rtype} RRset than {} ({} against {} records)",
                    server.who(),
                    first.who(),
                    b.rdatas.len(),
                    a.rdatas.len()
                );
                // A CSYNC disagreement aborts the CSYNC processing, not
                // the DS scan.
                if rtype == "CSYNC" {
                    found.csync_error(RULE, message);
                } else {
                    found.error(RULE, message);
                }
            }
        }
    }
    if found.has_errors() {
        return None;
    }
    reference.map(|(_, sets)| sets)
}

fn parse(sets: &ApexSets, found: &mut Findings) -> Parsed {
    let mut parsed = Parsed {
        dnskeys: Vec::new(),
        cds: Vec::new(),
        cdnskeys: Vec::new(),
    };
    for rdata in &sets.dnskey.rdatas {
        match Dnskey::from_wire(rdata) {
            Ok(key) => parsed.dnskeys.push(key),
            Err(e) => found.error("RFC 4034 §2", format!("a DNSKEY does not parse: {e}")),
        }
    }
    for rdata in &sets.cds.rdatas {
        match Ds::from_wire(rdata) {
            Ok(ds) => parsed.cds.push(ds),
            Err(e) => found.error("RFC 7344 §3.1", format!("a CDS does not parse: {e}")),
        }
    }
    for rdata in &sets.cdnskey.rdatas {
        match Dnskey::from_wire(rdata) {
            Ok(key) => parsed.cdnskeys.push(key),
            Err(e) => found.error("RFC 7344 §3.2", format!("a CDNSKEY does not parse: {e}")),
        }
    }
    parsed
}

/// The DS RRset the CDS/CDNSKEY ask for.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// This DS RRset (sorted).
    Ds(Vec<Ds>),
    /// No DS (RFC 8078 §4).
    Delete,
    /// Nothing usable (the findings say why).
    Invalid,
}

/// Checks the CDS and CDNSKEY RRsets against each other and the profile,
/// and names the DS RRset they ask for.
fn wanted_ds(child: &Name, parsed: &Parsed, profile: &Profile, found: &mut Findings) -> Wanted {
    let (cds, cdnskeys) = (&parsed.cds, &parsed.cdnskeys);
    match profile.reads {
        Reads::Cds if cds.is_empty() => found.error(
            "RFC 7344 §4",
            format!(
                "{} reads CDS only, and only CDNSKEY is published",
                profile.parent
            ),
        ),
        Reads::Cdnskey if cdnskeys.is_empty() => found.error(
            "RFC 7344 §4",
            format!(
                "{} reads CDNSKEY only, and only CDS is published",
                profile.parent
            ),
        ),
        _ => {}
    }
    let cds_delete = cds.iter().any(Ds::is_delete);
    let cdnskey_delete = cdnskeys.iter().any(Dnskey::is_delete);
    if (cds_delete && cds.len() > 1) || (cdnskey_delete && cdnskeys.len() > 1) {
        found.error(
            "RFC 8078 §4",
            "the delete form is mixed with other records: it must be alone".into(),
        );
        return Wanted::Invalid;
    }
    let both = !cds.is_empty() && !cdnskeys.is_empty();
    if both && cds_delete != cdnskey_delete {
        found.error(
            "RFC 7344 §4",
            "CDS and CDNSKEY disagree: one is the delete form, the other is not".into(),
        );
        return Wanted::Invalid;
    }
    if cds_delete || cdnskey_delete {
        return Wanted::Delete;
    }
    for d in cds {
        if !profile.digest_types.contains(&d.digest_type) {
            found.error(
                "RFC 8624 §3.3",
                format!(
                    "CDS {}: digest type {} is not one {} accepts",
                    d.short_form(),
                    d.digest_type,
                    profile.parent
                ),
            );
        }
    }
    for (tag, algorithm) in cds
        .iter()
        .map(|d| (d.key_tag, d.algorithm))
        .chain(cdnskeys.iter().map(|k| (key_tag(k), k.algorithm)))
    {
        if !profile.algorithms.contains(&algorithm) {
            found.error(
                "RFC 8624 §3.1",
                format!(
                    "key {tag}: algorithm {algorithm} is not one {} accepts",
                    profile.parent
                ),
            );
        }
    }
    if let Some(max) = profile.max_cds {
        if cds.len() > max {
            found.error(
                "registry policy",
                format!(
                    "{} CDS records; {} takes at most {max}",
                    cds.len(),
                    profile.parent
                ),
            );
        }
    }
    if both {
        let by_cds: BTreeSet<(u16, u8)> = cds.iter().map(|d| (d.key_tag, d.algorithm)).collect();
        let by_cdnskey: BTreeSet<(u16, u8)> =
            cdnskeys.iter().map(|k| (key_tag(k), k.algorithm)).collect();
        if by_cds != by_cdnskey {
            found.error(
                "RFC 7344 §4, RFC 9975 §3",
                format!(
                    "CDS and CDNSKEY describe different keys (CDS {}, CDNSKEY {})",
                    keys_text(&by_cds),
                    keys_text(&by_cdnskey)
                ),
            );
        }
        for d in cds {
            let matching = cdnskeys.iter().any(|k| {
                DigestType::from_number(d.digest_type)
                    .is_some_and(|t| ds(child, k, t).digest == d.digest)
            });
            if by_cdnskey.contains(&(d.key_tag, d.algorithm)) && !matching {
                found.error(
                    "RFC 7344 §4",
                    format!("CDS {}: its digest matches no CDNSKEY", d.short_form()),
                );
            }
        }
    }
    let mut wanted: Vec<Ds> = if !cds.is_empty() && profile.reads != Reads::Cdnskey {
        cds.clone()
    } else {
        cdnskeys
            .iter()
            .map(|k| ds(child, k, DigestType::Sha256))
            .collect()
    };
    wanted.sort();
    wanted.dedup();
    Wanted::Ds(wanted)
}

fn keys_text(keys: &BTreeSet<(u16, u8)>) -> String {
    let list: Vec<String> = keys.iter().map(|(t, a)| format!("{t}/{a}")).collect();
    list.join(" ")
}

/// RFC 9615 §4.2: a first DS is authenticated when every nameserver outside
/// the child has a validated signal equal to the apex RRsets. Returns
/// whether it is; problems are errors where the profile needs the signals
/// (no unauthenticated bootstrap), warnings where it would wait instead.
fn check_bootstrap(
    facts: &Facts,
    sets: &ApexSets,
    profile: &Profile,
    found: &mut Findings,
) -> bool {
    const RULE: &str = "RFC 9615 §4.2";
    let needed = profile.unauthenticated_wait.is_none();
    let severity = if needed {
        Severity::Error
    } else {
        Severity::Warning
    };
    let outside: Vec<&Name> = facts
        .nameservers
        .iter()
        .filter(|ns| !is_at_or_below(ns, &facts.child))
        .collect();
    if outside.is_empty() {
        found.add(
            severity,
            RULE,
            "every nameserver is inside the child: the delegation cannot be bootstrapped by RFC 9615 signals".into(),
        );
        return false;
    }
    if !profile.authenticated_bootstrap {
        found.add(
            Severity::Note,
            RULE,
            format!("{} does not read RFC 9615 signals", profile.parent),
        );
        return false;
    }
    let mut ok = true;
    for ns in outside {
        let Some(signal) = facts.signals.iter().find(|s| s.ns == *ns) else {
            found.add(
                severity,
                RULE,
                format!(
                    "no signal was asked under {}",
                    crate::dns::name::display(ns)
                ),
            );
            ok = false;
            continue;
        };
        let owner = crate::dns::name::display(&signal.owner);
        match &signal.sets {
            Err(e) => {
                found.add(severity, RULE, format!("{owner}: {e}"));
                ok = false;
            }
            Ok(got) => {
                if !got.validated {
                    found.add(
                        severity,
                        RULE,
                        format!("{owner}: the answer did not validate (no AD)"),
                    );
                    ok = false;
                }
                for (rtype, there, apex) in [
                    ("CDS", &got.cds, &sets.cds.rdatas),
                    ("CDNSKEY", &got.cdnskey, &sets.cdnskey.rdatas),
                ] {
                    if there != apex {
                        found.add(
                            severity,
                            RULE,
                            format!(
                                "{owner}: its {rtype} RRset ({} records) is not the apex's ({})",
                                there.len(),
                                apex.len()
                            ),
                        );
                        ok = false;
                    }
                }
            }
        }
    }
    ok
}

/// RFC 7477: what the parent does with the CSYNC record, if any. It must
/// be signed with a key of the DNSKEY RRset (§3: the parent validates it),
/// and a parent acts on it only for a securely delegated child (§4.1);
/// whether it is the same on every server is checked with the rest (RFC
/// 9975 §3).
fn csync(
    facts: &Facts,
    sets: &ApexSets,
    keys: &[Dnskey],
    parent_ds: Option<&[Ds]>,
    now: Timestamp,
    found: &mut Findings,
) -> Option<String> {
    let rdata = sets.csync.rdatas.first()?;
    let Ok(record) = crate::dns::Csync::from_wire(rdata) else {
        found.csync_error("RFC 7477 §2.1", "the CSYNC record does not parse".into());
        return None;
    };
    if sets.csync.rdatas.len() > 1 {
        found.csync_error(
            "RFC 7477 §2",
            "more than one CSYNC record at the apex".into(),
        );
    }
    if signers(&facts.child, RecordType::CSYNC, &sets.csync, keys, now).is_empty() {
        found.csync_error(
            "RFC 7477 §3",
            "no valid signature over the CSYNC record verifies with a DNSKEY".into(),
        );
    }
    let types: Vec<String> = record.types.iter().map(ToString::to_string).collect();
    let when = if record.flags & crate::dns::Csync::FLAG_IMMEDIATE != 0 {
        "at once (immediate)".to_string()
    } else {
        format!("once serial {} is served", record.serial)
    };
    Some(match parent_ds {
        Some([]) => {
            found.warning(
                "RFC 7477 §4.1",
                "the child has no DS yet: a parent ignores its CSYNC until the delegation is secure".into(),
            );
            format!(
                "ignored until the DS is there (would copy {})",
                types.join(" ")
            )
        }
        _ => format!("the parent copies {} {when}", types.join(" ")),
    })
}

fn expected_by(
    outcome: Outcome,
    authenticated: bool,
    profile: &Profile,
    now: Timestamp,
) -> Option<Timestamp> {
    let wait = match outcome {
        Outcome::Bootstrap if !authenticated => profile.unauthenticated_wait,
        Outcome::Bootstrap | Outcome::Rollover | Outcome::Delete => None,
        Outcome::NothingToDo | Outcome::Refused => return None,
    };
    let total = wait.unwrap_or_default() + profile.scan_every.unwrap_or_default();
    if total.is_zero() {
        return None;
    }
    let span = jiff::SignedDuration::try_from(total).ok()?;
    now.checked_add(span).ok()
}

fn summary(outcome: Outcome, authenticated: bool, profile: &Profile, found: &Findings) -> String {
    match outcome {
        Outcome::Bootstrap if authenticated => {
            "bootstrap will be accepted: the first DS, authenticated by RFC 9615 signals".into()
        }
        Outcome::Bootstrap => match profile.unauthenticated_wait {
            Some(wait) => format!(
                "bootstrap will be accepted once the CDS has stayed unchanged for {} h (not authenticated)",
                wait.as_secs() / 3600
            ),
            None => "bootstrap will be accepted".into(),
        },
        Outcome::Rollover => "rollover will be accepted: the DS RRset is replaced".into(),
        Outcome::Delete => "delete will be accepted: the DS RRset is removed".into(),
        Outcome::NothingToDo => "nothing to do: the parent changes nothing".into(),
        Outcome::Refused => {
            let errors = found
                .0
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count();
            format!("refused: {errors} error(s) above")
        }
    }
}

mod signatures;
#[cfg(test)]
mod tests;
