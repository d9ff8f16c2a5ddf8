//! What the parent agent does with a NOTIFY job's result: sent (paid,
//! failed and retried, or rejected), held at the consistency gate (RFC
//! 9975) or by the parent's-eye check (`gate = "parent"`), delayed, or not
//! sent for want of a DSYNC target; and the verdict of the parent's-eye
//! check it keeps for `explain`.

use std::time::Duration;

use hickory_proto::rr::Name;
use jiff::Timestamp;
use tokio::time::Instant;

use super::{Agent, HELD_RECHECK, MAX_RETRY, backoff};
use crate::{
    check::{self, Severity, Verdict},
    client::notify::Outcome,
    config::{Gate, OnTimeout},
    dns::{name::display, wire::rcode},
    event::{Event, EventKind},
    parent::{
        counters::SentResult,
        job::{NotifyOutcome, NotifyRun},
        ledger::Kind,
        recent::{CheckRecord, SentRecord},
        timers::Job,
    },
};

/// Why an owed NOTIFY waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closed {
    /// The nameservers disagree (RFC 9975).
    Disagreement,
    /// They agree, but the parent would refuse (`gate = "parent"`).
    Refusal,
}

impl Closed {
    /// `NOTIFY waits for ...`.
    fn waits_for(self) -> &'static str {
        match self {
            Closed::Disagreement => "the nameservers to agree",
            Closed::Refusal => "the parent's acceptance",
        }
    }

    /// The `notify-held` event's `SIGNALBOX_CAUSE`.
    fn cause(self) -> &'static str {
        match self {
            Closed::Disagreement => "disagreement",
            Closed::Refusal => "refusal",
        }
    }

    /// `NOTIFY held: ... after max_wait`.
    fn still(self) -> &'static str {
        match self {
            Closed::Disagreement => "the nameservers still disagree",
            Closed::Refusal => "the parent would still refuse",
        }
    }
}

impl Agent {
    pub(super) fn on_notify(&mut self, zone: Name, kind: Kind, mut run: NotifyRun) {
        let z = display(&zone);
        let qtype = kind.rtype().to_string();
        let attempt = {
            let a = self.attempts.entry((zone.clone(), kind)).or_insert(0);
            *a += 1;
            *a
        };
        if let Some(verdict) = run.verdict.take() {
            self.on_verdict(&zone, kind, verdict);
        }
        let delayed = match &run.outcome {
            NotifyOutcome::Discovery(e) => Some(e.to_string()),
            NotifyOutcome::NoAddress(e) => Some(e.to_string()),
            _ => None,
        };
        if let Some(why) = delayed {
            // Not waiting at the gate any more, whatever it said before.
            self.gating.remove(&(zone.clone(), kind));
            self.counters.set_gate_waiting(self.gating.len());
            let wait = backoff(attempt, Duration::from_secs(300));
            tracing::warn!(
                zone = z,
                qtype,
                retry_in_s = wait.as_secs(),
                "NOTIFY delayed: {why}"
            );
            self.schedule(Job::Notify(zone, kind), Instant::now() + wait);
            return;
        }
        match run.outcome {
            NotifyOutcome::NoTarget | NotifyOutcome::BadTarget(_) => {
                let why = no_target(&run, kind);
                tracing::info!(zone = z, qtype, "no NOTIFY sent: {why}");
                self.recent.record(
                    (zone.clone(), kind),
                    SentRecord {
                        time: Timestamp::now(),
                        target: String::new(),
                        result: format!("not sent: {why}"),
                    },
                );
                self.paid(&zone, kind);
            }
            NotifyOutcome::GateClosed => {
                let report = run.gate.unwrap_or_default();
                let disagreements = report.disagreements.join("; ");
                self.on_gate_closed(zone, kind, attempt, Closed::Disagreement, disagreements);
            }
            NotifyOutcome::ParentWouldRefuse => {
                let why = self
                    .checks
                    .get(&zone)
                    .map(|c| errors_of(&c.verdict))
                    .unwrap_or_default();
                self.on_gate_closed(zone, kind, attempt, Closed::Refusal, why);
            }
            NotifyOutcome::Sent { addr, outcome } => {
                let host = run.target.as_ref().map_or("?".into(), |t| display(&t.host));
                self.on_sent(zone, kind, attempt, format!("{host} {addr}"), outcome);
            }
            // Handled above; a dry run is never asked for here.
            NotifyOutcome::Discovery(_)
            | NotifyOutcome::NoAddress(_)
            | NotifyOutcome::DryRun(_) => {}
        }
    }

