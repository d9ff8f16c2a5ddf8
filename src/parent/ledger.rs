//! What the parent side of signalbox remembers across restarts, in the
//! state directory: which signals the parent was last told about (and
//! which NOTIFYs are still owed), and what the parent was last seen to
//! publish. Both files are plain text, one zone per line, written
//! atomically; a corrupt line is skipped with a warning, never fatal.

use std::{collections::BTreeMap, path::Path};

use hickory_proto::rr::Name;
use jiff::Timestamp;

use super::observer::Observation;
use crate::{
    dns::{Ds, name::display, parse_name},
    state::{StateError, text_lines, write_atomically},
};

/// A NOTIFY kind: which RRsets changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// CDS and/or CDNSKEY (NOTIFY QTYPE CDS).
    Cds,
    /// CSYNC.
    Csync,
}

impl Kind {
    /// The NOTIFY QTYPE.
    pub fn rtype(self) -> hickory_proto::rr::RecordType {
        match self {
            Kind::Cds => hickory_proto::rr::RecordType::CDS,
            Kind::Csync => hickory_proto::rr::RecordType::CSYNC,
        }
    }
}

/// One child's line in the notify ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Fingerprint of the apex CDS+CDNSKEY last reported (0 = none).
    pub cds: u64,
    /// Fingerprint of the apex CSYNC last reported (0 = none).
    pub csync: u64,
    /// NOTIFY(CDS) owed since then.
    pub cds_pending: Option<Timestamp>,
    /// NOTIFY(CSYNC) owed since then.
    pub csync_pending: Option<Timestamp>,
}

impl LedgerEntry {
    /// When the NOTIFY of `kind` became owed.
    pub fn pending(&self, kind: Kind) -> Option<Timestamp> {
        match kind {
            Kind::Cds => self.cds_pending,
            Kind::Csync => self.csync_pending,
        }
    }

    /// Sets or clears the owed NOTIFY of `kind`.
    pub fn set_pending(&mut self, kind: Kind, since: Option<Timestamp>) {
        match kind {
            Kind::Cds => self.cds_pending = since,
            Kind::Csync => self.csync_pending = since,
        }
    }
}

const LEDGER_HEADER: &str = "# signalbox notify ledger v1: zone cds-fingerprint csync-fingerprint owed-cds-since owed-csync-since";
const OBSERVED_HEADER: &str =
    "# signalbox parent observations v1: zone parent observed-at server ds-hex,... ns,...";

/// Writes the ledger.
pub fn save_ledger(path: &Path, ledger: &BTreeMap<Name, LedgerEntry>) -> Result<(), StateError> {
    let mut out = String::with_capacity(64 * ledger.len() + 128);
    out.push_str(LEDGER_HEADER);
    out.push('\n');
    let since = |t: Option<Timestamp>| t.map_or("-".to_string(), |t| t.as_second().to_string());
    for (zone, e) in ledger {
        out.push_str(&format!(
            "{} {:016x} {:016x} {} {}\n",
            display(zone),
            e.cds,
            e.csync,
            since(e.cds_pending),
            since(e.csync_pending)
        ));
    }
    write_atomically(path, out.as_bytes())
}

/// Reads the ledger (missing file: empty).
pub fn load_ledger(path: &Path) -> BTreeMap<Name, LedgerEntry> {
    let mut out = BTreeMap::new();
    for (number, line) in text_lines(path) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let parsed = (|| {
            let [zone, cds, csync, owed_cds, owed_csync] = f.as_slice() else {
                return None;
            };
            let since = |t: &str| -> Option<Option<Timestamp>> {
                if t == "-" {
                    return Some(None);
                }
                Some(Some(Timestamp::from_second(t.parse().ok()?).ok()?))
            };
            Some((
                parse_name(zone).ok()?,
                LedgerEntry {
                    cds: u64::from_str_radix(cds, 16).ok()?,
                    csync: u64::from_str_radix(csync, 16).ok()?,
                    cds_pending: since(owed_cds)?,
                    csync_pending: since(owed_csync)?,
                },
            ))
        })();
        match parsed {
            Some((zone, entry)) => {
                out.insert(zone, entry);
            }
            None => {
                tracing::warn!(path = %path.display(), line = number, "unreadable notify ledger line skipped")
            }
        }
    }
    out
}

