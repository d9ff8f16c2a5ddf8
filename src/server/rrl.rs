//! Response rate limiting (RRL) of UDP answers, as NSD (`nsd/rrl.c`) and
//! Knot (`knot/src/knot/modules/rrl`) do it: a signed negative answer or a
//! DNSKEY set with RRSIGs is 15-25 times the size of its query, so a
//! spoofed source would make the server an amplifier. Answers are counted
//! per (source prefix, answer class) in a token bucket that refills at
//! `rate` per second with a burst of `rate`; once it is empty the answer is
//! dropped, except every `slip`-th one, which is sent as a TC=1 reply with
//! the header and question only, so a real client behind the address
//! retries over TCP (which cannot be spoofed) and is answered there.
//! Sources in `exempt` are never limited, nor are answers to a query whose
//! TSIG verified (Knot exempts authenticated requests too). TCP is never
//! limited.
//!
//! The classes are Knot's (`rrl_clsid`) without wildcards and referrals,
//! which a signalling zone does not have: NXDOMAIN, other errors, NODATA
//! (no answer records), ANY, DNSSEC material (DNSKEY, RRSIG, DS, CDS,
//! CDNSKEY: the large signed answers), answers of 1024 octets or more
//! (Knot's `RRL_PSIZE_LARGE`) and other positive answers. The class comes
//! from the finished answer's header and the QTYPE the answer path already
//! read ([`super::Echo`]): no second parse.
//!
//! The cost on the query path is kept to a few nanoseconds:
//! - one fixed table of buckets, allocated at start (NSD's `rrl_array`,
//!   Knot's `rrl_table`), each bucket one `AtomicU64` read and written with
//!   relaxed loads and stores, never a compare-and-swap. Two UDP threads
//!   answering the same prefix in the same instant may lose one update, so
//!   at most one extra answer passes per such race, as with Knot's
//!   unlocked token updates; a limited answer writes nothing, so a flooded
//!   bucket is only read.
//! - the bucket is GCRA, a token bucket kept as one "theoretical arrival
//!   time" (the time at which the bucket would be full again): an answer
//!   passes when that time, plus one answer's interval, is at most a second
//!   ahead of now. The time is read once per received batch.
//! - buckets are found by a multiply-xorshift hash keyed with random bits
//!   drawn at start, not SipHash: an attacker who cannot see the key cannot
//!   aim many prefixes at one bucket. A different key in the same slot
//!   takes it over with a full bucket (a collision can let answers through,
//!   never limit an innocent source).
//! - counters are per UDP thread and added up when `status` asks.

use std::{
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Instant,
};

use crate::{
    config::{AclEntry, RrlConfig},
    dns::wire::flags,
    log_limit::LogLimit,
};

/// A limited prefix is logged when limiting starts, at most five times per
/// ten seconds in all: never a line per packet.
static LIMITING_LOG: LogLimit = LogLimit::new(5, 10);

/// Buckets in the table (a power of two): 2 MiB, for 256k prefixes and
/// classes at once. NSD's default `rrl-size` is 1,000,000 and Knot's
/// `table-size` 393,241; a signalling zone has fewer clients than either.
const BUCKETS: usize = 1 << 18;

/// Answers of this many octets or more are their own class (Knot's
/// `RRL_PSIZE_LARGE`).
const LARGE: usize = 1024;

/// Microseconds of credit a bucket holds: one second, so the burst equals
/// the rate.
const WINDOW_US: u64 = 1_000_000;

/// Bucket layout: bits 0-47 the theoretical arrival time in microseconds
/// since the table was made (8.9 years), bit 48 "limiting" (set when it
/// starts, so that is logged once), bits 49-63 a tag from the key's hash
/// that tells a bucket's owner from another key in the same slot.
const TIME_BITS: u32 = 48;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
const LIMITING: u64 = 1 << TIME_BITS;
const TAG_SHIFT: u32 = TIME_BITS + 1;

/// The kind of answer, so a flood of one kind from a prefix does not
/// limit another kind to it (Knot's answer classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AnswerClass {
    /// A positive answer.
    Positive = 0,
    /// NOERROR without answer records (NODATA, and truncated answers).
    Nodata = 1,
    /// NXDOMAIN.
    Nxdomain = 2,
    /// Any other RCODE (REFUSED, FORMERR, SERVFAIL, NOTIMP, NOTAUTH).
    Error = 3,
    /// A positive answer to QTYPE ANY (RFC 8482: one RRset).
    Any = 4,
    /// DNSKEY, RRSIG, DS, CDS and CDNSKEY answers.
    Dnssec = 5,
    /// Other positive answers of 1024 octets or more.
    Large = 6,
}

