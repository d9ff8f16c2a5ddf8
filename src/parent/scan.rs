//! Scanning a child as a parent's scanner does, for `crate::check` to
//! evaluate: the parent's DS and NS for the child
//! (through the configured `[resolver]`, then the parent's own servers:
//! `parent::observer`), every address of every nameserver of the
//! delegation directly, without recursion, over UDP and over TCP (RFC 9975
//! §3; registries scan over TCP), and the RFC 9615 signals through the
//! validating resolver (RFC 9615 §4.2 step 3: the AD bit must be set).

use std::{net::SocketAddr, time::Duration};

use hickory_proto::rr::{Name, RecordType};

use super::{observer, resolver::Resolver};
use crate::{
    check::{
        ApexSets, Facts, ParentSide, ServerAnswer, SignalAnswer, SignalSets, Signed, Transport,
    },
    client::{Options, TcpFallback, authoritative},
    dns::{
        name::{dsboot_name, is_at_or_below},
        wire::rcode,
    },
};

/// Where and how long to ask.
#[derive(Debug, Clone)]
pub struct Asking {
    /// The port nameservers are asked on (53; tests use others).
    pub port: u16,
    /// How long to wait for one answer.
    pub timeout: Duration,
    /// The nameservers to ask when the parent's NS set cannot be read.
    pub configured: Vec<Name>,
}

/// Gathers the facts about `child`.
pub async fn scan(resolver: &Resolver, child: &Name, asking: &Asking) -> Facts {
    let parent = parent_side(resolver, child, asking).await;
    let nameservers = match &parent {
        Ok(side) if !side.ns.is_empty() => side.ns.clone(),
        _ => asking.configured.clone(),
    };
    let mut servers = Vec::new();
    let mut unresolved = Vec::new();
    for host in &nameservers {
        let addresses = match resolver.addresses(host).await {
            Ok(addresses) => addresses,
            Err(e) => {
                unresolved.push((host.clone(), format!("no address: {e}")));
                continue;
            }
        };
        for ip in addresses {
            let addr = SocketAddr::new(ip, asking.port);
            for transport in [Transport::Udp, Transport::Tcp] {
                servers.push(ServerAnswer {
                    host: host.clone(),
                    addr,
                    transport,
                    sets: apex_sets(child, addr, transport, asking.timeout).await,
                });
            }
        }
    }
    let mut signals = Vec::new();
    for ns in nameservers.iter().filter(|ns| !is_at_or_below(ns, child)) {
        let owner = match dsboot_name(child, ns) {
            Ok(owner) => owner,
            Err(e) => {
                signals.push(SignalAnswer {
                    ns: ns.clone(),
                    owner: ns.clone(),
                    sets: Err(format!("no signalling name: {e}")),
                });
                continue;
            }
        };
        let sets = signal_sets(resolver, &owner).await;
        signals.push(SignalAnswer {
            ns: ns.clone(),
            owner,
            sets,
        });
    }
    Facts {
        child: child.clone(),
        parent,
        nameservers,
        servers,
        unresolved,
        signals,
    }
}

/// The parent's DS and NS for the child (`parent::observer::observe_child`: the
/// parent found by DSYNC discovery, asked directly).
async fn parent_side(
    resolver: &Resolver,
    child: &Name,
    asking: &Asking,
) -> Result<ParentSide, String> {
    let observed = observer::observe_child(resolver, child, asking.port, asking.timeout)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ParentSide {
        zone: Some(observed.parent),
        ds: observed.ds,
        ns: observed.ns,
    })
}

/// DNSKEY, CDS and CDNSKEY at the apex as `addr` serves them.
async fn apex_sets(
    child: &Name,
    addr: SocketAddr,
    transport: Transport,
    timeout: Duration,
) -> Result<ApexSets, String> {
    let options = Options {
        timeout,
        udp_tries: 2,
        tcp: match transport {
            Transport::Udp => TcpFallback::OnTruncation,
            Transport::Tcp => TcpFallback::Always,
        },
        ..Options::default()
    };
    Ok(ApexSets {
        dnskey: rrset(child, RecordType::DNSKEY, addr, &options).await?,
        cds: rrset(child, RecordType::CDS, addr, &options).await?,
        cdnskey: rrset(child, RecordType::CDNSKEY, addr, &options).await?,
        csync: rrset(child, RecordType::CSYNC, addr, &options).await?,
    })
}

/// One RRset and its signatures, as `addr` serves it authoritatively; a
/// name that does not exist at the apex is an error too.
async fn rrset(
    owner: &Name,
    rtype: RecordType,
    addr: SocketAddr,
    options: &Options,
) -> Result<Signed, String> {
    let answer = authoritative::ask(addr, owner, rtype, options)
        .await
        .map_err(|e| format!("{rtype}: {e}"))?;
    if answer.rcode != rcode::NOERROR {
        return Err(format!("{rtype}: {}", rcode::name(answer.rcode)));
    }
    Ok(Signed {
        rdatas: answer.rdatas,
        rrsigs: answer.rrsigs,
    })
}

/// The CDS and CDNSKEY at a signalling name, through the resolver.
async fn signal_sets(resolver: &Resolver, owner: &Name) -> Result<SignalSets, String> {
    let mut sets = SignalSets {
        validated: true,
        ..SignalSets::default()
    };
    for rtype in [RecordType::CDS, RecordType::CDNSKEY] {
        // Not from the agent's cache: the signal may have changed since.
        let answer = resolver
            .lookup_fresh(owner, rtype)
            .await
            .map_err(|e| format!("{rtype}: {e}"))?;
        if !matches!(answer.rcode, rcode::NOERROR | rcode::NXDOMAIN) {
            return Err(format!("{rtype}: {}", rcode::name(answer.rcode)));
        }
        sets.validated &= answer.authentic;
        let mut rdatas: Vec<Vec<u8>> = answer.records.iter().map(|r| r.rdata.clone()).collect();
        rdatas.sort();
        rdatas.dedup();
        match rtype {
            RecordType::CDS => sets.cds = rdatas,
            _ => sets.cdnskey = rdatas,
        }
    }
    Ok(sets)
}
