//! signalbox as an RFC 9567 monitoring agent: with `[report] agent`, the
//! error reports a parent (or any reporting resolver) sends about what
//! signalbox told it are answered here and handed to the daemon.
//!
//! A report is a query for `_er.<QTYPE>.<QNAME>.<INFO-CODE>._er.<agent>`
//! (RFC 9567 §6.1.1: QTYPE and the extended DNS error INFO-CODE in
//! decimal, QNAME the name whose answer failed) with QTYPE TXT. RFC 9567
//! §6.3 asks the agent to answer positively, so the report is not
//! negative-cached away; it gets one TXT record, cached by the reporter
//! for [`ANSWER_TTL`], which also keeps it from repeating the same report
//! sooner. Any other name at or below the agent domain (a QNAME-minimising
//! resolver walking down, another type) gets an empty authoritative
//! NOERROR.
//!
//! The UDP and TCP threads only check the name's form and queue the report
//! (bounded: when the daemon falls behind, reports are dropped and
//! counted, never waited for); rate limiting per source, mapping to a
//! child zone and keeping them is the daemon's (`daemon::error_reports`).

use std::{
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use hickory_proto::rr::{Name, RecordType};
use tokio::sync::mpsc;

use crate::dns::{
    name::{canonical_wire, whole_labels},
    wire,
};

/// The TTL of the answer to a report.
pub const ANSWER_TTL: u32 = 3600;

/// Reports queued for the daemon at most.
pub const QUEUE: usize = 1024;

/// One error report as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// The QTYPE whose answer failed.
    pub qtype: u16,
    /// The name whose answer failed, in lower-case wire form.
    pub qname: Vec<u8>,
    /// The extended DNS error code (RFC 8914 §4).
    pub info_code: u16,
    /// Who sent it.
    pub source: IpAddr,
}

/// The agent domain and the queue to the daemon.
#[derive(Debug)]
pub struct ReportAgent {
    /// The agent domain, lower-case wire form.
    agent: Box<[u8]>,
    /// The TXT record answered, as a record blob (no owner).
    answer: Box<[u8]>,
    /// The Report-Channel EDNS option naming the agent (RFC 9567 §6.1:
    /// code, length, the agent domain in wire form), for the served zones'
    /// answers.
    channel: Box<[u8]>,
    queue: mpsc::Sender<ReportQuery>,
    /// Reports dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// What the agent makes of a query at or below its domain.
#[derive(Debug, PartialEq, Eq)]
pub enum AgentAnswer<'a> {
    /// A report (queued): answer with this TXT record blob.
    Report(&'a [u8]),
    /// Another name or type under the agent domain: an empty NOERROR.
    NoData,
}

impl ReportAgent {
    /// An agent for `agent`, and the receiving end of its queue.
    pub fn new(agent: &Name) -> (Self, mpsc::Receiver<ReportQuery>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let text = b"report received";
        let mut rdata = vec![text.len() as u8];
        rdata.extend_from_slice(text);
        let mut answer = Vec::new();
        wire::put_record_body(&mut answer, u16::from(RecordType::TXT), ANSWER_TTL, &rdata);
        let wire_name = canonical_wire(agent);
        let mut channel = Vec::with_capacity(4 + wire_name.len());
        wire::put_u16(&mut channel, crate::dns::message::OPTION_REPORT_CHANNEL);
        wire::put_u16(&mut channel, wire_name.len() as u16);
        channel.extend_from_slice(&wire_name);
        let agent = ReportAgent {
            agent: wire_name.into(),
            answer: answer.into(),
            channel: channel.into(),
            queue: tx,
            dropped: AtomicU64::new(0),
        };
        (agent, rx)
    }

    /// The Report-Channel option (RFC 9567 §6.1) for the OPT record of an
    /// answer from a served zone.
    pub fn channel_option(&self) -> &[u8] {
        &self.channel
    }

    /// True when `lower` (a lower-case wire name) is at or below the agent
    /// domain.
    pub fn covers(&self, lower: &[u8]) -> bool {
        lower
            .strip_suffix(&self.agent[..])
            .is_some_and(whole_labels)
    }

    /// Answers a query for `lower` (covered) of type `qtype` from `source`.
    pub fn answer(&self, lower: &[u8], qtype: u16, source: IpAddr) -> AgentAnswer<'_> {
        if qtype != u16::from(RecordType::TXT) {
            return AgentAnswer::NoData;
        }
        let Some(report) = parse(lower, &self.agent, source) else {
            return AgentAnswer::NoData;
        };
        if self.queue.try_send(report).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
        AgentAnswer::Report(&self.answer)
    }
}

