//! What the parent agent did with generalized NOTIFYs (RFC 9859), counted
//! for `/metrics` (issue 14): NOTIFYs sent by type (CDS, CSYNC) and result,
//! how many children are owed a NOTIFY, and how many wait for their
//! nameservers to agree (the RFC 9975 consistency gate). The agent writes,
//! a scrape reads; no child zone name is kept here.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::ledger::Kind;

/// How a sent NOTIFY ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentResult {
    /// The parent's target answered NOERROR.
    Acknowledged = 0,
    /// It answered with an error RCODE (not retried).
    Rejected = 1,
    /// No answer, or the exchange failed (retried).
    Failed = 2,
}

/// The agent's counters.
#[derive(Debug, Default)]
pub struct NotifyCounters {
    /// `[kind][result]`: CDS, CSYNC × acknowledged, rejected, failed.
    sent: [[AtomicU64; 3]; 2],
    pending: AtomicU64,
    gate_waiting: AtomicU64,
}

/// The counters as read by a scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyTotals {
    /// `[kind][result]`, in the order of [`KIND_LABELS`] and [`RESULT_LABELS`].
    pub sent: [[u64; 3]; 2],
    /// NOTIFYs owed (children × type), as of the last ledger save.
    pub pending: u64,
    /// Owed NOTIFYs waiting for the nameservers to agree.
    pub gate_waiting: u64,
}

/// Label values of the NOTIFY types.
pub const KIND_LABELS: [&str; 2] = ["cds", "csync"];
/// Label values of the results.
pub const RESULT_LABELS: [&str; 3] = ["acknowledged", "rejected", "failed"];

fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Cds => 0,
        Kind::Csync => 1,
    }
}

impl NotifyCounters {
    /// One NOTIFY of `kind` ended with `result`.
    pub fn sent(&self, kind: Kind, result: SentResult) {
        self.sent[kind_index(kind)][result as usize].fetch_add(1, Relaxed);
    }

    /// The owed NOTIFYs now (children × type).
    pub fn set_pending(&self, pending: usize) {
        self.pending.store(pending as u64, Relaxed);
    }

    /// The owed NOTIFYs waiting for their nameservers to agree now.
    pub fn set_gate_waiting(&self, waiting: usize) {
        self.gate_waiting.store(waiting as u64, Relaxed);
    }

    /// The values, for a scrape.
    pub fn totals(&self) -> NotifyTotals {
        let mut sent = [[0; 3]; 2];
        for (row, counts) in sent.iter_mut().zip(&self.sent) {
            for (value, count) in row.iter_mut().zip(counts) {
                *value = count.load(Relaxed);
            }
        }
        NotifyTotals {
            sent,
            pending: self.pending.load(Relaxed),
            gate_waiting: self.gate_waiting.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_type_and_result() {
        let counters = NotifyCounters::default();
        counters.sent(Kind::Csync, SentResult::Failed);
        counters.sent(Kind::Cds, SentResult::Acknowledged);
        counters.sent(Kind::Cds, SentResult::Acknowledged);
        counters.set_pending(3);
        counters.set_gate_waiting(1);
        let totals = counters.totals();
        assert_eq!(totals.sent, [[2, 0, 0], [0, 0, 1]]);
        assert_eq!((totals.pending, totals.gate_waiting), (3, 1));
    }
}
