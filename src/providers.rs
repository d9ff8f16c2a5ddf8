//! The other providers of a multi-provider child (RFC 8901 §2.1.2, model 2:
//! every provider signs with its own keys, and the DS RRset at the parent
//! names every provider's KSK). signalbox's CDS/CDNSKEY must then be the
//! union of all providers' KSKs, and the same at every provider (RFC 9975),
//! or the parent drops the other providers' DS and their answers go bogus.
//!
//! `foreign_keys` in a zone's settings names those keys by hand; a
//! `[[zone]]` with `foreign_from = ["ns1.other-provider.example."]` has them
//! fetched instead: every address of every listed host is asked directly
//! (no cache, RD clear, DO set: [`crate::client::authoritative`]) for the
//! child's DNSKEY RRset, and a provider's KSKs are the keys of that RRset
//! with the SEP flag, not revoked (RFC 5011 §2.1), whose signature over it
//! verifies and is current (RFC 4035 §5.3): the provider vouches for its
//! own keys the way a validator checks a DNSKEY RRset. The addresses of one
//! host must serve the same RRset.
//!
//! A fetch is all or nothing: an unreachable host, a disagreement, an
//! unsigned or badly signed RRset, or no KSK at all keeps the keys last
//! validated (on disk in `state/foreign-keys.state`, so a restart keeps
//! them too) and is retried. A child whose other providers' keys have never
//! been validated publishes nothing new (it waits, `crate::plan`): a CDS
//! set without them would ask the parent to drop their DS.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;
use tokio::{
    sync::mpsc,
    time::{Instant, sleep_until},
};

use crate::{
    client::{
        Options,
        authoritative::{self, Authoritative, AuthoritativeError},
    },
    config::ResolverConfig,
    dns::{Dnskey, name::display, parse_name},
    dnssec::{key_tag, signer::signing_keys},
    parent::resolver::{ResolveError, Resolver},
    state::{StateError, write_atomically},
    vital::{Ends, Vitals},
};

/// One child whose other providers' keys are fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provided {
    /// The child zone.
    pub zone: Name,
    /// Nameservers of the other providers (`foreign_from`).
    pub hosts: Vec<Name>,
    /// How often they are asked (`foreign_refresh`).
    pub refresh: Duration,
}

/// The other providers' KSKs as last validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeys {
    /// The keys, sorted by tag, each once.
    pub keys: Vec<Dnskey>,
    /// When they were fetched and validated.
    pub fetched_at: Timestamp,
}

/// Why a fetch gave no keys (the last validated ones stay).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A host's addresses could not be looked up.
    #[error("{host}: {source}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        source: Box<ResolveError>,
    },
    /// A host has no address.
    #[error("{host} has no address")]
    NoAddress {
        /// The host.
        host: String,
    },
    /// A server gave no authoritative answer.
    #[error("{server}: {source}")]
    Server {
        /// `host address`.
        server: String,
        /// Why.
        source: Box<AuthoritativeError>,
    },
    /// The addresses of one host serve different DNSKEY RRsets.
    #[error("{first} and {second} serve different DNSKEY RRsets")]
    Disagree {
        /// `host address`.
        first: String,
        /// `host address`.
        second: String,
    },
    /// A host serves no DNSKEY RRset for the child.
    #[error("{server} serves no DNSKEY RRset for the zone")]
    NoDnskey {
        /// `host address`.
        server: String,
    },
    /// No SEP key signs the host's DNSKEY RRset with a current, valid
    /// signature.
    #[error(
        "{server}: no KSK signs the DNSKEY RRset with a current, valid signature ({rrsigs} signature(s) seen)"
    )]
    NoValidKsk {
        /// `host address`.
        server: String,
        /// RRSIGs over the DNSKEY RRset in the answer.
        rrsigs: usize,
    },
}

/// One host's answer at one address.
#[derive(Debug, Clone)]
pub struct HostAnswer {
    /// `host address`, for messages.
    pub server: String,
    /// The host, to group its addresses.
    pub host: Name,
    /// The DNSKEY RRset with its signatures.
    pub dnskey: Authoritative,
}

