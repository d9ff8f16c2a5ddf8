//! The RFC 9567 error reports signalbox received as the monitoring agent
//! (`server::report` answers and queues them): rate-limited per source,
//! tied to the child zone they concern, kept (the last [`PER_CHILD`] per
//! child, in memory and appended to `state/error-reports.log`, one JSON
//! object per line, read back at start), counted by extended error code
//! for `status` and the metrics, and announced as an `error-report` event.
//!
//! The child of a report is the nearest configured child at or above its
//! QNAME, or, for a report about a `_dsboot.<child>._signal.<ns>` name of a
//! signalling zone served here, that child.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fs,
    io::Write,
    net::IpAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use crate::{
    dns::name::{display, from_wire, is_at_or_below},
    event::{Event, EventKind},
    server::report::ReportQuery,
};

/// Reports kept per child.
pub const PER_CHILD: usize = 20;
/// Reports about no known child kept.
const UNMATCHED: usize = 100;
/// Reports one source may file per [`SOURCE_WINDOW`].
const PER_SOURCE: u32 = 10;
const SOURCE_WINDOW: Duration = Duration::from_secs(60);
/// Sources remembered for rate limiting at most (then forgotten at once).
const SOURCES: usize = 10_000;
/// The log is started afresh (the old one kept as `.1`) past this size.
const LOG_LIMIT: u64 = 16 << 20;

/// One report as kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorReport {
    /// When it arrived (RFC 3339).
    pub time: String,
    /// The child zone it concerns, if known.
    pub zone: Option<String>,
    /// The name whose answer failed.
    pub qname: String,
    /// Its type.
    pub qtype: String,
    /// The extended DNS error code (RFC 8914 §4).
    pub ede: u16,
    /// Who reported it.
    pub source: String,
}

/// Every report kept, and the counts.
#[derive(Debug, Default)]
pub struct ErrorReports {
    by_child: HashMap<String, VecDeque<ErrorReport>>,
    unmatched: VecDeque<ErrorReport>,
    /// Reports taken since start, by extended error code.
    pub by_code: BTreeMap<u16, u64>,
    /// Reports refused by the per-source limit since start.
    pub rate_limited: u64,
    sources: HashMap<IpAddr, (Instant, u32)>,
    log: Option<PathBuf>,
}

impl ErrorReports {
    /// The reports kept in `log` (the last ones per child), appending
    /// there from now on.
    pub fn load(log: PathBuf) -> Self {
        let mut reports = ErrorReports::default();
        if let Ok(text) = fs::read_to_string(&log) {
            for line in text.lines() {
                if let Ok(report) = serde_json::from_str::<ErrorReport>(line) {
                    reports.keep(report);
                }
            }
        }
        reports.log = Some(log);
        reports
    }

    /// The reports kept about `zone`, oldest first.
    pub fn about(&self, zone: &Name) -> Vec<ErrorReport> {
        self.by_child
            .get(&display(zone))
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Reports taken since start.
    pub fn total(&self) -> u64 {
        self.by_code.values().sum()
    }

    /// Takes a report about `child`; `None` when its source is over its
    /// limit.
    pub fn take(
        &mut self,
        query: &ReportQuery,
        child: Option<&Name>,
        now: Timestamp,
        at: Instant,
    ) -> Option<ErrorReport> {
        if !self.admit(query.source, at) {
            self.rate_limited += 1;
            return None;
        }
        let report = ErrorReport {
            time: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            zone: child.map(display),
            qname: from_wire(&query.qname).map_or_else(|| "?".into(), |(n, _)| display(&n)),
            qtype: RecordType::from(query.qtype).to_string(),
            ede: query.info_code,
            source: query.source.to_string(),
        };
        *self.by_code.entry(query.info_code).or_default() += 1;
        self.append(&report);
        self.keep(report.clone());
        Some(report)
    }

    fn admit(&mut self, source: IpAddr, at: Instant) -> bool {
        if self.sources.len() >= SOURCES && !self.sources.contains_key(&source) {
            self.sources.clear();
        }
        let (start, count) = self.sources.entry(source).or_insert((at, 0));
        if at.saturating_duration_since(*start) >= SOURCE_WINDOW {
            *start = at;
            *count = 0;
        }
        *count += 1;
        *count <= PER_SOURCE
    }

    fn keep(&mut self, report: ErrorReport) {
        let (list, limit) = match &report.zone {
            Some(zone) => (self.by_child.entry(zone.clone()).or_default(), PER_CHILD),
            None => (&mut self.unmatched, UNMATCHED),
        };
        list.push_back(report);
        while list.len() > limit {
            list.pop_front();
        }
    }

    fn append(&mut self, report: &ErrorReport) {
        let Some(path) = &self.log else {
            return;
        };
        if fs::metadata(path).is_ok_and(|m| m.len() > LOG_LIMIT) {
            let _ = fs::rename(path, path.with_extension("log.1"));
        }
        let line = match serde_json::to_string(report) {
            Ok(line) => line + "\n",
            Err(_) => return,
        };
        let written = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), "cannot keep an error report: {e}");
        }
    }
}