    /// Keeps the parent's-eye verdict made before a NOTIFY and logs it,
    /// once per change of outcome.
    fn on_verdict(&mut self, zone: &Name, kind: Kind, verdict: Verdict) {
        let changed = self
            .checks
            .get(zone)
            .is_none_or(|last| last.verdict.outcome != verdict.outcome);
        if changed {
            let z = display(zone);
            let qtype = kind.rtype().to_string();
            let profile = verdict.profile;
            if verdict.outcome == check::Outcome::Refused {
                let why = errors_of(&verdict);
                let then = match (self.config.notify.gate, kind) {
                    (Gate::Parent, Kind::Cds) => {
                        "the NOTIFY(CDS) waits ([notify] gate = \"parent\")"
                    }
                    (Gate::Parent, Kind::Csync) => {
                        "the NOTIFY(CSYNC) is not held by it ([notify] gate = \"parent\" holds CDS only)"
                    }
                    _ => "sending anyway ([notify] gate = \"consistent\")",
                };
                tracing::warn!(
                    zone = z,
                    qtype,
                    profile,
                    "the parent would refuse; {then}: {why}"
                );
            } else {
                tracing::info!(
                    zone = z,
                    qtype,
                    profile,
                    "parent's-eye check: {}",
                    verdict.summary
                );
            }
        }
        let record = CheckRecord {
            time: Timestamp::now(),
            kind,
            verdict,
        };
        self.checks.record(zone.clone(), record);
    }

    /// The gate is closed: wait for the servers to agree (or the parent's
    /// acceptance), up to `max_wait`; then hold or send per `on_timeout`.
    fn on_gate_closed(
        &mut self,
        zone: Name,
        kind: Kind,
        attempt: u32,
        closed: Closed,
        disagreements: String,
    ) {
        let z = display(&zone);
        let qtype = kind.rtype().to_string();
        let key = (zone.clone(), kind);
        let reason_changed = self.gating.insert(key.clone(), closed) != Some(closed);
        self.counters.set_gate_waiting(self.gating.len());
        let now = Instant::now();
        let since = self
            .ledger
            .get(&zone)
            .and_then(|e| e.pending(kind))
            .unwrap_or_else(Timestamp::now);
        let waited = Timestamp::now().duration_since(since).unsigned_abs();
        if waited < self.config.notify.max_wait {
            let wait = backoff(attempt, Duration::from_secs(30));
            tracing::info!(
                zone = z,
                qtype,
                waited_s = waited.as_secs(),
                retry_in_s = wait.as_secs_f64(),
                "NOTIFY waits for {}: {disagreements}",
                closed.waits_for()
            );
            self.schedule(Job::Notify(zone, kind), now + wait);
        } else {
            // Said once per hold, and again when its reason changes.
            let first = self.held.insert(key, true) != Some(true) || reason_changed;
            match self.config.notify.on_timeout {
                OnTimeout::Hold => {
                    if first {
                        let message = format!("NOTIFY held: {} after max_wait", closed.still());
                        self.events.emit(
                            Event::new(EventKind::NotifyHeld, &message)
                                .with("zone", z.clone())
                                .with("qtype", qtype.clone())
                                .with("cause", closed.cause())
                                .with("reason", disagreements.clone()),
                        );
                        tracing::error!(
                            zone = z,
                            qtype,
                            waited_s = waited.as_secs(),
                            "{message} ([notify] on_timeout = \"hold\"): {disagreements}"
                        );
                    }
                    self.schedule(Job::Notify(zone, kind), now + HELD_RECHECK);
                }
                OnTimeout::Send => {
                    tracing::warn!(
                        zone = z,
                        qtype,
                        "{} after max_wait; sending anyway \
                         ([notify] on_timeout = \"send\"): {disagreements}",
                        closed.still()
                    );
                    self.schedule(Job::Notify(zone, kind), now);
                }
            }
        }
    }

