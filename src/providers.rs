//! The other providers of a multi-provider child (RFC 8901 §2.1.2, model 2:
//! every provider signs with its own keys, and the DS RRset at the parent
//! names every provider's KSK). signalbox's CDS/CDNSKEY must then be the
//! union of all providers' KSKs, and the same at every provider (RFC 9975),
//! or the parent drops the other providers' DS and their answers go bogus.
//!
//! `foreign_keys` in a zone's settings names those keys by hand; a
//! `[[zone]]` with `foreign_from = ["ns1.other-provider.example."]` has them
//! fetched instead: every address of every listed host is asked directly,
//! over TCP (no cache, RD clear, DO set: [`crate::client::authoritative`]),
//! for the child's DNSKEY and CDNSKEY RRsets. The addresses of one host must
//! serve the same RRsets.
//!
//! A self-signature proves nothing about who sent it, so a provider's
//! DNSKEY RRset is believed only when a current signature over it (RFC 4035
//! §5.3) verifies with a key already trusted ([`Anchors`]): one the
//! parent's DS RRset points to (the provider is already in the chain of
//! trust), one listed in `foreign_keys`, or one validated from this
//! provider before (so its KSK rollovers are followed: the new KSK arrives
//! in an RRset the old one signs). A brand-new provider of a zone without
//! its DS is therefore started by listing its KSK in `foreign_keys` once.
//! From a believed RRset, the provider's KSKs are its zone keys with the
//! SEP flag, not revoked (RFC 5011 §2.1), standby keys included; when the
//! provider also serves a CDNSKEY RRset signed by one of those keys (not
//! the delete form), only the KSKs it names there (RFC 8078: what it wants
//! at the parent).
//!
//! A fetch is all or nothing: an unreachable host, a disagreement, an
//! unsigned, badly or untrustedly signed RRset, or no KSK keeps the keys
//! last validated (on disk in `state/foreign-keys.state` with the hosts
//! they came from, so a restart keeps them too) and is retried. A child
//! whose other providers' keys have never been validated publishes nothing
//! new (it waits, `crate::plan`): a CDS set without them would ask the
//! parent to drop their DS.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
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
        Options, TcpFallback,
        authoritative::{self, Authoritative, AuthoritativeError},
    },
    config::ResolverConfig,
    dns::{Dnskey, Ds, name::display, parse_name},
    dnssec::{Algorithm, ds_points_to, key_tag, signer::signing_keys},
    parent::resolver::{ResolveError, Resolver},
    state::{StateError, text_lines, write_atomically},
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
    /// The zone's `foreign_keys`: trusted to sign a provider's RRset.
    pub listed: Vec<Dnskey>,
}

/// What a provider's DNSKEY RRset must be signed by to be believed.
#[derive(Debug, Clone, Copy)]
pub struct Anchors<'a> {
    /// `foreign_keys` and the keys last validated.
    pub keys: &'a [Dnskey],
    /// The child's DS RRset at the parent.
    pub parent_ds: &'a [Ds],
}

impl Anchors<'_> {
    fn trust(&self, zone: &Name, key: &Dnskey) -> bool {
        self.keys.contains(key) || ds_points_to(zone, self.parent_ds, key)
    }
}

/// The child's DS RRset at the parent per child, as the parent observer
/// last saw it: written by the daemon, read by the fetcher.
pub type ParentDs = Arc<RwLock<HashMap<Name, Vec<Ds>>>>;

/// The other providers' KSKs as last validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeys {
    /// The keys, sorted by tag, each once.
    pub keys: Vec<Dnskey>,
    /// When they were fetched and validated.
    pub fetched_at: Timestamp,
    /// The hosts they were fetched from.
    pub hosts: Vec<Name>,
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
    /// No current signature over the DNSKEY RRset verifies with one of
    /// its keys.
    #[error(
        "{server}: no current signature over the DNSKEY RRset verifies with one of its keys ({rrsigs} signature(s) seen{unsupported})"
    )]
    NoValidSignature {
        /// `host address`.
        server: String,
        /// RRSIGs over the DNSKEY RRset in the answer.
        rrsigs: usize,
        /// `; algorithm N not supported here`, when a key's is not.
        unsupported: String,
    },
    /// The RRset is signed, but by no trusted key.
    #[error(
        "{server}: the DNSKEY RRset is signed by {signers} only: no DS at the parent points to it, \
         it is not in foreign_keys and was not validated before"
    )]
    Untrusted {
        /// `host address`.
        server: String,
        /// `tag/alg` of the keys whose signature verifies.
        signers: String,
    },
    /// A believed RRset without a KSK.
    #[error("{server}: no KSK (SEP flag, not revoked) in the DNSKEY RRset")]
    NoKsk {
        /// `host address`.
        server: String,
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
    /// The CDNSKEY RRset with its signatures (empty when none).
    pub cdnskey: Authoritative,
}

