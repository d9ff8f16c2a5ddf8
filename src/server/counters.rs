//! What the server answered, counted for `/metrics` (issue 14) without
//! costing the UDP hot path: each UDP thread tallies answers by RCODE
//! (RFC 1035 §4.1.1, the low four bits) in a plain local array and adds
//! the batch's tallies to its own cache-line-aligned slot once per batch
//! of up to 64 datagrams; nothing is shared between threads until a scrape
//! sums the slots. TCP answers, transfers and open connections are counted
//! with shared atomics (TCP is not the hot path).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Answers by RCODE (0..=15).
pub type ByRcode = [u64; 16];

/// One UDP thread's totals, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct UdpSlot {
    by_rcode: [AtomicU64; 16],
}

/// Counters of every UDP thread and of TCP.
#[derive(Debug)]
pub struct QueryCounters {
    udp: Box<[UdpSlot]>,
    tcp: [AtomicU64; 16],
    /// AXFR/IXFR sent whole, and cut off.
    transfers: [AtomicU64; 4],
    tcp_open: AtomicI64,
}

/// A transfer's kind and outcome, for `signalbox_transfers_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferOutcome {
    /// AXFR sent whole.
    AxfrComplete,
    /// AXFR cut off (the client went away or stalled).
    AxfrCut,
    /// IXFR (or its AXFR fallback) sent whole.
    IxfrComplete,
    /// IXFR cut off.
    IxfrCut,
}

/// The totals a scrape reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryTotals {
    /// UDP answers by RCODE.
    pub udp: ByRcode,
    /// TCP answers by RCODE (a transfer counts once).
    pub tcp: ByRcode,
    /// Transfers: AXFR complete, AXFR cut, IXFR complete, IXFR cut.
    pub transfers: [u64; 4],
    /// TCP connections open now.
    pub tcp_open: i64,
}

impl QueryCounters {
    /// Counters for `udp_threads` UDP threads.
    pub fn new(udp_threads: usize) -> Self {
        QueryCounters {
            udp: (0..udp_threads.max(1))
                .map(|_| UdpSlot::default())
                .collect(),
            tcp: Default::default(),
            transfers: Default::default(),
            tcp_open: AtomicI64::new(0),
        }
    }

    /// Adds one UDP thread's batch tallies (and clears them).
    pub fn add_udp(&self, thread: usize, tally: &mut ByRcode) {
        let Some(slot) = self.udp.get(thread) else {
            return;
        };
        for (total, count) in slot.by_rcode.iter().zip(tally.iter_mut()) {
            if *count != 0 {
                total.fetch_add(*count, Relaxed);
                *count = 0;
            }
        }
    }

    /// One TCP answer with `rcode`.
    pub fn add_tcp(&self, rcode: u8) {
        self.tcp[usize::from(rcode & 0x0f)].fetch_add(1, Relaxed);
    }

    /// One transfer ended.
    pub fn add_transfer(&self, outcome: TransferOutcome) {
        self.transfers[outcome as usize].fetch_add(1, Relaxed);
    }

    /// A TCP connection opened (`1`) or closed (`-1`).
    pub fn tcp_connection(&self, delta: i64) {
        self.tcp_open.fetch_add(delta, Relaxed);
    }

    /// The sums, for a scrape.
    pub fn totals(&self) -> QueryTotals {
        let mut totals = QueryTotals::default();
        for slot in self.udp.iter() {
            for (sum, count) in totals.udp.iter_mut().zip(&slot.by_rcode) {
                *sum += count.load(Relaxed);
            }
        }
        for (sum, count) in totals.tcp.iter_mut().zip(&self.tcp) {
            *sum = count.load(Relaxed);
        }
        for (sum, count) in totals.transfers.iter_mut().zip(&self.transfers) {
            *sum = count.load(Relaxed);
        }
        totals.tcp_open = self.tcp_open.load(Relaxed);
        totals
    }
}

/// The RCODE of an answer in wire form (0 when too short to tell).
pub fn rcode_of(answer: &[u8]) -> u8 {
    answer.get(3).map_or(0, |flags| flags & 0x0f)
}

/// The mnemonic of an RCODE (RFC 6895 §2.3), for a label.
pub fn rcode_name(rcode: usize) -> &'static str {
    const NAMES: [&str; 16] = [
        "NOERROR",
        "FORMERR",
        "SERVFAIL",
        "NXDOMAIN",
        "NOTIMP",
        "REFUSED",
        "YXDOMAIN",
        "YXRRSET",
        "NXRRSET",
        "NOTAUTH",
        "NOTZONE",
        "DSOTYPENI",
        "RCODE12",
        "RCODE13",
        "RCODE14",
        "RCODE15",
    ];
    NAMES.get(rcode).copied().unwrap_or("RCODE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_tallies_add_up_and_are_cleared() {
        let counters = QueryCounters::new(2);
        let mut tally = ByRcode::default();
        tally[0] = 5;
        tally[3] = 2;
        counters.add_udp(0, &mut tally);
        assert_eq!(tally, ByRcode::default());
        tally[0] = 1;
        counters.add_udp(1, &mut tally);
        counters.add_tcp(0x85); // flags byte with RCODE 5
        counters.add_transfer(TransferOutcome::IxfrComplete);
        counters.tcp_connection(1);
        let totals = counters.totals();
        assert_eq!(totals.udp[0], 6);
        assert_eq!(totals.udp[3], 2);
        assert_eq!(totals.tcp[5], 1);
        assert_eq!(totals.transfers, [0, 0, 1, 0]);
        assert_eq!(totals.tcp_open, 1);
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_of(&[0, 0, 0x84, 0x83]), 3);
    }
}
