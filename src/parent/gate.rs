//! The consistency gate (RFC 9975 §3, RFC 9859 §4.2): a NOTIFY goes out
//! only once every server the parent will ask serves what it should.
//!
//! The parent asks every address of every NS in its delegation for the
//! apex CDS/CDNSKEY (or CSYNC), and, when bootstrapping (RFC 9615 §4.2),
//! every server of every signalling zone for the `_dsboot` copies. Any
//! disagreement makes it abort, so scanning before the servers agree only
//! burns a scan. Here the same servers are asked directly, without
//! recursion (a cache would show the old RRsets for their TTL); a
//! `_dsboot` answer must also carry a signature that verifies with the
//! signalling zone's keys.

use std::{net::SocketAddr, time::Duration};

use hickory_proto::rr::{Name, RecordType};

use super::resolver::Resolver;
use crate::{
    client::{Options, authoritative},
    dns::{Dnskey, name::display},
    dnssec::signer::verify,
};

/// One RRset some servers must serve exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedRrset {
    /// Owner.
    pub owner: Name,
    /// Type.
    pub rtype: RecordType,
    /// RDATA, sorted; empty = the RRset must not exist.
    pub rdatas: Vec<Vec<u8>>,
}

/// A group of servers and what each must serve.
#[derive(Debug, Clone)]
pub struct ServerGroup {
    /// What the group is, for messages (`child example.com.`,
    /// `signalling zone _signal.ns1.example.net.`).
    pub label: String,
    /// The servers' host names (their addresses are resolved).
    pub hosts: Vec<Name>,
    /// The RRsets.
    pub expected: Vec<ExpectedRrset>,
    /// When set, every non-empty answer must carry an RRSIG that verifies
    /// with one of these keys (the signalling zone's).
    pub signed_by: Option<(Name, Vec<Dnskey>)>,
}

/// The verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateReport {
    /// Servers asked (`host address`), each once.
    pub checked: Vec<String>,
    /// Every disagreement found, one line each.
    pub disagreements: Vec<String>,
}

impl GateReport {
    /// True when every server agrees.
    pub fn open(&self) -> bool {
        self.disagreements.is_empty() && !self.checked.is_empty()
    }
}

/// Asks every server of every group; `port` is where nameserver addresses
/// are asked (53 in production).
pub async fn check(
    resolver: &Resolver,
    groups: &[ServerGroup],
    port: u16,
    timeout: Duration,
) -> GateReport {
    let mut report = GateReport::default();
    let options = Options {
        timeout,
        udp_tries: 2,
        ..Options::default()
    };
    for group in groups {
        if group.hosts.is_empty() {
            report
                .disagreements
                .push(format!("{}: no nameservers known", group.label));
            continue;
        }
        for host in &group.hosts {
            let addresses = match resolver.addresses(host).await {
                Ok(a) if !a.is_empty() => a,
                Ok(_) => {
                    report.disagreements.push(format!(
                        "{}: {} has no address",
                        group.label,
                        display(host)
                    ));
                    continue;
                }
                Err(e) => {
                    report
                        .disagreements
                        .push(format!("{}: {}: {e}", group.label, display(host)));
                    continue;
                }
            };
            for ip in addresses {
                let server = SocketAddr::new(ip, port);
                let who = format!("{} {server}", display(host));
                if !report.checked.contains(&who) {
                    report.checked.push(who.clone());
                }
                for expected in &group.expected {
                    if let Some(problem) =
                        ask(server, expected, group.signed_by.as_ref(), &options).await
                    {
                        report
                            .disagreements
                            .push(format!("{}: {who}: {problem}", group.label));
                    }
                }
            }
        }
    }
    report
}

/// `None` when `server` serves `expected`; else what it serves instead.
async fn ask(
    server: SocketAddr,
    expected: &ExpectedRrset,
    signed_by: Option<&(Name, Vec<Dnskey>)>,
    options: &Options,
) -> Option<String> {
    let what = format!("{} {}", display(&expected.owner), expected.rtype);
    let answer = match authoritative::ask(server, &expected.owner, expected.rtype, options).await {
        Ok(answer) => answer,
        Err(e) => return Some(format!("{what}: {e}")),
    };
    let got = answer.rdatas;
    if got != expected.rdatas {
        return Some(format!(
            "{what}: serves {} record(s), expected {}{}",
            got.len(),
            expected.rdatas.len(),
            if got.len() == expected.rdatas.len() {
                " (different data)"
            } else {
                ""
            }
        ));
    }
    if let (Some((signer, keys)), false) = (signed_by, got.is_empty()) {
        let sigs = answer.rrsigs;
        let valid = sigs.iter().any(|sig| {
            sig.signer == *signer && keys.iter().any(|k| verify(sig, &expected.owner, &got, k))
        });
        if !valid {
            return Some(format!(
                "{what}: {} signature(s), none verifies with the keys of {}",
                sigs.len(),
                display(signer)
            ));
        }
    }
    None
}
