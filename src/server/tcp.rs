//! TCP (RFC 7766): two-octet length framing (RFC 1035 §4.2.2), several
//! queries per connection answered in order (§6.2.1.1), and the limits that
//! keep an outsider from holding the server's connection slots (§10), as
//! Knot and NSD have them. They are the `[server]` `tcp_*` options:
//!
//! - **idle**: a connection waiting for its next query longer than
//!   `tcp_idle_timeout` is closed (§6.2.3). When more than half of the slots
//!   are taken the wait is cut to 200 ms, as NSD does for new connections
//!   past half its `tcp-count`.
//! - **I/O**: a message once started (its first octet arrived) must be read
//!   whole, and every answer and every transfer message must be written,
//!   each within `tcp_io_timeout` (Knot's `tcp-io-timeout`, which covers
//!   outgoing transfers too). A client that pipelines queries and never
//!   reads its answers stops the writes and is closed after that long. The
//!   limit is per message, so a long AXFR to a reader that keeps reading
//!   completes however long it takes.
//! - **slots**: at most `tcp_max_connections` at once and at most
//!   `tcp_max_connections_per_source` from one source, an IPv4 address (/32)
//!   or an IPv6 /64 (one host's usual allocation, so a host cannot take every
//!   slot by cycling its own addresses). A connection over either limit is
//!   closed at once rather than queued (§6.2.2, §10).
//! - **per connection**: after `tcp_max_queries` answers (NSD's
//!   `tcp-query-count`; a transfer is one) or `tcp_max_lifetime`, the
//!   connection is closed between messages, never inside an answer or a
//!   transfer: the server shuts its side (FIN after the last answer) and
//!   drains what the client still sends, so no reset destroys answers in
//!   flight; the client opens a new connection for what it pipelined past
//!   the limit (§6.2.1).
//!
//! Every close and refusal is counted by reason ([`CloseCounts`]) and logged
//! at debug level only: outsiders cause them. Once a minute, if any limit
//! closed or refused connections, one info event sums them up.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    time::timeout,
};

use super::{
    Answer, SharedSnapshot, Transport,
    counters::{QueryCounters, TransferOutcome, rcode_of},
    respond,
};
use crate::{config::ServerConfig, dns::wire::put_framed};

/// The idle wait when more than half of the slots are taken (NSD's value).
const BUSY_IDLE: Duration = Duration::from_millis(200);

/// How often the summary of limit closes may be logged.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Binds a listening socket (with SO_REUSEADDR, so restarts do not wait).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// The TCP limits of `[server]` (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for the next query.
    pub idle: Duration,
    /// Longest time to read one started message or write one message.
    pub io: Duration,
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections at once from one source (/32 or /64).
    pub per_source: usize,
    /// Most queries per connection; 0 = no limit.
    pub max_queries: u32,
    /// Oldest a connection may get before it is closed between messages.
    pub lifetime: Duration,
}

impl Limits {
    /// The limits a validated `[server]` table sets.
    pub fn of(config: &ServerConfig) -> Limits {
        Limits {
            idle: config.tcp_idle_timeout,
            io: config.tcp_io_timeout,
            max_connections: config.tcp_max_connections,
            per_source: config.tcp_max_connections_per_source,
            max_queries: config.tcp_max_queries,
            lifetime: config.tcp_max_lifetime,
        }
    }
}

/// Why the server closed or refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The client closed it (or reset it) between or inside messages.
    PeerClosed,
    /// No query within the idle timeout.
    Idle,
    /// A started message was not read, or a message not written, in time.
    IoTimeout,
    /// `tcp_max_queries` answered.
    QueryLimit,
    /// `tcp_max_lifetime` reached.
    Lifetime,
    /// A message that is not a DNS query: the framing may be lost.
    Malformed,
    /// A socket error other than the client closing.
    Error,
    /// Refused: `tcp_max_connections` open.
    OverGlobalLimit,
    /// Refused: `tcp_max_connections_per_source` open from this source.
    OverSourceLimit,
}

impl Close {
    /// Every reason, in the order of [`CloseCounts`].
    pub const ALL: [Close; 9] = [
        Close::PeerClosed,
        Close::Idle,
        Close::IoTimeout,
        Close::QueryLimit,
        Close::Lifetime,
        Close::Malformed,
        Close::Error,
        Close::OverGlobalLimit,
        Close::OverSourceLimit,
    ];