impl AnswerClass {
    /// The class of `answer` (a finished message) to a query of `qtype`.
    pub fn of(answer: &[u8], qtype: u16) -> AnswerClass {
        let (Some(&flags_lo), Some(an)) = (answer.get(3), answer.get(6..8)) else {
            return AnswerClass::Error;
        };
        match flags_lo & 0x0f {
            0 => {}
            3 => return AnswerClass::Nxdomain,
            _ => return AnswerClass::Error,
        }
        if an == [0, 0] {
            return AnswerClass::Nodata;
        }
        match qtype {
            255 => AnswerClass::Any,
            // DNSKEY, RRSIG, DS, CDS, CDNSKEY.
            48 | 46 | 43 | 59 | 60 => AnswerClass::Dnssec,
            _ if answer.len() >= LARGE => AnswerClass::Large,
            _ => AnswerClass::Positive,
        }
    }

    /// Its name in logs and counters.
    pub fn name(self) -> &'static str {
        match self {
            AnswerClass::Positive => "positive",
            AnswerClass::Nodata => "nodata",
            AnswerClass::Nxdomain => "nxdomain",
            AnswerClass::Error => "error",
            AnswerClass::Any => "any",
            AnswerClass::Dnssec => "dnssec",
            AnswerClass::Large => "large",
        }
    }
}

/// What to do with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Rate limited: send nothing.
    Drop,
    /// Rate limited, but this one is sent as a TC=1 reply without records.
    Slip,
}

/// What the limiter did, per UDP thread; [`Rrl::totals`] adds them up.
/// Each is written by its thread only, once per batch.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Counters {
    checked: AtomicU64,
    dropped: AtomicU64,
    slipped: AtomicU64,
    exempt: AtomicU64,
}

/// The counters of all UDP threads added up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RrlTotals {
    /// UDP answers checked against their bucket.
    pub checked: u64,
    /// Limited answers not sent.
    pub dropped: u64,
    /// Limited answers sent as TC=1 replies.
    pub slipped: u64,
    /// Answers to exempt sources or TSIG-signed queries (never limited).
    pub exempt: u64,
}

/// The limiter shared by every UDP thread of the process.
#[derive(Debug)]
pub struct Rrl {
    buckets: Box<[AtomicU64]>,
    /// Random hash keys (per process).
    keys: [u64; 2],
    /// Microseconds between answers at `rate`.
    interval_us: u64,
    slip: u32,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    /// Exempt prefixes as (network, mask) over IPv4-mapped IPv6 addresses.
    exempt: Box<[(u128, u128)]>,
    epoch: Instant,
    /// One per UDP thread, then one spare for tests and callers without one.
    counters: Box<[Counters]>,
    config: RrlConfig,
}

/// One UDP thread's view: the shared limiter, its own counters and slip
/// count, what it counted in the batch not yet added to them, and the last
/// limited query.
#[derive(Debug)]
pub struct RrlThread {
    rrl: Arc<Rrl>,
    index: usize,
    limited: u64,
    batch: RrlTotals,
    last: LastLimited,
}

/// The last query whose answer was limited, so a flood repeating it is
/// limited without answering it again: the same query octets (but the ID)
/// from the same prefix, on the same zone version, get the same answer,
/// hence the same class and the same TC=1 reply (but the ID). This is what
/// lets one UDP thread keep up with a sender repeating one query: answering
/// is the costly part, the bucket check is not.
#[derive(Debug, Default)]
struct LastLimited {
    /// The zone version it was answered from (0: none).
    version: usize,
    prefix: u128,
    class: Option<AnswerClass>,
    query: Vec<u8>,
    /// Its TC=1 reply.
    slipped: Vec<u8>,
}

/// Queries longer than this are not remembered (a plain query with EDNS
/// is well under it).
const REMEMBERED_MAX: usize = 512;

impl Rrl {
    /// The limiter for `config` (enabled or not) and `threads` UDP threads.
    pub fn new(config: &RrlConfig, threads: usize) -> Rrl {
        let random = RandomState::new();
        let keys = [
            random.hash_one(0x5bd1_e995u64),
            random.hash_one(0x27d4_eb2fu64) | 1,
        ];
        let exempt = config
            .exempt
            .iter()
            .filter_map(|entry| match entry {
                AclEntry::Prefix(net, len) => {
                    let (net, len) = mapped(*net, *len);
                    let mask = mask(len);
                    Some((net & mask, mask))
                }
                AclEntry::Key(_) => None,
            })
            .collect();
        Rrl {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            keys,
            interval_us: (WINDOW_US / u64::from(config.rate.max(1))).max(1),
            slip: config.slip,
            ipv4_prefix: config.ipv4_prefix.min(32),
            ipv6_prefix: config.ipv6_prefix.min(128),
            exempt,
            epoch: Instant::now(),
            counters: (0..=threads).map(|_| Counters::default()).collect(),
            config: config.clone(),
        }
    }