/// Asks every address of every host for `zone`'s DNSKEY RRset and
/// validates the answers ([`validate`]).
pub async fn fetch(
    resolver: &Resolver,
    zone: &Name,
    hosts: &[Name],
    port: u16,
    timeout: Duration,
) -> Result<Vec<Dnskey>, FetchError> {
    let options = Options {
        timeout,
        udp_tries: 2,
        ..Options::default()
    };
    let mut answers = Vec::new();
    for host in hosts {
        let addresses = resolver
            .addresses(host)
            .await
            .map_err(|source| FetchError::Resolve {
                host: display(host),
                source: Box::new(source),
            })?;
        if addresses.is_empty() {
            return Err(FetchError::NoAddress {
                host: display(host),
            });
        }
        for ip in addresses {
            let addr = SocketAddr::new(ip, port);
            let server = format!("{} {addr}", display(host));
            match authoritative::ask(addr, zone, RecordType::DNSKEY, &options).await {
                Ok(dnskey) => answers.push(HostAnswer {
                    server,
                    host: host.clone(),
                    dnskey,
                }),
                Err(source) => {
                    let source = Box::new(source);
                    return Err(FetchError::Server { server, source });
                }
            }
        }
    }
    validate(zone, &answers, Timestamp::now())
}

/// The KSKs the answers vouch for (see the module doc): pure.
pub fn validate(
    zone: &Name,
    answers: &[HostAnswer],
    now: Timestamp,
) -> Result<Vec<Dnskey>, FetchError> {
    let mut keys: Vec<Dnskey> = Vec::new();
    let mut first_of_host: Vec<&HostAnswer> = Vec::new();
    for answer in answers {
        if let Some(first) = first_of_host.iter().find(|a| a.host == answer.host) {
            if first.dnskey.rdatas != answer.dnskey.rdatas {
                return Err(FetchError::Disagree {
                    first: first.server.clone(),
                    second: answer.server.clone(),
                });
            }
        } else {
            first_of_host.push(answer);
        }
        let set = &answer.dnskey;
        let dnskeys: Vec<Dnskey> = set
            .rdatas
            .iter()
            .filter_map(|r| Dnskey::from_wire(r).ok())
            .collect();
        if dnskeys.is_empty() {
            return Err(FetchError::NoDnskey {
                server: answer.server.clone(),
            });
        }
        let ksks: Vec<Dnskey> = dnskeys
            .iter()
            .filter(|k| k.is_zone_key() && k.is_sep() && !k.is_revoked())
            .cloned()
            .collect();
        let signing = signing_keys(
            zone,
            RecordType::DNSKEY,
            &set.rdatas,
            &set.rrsigs,
            &ksks,
            now,
        );
        if signing.is_empty() {
            return Err(FetchError::NoValidKsk {
                server: answer.server.clone(),
                rrsigs: set.rrsigs.len(),
            });
        }
        for key in signing {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
    }
    keys.sort_by_key(|k| (key_tag(k), k.algorithm));
    Ok(keys)
}

/// `state/foreign-keys.state`.
pub fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join("foreign-keys.state")
}

/// The keys last validated per child (a missing file: none; a bad line is
/// skipped with a warning, and that child waits for its next fetch).
pub fn load(path: &Path) -> BTreeMap<Name, ForeignKeys> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "foreign keys unreadable; fetching again");
            return BTreeMap::new();
        }
    };
    let mut out: BTreeMap<Name, ForeignKeys> = BTreeMap::new();
    let mut bad: Vec<Name> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(3, ' ');
        let zone = fields.next().and_then(|z| parse_name(z).ok());
        let at = fields
            .next()
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|t| Timestamp::from_second(t).ok());
        let key = fields.next().and_then(|k| Dnskey::from_text(k).ok());
        match (zone, at, key) {
            (Some(zone), Some(fetched_at), Some(key)) => {
                let entry = out.entry(zone).or_insert(ForeignKeys {
                    keys: Vec::new(),
                    fetched_at,
                });
                entry.keys.push(key);
            }
            (zone, _, _) => {
                tracing::warn!(path = %path.display(), line = number + 1, "unreadable foreign key line; that zone's keys are fetched again");
                bad.extend(zone);
            }
        }
    }
    // A zone with a damaged line is not half-restored.
    for zone in bad {
        out.remove(&zone);
    }
    out
}

