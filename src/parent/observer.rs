//! The parent observer: what the parent publishes for a child, read from
//! the parent's own authoritative servers (not a cache, so an applied DS
//! shows up at once).
//!
//! The parent's NS set comes from the resolver (validated when
//! `require_ad`); each server is then asked directly, without recursion,
//! for the child's DS RRset (answered authoritatively by the parent, RFC
//! 4035 §3.1.4.1) and NS RRset (a referral, or an authoritative answer when
//! the same server also hosts the child). The first server that answers
//! both wins; one that is down is skipped.

use std::{net::SocketAddr, time::Duration};

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use super::{
    discovery::{self, DiscoveryError},
    resolver::{ResolveError, Resolver},
};
use crate::{
    client::{self, ClientError, Options},
    dns::{
        Ds,
        message::{self, Message},
        name::display,
        wire::{self, rcode},
    },
    policy::ParentView,
};

/// What one look at the parent found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The parent zone.
    pub parent: Name,
    /// The server that answered.
    pub server: SocketAddr,
    /// The child's DS RRset at the parent.
    pub ds: Vec<Ds>,
    /// The child's NS RRset at the parent.
    pub ns: Vec<Name>,
    /// When.
    pub at: Timestamp,
}

impl Observation {
    /// The policy's view of it.
    pub fn view(&self) -> ParentView {
        ParentView {
            ds: self.ds.clone(),
            ns: Some(self.ns.clone()),
            observed_at: Some(self.at),
        }
    }
}

/// Why the parent could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// The parent's NS set or addresses could not be found.
    #[error("parent {parent}: {source}")]
    Resolve {
        /// The parent.
        parent: String,
        /// The failure.
        source: ResolveError,
    },
    /// The parent has no NS addresses.
    #[error("parent {parent}: no nameserver addresses found")]
    NoServers {
        /// The parent.
        parent: String,
    },
    /// Every server failed.
    #[error("parent {parent}: no server answered for {child}: {}", join(problems))]
    NoAnswer {
        /// The parent.
        parent: String,
        /// The child.
        child: String,
        /// What went wrong, per server.
        problems: Vec<ServerProblem>,
    },
    /// DSYNC discovery, which finds the parent, failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// Discovery ended without naming the parent zone.
    #[error("the parent zone is unknown (no SOA in the DSYNC answers)")]
    UnknownParent,
}

/// What went wrong with one parent server.
#[derive(Debug, thiserror::Error)]
#[error("{host} ({server}): {error}")]
pub struct ServerProblem {
    /// Its NS name.
    pub host: String,
    /// The address asked.
    pub server: SocketAddr,
    /// What went wrong.
    pub error: AskError,
}

/// Why one server's answer for the child is unusable.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// No answer, or an unusable one (timeout, unreachable, bad TSIG).
    #[error(transparent)]
    Exchange(#[from] ClientError),
    /// NXDOMAIN for the child: the parent has no delegation.
    #[error("{what}: NXDOMAIN (no delegation)")]
    NoDelegation {
        /// The type asked.
        what: RecordType,
    },
    /// Another error RCODE (REFUSED, SERVFAIL, ...).
    #[error("{what}: {}", rcode::name(*rcode))]
    Rcode {
        /// The type asked.
        what: RecordType,
        /// The RCODE.
        rcode: u16,
    },
}

fn join(problems: &[ServerProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("; ")
}

/// The parent's nameserver addresses at `port` (NS names validated when
/// the resolver requires it).
pub async fn parent_servers(
    resolver: &Resolver,
    parent: &Name,
    port: u16,
) -> Result<Vec<(Name, SocketAddr)>, ObserveError> {
    let resolve = |source| ObserveError::Resolve {
        parent: display(parent),
        source,
    };
    let ns = resolver
        .lookup_secure(parent, RecordType::NS)
        .await
        .map_err(resolve)?;
    let mut out = Vec::new();
    for host in ns.records.iter().filter_map(|r| r.target()) {
        match resolver.addresses(&host).await {
            Ok(addresses) => out.extend(
                addresses
                    .into_iter()
                    .map(|ip| (host.clone(), SocketAddr::new(ip, port))),
            ),
            Err(e) => {
                tracing::warn!(parent = display(parent), ns = display(&host), error = %e, "no address for a parent nameserver")
            }
        }
    }
    if out.is_empty() {
        return Err(ObserveError::NoServers {
            parent: display(parent),
        });
    }
    Ok(out)
}

/// Reads the child's DS and NS at the parent.
pub async fn observe(
    resolver: &Resolver,
    parent: &Name,
    child: &Name,
    port: u16,
    timeout: Duration,
    now: Timestamp,
) -> Result<Observation, ObserveError> {
    let servers = parent_servers(resolver, parent, port).await?;
    let options = Options {
        timeout,
        udp_tries: 2,
        ..Options::default()
    };
    let mut problems = Vec::new();
    for (host, server) in servers {
        match ask_server(server, child, &options).await {
            Ok((ds, ns)) => {
                return Ok(Observation {
                    parent: parent.clone(),
                    server,
                    ds,
                    ns,
                    at: now,
                });
            }
            Err(error) => problems.push(ServerProblem {
                host: display(&host),
                server,
                error,
            }),
        }
    }
    Err(ObserveError::NoAnswer {
        parent: display(parent),
        child: display(child),
        problems,
    })
}

async fn ask_server(
    server: SocketAddr,
    child: &Name,
    options: &Options,
) -> Result<(Vec<Ds>, Vec<Name>), AskError> {
    let ask = |rtype| async move {
        let query = message::query(wire::random_id(), child, rtype, false, true);
        client::exchange(server, query, options).await
    };
    let reply = ask(RecordType::DS).await?;
    check(&reply, RecordType::DS)?;
    // Sorted: servers may give the RRset in any order (RFC 2181 §5), and a
    // reordering is no change at the parent.
    let mut ds: Vec<Ds> = reply
        .answers(child, RecordType::DS)
        .filter_map(|r| Ds::from_wire(&r.rdata).ok())
        .collect();
    ds.sort_by_key(Ds::to_wire);
    ds.dedup();
    let reply = ask(RecordType::NS).await?;
    check(&reply, RecordType::NS)?;
    // A referral (authority) or, from a server that also hosts the child,
    // an answer: either way the NS RRset owned by the child.
    let code = u16::from(RecordType::NS);
    let mut ns: Vec<Name> = reply
        .answer
        .iter()
        .chain(&reply.authority)
        .filter(|r| r.rtype == code && r.owner == *child)
        .filter_map(|r| r.target().map(|n| n.to_lowercase()))
        .collect();
    ns.sort();
    ns.dedup();
    Ok((ds, ns))
}

fn check(reply: &Message, what: RecordType) -> Result<(), AskError> {
    match reply.rcode {
        rcode::NOERROR => Ok(()),
        rcode::NXDOMAIN => Err(AskError::NoDelegation { what }),
        rcode => Err(AskError::Rcode { what, rcode }),
    }
}

/// Reads the child's DS and NS at its parent, found by DSYNC discovery
/// (the parent is the zone that answered it).
pub async fn observe_child(
    resolver: &Resolver,
    zone: &Name,
    port: u16,
    timeout: Duration,
) -> Result<Observation, ObserveError> {
    let found = discovery::discover(resolver, zone).await?;
    let parent = found.parent.ok_or(ObserveError::UnknownParent)?;
    observe(resolver, &parent, zone, port, timeout, Timestamp::now()).await
}