/// The labels of a wire name (without the root), or `None` when it does
/// not parse.
fn labels(name: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let len = usize::from(*name.get(at)?);
        if len == 0 {
            return (at + 1 == name.len()).then_some(out);
        }
        out.push(name.get(at + 1..at + 1 + len)?);
        at += 1 + len;
    }
}

fn decimal(label: &[u8]) -> Option<u16> {
    if label.is_empty() || label.len() > 5 || !label.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(label).ok()?.parse().ok()
}

/// Reads `_er.<QTYPE>.<QNAME>.<INFO-CODE>._er.<agent>` (RFC 9567 §6.1.1).
fn parse(lower: &[u8], agent: &[u8], source: IpAddr) -> Option<ReportQuery> {
    let all = labels(lower)?;
    let agent_labels = labels(agent)?.len();
    let own = all.len().checked_sub(agent_labels)?;
    // _er, QTYPE, (QNAME labels), INFO-CODE, _er
    if own < 4 || all[0] != b"_er" || all[own - 1] != b"_er" {
        return None;
    }
    let qtype = decimal(all[1])?;
    let info_code = decimal(all[own - 2])?;
    let mut qname = Vec::new();
    for label in &all[2..own - 2] {
        qname.push(label.len() as u8);
        qname.extend_from_slice(label);
    }
    qname.push(0);
    Some(ReportQuery {
        qtype,
        qname,
        info_code,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse_name;

    fn wire(text: &str) -> Vec<u8> {
        canonical_wire(&parse_name(text).expect("valid"))
    }

    #[test]
    fn reports_are_read_in_rfc_9567_form_and_other_names_are_nodata() {
        let (agent, mut rx) = ReportAgent::new(&parse_name("agent.example.net.").expect("valid"));
        let source: IpAddr = [192, 0, 2, 1].into();
        let report = wire("_er.59.child.example.com.7._er.agent.example.net.");
        assert!(agent.covers(&report));
        assert!(matches!(
            agent.answer(&report, 16, source),
            AgentAnswer::Report(_)
        ));
        let got = rx.try_recv().expect("queued");
        assert_eq!(
            got,
            ReportQuery {
                qtype: 59,
                qname: wire("child.example.com."),
                info_code: 7,
                source,
            }
        );
        // The root as QNAME (no labels between QTYPE and INFO-CODE).
        let root = wire("_er.2.0._er.agent.example.net.");
        assert!(matches!(
            agent.answer(&root, 16, source),
            AgentAnswer::Report(_)
        ));
        assert_eq!(rx.try_recv().expect("queued").qname, vec![0]);
        // Not reports: another type, a malformed name, the agent itself.
        for (name, qtype) in [
            ("_er.59.child.example.com.7._er.agent.example.net.", 1),
            ("_er.x.child.example.com.7._er.agent.example.net.", 16),
            ("_er.59.child.example.com.70000._er.agent.example.net.", 16),
            ("er.59.child.example.com.7._er.agent.example.net.", 16),
            ("_er.agent.example.net.", 16),
            ("agent.example.net.", 2),
        ] {
            let w = wire(name);
            assert!(agent.covers(&w), "{name}");
            assert_eq!(
                agent.answer(&w, qtype, source),
                AgentAnswer::NoData,
                "{name}"
            );
        }
        assert!(rx.try_recv().is_err());
        // Not at or below the agent domain.
        for name in [
            "example.net.",
            "xagent.example.net.",
            "_er.1.a.2._er.agent.example.org.",
        ] {
            assert!(!agent.covers(&wire(name)), "{name}");
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (agent, _rx) = ReportAgent::new(&parse_name("agent.test.").expect("valid"));
        let report = wire("_er.1.a.test.1._er.agent.test.");
        for _ in 0..QUEUE + 5 {
            let _ = agent.answer(&report, 16, [127, 0, 0, 1].into());
        }
        assert_eq!(agent.dropped.load(Relaxed), 5);
    }

    /// Any octets at all: no panic, and what is read is a report.
    #[test]
    fn any_name_is_handled() {
        let (agent, _rx) = ReportAgent::new(&parse_name("agent.test.").expect("valid"));
        let base = wire("_er.1.a.test.1._er.agent.test.");
        for at in 0..base.len() {
            for value in [0u8, 1, 3, 63, 64, 255, b'_'] {
                let mut name = base.clone();
                name[at] = value;
                if agent.covers(&name) {
                    let _ = agent.answer(&name, 16, [127, 0, 0, 1].into());
                }
            }
        }
    }
}
