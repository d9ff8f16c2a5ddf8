//! The signatures a parent checks (RFC 7344 §4.1, RFC 4035 §5, RFC 6840
//! §5.11): over the DNSKEY, CDS and CDNSKEY RRsets of every server's
//! answer, by which keys, and whether the DS RRset asked for keeps the
//! delegation working.

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use super::{Findings, Parsed};
use crate::{
    check::{ApexSets, Facts, Signed},
    dns::{Dnskey, Ds},
    dnssec::{ds_points_to as points_to, signer::signing_keys},
};

/// The keys of the DNSKEY RRset whose signature over that RRset verifies
/// now, as `sets` serves it.
pub(super) fn dnskey_signers<'a>(
    child: &Name,
    sets: &ApexSets,
    keys: &'a [Dnskey],
    now: Timestamp,
) -> Vec<&'a Dnskey> {
    signers(child, RecordType::DNSKEY, &sets.dnskey, keys, now)
}

/// The DNSKEYs of `keys` whose signature over `set` verifies now.
pub(super) fn signers<'a>(
    child: &Name,
    rtype: RecordType,
    set: &Signed,
    keys: &'a [Dnskey],
    now: Timestamp,
) -> Vec<&'a Dnskey> {
    signing_keys(child, rtype, &set.rdatas, &set.rrsigs, keys, now)
}

/// [`check_signatures`] for every server's answer: their RDATA agree, but
/// each serves its own signatures (a stale secondary's may have expired).
/// What the reference server shows is said once; what another server adds
/// is said with its name.
pub(super) fn signatures_everywhere(
    facts: &Facts,
    reference: &ApexSets,
    parsed: &Parsed,
    reference_signing: &[&Dnskey],
    parent_ds: &[Ds],
    now: Timestamp,
    found: &mut Findings,
) {
    check_signatures(
        facts,
        reference,
        parsed,
        reference_signing,
        parent_ds,
        now,
        found,
    );
    for server in &facts.servers {
        let Ok(sets) = &server.sets else {
            continue;
        };
        if std::ptr::eq(sets, reference) {
            continue;
        }
        let mut own = Findings::default();
        let signing = dnskey_signers(&facts.child, sets, &parsed.dnskeys, now);
        check_signatures(facts, sets, parsed, &signing, parent_ds, now, &mut own);
        for f in own.0 {
            if !found.0.iter().any(|known| known.message == f.message) {
                found.add(
                    f.severity,
                    f.rule,
                    format!("{}: {}", server.who(), f.message),
                );
            }
        }
    }
}

/// RFC 7344 §4.1: the CDS/CDNSKEY RRsets must be signed by a key of the
/// DNSKEY RRset that the current DS points to (for a first DS, by one of
/// the zone's keys); some registries refuse a CDS signed by a ZSK only.
/// `dnskey_signers`: the keys whose signature over this server's DNSKEY
/// RRset verifies ([`dnskey_signers`]).
pub(super) fn check_signatures(
    facts: &Facts,
    sets: &ApexSets,
    parsed: &Parsed,
    dnskey_signers: &[&Dnskey],
    parent_ds: &[Ds],
    now: Timestamp,
    found: &mut Findings,
) {
    const RULE: &str = "RFC 7344 §4.1";
    let child = &facts.child;
    if dnskey_signers.is_empty() {
        found.error(
            RULE,
            "no valid signature over the DNSKEY RRset verifies with one of its keys".into(),
        );
    } else if !parent_ds.is_empty()
        && !dnskey_signers
            .iter()
            .any(|k| points_to(child, parent_ds, k))
    {
        found.error(
            "RFC 4035 §5",
            "the DNSKEY RRset is not signed by a key the parent's DS points to: validators find the zone bogus, and the parent cannot authenticate the CDS".into(),
        );
    }
    for (rtype, set) in [
        (RecordType::CDS, &sets.cds),
        (RecordType::CDNSKEY, &sets.cdnskey),
    ] {
        if set.rdatas.is_empty() {
            continue;
        }
        let by = signers(child, rtype, set, &parsed.dnskeys, now);
        if by.is_empty() {
            found.error(
                RULE,
                format!("no valid signature over the {rtype} RRset verifies with a DNSKEY"),
            );
            continue;
        }
        if !parent_ds.is_empty() && !by.iter().any(|k| points_to(child, parent_ds, k)) {
            found.error(
                RULE,
                format!(
                    "the {rtype} RRset is not signed by a key the parent's current DS points to"
                ),
            );
        }
        if !by.iter().any(|k| k.is_sep()) {
            found.warning(
                RULE,
                format!(
                    "the {rtype} RRset is signed by ZSKs only (no SEP flag): some registries refuse that; sign it with the KSK"
                ),
            );
        }
    }
}

/// RFC 7344 §4.1: the new DS RRset must not break the delegation: some DS
/// must match a key that signs the DNSKEY RRset, and every algorithm of the
/// DS RRset must sign it (RFC 6840 §5.11). A CDS for a key that is not
/// published is allowed (a standby key: RFC 8078 §3.1) but said.
pub(super) fn check_continuity(
    child: &Name,
    parsed: &Parsed,
    signing: &[&Dnskey],
    wanted: &[Ds],
    found: &mut Findings,
) {
    if !signing.iter().any(|k| points_to(child, wanted, k)) {
        found.error(
            "RFC 7344 §4.1",
            "no DS the parent would publish matches a key that signs the DNSKEY RRset: the delegation would break".into(),
        );
    }
    for d in wanted {
        if !parsed
            .dnskeys
            .iter()
            .any(|k| points_to(child, std::slice::from_ref(d), k))
        {
            found.warning(
                "RFC 8078 §3.1",
                format!(
                    "CDS {} points to no key in the DNSKEY RRset (a standby key?)",
                    d.short_form()
                ),
            );
        }
        if !signing.iter().any(|k| k.algorithm == d.algorithm) {
            found.error(
                "RFC 6840 §5.11",
                format!(
                    "CDS {}: no key of algorithm {} signs the DNSKEY RRset",
                    d.short_form(),
                    d.algorithm
                ),
            );
        }
    }
}