/// Writes every child's keys (atomically).
pub fn save(path: &Path, all: &BTreeMap<Name, ForeignKeys>) -> Result<(), StateError> {
    let mut text = String::from(
        "# signalbox: other providers' KSKs per child (foreign_from), as last validated\n\
         # <zone> <fetched at, unix seconds> <DNSKEY RDATA>\n",
    );
    for (zone, fetched) in all {
        for key in &fetched.keys {
            text.push_str(&format!(
                "{} {} {key}\n",
                display(zone),
                fetched.fetched_at.as_second()
            ));
        }
    }
    write_atomically(path, text.as_bytes())
}

/// What the fetcher needs besides the children.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// The resolver for the hosts' addresses.
    pub resolver: ResolverConfig,
    /// The port nameservers are asked on (`[notify] nameserver_port`).
    pub port: u16,
    /// How long to wait for one answer.
    pub timeout: Duration,
    /// `state/foreign-keys.state`.
    pub path: PathBuf,
}

/// Starts the fetcher: each child at once, then every `refresh` (after a
/// failure sooner, 1 s doubling up to `refresh`). Validated keys that
/// differ from the last are saved, then sent on the returned channel.
pub fn start(
    children: Vec<Provided>,
    saved: BTreeMap<Name, ForeignKeys>,
    config: FetchConfig,
    vitals: &Vitals,
) -> mpsc::UnboundedReceiver<(Name, ForeignKeys)> {
    let (tx, rx) = mpsc::unbounded_channel();
    vitals.task(
        "foreign-keys",
        Ends::WhenInputCloses,
        fetch_all(children, saved, config, tx),
    );
    rx
}

async fn fetch_all(
    children: Vec<Provided>,
    mut known: BTreeMap<Name, ForeignKeys>,
    config: FetchConfig,
    tx: mpsc::UnboundedSender<(Name, ForeignKeys)>,
) {
    let resolver = Resolver::new(config.resolver.clone());
    let now = Instant::now();
    let mut due: Vec<Instant> = vec![now; children.len()];
    let mut failures: Vec<u32> = vec![0; children.len()];
    let mut last_error: Vec<Option<String>> = vec![None; children.len()];
    loop {
        let Some((index, at)) = due.iter().copied().enumerate().min_by_key(|(_, at)| *at) else {
            return;
        };
        sleep_until(at).await;
        let child = &children[index];
        let zone = display(&child.zone);
        let fetched = fetch(
            &resolver,
            &child.zone,
            &child.hosts,
            config.port,
            config.timeout,
        )
        .await;
        match fetched {
            Ok(keys) => {
                failures[index] = 0;
                if last_error[index].take().is_some() {
                    tracing::info!(zone, "the other providers' keys validate again");
                }
                due[index] = Instant::now() + child.refresh;
                let unchanged = known.get(&child.zone).is_some_and(|k| k.keys == keys);
                if unchanged {
                    continue;
                }
                let tags: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{}/{}", key_tag(k), k.algorithm))
                    .collect();
                tracing::info!(
                    zone,
                    keys = tags.join(" "),
                    "the other providers' KSKs, validated (foreign_from)"
                );
                let entry = ForeignKeys {
                    keys,
                    fetched_at: Timestamp::now(),
                };
                known.insert(child.zone.clone(), entry.clone());
                let snapshot = known.clone();
                let path = config.path.clone();
                match tokio::task::spawn_blocking(move || save(&path, &snapshot)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(zone, "foreign keys not saved: {e}"),
                    Err(e) => tracing::error!(zone, error = %e, "foreign keys not saved"),
                }
                if tx.send((child.zone.clone(), entry)).is_err() {
                    return;
                }
            }
            Err(e) => {
                failures[index] += 1;
                let wait = Duration::from_secs(1 << failures[index].min(12)).min(child.refresh);
                due[index] = Instant::now() + wait;
                let message = e.to_string();
                if last_error[index].as_deref() != Some(message.as_str()) {
                    let kept = if known.contains_key(&child.zone) {
                        "the keys last validated stay"
                    } else {
                        "the zone waits: nothing validated yet"
                    };
                    tracing::warn!(
                        zone,
                        retry_in_s = wait.as_secs(),
                        "the other providers' keys could not be fetched ({kept}): {message}"
                    );
                    last_error[index] = Some(message);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
