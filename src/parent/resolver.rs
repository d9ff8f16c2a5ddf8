//! A caching stub resolver in front of the configured validating resolver
//! (`[resolver]`): DSYNC discovery, NS sets and addresses.
//!
//! Answers are cached for their TTL; negative answers for the SOA's
//! negative TTL (RFC 2308 §5: min(SOA TTL, SOA MINIMUM)), capped at an hour
//! so a mistake at the parent does not stick for a day. Failures are not
//! cached. With `require_ad` a DSYNC or NS answer must carry the AD flag
//! (the resolver validated it); BIND does the same for DSYNC (docs/INTEROP.md).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hickory_proto::rr::{Name, RecordType};

use crate::{
    client::{self, ClientError, Options},
    config::ResolverConfig,
    dns::{
        message::{self, WireRecord},
        name::{canonical_wire, display},
        wire::{self, flags, rcode, u32_at},
    },
};

/// Longest time any answer is cached.
const MAX_CACHE: Duration = Duration::from_secs(3600);

/// One answer as the resolver gave it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// RCODE.
    pub rcode: u16,
    /// The AD flag.
    pub authentic: bool,
    /// Answer records of the asked type at the asked name.
    pub records: Vec<WireRecord>,
    /// Owner of the SOA in the authority section of a negative answer.
    pub soa_owner: Option<Name>,
    /// Negative TTL from that SOA: min(TTL, MINIMUM) (RFC 2308 §5).
    pub negative_ttl: Option<u32>,
    /// Which resolver answered.
    pub server: SocketAddr,
}

impl Answer {
    /// NXDOMAIN, or NOERROR without records of the type (NODATA).
    pub fn is_negative(&self) -> bool {
        self.rcode == rcode::NXDOMAIN || (self.rcode == rcode::NOERROR && self.records.is_empty())
    }

    /// Short text for logs and the CLI: `NOERROR 2 records AD`, `NXDOMAIN (SOA parent.)`.
    pub fn summary(&self) -> String {
        let mut out = rcode::name(self.rcode);
        if !self.records.is_empty() {
            out.push_str(&format!(" {} record(s)", self.records.len()));
        } else if self.rcode == rcode::NOERROR {
            out.push_str(" NODATA");
        }
        if let Some(soa) = &self.soa_owner {
            out.push_str(&format!(" (SOA {})", display(soa)));
        }
        out.push_str(if self.authentic { " AD" } else { " no AD" });
        out
    }
}

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// `[resolver] servers` is empty.
    #[error("no [resolver] servers configured")]
    NoResolver,
    /// No resolver answered.
    #[error("{name} {rtype}: {source}")]
    Unreachable {
        /// The name asked.
        name: String,
        /// The type asked.
        rtype: String,
        /// The last error.
        source: ClientError,
    },
    /// SERVFAIL or another error RCODE (a validation failure shows as SERVFAIL).
    #[error("{name} {rtype}: the resolver answered {rcode}")]
    Failed {
        /// The name asked.
        name: String,
        /// The type asked.
        rtype: String,
        /// The RCODE's name.
        rcode: String,
    },
    /// `require_ad` and the answer was not validated.
    #[error(
        "{name} {rtype}: the answer is not DNSSEC-validated (no AD flag from {server}); \
         refusing it ([resolver] require_ad = true)"
    )]
    NotValidated {
        /// The name asked.
        name: String,
        /// The type asked.
        rtype: String,
        /// The resolver.
        server: SocketAddr,
    },
}

/// Cached answers by (canonical name, type), with their expiry.
type Cache = HashMap<(Vec<u8>, u16), (Instant, Arc<Answer>)>;

/// The resolver with its cache; cheap to share (`Arc`).
#[derive(Debug)]
pub struct Resolver {
    config: ResolverConfig,
    cache: Mutex<Cache>,
}

