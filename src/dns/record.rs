//! Records and RRsets in the form signalbox publishes and prints.

use std::fmt;

use hickory_proto::rr::{Name, RecordType};

use super::{Rdata, name::display, type_mnemonic};

/// One resource record: owner, TTL, class IN, RDATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name (absolute, lower case).
    pub owner: Name,
    /// Time to live in seconds.
    pub ttl: u32,
    /// The typed RDATA.
    pub rdata: Rdata,
}

impl fmt::Display for Record {
    /// `<owner> <ttl> IN <TYPE> <rdata>`, the master-file form that dig,
    /// ldns-read-zone and dnspython read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} IN {} {}",
            display(&self.owner),
            self.ttl,
            type_mnemonic(self.rdata.rtype()),
            self.rdata
        )
    }
}

/// An RRset: all records of one owner and type, in canonical RDATA order
/// (RFC 4034 §6.3), duplicates removed, one TTL (RFC 2181 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    owner: Name,
    rtype: RecordType,
    ttl: u32,
    rdatas: Vec<Rdata>,
}

impl RecordSet {
    /// Builds an RRset; RDATA of another type than `rtype` is a programming
    /// error and is dropped in release builds.
    pub fn new(owner: Name, rtype: RecordType, ttl: u32, rdatas: Vec<Rdata>) -> Self {
        debug_assert!(rdatas.iter().all(|r| r.rtype() == rtype));
        let mut keyed: Vec<(Vec<u8>, Rdata)> = rdatas
            .into_iter()
            .filter(|r| r.rtype() == rtype)
            .map(|r| (r.to_wire(), r))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        keyed.dedup_by(|a, b| a.0 == b.0);
        RecordSet {
            owner,
            rtype,
            ttl,
            rdatas: keyed.into_iter().map(|(_, r)| r).collect(),
        }
    }

    /// Owner name.
    pub fn owner(&self) -> &Name {
        &self.owner
    }

    /// Record type.
    pub fn rtype(&self) -> RecordType {
        self.rtype
    }

    /// TTL shared by all records.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// RDATA in canonical order.
    pub fn rdatas(&self) -> &[Rdata] {
        &self.rdatas
    }

    /// True when the set holds no records.
    pub fn is_empty(&self) -> bool {
        self.rdatas.is_empty()
    }

    /// The same RDATA and TTL under another owner (RFC 9615 copies).
    pub fn with_owner(&self, owner: Name) -> Self {
        RecordSet {
            owner,
            ..self.clone()
        }
    }

    /// The wire RDATA of each record, canonical order: what "byte-identical"
    /// compares (RFC 9615 §4.2 step 4).
    pub fn wire_rdatas(&self) -> Vec<Vec<u8>> {
        self.rdatas.iter().map(Rdata::to_wire).collect()
    }

    /// The records one by one.
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.rdatas.iter().map(|rdata| Record {
            owner: self.owner.clone(),
            ttl: self.ttl,
            rdata: rdata.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{Ds, parse_name};

    #[test]
    fn rrset_sorts_canonically_and_dedups() {
        let a = Ds::from_text("2 13 2 AA").expect("valid");
        let b = Ds::from_text("1 13 2 BB").expect("valid");
        let set = RecordSet::new(
            parse_name("example.").expect("valid"),
            RecordType::CDS,
            300,
            vec![Rdata::Cds(a.clone()), Rdata::Cds(b.clone()), Rdata::Cds(a)],
        );
        assert_eq!(set.rdatas().len(), 2);
        assert_eq!(set.rdatas()[0], Rdata::Cds(b));
        let lines: Vec<String> = set.records().map(|r| r.to_string()).collect();
        assert_eq!(lines[0], "example. 300 IN CDS 1 13 2 BB");
    }
}
