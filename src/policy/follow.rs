//! Sidecar mode: what the signer serves at the child's apex is a fact.
//!
//! RFC 9615 §2 wants the `_dsboot` RRsets byte-identical to the apex
//! CDS/CDNSKEY, and beside Knot the apex CDS belong to Knot (docs/INTEROP.md:
//! Knot keeps its keys in its own database and drops CDS sent by UPDATE).
//! So a followed zone's signals are copies of what its signer serves. With
//! a key directory as well, signalbox computes its own set too and, when
//! the two disagree, reports it and publishes nothing new: it never
//! publishes a guess.

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use super::{Decision, Verdict};
use crate::dns::{Dnskey, Ds, Rdata, RecordSet, name::display};

/// The signer's apex as the follower last read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedApex {
    /// Where it was read (for messages).
    pub primary: String,
    /// SOA serial of that version.
    pub serial: u32,
    /// The first serial with this NS set: what CSYNC names (RFC 7477 §2.1:
    /// the version holding the data to copy). It does not follow the
    /// serial bumps signalbox's own UPDATEs cause, so a published CSYNC
    /// does not chase itself.
    pub ns_serial: u32,
    /// Apex CDS RRset and its TTL.
    pub cds: Vec<Ds>,
    /// TTL of the CDS RRset.
    pub cds_ttl: u32,
    /// Apex CDNSKEY RRset.
    pub cdnskey: Vec<Dnskey>,
    /// TTL of the CDNSKEY RRset.
    pub cdnskey_ttl: u32,
    /// Apex NS RRset.
    pub ns: Vec<Name>,
    /// Apex DNSKEY RRset.
    pub dnskeys: Vec<Dnskey>,
    /// When it was read.
    pub read_at: Timestamp,
}

/// Why a followed zone's signer apex cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    /// The signer serves other CDS/CDNSKEY than the key directory gives.
    #[error(
        "the signer {primary} serves {signer_cds} CDS / {signer_cdnskey} CDNSKEY at serial {serial}, \
         the key directory gives {own_cds} / {own_cdnskey}: nothing new is published until they agree \
         (signalbox never publishes a guess)"
    )]
    Disagree {
        /// The signer, as configured.
        primary: String,
        /// The SOA serial read there.
        serial: u32,
        /// CDS records the signer serves.
        signer_cds: usize,
        /// CDNSKEY records the signer serves.
        signer_cdnskey: usize,
        /// CDS records the key directory gives.
        own_cds: usize,
        /// CDNSKEY records the key directory gives.
        own_cdnskey: usize,
    },
}

/// Sorted wire RDATA of a record set, for comparing.
fn wire(set: &RecordSet) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = set.rdatas().iter().map(Rdata::to_wire).collect();
    out.sort();
    out
}

/// The apex CDS and CDNSKEY to publish for a followed zone: the signer's
/// (`own` is what the key directory gives, `None` without keys). Returns
/// them, or why nothing new may be published.
pub fn resolve(
    zone: &Name,
    followed: &FollowedApex,
    own: Option<(&RecordSet, &RecordSet)>,
    decisions: &mut Vec<Decision>,
) -> Result<(RecordSet, RecordSet), FollowError> {
    let cds = RecordSet::new(
        zone.clone(),
        RecordType::CDS,
        followed.cds_ttl,
        followed.cds.iter().cloned().map(Rdata::Cds).collect(),
    );
    let cdnskey = RecordSet::new(
        zone.clone(),
        RecordType::CDNSKEY,
        followed.cdnskey_ttl,
        followed
            .cdnskey
            .iter()
            .cloned()
            .map(Rdata::Cdnskey)
            .collect(),
    );
    if let Some((own_cds, own_cdnskey)) = own {
        let same = wire(own_cds) == wire(&cds) && wire(own_cdnskey) == wire(&cdnskey);
        if !same {
            let why = FollowError::Disagree {
                primary: followed.primary.clone(),
                serial: followed.serial,
                signer_cds: cds.rdatas().len(),
                signer_cdnskey: cdnskey.rdatas().len(),
                own_cds: own_cds.rdatas().len(),
                own_cdnskey: own_cdnskey.rdatas().len(),
            };
            decisions.push(Decision::zone(zone, Verdict::Error, why.to_string()));
            return Err(why);
        }
        decisions.push(Decision::zone(
            zone,
            Verdict::Note,
            format!(
                "the signer {} (serial {}) serves exactly what the key directory gives",
                followed.primary, followed.serial
            ),
        ));
    } else {
        decisions.push(Decision::zone(
            zone,
            Verdict::Note,
            format!(
                "following the signer {} (serial {}): {} CDS and {} CDNSKEY copied byte for byte \
                 (RFC 9615 §2){}",
                followed.primary,
                followed.serial,
                cds.rdatas().len(),
                cdnskey.rdatas().len(),
                if followed.ns.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; NS {}",
                        followed
                            .ns
                            .iter()
                            .map(display)
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                }
            ),
        ));
    }
    Ok((cds, cdnskey))
}
