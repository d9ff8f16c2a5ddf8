//! CSYNC (RFC 7477): one record at the child apex telling the parent to copy
//! the NS RRset, and A/AAAA glue only when some NS is in bailiwick (§3.2.1).

use hickory_proto::rr::{Name, RecordType};

use super::{Decision, Verdict, ZoneInput};
use crate::dns::{Csync, Rdata, RecordSet, name::is_at_or_below};

/// The CSYNC RRset, or `None` (with a decision saying why).
pub fn csync(input: &ZoneInput<'_>, ttl: u32, decisions: &mut Vec<Decision>) -> Option<RecordSet> {
    let settings = input.settings;
    if !settings.csync {
        return None;
    }
    let zone = input.zone;
    let mut note =
        |verdict: Verdict, why: String| decisions.push(Decision::zone(zone, verdict, why));
    let Some(serial) = input.soa_serial else {
        note(
            Verdict::Note,
            "csync = true but the zone's SOA serial is not known (pass --soa-serial): CSYNC left out".into(),
        );
        return None;
    };
    // RFC 7477 §2: the record asks the parent to copy; once the parent's NS
    // set equals ours it has done so and the record can go.
    if let Some(parent_ns) = input.parent.and_then(|p| p.ns.as_ref()) {
        let mut theirs: Vec<&Name> = parent_ns.iter().collect();
        let mut ours: Vec<&Name> = settings.nameservers.iter().collect();
        theirs.sort();
        theirs.dedup();
        ours.sort();
        ours.dedup();
        if !ours.is_empty() && theirs == ours {
            note(
                Verdict::Note,
                "the parent's NS set matches the configured nameservers: CSYNC withdrawn".into(),
            );
            return None;
        }
    }
    let mut types = vec![RecordType::NS];
    let in_bailiwick = settings
        .nameservers
        .iter()
        .any(|ns| is_at_or_below(ns, zone));
    if in_bailiwick {
        types.extend([RecordType::A, RecordType::AAAA]);
    }
    let flags = settings.csync_flags;
    let mut why = format!(
        "CSYNC serial {serial} flags {flags}: parent copies NS{}",
        if in_bailiwick {
            " and in-bailiwick A/AAAA glue"
        } else {
            " (no in-bailiwick NS, so no glue)"
        }
    );
    if flags & Csync::FLAG_IMMEDIATE == 0 {
        why.push_str("; without \"immediate\" the parent waits for out-of-band approval");
    }
    note(Verdict::Note, why);
    if input.keys.is_empty() {
        note(
            Verdict::Warning,
            "CSYNC needs a signed, securely delegated zone (RFC 7477 §3) and this zone has no keys"
                .into(),
        );
    }
    Some(RecordSet::new(
        zone.clone(),
        RecordType::CSYNC,
        ttl,
        vec![Rdata::Csync(Csync {
            serial,
            flags,
            types,
        })],
    ))
}