    /// What it is configured to do.
    pub fn config(&self) -> &RrlConfig {
        &self.config
    }

    /// The clock of the buckets, read once per batch: microseconds since
    /// the limiter was made.
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64 & TIME_MASK
    }

    /// The view of UDP thread `index` (indexes past the thread count share
    /// the spare counters).
    pub fn thread(self: &Arc<Self>, index: usize) -> RrlThread {
        RrlThread {
            index: index.min(self.counters.len() - 1),
            rrl: self.clone(),
            limited: 0,
            batch: RrlTotals::default(),
            last: LastLimited::default(),
        }
    }

    /// The counters of every thread added up.
    pub fn totals(&self) -> RrlTotals {
        self.counters
            .iter()
            .fold(RrlTotals::default(), |t, c| RrlTotals {
                checked: t.checked + c.checked.load(Relaxed),
                dropped: t.dropped + c.dropped.load(Relaxed),
                slipped: t.slipped + c.slipped.load(Relaxed),
                exempt: t.exempt + c.exempt.load(Relaxed),
            })
    }

    fn is_exempt(&self, addr: u128) -> bool {
        self.exempt.iter().any(|(net, mask)| addr & mask == *net)
    }

    /// The source prefix of `peer` as an IPv4-mapped IPv6 address, and
    /// its length there.
    fn prefix(&self, peer: IpAddr) -> (u128, u8) {
        let (addr, len) = match peer {
            IpAddr::V4(v4) => mapped(IpAddr::V4(v4), self.ipv4_prefix),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => mapped(IpAddr::V4(v4), self.ipv4_prefix),
                None => (u128::from(v6), self.ipv6_prefix),
            },
        };
        (addr & mask(len), len)
    }

    fn hash(&self, prefix: u128, class: AnswerClass) -> u64 {
        let folded = (prefix as u64) ^ ((prefix >> 64) as u64).rotate_left(29);
        let mut x = (folded ^ self.keys[0]).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^= (x >> 32) ^ (class as u64) << 56;
        x = x.wrapping_mul(self.keys[1]);
        x ^ (x >> 29)
    }

    /// The bucket decision for one answer of `class` to `peer` at `now`
    /// (from [`Rrl::now`]): `true` when it passes. Also logs when a bucket
    /// starts limiting.
    fn take(&self, peer: IpAddr, prefix: u128, class: AnswerClass, now: u64) -> bool {
        let hash = self.hash(prefix, class);
        let tag = hash >> TAG_SHIFT;
        let slot = &self.buckets[hash as usize & (BUCKETS - 1)];
        let old = slot.load(Relaxed);
        let owned = old >> TAG_SHIFT == tag;
        let tat = if owned {
            (old & TIME_MASK).max(now)
        } else {
            now
        };
        let next = tat + self.interval_us;
        if next - now <= WINDOW_US {
            // "Limiting" stays set until the bucket has been full again,
            // so a prefix held at its rate is logged once, not at every
            // refill.
            let still = if owned && old & TIME_MASK > now {
                old & LIMITING
            } else {
                0
            };
            slot.store(tag << TAG_SHIFT | still | next, Relaxed);
            return true;
        }
        // Limited (the bucket is owned: a new one is full). Mark it, once,
        // so the start of limiting is logged and not every packet.
        if old & LIMITING == 0 {
            slot.store(old | LIMITING, Relaxed);
            if let Some(suppressed) = LIMITING_LOG.allow() {
                let len = match peer {
                    IpAddr::V4(_) => self.ipv4_prefix,
                    IpAddr::V6(_) => self.ipv6_prefix,
                };
                tracing::warn!(
                    prefix = %format_args!("{}/{len}", display_prefix(prefix, peer)),
                    class = class.name(),
                    rate = self.config.rate,
                    suppressed,
                    "response rate limiting started for a source prefix"
                );
            }
        }
        false
    }
}

impl RrlThread {
    /// The limiter.
    pub fn rrl(&self) -> &Rrl {
        &self.rrl
    }

    /// The verdict on an answer of `class` to `peer` at `now` ([`Rrl::now`],
    /// read once per batch); `signed` answers (TSIG verified) pass.
    pub fn check(&mut self, peer: IpAddr, class: AnswerClass, signed: bool, now: u64) -> Verdict {
        let rrl = &*self.rrl;
        let (prefix, _) = rrl.prefix(peer);
        if signed || (!rrl.exempt.is_empty() && rrl.is_exempt(mapped(peer, 128).0)) {
            self.batch.exempt += 1;
            return Verdict::Send;
        }
        self.verdict(peer, prefix, class, now)
    }

