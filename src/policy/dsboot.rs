//! RFC 9615 §2 signals: `_dsboot.<child>._signal.<ns>` for every NS host not
//! at or below the child, holding byte-identical copies of the apex CDS and
//! CDNSKEY RRsets.

use super::{Decision, Dsboot, Verdict, ZoneInput};
use crate::dns::{
    RecordSet,
    name::{display, dsboot_name, is_at_or_below},
};

/// Builds the signals for every usable NS; pushes a decision per NS.
pub fn signals(
    input: &ZoneInput<'_>,
    cds: &RecordSet,
    cdnskey: &RecordSet,
    decisions: &mut Vec<Decision>,
) -> Vec<Dsboot> {
    let zone = input.zone;
    let mut note =
        |verdict: Verdict, why: String| decisions.push(Decision::zone(zone, verdict, why));
    let nameservers = &input.settings.nameservers;
    if nameservers.is_empty() {
        note(
            Verdict::Note,
            "no nameservers configured: no _dsboot signals".into(),
        );
        return Vec::new();
    }
    // RFC 9615 §5.1: once the parent holds a DS for one of the child's keys
    // the bootstrap is done and the signals should go.
    if let Some(parent) = input.parent {
        let acted = input.keys.iter().find(|k| parent.has_ds_for(k));
        match acted {
            Some(key) if !input.settings.keep_signals => {
                decisions.push(Decision::zone(
                    zone,
                    Verdict::Note,
                    format!(
                        "the parent has a DS for key {}: bootstrapping is done, _dsboot signals \
                         withdrawn (RFC 9615 §5.1; keep_signals = true keeps them)",
                        key.tag
                    ),
                ));
                return Vec::new();
            }
            Some(key) => decisions.push(Decision::zone(
                zone,
                Verdict::Note,
                format!(
                    "the parent has a DS for key {}; keep_signals = true keeps the _dsboot signals",
                    key.tag
                ),
            )),
            None => {}
        }
    }
    let mut note =
        |verdict: Verdict, why: String| decisions.push(Decision::zone(zone, verdict, why));
    let mut out = Vec::new();
    for ns in nameservers {
        if is_at_or_below(ns, zone) {
            note(
                Verdict::Note,
                format!(
                    "NS {} is in the child zone: no signal (parents ignore in-domain signalling names, RFC 9615 §4.1)",
                    display(ns)
                ),
            );
            continue;
        }
        let owner = match dsboot_name(zone, ns) {
            Ok(owner) => owner,
            Err(e) => {
                note(
                    Verdict::Error,
                    format!("NS {} unusable for bootstrapping: {e}", display(ns)),
                );
                continue;
            }
        };
        out.push(Dsboot {
            ns: ns.clone(),
            cds: cds.with_owner(owner.clone()),
            cdnskey: cdnskey.with_owner(owner.clone()),
            owner,
        });
    }
    if !out.is_empty() && cds.is_empty() && cdnskey.is_empty() {
        note(
            Verdict::Note,
            "no CDS/CDNSKEY at the apex, so none at the signalling names either".into(),
        );
    } else if out.is_empty() && nameservers.iter().all(|ns| is_at_or_below(ns, zone)) {
        note(
            Verdict::Warning,
            "every NS is in the child zone: RFC 9615 bootstrapping is impossible \
             (add an out-of-domain NS for the bootstrap)"
                .into(),
        );
    }
    out
}