    /// The reason as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Close::PeerClosed => "peer_closed",
            Close::Idle => "idle",
            Close::IoTimeout => "io_timeout",
            Close::QueryLimit => "query_limit",
            Close::Lifetime => "lifetime",
            Close::Malformed => "malformed",
            Close::Error => "error",
            Close::OverGlobalLimit => "over_global_limit",
            Close::OverSourceLimit => "over_source_limit",
        }
    }
}

/// Connections closed or refused, per [`Close`] reason, since the start.
#[derive(Debug, Default)]
pub struct CloseCounts([AtomicU64; Close::ALL.len()]);

impl CloseCounts {
    fn add(&self, reason: Close) {
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many connections ended for `reason`.
    pub fn get(&self, reason: Close) -> u64 {
        self.0[reason as usize].load(Ordering::Relaxed)
    }
}

/// Which connections count as one source: an IPv4 address, or the /64 of an
/// IPv6 address (an IPv4-mapped address counts as its IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    V6(u64),
}

impl Source {
    fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(u32::from(v4)),
                None => Source::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// The open connections, in total and per source.
struct Slots {
    limits: Limits,
    /// Answers, transfers and open connections, for `/metrics`.
    counters: Arc<QueryCounters>,
    open: AtomicUsize,
    by_source: Mutex<HashMap<Source, usize>>,
}

/// One taken slot; given back when dropped.
struct Slot {
    slots: Arc<Slots>,
    source: Source,
}

impl Slots {
    fn new(limits: Limits, counters: Arc<QueryCounters>) -> Slots {
        Slots {
            limits,
            counters,
            open: AtomicUsize::new(0),
            by_source: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for a connection from `ip`, or why there is none.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Close> {
        let source = Source::of(ip);
        // A panic elsewhere cannot leave the counts half-written: every
        // change under the lock is one insert or one decrement.
        let mut by_source = self
            .by_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.open.load(Ordering::Relaxed) >= self.limits.max_connections {
            return Err(Close::OverGlobalLimit);
        }
        let from_source = by_source.entry(source).or_insert(0);
        if *from_source >= self.limits.per_source {
            return Err(Close::OverSourceLimit);
        }
        *from_source += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        self.counters.tcp_connection(1);
        Ok(Slot {
            slots: Arc::clone(self),
            source,
        })
    }

    /// The wait for the next query: shortened when more than half of the
    /// slots are taken.
    fn idle_timeout(&self) -> Duration {
        if self.open.load(Ordering::Relaxed) * 2 > self.limits.max_connections {
            self.limits.idle.min(BUSY_IDLE)
        } else {
            self.limits.idle
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut by_source = self
            .slots
            .by_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = by_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                by_source.remove(&self.source);
            }
        }
        self.slots.open.fetch_sub(1, Ordering::Relaxed);
        self.slots.counters.tcp_connection(-1);
    }
}

/// Accepts connections until the runtime stops.
pub async fn serve(
    listener: TcpListener,
    snapshot: SharedSnapshot,
    limits: Limits,
    counters: Arc<QueryCounters>,
) {
    let slots = Arc::new(Slots::new(limits, counters));
    let counts = Arc::new(CloseCounts::default());
    if let Ok(local) = listener.local_addr() {
        tokio::spawn(report(Arc::clone(&counts), local));
    }
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match slots.take(peer.ip()) {
            Ok(slot) => slot,
            Err(reason) => {
                // Over a limit: close at once rather than queue (RFC 7766 §10).
                counts.add(reason);
                tracing::debug!(%peer, reason = reason.as_str(), "TCP connection refused");
                drop(stream);
                continue;
            }
        };
        let snapshot = snapshot.clone();
        let counts = Arc::clone(&counts);
        tokio::spawn(async move {
            let mut connection = Connection::new(stream, peer.ip(), &slot);
            let reason = connection.run(&snapshot).await;
            counts.add(reason);
            tracing::debug!(
                %peer,
                reason = reason.as_str(),
                queries = connection.queries,
                age_ms = connection.started.elapsed().as_millis() as u64,
                "TCP connection closed"
            );
            drop(connection);
            drop(slot);
        });
    }
}

/// One client connection: its stream (reads buffered, so pipelined queries
/// cost one system call per batch) and its buffers.
struct Connection<'a> {
    stream: BufReader<TcpStream>,
    peer: IpAddr,
    slots: &'a Slots,
    started: Instant,
    queries: u32,
    packet: Vec<u8>,
    out: Vec<u8>,
    framed: Vec<u8>,
}

