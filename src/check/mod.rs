//! `signalbox check`: one child's delegation as its parent will see it, before
//! the parent scans (issue 16).
//!
//! A parent that automates DS maintenance asks every address of every
//! nameserver of the child's delegation directly, not through a cache (RFC
//! 9975 §3), for the apex CDS and CDNSKEY; it accepts them only when they
//! are the same everywhere, signed by a key the current DS points to (RFC
//! 7344 §4.1; for a first DS, authenticated by RFC 9615 signals or by the
//! parent's own RFC 8078 §3 policy), describe the same keys (RFC 7344 §4),
//! keep the delete form alone (RFC 8078 §4), and would not break the
//! delegation (RFC 7344 §4.1: a DS must match a key that signs the DNSKEY
//! RRset). Registries add rules of their own ([`profile`]).
//!
//! This module is the pure half: [`Facts`] (what was seen), [`evaluate`]
//! (facts, a [`profile::Profile`] and the time -> a [`Verdict`] whose
//! findings each cite their RFC section) and the profiles. Asking the
//! servers, the parent and the validating resolver is the parent side's
//! effect, `crate::parent::scan`; the daemon's NOTIFY job
//! (`crate::parent::job`) and the `signalbox check` command both scan and
//! then evaluate.

mod evaluate;
pub mod profile;

use std::net::SocketAddr;

use hickory_proto::rr::Name;

pub use evaluate::evaluate;

use crate::dns::{Ds, Rrsig};

/// How a server was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP (falling back to TCP on truncation).
    Udp,
    /// TCP, as some registries scan.
    Tcp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

/// One RRset as a server serves it: its RDATA (sorted, without
/// duplicates) and the RRSIGs over it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signed {
    /// RDATA in wire form.
    pub rdatas: Vec<Vec<u8>>,
    /// Signatures covering the RRset.
    pub rrsigs: Vec<Rrsig>,
}

/// The apex RRsets one server serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApexSets {
    /// DNSKEY.
    pub dnskey: Signed,
    /// CDS.
    pub cds: Signed,
    /// CDNSKEY.
    pub cdnskey: Signed,
    /// CSYNC (RFC 7477).
    pub csync: Signed,
}

/// What one address of one nameserver answered, over one transport.
#[derive(Debug, Clone)]
pub struct ServerAnswer {
    /// The nameserver's host name.
    pub host: Name,
    /// The address asked.
    pub addr: SocketAddr,
    /// How.
    pub transport: Transport,
    /// The RRsets, or why there are none.
    pub sets: Result<ApexSets, String>,
}

impl ServerAnswer {
    /// `ns1.example.net. 192.0.2.1:53 udp`.
    pub fn who(&self) -> String {
        format!(
            "{} {} {}",
            crate::dns::name::display(&self.host),
            self.addr,
            self.transport
        )
    }
}

/// One RFC 9615 signalling name, as the validating resolver answered.
#[derive(Debug, Clone)]
pub struct SignalAnswer {
    /// The nameserver whose signalling domain it is under.
    pub ns: Name,
    /// `_dsboot.<child>._signal.<ns>`.
    pub owner: Name,
    /// The CDS and CDNSKEY RDATA there (sorted) and whether the answers
    /// were validated (AD), or why they could not be had.
    pub sets: Result<SignalSets, String>,
}

/// The RRsets at one signalling name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignalSets {
    /// CDS RDATA.
    pub cds: Vec<Vec<u8>>,
    /// CDNSKEY RDATA.
    pub cdnskey: Vec<Vec<u8>>,
    /// Both answers carried AD.
    pub validated: bool,
}

/// What the parent publishes for the child.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentSide {
    /// The parent zone.
    pub zone: Option<Name>,
    /// The child's DS RRset there.
    pub ds: Vec<Ds>,
    /// The child's NS RRset there.
    pub ns: Vec<Name>,
}