    fn on_sent(&mut self, zone: Name, kind: Kind, attempt: u32, target: String, outcome: Outcome) {
        let z = display(&zone);
        let qtype = kind.rtype().to_string();
        let now = Instant::now();
        self.gating.remove(&(zone.clone(), kind));
        self.counters.set_gate_waiting(self.gating.len());
        self.recent.record(
            (zone.clone(), kind),
            SentRecord {
                time: Timestamp::now(),
                target: target.clone(),
                result: match &outcome {
                    Outcome::Acknowledged => "acknowledged".into(),
                    Outcome::Rejected(code) => format!("rejected ({})", rcode::name(*code)),
                    Outcome::Failed(why) => format!("failed: {why}"),
                },
            },
        );
        self.counters.sent(
            kind,
            match outcome {
                Outcome::Acknowledged => SentResult::Acknowledged,
                Outcome::Rejected(_) => SentResult::Rejected,
                Outcome::Failed(_) => SentResult::Failed,
            },
        );
        match outcome {
            Outcome::Acknowledged => {
                tracing::info!(zone = z, qtype, %target, "NOTIFY acknowledged");
                self.paid(&zone, kind);
                let soon = now + self.config.parent.after_notify;
                self.schedule(Job::Observe(zone), soon);
            }
            Outcome::Rejected(code) => {
                let rcode = rcode::name(code);
                tracing::warn!(zone = z, qtype, %target, rcode, "NOTIFY rejected by the parent's target; not retried");
                self.events.emit(
                    Event::new(
                        EventKind::NotifyRejected,
                        "NOTIFY rejected by the parent's target",
                    )
                    .with("zone", z.clone())
                    .with("qtype", qtype.clone())
                    .with("target", target.clone())
                    .with("rcode", rcode),
                );
                self.paid(&zone, kind);
            }
            Outcome::Failed(why) => {
                let wait = backoff(attempt + 3, MAX_RETRY);
                tracing::warn!(zone = z, qtype, %target, retry_in_s = wait.as_secs(), "NOTIFY failed: {why}");
                if self.failing.insert((zone.clone(), kind)) {
                    self.events.emit(
                        Event::new(
                            EventKind::NotifyFailed,
                            "NOTIFY failed; retried with backoff",
                        )
                        .with("zone", z.clone())
                        .with("qtype", qtype.clone())
                        .with("target", target.clone())
                        .with("reason", why.to_string()),
                    );
                }
                self.schedule(Job::Notify(zone, kind), now + wait);
            }
        }
    }

    /// A NOTIFY no longer owed waits for nothing: not at the gate, not
    /// held (so `explain` and `signalbox_gate_waiting` say so).
    pub(super) fn stop_waiting(&mut self, zone: &Name, kind: Kind) {
        let key = (zone.clone(), kind);
        self.held.remove(&key);
        if self.gating.remove(&key).is_some() {
            self.counters.set_gate_waiting(self.gating.len());
        }
    }

    fn paid(&mut self, zone: &Name, kind: Kind) {
        if let Some(entry) = self.ledger.get_mut(zone) {
            entry.set_pending(kind, None);
        }
        self.attempts.remove(&(zone.clone(), kind));
        self.held.remove(&(zone.clone(), kind));
        self.gating.remove(&(zone.clone(), kind));
        self.failing.remove(&(zone.clone(), kind));
        self.counters.set_gate_waiting(self.gating.len());
        self.dirty = true;
    }
}

/// Why nothing is sent for `kind`: no DSYNC target, or an unusable one.
fn no_target(run: &NotifyRun, kind: Kind) -> String {
    if let NotifyOutcome::BadTarget(e) = &run.outcome {
        return e.to_string();
    }
    let found = run.discovery.as_ref();
    format!(
        "the parent {} publishes no DSYNC for ({}, NOTIFY) ({})",
        found
            .and_then(|f| f.parent.as_ref())
            .map_or("?".into(), display),
        kind.rtype(),
        found.map_or(String::new(), |f| f.steps.join("; "))
    )
}

/// The errors of a verdict, one clause each.
fn errors_of(verdict: &Verdict) -> String {
    let errors: Vec<String> = verdict
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("{} ({})", f.message, f.rule))
        .collect();
    errors.join("; ")
}
