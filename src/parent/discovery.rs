//! Finding where the parent wants NOTIFYs: DSYNC discovery (RFC 9859 §4.1).
//!
//! 1. Insert `_dsync` after the child's first label (`example.co.uk` ->
//!    `example._dsync.co.uk`) and ask for DSYNC.
//! 2. A positive answer ends the search.
//! 3. A negative answer names, in its SOA, the zone that answered. When that
//!    zone is an ancestor of the part right of `_dsync`, `_dsync` is
//!    re-inserted just above it (`subsub.sub.child._dsync.example`); else,
//!    when labels precede `_dsync`, `_dsync.<parent>` is the last try; else
//!    there is no endpoint.
//!
//! The zone that answered is the parent. From the DSYNC RRset one record per
//! (type, scheme NOTIFY) is taken; scheme 0 and port 0 are ignored; two
//! candidates for one pair are an error and nothing is sent (BIND does the
//! same).

use hickory_proto::rr::{Name, RecordType};

use super::resolver::{ResolveError, Resolver};
use crate::dns::{
    Dsync,
    name::{display, is_at_or_below},
    rdata::DSYNC_TYPE,
};

/// At most this many DSYNC queries per discovery (the algorithm needs 3).
const MAX_STEPS: usize = 4;

/// Where to send NOTIFYs for one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsyncTarget {
    /// CDS or CSYNC.
    pub rrtype: RecordType,
    /// Target host.
    pub host: Name,
    /// Port.
    pub port: u16,
    /// The DSYNC owner that named it.
    pub owner: Name,
}

/// What discovery found.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The child zone.
    pub child: Name,
    /// The parent zone (the zone that answered the last lookup).
    pub parent: Option<Name>,
    /// Each lookup and its answer, for the CLI and logs.
    pub steps: Vec<String>,
    /// The DSYNC RRset found (empty: none).
    pub records: Vec<(Name, Dsync)>,
}

/// Why there is no usable target.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// A lookup failed (retry later).
    #[error("DSYNC discovery for {child}: {source}")]
    Lookup {
        /// The child.
        child: String,
        /// The failure.
        source: Box<ResolveError>,
    },
    /// More than one DSYNC for one (type, scheme).
    #[error(
        "{child}: {count} DSYNC records for ({rtype}, NOTIFY) at {owner}: RFC 9859 allows one; nothing is sent"
    )]
    Duplicate {
        /// The child.
        child: String,
        /// The type.
        rtype: String,
        /// How many.
        count: usize,
        /// Where.
        owner: String,
    },
    /// A negative answer without a SOA: the algorithm cannot go on.
    #[error("DSYNC discovery for {child}: negative answer for {name} without a SOA")]
    NoSoa {
        /// The child.
        child: String,
        /// The name asked.
        name: String,
    },
}

impl Discovery {
    /// The NOTIFY target for `rrtype` (CDS or CSYNC): `Ok(None)` when the
    /// parent publishes none.
    pub fn target(&self, rrtype: RecordType) -> Result<Option<DsyncTarget>, DiscoveryError> {
        let candidates: Vec<&(Name, Dsync)> = self
            .records
            .iter()
            .filter(|(_, d)| d.rrtype == rrtype && d.scheme == Dsync::SCHEME_NOTIFY && !d.is_null())
            .collect();
        match candidates.as_slice() {
            [] => Ok(None),
            [(owner, d)] => Ok(Some(DsyncTarget {
                rrtype,
                host: d.target.clone(),
                port: d.port,
                owner: owner.clone(),
            })),
            [(owner, _), ..] => Err(DiscoveryError::Duplicate {
                child: display(&self.child),
                rtype: rrtype.to_string(),
                count: candidates.len(),
                owner: display(owner),
            }),
        }
    }
}