/// Everything a check looked at.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The child zone.
    pub child: Name,
    /// The parent's side, or why it could not be read.
    pub parent: Result<ParentSide, String>,
    /// The nameservers asked: the parent's NS set, or the configured
    /// `nameservers` when the parent could not be read.
    pub nameservers: Vec<Name>,
    /// Every address of every nameserver, over UDP and TCP.
    pub servers: Vec<ServerAnswer>,
    /// Nameservers whose addresses could not be looked up, and why.
    pub unresolved: Vec<(Name, String)>,
    /// The RFC 9615 signals under every nameserver outside the child.
    pub signals: Vec<SignalAnswer>,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The parent refuses (or aborts its scan).
    Error,
    /// The parent may accept, but something is off.
    Warning,
    /// For information.
    Note,
}

impl Severity {
    /// `error`, `warning`, `note`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// One thing the check found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// What, in a sentence.
    pub message: String,
    /// The rule, e.g. `RFC 7344 §4.1`.
    pub rule: &'static str,
    /// About the CSYNC record (RFC 7477), not the DS: it does not change
    /// [`Verdict::outcome`] (a parent handles CSYNC apart), only the exit
    /// code.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub csync: bool,
}

/// What the parent will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// No DS yet: the CDS becomes the first DS.
    Bootstrap,
    /// The DS RRset is replaced by the one the CDS asks for.
    Rollover,
    /// The DS RRset is removed (the delete form).
    Delete,
    /// Nothing: no CDS/CDNSKEY, or the DS already is what they ask for.
    NothingToDo,
    /// The parent refuses or aborts (see the findings).
    Refused,
}

/// The check's answer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    /// The child.
    #[serde(serialize_with = "name_text")]
    pub child: Name,
    /// The profile applied.
    pub profile: &'static str,
    /// What the parent will do.
    pub outcome: Outcome,
    /// For a bootstrap: authenticated by RFC 9615 signals.
    pub authenticated: bool,
    /// One line saying it.
    pub summary: String,
    /// What becomes of the CSYNC record (RFC 7477), when there is one.
    pub csync: Option<String>,
    /// When the parent should have acted, at the latest, if nothing
    /// changes (its scan interval, or its wait for an unauthenticated
    /// bootstrap); `None` when it acts on a NOTIFY or its schedule is not
    /// known.
    #[serde(serialize_with = "time_text")]
    pub expected_by: Option<jiff::Timestamp>,
    /// Servers asked (`host address transport`).
    pub asked: Vec<String>,
    /// Everything found, errors first.
    pub findings: Vec<Finding>,
}

fn time_text<S: serde::Serializer>(
    time: &Option<jiff::Timestamp>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(t) => s.serialize_str(&t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        None => s.serialize_none(),
    }
}

fn name_text<S: serde::Serializer>(name: &Name, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::dns::name::display(name))
}

impl Verdict {
    /// The exit code of `signalbox check`: 0 when the parent would accept
    /// (or nothing is pending), 1 when it would refuse the DS change or
    /// something else is in error (a CSYNC the parent would refuse, a
    /// server disagreeing about it).
    pub fn exit_code(&self) -> u8 {
        let error = self.findings.iter().any(|f| f.severity == Severity::Error);
        u8::from(self.outcome == Outcome::Refused || error)
    }

    /// The text `signalbox check` prints.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "; {} as its parent will see it (profile {})\n",
            crate::dns::name::display(&self.child),
            self.profile
        );
        for who in &self.asked {
            out.push_str(&format!("; asked {who}\n"));
        }
        for f in &self.findings {
            let label = f.severity.as_str();
            out.push_str(&format!("{label}: {} ({})\n", f.message, f.rule));
        }
        out.push_str(&format!("verdict: {}\n", self.summary));
        if let Some(csync) = &self.csync {
            out.push_str(&format!("csync: {csync}\n"));
        }
        if let Some(by) = self.expected_by {
            out.push_str(&format!(
                "expected at the parent by {} if nothing changes\n",
                by.strftime("%Y-%m-%dT%H:%M:%SZ")
            ));
        }
        out
    }
}