impl super::Daemon {
    /// Takes one report the server queued: its child, the per-source
    /// limit, the log and the `error-report` event. `None` when over the
    /// limit.
    pub(super) fn take_error_report(&mut self, query: ReportQuery) -> Option<ErrorReport> {
        let child = self.report_child(&query.qname);
        let report =
            self.error_reports
                .take(&query, child.as_ref(), Timestamp::now(), Instant::now())?;
        self.events.emit(
            Event::new(
                EventKind::ErrorReport,
                format!(
                    "error report: {} {} failed with extended error {}",
                    report.qname, report.qtype, report.ede
                ),
            )
            .with("zone", report.zone.clone().unwrap_or_default())
            .with("qname", report.qname.clone())
            .with("qtype", report.qtype.clone())
            .with("ede", report.ede.to_string())
            .with("source", report.source.clone()),
        );
        Some(report)
    }

    /// The child a report's QNAME concerns: the child of a `_dsboot` name
    /// of a signalling zone served here, else the nearest child at or above
    /// the name.
    fn report_child(&self, qname: &[u8]) -> Option<Name> {
        let (name, _) = from_wire(qname)?;
        for apex in self.zones.keys() {
            if is_at_or_below(&name, apex) {
                return crate::plan::child_of(&name, apex);
            }
        }
        let mut at = name;
        loop {
            if self.delegations.get(&at).is_some() {
                return Some(at);
            }
            if at.is_root() {
                return None;
            }
            at = at.base_name();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{name::canonical_wire, parse_name};

    fn query(qname: &str, source: [u8; 4]) -> ReportQuery {
        ReportQuery {
            qtype: 59,
            qname: canonical_wire(&parse_name(qname).expect("valid")),
            info_code: 6,
            source: source.into(),
        }
    }

    #[test]
    fn reports_are_kept_per_child_limited_per_source_and_read_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("error-reports.log");
        let mut reports = ErrorReports::load(log.clone());
        let child = parse_name("example.com.").expect("valid");
        let now = Timestamp::from_second(1_800_000_000).expect("time");
        let at = Instant::now();
        let got = reports
            .take(
                &query("example.com.", [192, 0, 2, 1]),
                Some(&child),
                now,
                at,
            )
            .expect("taken");
        assert_eq!(got.qtype, "CDS");
        assert_eq!(got.qname, "example.com.");
        assert_eq!(got.ede, 6);
        assert_eq!(got.zone.as_deref(), Some("example.com."));
        // One source: at most PER_SOURCE a minute; another is not held back.
        for _ in 0..PER_SOURCE + 5 {
            let _ = reports.take(
                &query("example.com.", [192, 0, 2, 9]),
                Some(&child),
                now,
                at,
            );
        }
        assert_eq!(reports.rate_limited, 5);
        assert!(
            reports
                .take(
                    &query("example.com.", [192, 0, 2, 2]),
                    Some(&child),
                    now,
                    at
                )
                .is_some()
        );
        let later = at + SOURCE_WINDOW;
        assert!(
            reports
                .take(
                    &query("example.com.", [192, 0, 2, 9]),
                    Some(&child),
                    now,
                    later
                )
                .is_some()
        );
        assert_eq!(reports.about(&child).len(), 13);
        assert_eq!(reports.total(), 1 + u64::from(PER_SOURCE) + 2);
        // The last PER_CHILD per child are kept.
        for i in 0..30u8 {
            let _ = reports.take(
                &query("www.example.com.", [198, 51, 100, i]),
                Some(&child),
                now,
                at,
            );
        }
        let kept = reports.about(&child);
        assert_eq!(kept.len(), PER_CHILD);
        assert_eq!(kept[PER_CHILD - 1].source, "198.51.100.29");
        // Kept across a restart (the last PER_CHILD of the child).
        let again = ErrorReports::load(log);
        assert_eq!(again.about(&child), reports.about(&child));
    }
}