/// `<child labels above zone>._dsync.<zone>`; `zone` must be an ancestor of
/// (or equal to) `child`'s parent part.
pub fn lookup_name(child: &Name, zone: &Name) -> Option<Name> {
    let child_labels: Vec<&[u8]> = child.iter().collect();
    let zone_labels = zone.iter().count();
    let keep = child_labels.len().checked_sub(zone_labels)?;
    if keep == 0 {
        return None;
    }
    let mut labels: Vec<&[u8]> = child_labels[..keep].to_vec();
    labels.push(b"_dsync");
    labels.extend(zone.iter());
    let mut name = Name::from_labels(labels).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// `_dsync.<zone>`.
fn bare(zone: &Name) -> Option<Name> {
    let mut labels: Vec<&[u8]> = vec![b"_dsync"];
    labels.extend(zone.iter());
    let mut name = Name::from_labels(labels).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// The zone part right of `_dsync` in a lookup name.
fn zone_part(lookup: &Name) -> Name {
    let labels: Vec<&[u8]> = lookup.iter().collect();
    let at = labels
        .iter()
        .position(|l| l.eq_ignore_ascii_case(b"_dsync"))
        .map_or(labels.len(), |i| i + 1);
    let mut name = Name::from_labels(labels[at..].iter().copied()).unwrap_or_else(|_| Name::root());
    name.set_fqdn(true);
    name
}

/// The next name to try after a negative answer for `current` whose SOA
/// owner is `soa` (RFC 9859 §4.1 step 3); `None` = stop.
pub fn next_after_negative(child: &Name, current: &Name, soa: &Name) -> Option<Name> {
    let zone = zone_part(current);
    // A delegated `_dsync` zone answers with its own apex: the parent is below it.
    let soa = if soa
        .iter()
        .next()
        .is_some_and(|l| l.eq_ignore_ascii_case(b"_dsync"))
    {
        soa.base_name()
    } else {
        soa.clone()
    };
    if soa != zone && is_at_or_below(&zone, &soa) {
        return lookup_name(child, &soa);
    }
    let first_is_dsync = current
        .iter()
        .next()
        .is_some_and(|l| l.eq_ignore_ascii_case(b"_dsync"));
    if !first_is_dsync {
        return bare(&zone);
    }
    None
}

/// Runs discovery for `child` through `resolver`.
pub async fn discover(resolver: &Resolver, child: &Name) -> Result<Discovery, DiscoveryError> {
    let lookup_err = |source| DiscoveryError::Lookup {
        child: display(child),
        source: Box::new(source),
    };
    let mut out = Discovery {
        child: child.clone(),
        parent: None,
        steps: Vec::new(),
        records: Vec::new(),
    };
    let Some(mut name) = lookup_name(child, &child.base_name()) else {
        out.steps.push("the root zone has no parent".into());
        return Ok(out);
    };
    for _ in 0..MAX_STEPS {
        let answer = resolver
            .lookup_secure(&name, RecordType::Unknown(DSYNC_TYPE))
            .await
            .map_err(lookup_err)?;
        out.steps
            .push(format!("{} DSYNC: {}", display(&name), answer.summary()));
        if !answer.is_negative() {
            out.parent = Some(zone_part(&name));
            for record in &answer.records {
                match Dsync::from_wire(&record.rdata) {
                    Ok(d) => out.records.push((record.owner.clone(), d)),
                    Err(e) => out.steps.push(format!(
                        "ignored a DSYNC at {}: {e}",
                        display(&record.owner)
                    )),
                }
            }
            return Ok(out);
        }
        let Some(soa) = &answer.soa_owner else {
            return Err(DiscoveryError::NoSoa {
                child: display(child),
                name: display(&name),
            });
        };
        out.parent = Some(
            if soa
                .iter()
                .next()
                .is_some_and(|l| l.eq_ignore_ascii_case(b"_dsync"))
            {
                soa.base_name()
            } else {
                soa.clone()
            },
        );
        match next_after_negative(child, &name, soa) {
            Some(next) => name = next,
            None => {
                out.steps
                    .push("no DSYNC: the parent publishes no NOTIFY endpoint".into());
                return Ok(out);
            }
        }
    }
    out.steps.push(format!("gave up after {MAX_STEPS} lookups"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse_name;

    fn n(text: &str) -> Name {
        parse_name(text).expect("valid")
    }

    #[test]
    fn first_lookup_inserts_after_the_first_label() {
        let child = n("example.co.uk.");
        assert_eq!(
            lookup_name(&child, &child.base_name()),
            Some(n("example._dsync.co.uk."))
        );
    }

    #[test]
    fn spec_walk_for_a_deeper_child() {
        // RFC 9859 §4.1: subsub.sub.child.example with parent example.
        let child = n("subsub.sub.child.example.");
        let first = lookup_name(&child, &child.base_name()).expect("name");
        assert_eq!(first, n("subsub._dsync.sub.child.example."));
        // The zone example. answers NXDOMAIN: re-insert above it.
        let second = next_after_negative(&child, &first, &n("example.")).expect("next");
        assert_eq!(second, n("subsub.sub.child._dsync.example."));
        // No record there either: fall back to _dsync.example.
        let third = next_after_negative(&child, &second, &n("example.")).expect("next");
        assert_eq!(third, n("_dsync.example."));
        // And then stop.
        assert_eq!(next_after_negative(&child, &third, &n("example.")), None);
    }

    #[test]
    fn delegated_dsync_zone_counts_as_its_parent() {
        let child = n("a.b.example.");
        let first = lookup_name(&child, &child.base_name()).expect("name");
        // _dsync.example. is its own zone; its apex in the SOA means "example.".
        let next = next_after_negative(&child, &first, &n("_dsync.example.")).expect("next");
        assert_eq!(next, n("a.b._dsync.example."));
    }

    #[test]
    fn selection_ignores_null_records_and_refuses_duplicates() {
        let mut d = Discovery {
            child: n("child.example."),
            parent: Some(n("example.")),
            steps: Vec::new(),
            records: vec![
                (
                    n("*._dsync.example."),
                    Dsync::from_text("CDS 0 5359 x.").expect("valid"),
                ),
                (
                    n("*._dsync.example."),
                    Dsync::from_text("CDS NOTIFY 0 x.").expect("valid"),
                ),
                (
                    n("*._dsync.example."),
                    Dsync::from_text("CDS NOTIFY 5359 scanner.example.").expect("valid"),
                ),
                (
                    n("*._dsync.example."),
                    Dsync::from_text("CDS 200 5359 y.").expect("valid"),
                ),
            ],
        };
        let target = d.target(RecordType::CDS).expect("ok").expect("found");
        assert_eq!((target.host, target.port), (n("scanner.example."), 5359));
        assert_eq!(d.target(RecordType::CSYNC).expect("ok"), None);
        d.records.push((
            n("*._dsync.example."),
            Dsync::from_text("CDS NOTIFY 53 other.example.").expect("valid"),
        ));
        assert!(matches!(
            d.target(RecordType::CDS),
            Err(DiscoveryError::Duplicate { count: 2, .. })
        ));
    }
}