impl Resolver {
    /// A resolver for `config`.
    pub fn new(config: ResolverConfig) -> Self {
        Resolver {
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// True when DSYNC/NS answers must be validated.
    pub fn requires_ad(&self) -> bool {
        self.config.require_ad
    }

    /// Looks `name`/`rtype` up (cached).
    pub async fn lookup(
        &self,
        name: &Name,
        rtype: RecordType,
    ) -> Result<Arc<Answer>, ResolveError> {
        let key = (canonical_wire(name), u16::from(rtype));
        if let Ok(cache) = self.cache.lock() {
            if let Some((expires, answer)) = cache.get(&key) {
                if *expires > Instant::now() {
                    return Ok(answer.clone());
                }
            }
        }
        let answer = Arc::new(self.ask(name, rtype).await?);
        let ttl = cache_ttl(&answer);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 200_000 {
                let now = Instant::now();
                cache.retain(|_, (expires, _)| *expires > now);
            }
            cache.insert(key, (Instant::now() + ttl, answer.clone()));
        }
        Ok(answer)
    }

    /// Looks `name`/`rtype` up afresh, past this cache (the resolver's own
    /// cache is the parent's too): for what signalbox itself just changed,
    /// such as an RFC 9615 signal, which a cached answer would show stale.
    pub async fn lookup_fresh(
        &self,
        name: &Name,
        rtype: RecordType,
    ) -> Result<Arc<Answer>, ResolveError> {
        Ok(Arc::new(self.ask(name, rtype).await?))
    }

    /// [`Self::lookup`], refusing unvalidated answers when `require_ad`.
    pub async fn lookup_secure(
        &self,
        name: &Name,
        rtype: RecordType,
    ) -> Result<Arc<Answer>, ResolveError> {
        let answer = self.lookup(name, rtype).await?;
        if self.config.require_ad && !answer.authentic {
            return Err(ResolveError::NotValidated {
                name: display(name),
                rtype: rtype.to_string(),
                server: answer.server,
            });
        }
        Ok(answer)
    }

    /// The IPv4 and IPv6 addresses of `host` (validation not required: an
    /// address only says where to send, and everything sent is public).
    pub async fn addresses(&self, host: &Name) -> Result<Vec<IpAddr>, ResolveError> {
        let mut out = Vec::new();
        let mut last_error = None;
        for rtype in [RecordType::A, RecordType::AAAA] {
            match self.lookup(host, rtype).await {
                Ok(answer) => out.extend(answer.records.iter().filter_map(WireRecord::address)),
                Err(e) => last_error = Some(e),
            }
        }
        match (out.is_empty(), last_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }

    /// Forgets everything cached (the CLI's fresh look, tests).
    pub fn clear(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    async fn ask(&self, name: &Name, rtype: RecordType) -> Result<Answer, ResolveError> {
        if self.config.servers.is_empty() {
            return Err(ResolveError::NoResolver);
        }
        let options = Options {
            timeout: self.config.timeout,
            udp_tries: 2,
            ..Options::default()
        };
        let mut last = None;
        for server in &self.config.servers {
            let query = message::query(wire::random_id(), name, rtype, true, true);
            let reply = match client::exchange(*server, query, &options).await {
                Ok(reply) => reply,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            if !matches!(reply.rcode, rcode::NOERROR | rcode::NXDOMAIN) {
                return Err(ResolveError::Failed {
                    name: display(name),
                    rtype: rtype.to_string(),
                    rcode: rcode::name(reply.rcode),
                });
            }
            let code = u16::from(rtype);
            // The records of the type asked (after a CNAME chain they are
            // owned by the chain's last name).
            let records = reply
                .answer
                .iter()
                .filter(|r| r.rtype == code)
                .cloned()
                .collect();
            let soa = reply
                .authority
                .iter()
                .find(|r| r.rtype == u16::from(RecordType::SOA));
            let negative_ttl = soa.map(|r| {
                let minimum = r
                    .rdata
                    .len()
                    .checked_sub(4)
                    .and_then(|at| u32_at(&r.rdata, at))
                    .unwrap_or(0);
                r.ttl.min(minimum)
            });
            return Ok(Answer {
                rcode: reply.rcode,
                authentic: reply.has(flags::AD),
                records,
                soa_owner: soa.map(|r| r.owner.clone()),
                negative_ttl,
                server: *server,
            });
        }
        Err(ResolveError::Unreachable {
            name: display(name),
            rtype: rtype.to_string(),
            source: last.unwrap_or(ClientError::Timeout {
                server: self.config.servers[0],
                tries: "no try".into(),
            }),
        })
    }
}

/// How long an answer may be cached.
fn cache_ttl(answer: &Answer) -> Duration {
    let seconds = if answer.records.is_empty() {
        // Negative: the SOA's negative TTL; without a SOA, a minute.
        answer.negative_ttl.unwrap_or(60)
    } else {
        answer.records.iter().map(|r| r.ttl).min().unwrap_or(0)
    };
    Duration::from_secs(u64::from(seconds)).min(MAX_CACHE)
}
