//! The authoritative server: UDP on one OS thread per core, each with its own
//! `SO_REUSEPORT` socket (BENCHMARKS.md: about 0.8x Knot's server CPU per
//! query on the same zone and machine), TCP on tokio (RFC
//! 7766), answers from an immutable [`Snapshot`] swapped atomically. UDP
//! answers pass response rate limiting ([`rrl`]) first.

pub mod answer;
pub mod counters;
pub mod inbound;
pub mod notify;
pub mod query;
pub mod report;
pub mod rrl;
mod snapshot;
mod tcp;
mod udp;
pub mod xfr;

use std::{net::SocketAddr, sync::Arc};

use arc_swap::ArcSwap;

pub use answer::{Answer, Echo, Transport, respond, respond_echo};
pub use snapshot::{ServedZone, Snapshot};

use crate::{
    config::ServerConfig,
    vital::{Ends, Vitals},
};

/// The snapshot the query path reads; writers store a new one.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A socket could not be opened.
    #[error("cannot listen on {addr} ({proto}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// "UDP" or "TCP".
        proto: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

/// What [`start`] set up.
#[derive(Debug)]
pub struct Listening {
    /// The addresses bound (with the ports picked for port 0).
    pub addrs: Vec<SocketAddr>,
    /// The response rate limiter of every UDP thread, when enabled.
    pub rrl: Option<Arc<rrl::Rrl>>,
    /// Answers by transport and RCODE, transfers, TCP connections.
    pub queries: Arc<counters::QueryCounters>,
}

/// Starts UDP threads and TCP listeners on every configured address. UDP
/// threads run until the process exits; TCP tasks run on the current tokio
/// runtime. Both are vital parts: a UDP thread or accept loop that panics
/// or returns is reported to `vitals` (the daemon then exits non-zero).
pub async fn start(
    config: &ServerConfig,
    snapshot: SharedSnapshot,
    vitals: &Vitals,
) -> Result<Listening, ServerError> {
    let threads = if config.udp_threads == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        config.udp_threads
    };
    // One limiter for every address: a source is limited across all of them.
    let limiter = config.rrl.enabled.then(|| {
        Arc::new(rrl::Rrl::new(
            &config.rrl,
            threads.max(1) * config.listen.len(),
        ))
    });
    let queries = Arc::new(counters::QueryCounters::new(
        threads.max(1) * config.listen.len(),
    ));
    let mut bound = Vec::new();
    for addr in &config.listen {
        // TCP first: with port 0 it picks the port UDP then shares.
        let listener = tcp::bind(*addr).map_err(|source| ServerError::Bind {
            addr: *addr,
            proto: "TCP",
            source,
        })?;
        let local = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: *addr,
            proto: "TCP",
            source,
        })?;
        let first_thread = bound.len() * threads.max(1);
        udp::spawn(
            local,
            threads,
            snapshot.clone(),
            limiter.as_ref(),
            &queries,
            first_thread,
            vitals,
        )
        .map_err(|source| ServerError::Bind {
            addr: local,
            proto: "UDP",
            source,
        })?;
        vitals.task(
            format!("tcp-accept-{local}"),
            Ends::Never,
            tcp::serve(
                listener,
                snapshot.clone(),
                tcp::Limits::of(config),
                Arc::clone(&queries),
            ),
        );
        tracing::info!(%local, udp_threads = threads, "listening");
        bound.push(local);
    }
    Ok(Listening {
        addrs: bound,
        rrl: limiter,
        queries,
    })
}