/// Writes the observations.
pub fn save_observations(
    path: &Path,
    observed: &BTreeMap<Name, Observation>,
) -> Result<(), StateError> {
    let mut out = String::with_capacity(160 * observed.len() + 128);
    out.push_str(OBSERVED_HEADER);
    out.push('\n');
    for (zone, o) in observed {
        let ds: Vec<String> =
            o.ds.iter()
                .map(|d| data_encoding::HEXLOWER.encode(&d.to_wire()))
                .collect();
        let ns: Vec<String> = o.ns.iter().map(display).collect();
        let list = |v: Vec<String>| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(",")
            }
        };
        out.push_str(&format!(
            "{} {} {} {} {} {}\n",
            display(zone),
            display(&o.parent),
            o.at.as_second(),
            o.server,
            list(ds),
            list(ns)
        ));
    }
    write_atomically(path, out.as_bytes())
}

/// Reads the observations (missing file: none).
pub fn load_observations(path: &Path) -> BTreeMap<Name, Observation> {
    let mut out = BTreeMap::new();
    for (number, line) in text_lines(path) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let parsed = (|| {
            let [zone, parent, at, server, ds, ns] = f.as_slice() else {
                return None;
            };
            let items = |t: &'_ str| -> Vec<String> {
                if t == "-" {
                    Vec::new()
                } else {
                    t.split(',').map(str::to_string).collect()
                }
            };
            let ds = items(ds)
                .iter()
                .map(|h| {
                    let wire = data_encoding::HEXLOWER.decode(h.as_bytes()).ok()?;
                    Ds::from_wire(&wire).ok()
                })
                .collect::<Option<Vec<_>>>()?;
            let ns = items(ns)
                .iter()
                .map(|n| parse_name(n).ok())
                .collect::<Option<Vec<_>>>()?;
            Some((
                parse_name(zone).ok()?,
                Observation {
                    parent: parse_name(parent).ok()?,
                    server: server.parse().ok()?,
                    ds,
                    ns,
                    at: Timestamp::from_second(at.parse().ok()?).ok()?,
                },
            ))
        })();
        match parsed {
            Some((zone, o)) => {
                out.insert(zone, o);
            }
            None => {
                tracing::warn!(path = %path.display(), line = number, "unreadable parent observation line skipped")
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_and_observations_round_trip_and_skip_bad_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.state");
        let mut ledger = BTreeMap::new();
        ledger.insert(
            parse_name("a.example.").expect("valid"),
            LedgerEntry {
                cds: 0xdead,
                csync: 0,
                cds_pending: Some(Timestamp::from_second(1_800_000_000).expect("valid")),
                csync_pending: None,
            },
        );
        save_ledger(&path, &ledger).expect("saved");
        std::fs::write(
            &path,
            std::fs::read_to_string(&path).expect("read") + "garbage line\n",
        )
        .expect("write");
        assert_eq!(load_ledger(&path), ledger);

        let path = dir.path().join("parent.state");
        let mut observed = BTreeMap::new();
        observed.insert(
            parse_name("a.example.").expect("valid"),
            Observation {
                parent: parse_name("example.").expect("valid"),
                server: "127.0.0.1:53".parse().expect("valid"),
                ds: vec![Ds::from_text("1 13 2 AABB").expect("valid")],
                ns: vec![parse_name("ns1.example.").expect("valid")],
                at: Timestamp::from_second(1_800_000_000).expect("valid"),
            },
        );
        save_observations(&path, &observed).expect("saved");
        assert_eq!(load_observations(&path), observed);
        assert!(load_observations(&dir.path().join("missing")).is_empty());
    }
}