/// Asks every address of every host for `zone`'s DNSKEY and CDNSKEY
/// RRsets, over TCP.
pub async fn fetch(
    resolver: &Resolver,
    zone: &Name,
    hosts: &[Name],
    port: u16,
    timeout: Duration,
) -> Result<Vec<HostAnswer>, FetchError> {
    let options = Options {
        timeout,
        tcp: TcpFallback::Always,
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
            let mut sets = Vec::with_capacity(2);
            for rtype in [RecordType::DNSKEY, RecordType::CDNSKEY] {
                match authoritative::ask(addr, zone, rtype, &options).await {
                    Ok(set) => sets.push(set),
                    Err(source) => {
                        let source = Box::new(source);
                        return Err(FetchError::Server { server, source });
                    }
                }
            }
            let cdnskey = sets.pop().unwrap_or_default();
            let dnskey = sets.pop().unwrap_or_default();
            answers.push(HostAnswer {
                server,
                host: host.clone(),
                dnskey,
                cdnskey,
            });
        }
    }
    Ok(answers)
}

/// The other providers' KSKs the answers give, believed only through
/// `anchors` (see the module doc): pure.
pub fn validate(
    zone: &Name,
    answers: &[HostAnswer],
    anchors: Anchors<'_>,
    now: Timestamp,
) -> Result<Vec<Dnskey>, FetchError> {
    let mut keys: Vec<Dnskey> = Vec::new();
    let mut first_of_host: Vec<&HostAnswer> = Vec::new();
    for answer in answers {
        if let Some(first) = first_of_host.iter().find(|a| a.host == answer.host) {
            if first.dnskey.rdatas != answer.dnskey.rdatas
                || first.cdnskey.rdatas != answer.cdnskey.rdatas
            {
                return Err(FetchError::Disagree {
                    first: first.server.clone(),
                    second: answer.server.clone(),
                });
            }
            continue;
        }
        first_of_host.push(answer);
        for key in provider_ksks(zone, answer, anchors, now)? {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys.sort_by_key(|k| (key_tag(k), k.algorithm));
    Ok(keys)
}

/// One host's KSKs, when its DNSKEY RRset is believed.
fn provider_ksks(
    zone: &Name,
    answer: &HostAnswer,
    anchors: Anchors<'_>,
    now: Timestamp,
) -> Result<Vec<Dnskey>, FetchError> {
    let server = || answer.server.clone();
    let set = &answer.dnskey;
    // RFC 4034 §2.1.2: protocol 3; RFC 5011 §2.1: a revoked key is no
    // longer a zone key to trust.
    let zone_keys: Vec<Dnskey> = set
        .rdatas
        .iter()
        .filter_map(|r| Dnskey::from_wire(r).ok())
        .filter(|k| k.protocol == 3 && k.is_zone_key() && !k.is_revoked())
        .collect();
    if zone_keys.is_empty() {
        return Err(FetchError::NoDnskey { server: server() });
    }
    let signers = signing_keys(
        zone,
        RecordType::DNSKEY,
        &set.rdatas,
        &set.rrsigs,
        &zone_keys,
        now,
    );
    if signers.is_empty() {
        let mut unsupported: Vec<u8> = zone_keys
            .iter()
            .map(|k| k.algorithm)
            .filter(|a| Algorithm::from_number(*a).is_none())
            .collect();
        unsupported.dedup();
        return Err(FetchError::NoValidSignature {
            server: server(),
            rrsigs: set.rrsigs.len(),
            unsupported: unsupported
                .iter()
                .map(|a| format!("; algorithm {a} not supported here"))
                .collect(),
        });
    }
    if !signers.iter().any(|k| anchors.trust(zone, k)) {
        return Err(FetchError::Untrusted {
            server: server(),
            signers: tags(signers.iter().copied()),
        });
    }
    let ksks: Vec<Dnskey> = zone_keys.iter().filter(|k| k.is_sep()).cloned().collect();
    // What the provider asks of the parent, when it says so in a CDNSKEY
    // RRset signed by one of its keys (the delete form asks nothing of us).
    let wanted: Vec<Dnskey> = answer
        .cdnskey
        .rdatas
        .iter()
        .filter_map(|r| Dnskey::from_wire(r).ok())
        .filter(|k| k.algorithm != 0)
        .collect();
    let cdnskey = &answer.cdnskey;
    let cdnskey_signed = !signing_keys(
        zone,
        RecordType::CDNSKEY,
        &cdnskey.rdatas,
        &cdnskey.rrsigs,
        &zone_keys,
        now,
    )
    .is_empty();
    let chosen: Vec<Dnskey> = if cdnskey_signed && !wanted.is_empty() {
        ksks.into_iter().filter(|k| wanted.contains(k)).collect()
    } else {
        ksks
    };
    if chosen.is_empty() {
        return Err(FetchError::NoKsk { server: server() });
    }
    Ok(chosen)
}

/// `tag/alg tag/alg`: which keys, in one field (logs, errors).
pub fn tags<'a>(keys: impl IntoIterator<Item = &'a Dnskey>) -> String {
    keys.into_iter()
        .map(|k| format!("{}/{}", key_tag(k), k.algorithm))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `state/foreign-keys.state`.
pub fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join("foreign-keys.state")
}

/// The keys last validated per child (a missing file: none; a bad line is
/// skipped with a warning, and that child waits for its next fetch).
pub fn load(path: &Path) -> BTreeMap<Name, ForeignKeys> {
    let mut out: BTreeMap<Name, ForeignKeys> = BTreeMap::new();
    let mut bad: Vec<Name> = Vec::new();
    for (number, line) in text_lines(path) {
        let mut fields = line.splitn(4, ' ');
        let zone = fields.next().and_then(|z| parse_name(z).ok());
        let at = fields
            .next()
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|t| Timestamp::from_second(t).ok());
        let hosts = fields.next().and_then(|h| {
            h.split(',')
                .map(|h| parse_name(h).ok())
                .collect::<Option<Vec<Name>>>()
        });
        let key = fields.next().and_then(|k| Dnskey::from_text(k).ok());
        match (zone, at, hosts, key) {
            (Some(zone), Some(fetched_at), Some(hosts), Some(key)) => {
                let entry = out.entry(zone).or_insert(ForeignKeys {
                    keys: Vec::new(),
                    fetched_at,
                    hosts,
                });
                entry.keys.push(key);
            }
            (zone, ..) => {
                tracing::warn!(path = %path.display(), line = number, "unreadable foreign key line; that zone's keys are fetched again");
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
         # <zone> <fetched at, unix seconds> <hosts> <DNSKEY RDATA>\n",
    );
    for (zone, fetched) in all {
        let hosts: Vec<String> = fetched.hosts.iter().map(display).collect();
        for key in &fetched.keys {
            text.push_str(&format!(
                "{} {} {} {key}\n",
                display(zone),
                fetched.fetched_at.as_second(),
                hosts.join(",")
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
/// `parent_ds` is read at each validation.
pub fn start(
    children: Vec<Provided>,
    saved: BTreeMap<Name, ForeignKeys>,
    parent_ds: ParentDs,
    config: FetchConfig,
    vitals: &Vitals,
) -> mpsc::UnboundedReceiver<(Name, ForeignKeys)> {
    let (tx, rx) = mpsc::unbounded_channel();
    vitals.task(
        "foreign-keys",
        Ends::WhenInputCloses,
        fetch_all(children, saved, parent_ds, config, tx),
    );
    rx
}

async fn fetch_all(
    children: Vec<Provided>,
    mut known: BTreeMap<Name, ForeignKeys>,
    parent_ds: ParentDs,
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
        let answers = fetch(
            &resolver,
            &child.zone,
            &child.hosts,
            config.port,
            config.timeout,
        )
        .await;
        let fetched = answers.and_then(|answers| {
            let mut trusted = child.listed.clone();
            if let Some(last) = known.get(&child.zone) {
                trusted.extend(last.keys.iter().cloned());
            }
            let ds = parent_ds
                .read()
                .ok()
                .and_then(|all| all.get(&child.zone).cloned())
                .unwrap_or_default();
            let anchors = Anchors {
                keys: &trusted,
                parent_ds: &ds,
            };
            validate(&child.zone, &answers, anchors, Timestamp::now())
        });
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
                tracing::info!(
                    zone,
                    keys = tags(&keys),
                    "the other providers' KSKs, validated (foreign_from)"
                );
                let entry = ForeignKeys {
                    keys,
                    fetched_at: Timestamp::now(),
                    hosts: child.hosts.clone(),
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
                let wait =
                    Duration::from_secs(1 << (failures[index] - 1).min(12)).min(child.refresh);
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