    /// The bucket's verdict, counted.
    fn verdict(&mut self, peer: IpAddr, prefix: u128, class: AnswerClass, now: u64) -> Verdict {
        let rrl = &*self.rrl;
        self.batch.checked += 1;
        if rrl.take(peer, prefix, class, now) {
            return Verdict::Send;
        }
        self.limited += 1;
        if rrl.slip > 0 && self.limited % u64::from(rrl.slip) == 0 {
            self.batch.slipped += 1;
            Verdict::Slip
        } else {
            self.batch.dropped += 1;
            Verdict::Drop
        }
    }

    /// Before answering: when `query` from `peer` repeats the last limited
    /// query (but its ID) on zone `version`, the verdict of its bucket at
    /// `now`, with the TC=1 reply written to `out` for [`Verdict::Slip`]. A
    /// [`Verdict::Send`] has taken its token: answer it and do not
    /// [`RrlThread::check`] it again. `None`: answer it and check.
    pub fn repeat(
        &mut self,
        peer: IpAddr,
        query: &[u8],
        version: usize,
        now: u64,
        out: &mut Vec<u8>,
    ) -> Option<Verdict> {
        let last = &self.last;
        let class = last.class?;
        if last.version != version
            || query.len() != last.query.len()
            || query.len() < 12
            || query[2..] != last.query[2..]
        {
            return None;
        }
        let (prefix, _) = self.rrl.prefix(peer);
        if prefix != last.prefix {
            return None;
        }
        let verdict = self.verdict(peer, prefix, class, now);
        if verdict == Verdict::Slip {
            out.clear();
            out.extend_from_slice(&self.last.slipped);
            out[..2].copy_from_slice(&query[..2]);
        }
        Some(verdict)
    }

    /// After a limited answer (`answer`, slipped or not) to `query`:
    /// remembers it for [`RrlThread::repeat`].
    pub fn remember(
        &mut self,
        peer: IpAddr,
        query: &[u8],
        version: usize,
        class: AnswerClass,
        answer: &[u8],
        question_end: usize,
    ) {
        if query.len() > REMEMBERED_MAX || query.len() < 12 {
            return;
        }
        let last = &mut self.last;
        last.version = version;
        last.prefix = self.rrl.prefix(peer).0;
        last.class = Some(class);
        last.query.clear();
        last.query.extend_from_slice(query);
        last.slipped.clear();
        last.slipped.extend_from_slice(answer);
        slip(&mut last.slipped, question_end);
    }

    /// Adds the batch's counts to this thread's counters (once per batch:
    /// only this thread writes them, so a load and a store suffice).
    pub fn flush(&mut self) {
        let c = &self.rrl.counters[self.index];
        let b = std::mem::take(&mut self.batch);
        for (counter, n) in [
            (&c.checked, b.checked),
            (&c.dropped, b.dropped),
            (&c.slipped, b.slipped),
            (&c.exempt, b.exempt),
        ] {
            if n > 0 {
                counter.store(counter.load(Relaxed) + n, Relaxed);
            }
        }
    }
}

/// Turns `answer` into a TC=1 reply: the header and the question
/// (`question_end` octets), no records, AA cleared (Knot's and NSD's slip).
pub fn slip(answer: &mut Vec<u8>, question_end: usize) {
    if answer.len() < 12 {
        return;
    }
    answer.truncate(question_end.clamp(12, answer.len()));
    let bits = u16::from_be_bytes([answer[2], answer[3]]) | flags::TC;
    let bits = bits & !flags::AA;
    answer[2..4].copy_from_slice(&bits.to_be_bytes());
    answer[6..12].fill(0);
}

/// `addr`/`len` as an IPv4-mapped IPv6 address and prefix length.
fn mapped(addr: IpAddr, len: u8) -> (u128, u8) {
    match addr {
        IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), 96 + len.min(32)),
        IpAddr::V6(v6) => (u128::from(v6), len.min(128)),
    }
}

/// The mask of a `len`-bit prefix of a 128-bit address.
fn mask(len: u8) -> u128 {
    match len {
        0 => 0,
        l => u128::MAX << (128 - u32::from(l.min(128))),
    }
}

/// The prefix as an address of `peer`'s family.
fn display_prefix(prefix: u128, peer: IpAddr) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(prefix);
    match (peer, v6.to_ipv4_mapped()) {
        (IpAddr::V4(_), Some(v4)) => IpAddr::V4(v4),
        _ => IpAddr::V6(v6),
    }
}

#[cfg(test)]
mod tests;
