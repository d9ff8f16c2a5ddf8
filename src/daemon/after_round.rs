//! What a round owes the world once it is done (and what a key change that
//! cut into a full round owes, at once): a NOTIFY to every secondary of a
//! zone with a new serial (RFC 1996), superseding one still being retried
//! for an older serial, and the children whose signals changed to the
//! parent agent; the round's facts to the metrics.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use hickory_proto::rr::Name;
use tokio::{sync::mpsc as tmpsc, task::JoinHandle};

use super::{
    Daemon, RoundReport,
    key_changes::{CutIn, NotifyJob},
};
use crate::{metrics::Metrics, parent::ChildReport, server};

/// What a round owes the world when it is done.
pub(super) struct AfterRound {
    /// NOTIFYs to secondaries still being retried, per (zone, secondary).
    pub(super) notifying: HashMap<(Name, SocketAddr), JoinHandle<()>>,
    /// The parent agent, when it runs.
    pub(super) agent: Option<tmpsc::UnboundedSender<ChildReport>>,
    /// What each key change that cut into a running round did
    /// (`key_changes.rs`), delivered while that round still runs.
    pub(super) cut_ins: tmpsc::UnboundedReceiver<CutIn>,
    /// The metrics, when served.
    pub(super) metrics: Option<Arc<Metrics>>,
}

impl AfterRound {
    /// NOTIFYs the secondaries of every zone with a new serial and hands the
    /// changed children to the parent agent.
    pub(super) fn deliver(&mut self, daemon: &Daemon, report: &mut RoundReport) {
        for (apex, serial) in &report.new_serials {
            self.notify(daemon.notify_jobs(apex, *serial));
        }
        self.report(std::mem::take(&mut report.child_reports));
    }

    /// Delivers what a key change that cut into a full round did.
    pub(super) fn deliver_cut_in(&mut self, cut_in: CutIn) {
        if let Some(metrics) = &self.metrics {
            metrics.round_done(cut_in.facts);
        }
        self.notify(cut_in.notifies);
        self.report(cut_in.child_reports);
    }

    /// Delivers the cut-ins not delivered yet: at the end of the round,
    /// before the round's own (whose serials are newer).
    pub(super) fn deliver_waiting_cut_ins(&mut self) {
        while let Ok(cut_in) = self.cut_ins.try_recv() {
            self.deliver_cut_in(cut_in);
        }
    }

    /// Sends `jobs`, superseding any NOTIFY still being retried for an
    /// older serial of the same zone to the same secondary.
    fn notify(&mut self, jobs: Vec<NotifyJob>) {
        for job in jobs {
            let slot = (job.apex.clone(), job.target);
            if let Some(old) = self.notifying.remove(&slot) {
                old.abort();
            }
            let task = tokio::spawn(server::notify::notify(
                job.apex, job.serial, job.target, job.key,
            ));
            self.notifying.insert(slot, task);
        }
        self.notifying.retain(|_, task| !task.is_finished());
    }

    /// Hands the children whose signals changed to the parent agent.
    fn report(&self, children: Vec<ChildReport>) {
        if let Some(tx) = &self.agent {
            for child in children {
                let _ = tx.send(child);
            }
        }
    }
}