impl<'a> Connection<'a> {
    fn new(stream: TcpStream, peer: IpAddr, slot: &'a Slot) -> Self {
        let _ = stream.set_nodelay(true);
        Connection {
            stream: BufReader::with_capacity(4096, stream),
            peer,
            slots: &slot.slots,
            started: Instant::now(),
            queries: 0,
            packet: vec![0u8; 65_535],
            out: Vec::with_capacity(4096),
            framed: Vec::with_capacity(4096),
        }
    }

    /// Answers queries in order until a limit or the client ends it.
    async fn run(&mut self, snapshot: &SharedSnapshot) -> Close {
        let limits = self.slots.limits;
        loop {
            let age = self.started.elapsed();
            let spent = limits.max_queries != 0 && self.queries >= limits.max_queries;
            if spent || age >= limits.lifetime {
                self.close_cleanly().await;
                return if spent {
                    Close::QueryLimit
                } else {
                    Close::Lifetime
                };
            }
            if let Err(reason) = self.next_query(limits.lifetime - age).await {
                if reason == Close::Lifetime {
                    self.close_cleanly().await;
                }
                return reason;
            }
            self.queries = self.queries.saturating_add(1);
            if let Err(reason) = self.answer(snapshot).await {
                return reason;
            }
        }
    }

    /// Answers the query in `packet`: one message, or a transfer's messages.
    async fn answer(&mut self, snapshot: &SharedSnapshot) -> Result<(), Close> {
        let len = usize::from(u16::from_be_bytes([self.packet[0], self.packet[1]]));
        let answer = {
            let current = snapshot.load();
            let query = &self.packet[2..2 + len];
            respond(&current, query, Transport::Tcp, self.peer, &mut self.out)
        };
        match answer {
            // Garbage on a stream: the framing may be lost; close.
            Answer::Drop => Err(Close::Malformed),
            Answer::Message => {
                self.slots.counters.add_tcp(rcode_of(&self.out));
                let message = std::mem::take(&mut self.out);
                let sent = self.send(&message).await;
                self.out = message;
                sent
            }
            Answer::Transfer(mut transfer) => {
                let started = Instant::now();
                let mut sent = Ok(());
                while let Some(message) = transfer.next_message() {
                    sent = self.send(&message).await;
                    if sent.is_err() {
                        break;
                    }
                }
                self.slots.counters.add_tcp(0);
                self.slots
                    .counters
                    .add_transfer(match (transfer.is_incremental(), sent.is_ok()) {
                        (false, true) => TransferOutcome::AxfrComplete,
                        (false, false) => TransferOutcome::AxfrCut,
                        (true, true) => TransferOutcome::IxfrComplete,
                        (true, false) => TransferOutcome::IxfrCut,
                    });
                tracing::info!(
                    peer = %self.peer,
                    records = transfer.records,
                    messages = transfer.messages,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    complete = sent.is_ok(),
                    "transfer sent"
                );
                sent
            }
        }
    }

    /// Waits up to the idle timeout (and never past `life_left`) for the
    /// next query, then reads it whole within the I/O timeout into `packet`
    /// (its length prefix first).
    async fn next_query(&mut self, life_left: Duration) -> Result<(), Close> {
        let idle = self.slots.idle_timeout();
        match timeout(idle.min(life_left), self.stream.fill_buf()).await {
            Err(_) if life_left <= idle => return Err(Close::Lifetime),
            Err(_) => return Err(Close::Idle),
            Ok(Ok([])) => return Err(Close::PeerClosed),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(io_close(&e)),
        }
        let read = async {
            self.stream.read_exact(&mut self.packet[..2]).await?;
            // RFC 1035 §4.2.2: the two-octet length prefix.
            let len = usize::from(u16::from_be_bytes([self.packet[0], self.packet[1]]));
            self.stream.read_exact(&mut self.packet[2..2 + len]).await
        };
        match timeout(self.slots.limits.io, read).await {
            Err(_) => Err(Close::IoTimeout),
            Ok(Err(e)) => Err(io_close(&e)),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Writes one framed message within the I/O timeout.
    async fn send(&mut self, message: &[u8]) -> Result<(), Close> {
        self.framed.clear();
        put_framed(&mut self.framed, message).map_err(|_| Close::Error)?;
        match timeout(self.slots.limits.io, self.stream.write_all(&self.framed)).await {
            Err(_) => Err(Close::IoTimeout),
            Ok(Err(e)) => Err(io_close(&e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Ends the connection between messages: FIN after the answers already
    /// written, then what the client still sends is read and dropped (at
    /// most for the I/O timeout), so that closing with unread data does not
    /// reset the connection before the client has read its answers.
    async fn close_cleanly(&mut self) {
        let stream = self.stream.get_mut();
        let drain = async {
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? != 0 {}
            Ok::<(), io::Error>(())
        };
        let _ = timeout(self.slots.limits.io, drain).await;
    }
}

/// The close reason for a socket error.
fn io_close(e: &io::Error) -> Close {
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Close::PeerClosed,
        _ => Close::Error,
    }
}

/// Logs, at most once per [`REPORT_EVERY`], how many connections the limits
/// closed or refused since the last report (nothing when none did).
async fn report(counts: Arc<CloseCounts>, local: SocketAddr) {
    let limited = [
        Close::OverGlobalLimit,
        Close::OverSourceLimit,
        Close::IoTimeout,
        Close::QueryLimit,
        Close::Lifetime,
    ];
    let mut last = limited.map(|reason| counts.get(reason));
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = limited.map(|reason| counts.get(reason));
        let delta: Vec<u64> = now.iter().zip(&last).map(|(n, l)| n - l).collect();
        if delta.iter().any(|d| *d > 0) {
            tracing::info!(
                %local,
                over_global_limit = delta[0],
                over_source_limit = delta[1],
                io_timeout = delta[2],
                query_limit = delta[3],
                lifetime = delta[4],
                "TCP limits closed or refused connections in the last minute"
            );
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize, per_source: usize) -> Limits {
        Limits {
            idle: Duration::from_secs(10),
            io: Duration::from_secs(2),
            max_connections,
            per_source,
            max_queries: 0,
            lifetime: Duration::from_secs(120),
        }
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_64s() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("address");
        assert_ne!(Source::of(ip("192.0.2.1")), Source::of(ip("192.0.2.2")));
        assert_eq!(
            Source::of(ip("2001:db8::1")),
            Source::of(ip("2001:db8::ffff:1"))
        );
        assert_ne!(
            Source::of(ip("2001:db8::1")),
            Source::of(ip("2001:db8:0:1::1"))
        );
        assert_eq!(
            Source::of(ip("::ffff:192.0.2.1")),
            Source::of(ip("192.0.2.1"))
        );
    }

    #[test]
    fn slots_are_limited_per_source_and_in_total_and_given_back() {
        let slots = Arc::new(Slots::new(limits(3, 2), Arc::new(QueryCounters::new(1))));
        let a: IpAddr = "192.0.2.1".parse().expect("address");
        let b: IpAddr = "192.0.2.2".parse().expect("address");
        let first = slots.take(a).expect("first");
        let _second = slots.take(a).expect("second");
        assert_eq!(slots.take(a).err(), Some(Close::OverSourceLimit));
        let _third = slots.take(b).expect("another source");
        assert_eq!(slots.take(b).err(), Some(Close::OverGlobalLimit));
        // Two of three taken: more than half, so the idle wait is short.
        assert_eq!(slots.idle_timeout(), BUSY_IDLE);
        drop(first);
        assert!(slots.take(a).is_ok());
    }

    #[test]
    fn the_idle_wait_is_whole_while_half_the_slots_are_free() {
        let slots = Arc::new(Slots::new(limits(4, 4), Arc::new(QueryCounters::new(1))));
        let ip: IpAddr = "192.0.2.1".parse().expect("address");
        let _a = slots.take(ip).expect("slot");
        let _b = slots.take(ip).expect("slot");
        assert_eq!(slots.idle_timeout(), Duration::from_secs(10));
    }
}
