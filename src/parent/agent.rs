//! The daemon's task for everything parent-side: owed NOTIFYs and parent
//! observations, each a job on a timer, at most [`MAX_IN_FLIGHT`] at once.
//!
//! A NOTIFY becomes owed when a round reports new (non-empty) apex CDS/
//! CDNSKEY or CSYNC for a child (compared with the ledger, so a restart
//! does not repeat what was already sent). Its job: discover the DSYNC
//! target; unless `gate = "immediate"`, check that every server agrees and
//! look at the delegation as the parent will (`crate::check`; with `gate =
//! "parent"` a refusal holds the NOTIFY(CDS) too), re-checked with backoff
//! up to `max_wait`, then held or sent per `on_timeout`; send (paced per target); on NOERROR the debt is paid and
//! the parent is looked at again soon. Owed NOTIFYs survive restarts in the
//! ledger.
//!
//! An observation job reads the child's DS and NS at the parent every
//! `poll_interval` and reports a changed view to the daemon, which reruns
//! the policy for that child.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use hickory_proto::rr::Name;
use jiff::Timestamp;
use tokio::{
    sync::{mpsc, oneshot},
    time::{Instant, sleep_until},
};

mod notify_result;

use notify_result::Closed;

use super::{
    ChildReport,
    counters::NotifyCounters,
    job::{self, GateInput, NotifyJob, NotifyRun, ParentCheck},
    ledger::{self, Kind, LedgerEntry},
    observer::{self, Observation, ObserveError},
    recent::{CheckRecord, RecentChecks, RecentSends, SentRecord},
    resolver::Resolver,
    timers::{Job, Timers},
};
use crate::{
    client::notify::RateLimit,
    config::{Gate, NotifyConfig, OnTimeout, ParentConfig, ResolverConfig},
    event::Events,
    policy::ParentView,
    vital::{Ends, Vitals},
};

/// Jobs running at once.
pub const MAX_IN_FLIGHT: usize = 256;
/// Longest wait between two tries of a failing NOTIFY.
const MAX_RETRY: Duration = Duration::from_secs(3600);
/// How often a held NOTIFY's gate is looked at again.
const HELD_RECHECK: Duration = Duration::from_secs(300);
/// Ledger and observations are written at most this often.
const SAVE_EVERY: Duration = Duration::from_secs(2);

/// Where the agent keeps its files.
#[derive(Debug, Clone)]
pub struct AgentPaths {
    /// The notify ledger.
    pub ledger: PathBuf,
    /// The parent observations.
    pub observations: PathBuf,
}

impl AgentPaths {
    /// The files in state directory `dir`.
    pub fn in_state_dir(dir: &std::path::Path) -> Self {
        AgentPaths {
            ledger: dir.join("notify.state"),
            observations: dir.join("parent.state"),
        }
    }
}

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `[resolver]`.
    pub resolver: ResolverConfig,
    /// `[notify]`.
    pub notify: NotifyConfig,
    /// `[parent]`.
    pub parent: ParentConfig,
}

/// The daemon's end of the agent.
pub struct AgentHandle {
    /// Children's reports after each round.
    pub reports: mpsc::UnboundedSender<ChildReport>,
    /// Parent views that changed (to the daemon).
    pub views: mpsc::UnboundedReceiver<(Name, ParentView)>,
    /// NOTIFYs sent, owed and waiting, for `/metrics`.
    pub counters: Arc<NotifyCounters>,
    /// Questions about one child's NOTIFYs (`signalbox explain`).
    pub questions: mpsc::UnboundedSender<Question>,
    /// Children to look at at the parent before any report names them (a
    /// child waiting for its other providers' keys, whose trust may come
    /// from the parent's DS, plans nothing and so reports nothing).
    pub watch: mpsc::UnboundedSender<Name>,
}

/// What `explain` asks the agent about one child.
#[derive(Debug)]
pub struct Question {
    /// The child.
    pub zone: Name,
    /// Where the answer goes.
    pub reply: oneshot::Sender<ChildNotifies>,
}

/// What the agent tells `explain` about one child.
#[derive(Debug, Clone)]
pub struct ChildNotifies {
    /// Per kind (CDS, CSYNC).
    pub states: Vec<NotifyState>,
    /// The last parent's-eye check before a NOTIFY, if remembered.
    pub check: Option<CheckRecord>,
}

/// Where one kind of NOTIFY (CDS or CSYNC) stands for one child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyState {
    /// CDS or CSYNC.
    pub kind: Kind,
    /// Owed since then (the ledger; survives restarts).
    pub owed_since: Option<Timestamp>,
    /// The consistency gate found the nameservers disagreeing (RFC 9975).
    pub waiting_for_agreement: bool,
    /// They agree, but the parent's-eye check says the parent would refuse
    /// (`gate = "parent"`).
    pub waiting_for_acceptance: bool,
    /// Held after `[notify] max_wait` (`on_timeout = "hold"`).
    pub held: bool,
    /// Tries of the owed NOTIFY so far.
    pub attempts: u32,
    /// The last send, if remembered ([`RecentSends`]).
    pub last: Option<SentRecord>,
}

/// Loads the saved observations (the daemon seeds its views with them
/// before the first round, so a restart does not bring withdrawn signals
/// back).
pub fn saved_views(paths: &AgentPaths) -> HashMap<Name, ParentView> {
    ledger::load_observations(&paths.observations)
        .into_iter()
        .map(|(zone, o)| (zone, o.view()))
        .collect()
}

/// Starts the agent on the current runtime, as a vital part (it ends only
/// when the daemon drops its report channel).
pub fn start(
    config: AgentConfig,
    paths: AgentPaths,
    events: Events,
    vitals: &Vitals,
) -> AgentHandle {
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let (views_tx, views_rx) = mpsc::unbounded_channel();
    let (questions_tx, questions_rx) = mpsc::unbounded_channel();
    let (watch_tx, watch_rx) = mpsc::unbounded_channel();
    let agent = Agent::new(config, paths, views_tx, events);
    let counters = Arc::clone(&agent.counters);
    vitals.task(
        "parent agent",
        Ends::WhenInputCloses,
        agent.run(reports_rx, questions_rx, watch_rx),
    );
    AgentHandle {
        reports: reports_tx,
        views: views_rx,
        counters,
        questions: questions_tx,
        watch: watch_tx,
    }
}

enum JobResult {
    Notify {
        zone: Name,
        kind: Kind,
        result: Box<NotifyRun>,
    },
    Observe {
        zone: Name,
        result: Result<Observation, ObserveError>,
    },
}

struct Agent {
    config: AgentConfig,
    paths: AgentPaths,
    resolver: Arc<Resolver>,
    limit: Arc<Mutex<RateLimit>>,
    views_tx: mpsc::UnboundedSender<(Name, ParentView)>,
    ledger: BTreeMap<Name, LedgerEntry>,
    observed: BTreeMap<Name, Observation>,
    /// Latest reports of the children that are owed a NOTIFY (the gate
    /// needs them); the others are only known by name.
    children: HashMap<Name, Arc<ChildReport>>,
    known: std::collections::HashSet<Name>,
    timers: Timers,
    attempts: HashMap<(Name, Kind), u32>,
    held: HashMap<(Name, Kind), bool>,
    /// Owed NOTIFYs whose gate was last found closed, and why.
    gating: HashMap<(Name, Kind), Closed>,
    counters: Arc<NotifyCounters>,
    /// Owed NOTIFYs whose last send failed (a `notify-failed` event was
    /// emitted; the next is emitted once it was paid and fails again).
    failing: std::collections::HashSet<(Name, Kind)>,
    /// The last NOTIFY per child and kind, for `explain`.
    recent: RecentSends,
    /// The last parent's-eye check per child, for `explain`.
    checks: RecentChecks,
    events: Events,
    in_flight: usize,
    dirty: bool,
}

impl Agent {
    fn new(
        config: AgentConfig,
        paths: AgentPaths,
        views_tx: mpsc::UnboundedSender<(Name, ParentView)>,
        events: Events,
    ) -> Self {
        let ledger = ledger::load_ledger(&paths.ledger);
        let observed = ledger::load_observations(&paths.observations);
        Agent {
            resolver: Arc::new(Resolver::new(config.resolver.clone())),
            limit: Arc::new(Mutex::new(RateLimit::new(config.notify.rate_limit))),
            config,
            paths,
            views_tx,
            ledger,
            observed,
            children: HashMap::new(),
            known: std::collections::HashSet::new(),
            timers: Timers::default(),
            attempts: HashMap::new(),
            held: HashMap::new(),
            gating: HashMap::new(),
            counters: Arc::default(),
            failing: std::collections::HashSet::new(),
            recent: RecentSends::default(),
            checks: RecentChecks::default(),
            events,
            in_flight: 0,
            dirty: false,
        }
    }

    fn schedule(&mut self, job: Job, at: Instant) {
        self.timers.schedule(job, at);
    }

    async fn run(
        mut self,
        mut reports: mpsc::UnboundedReceiver<ChildReport>,
        mut questions: mpsc::UnboundedReceiver<Question>,
        mut watch: mpsc::UnboundedReceiver<Name>,
    ) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<JobResult>();
        let mut save_at: Option<Instant> = None;
        loop {
            // Start what is due, up to the in-flight limit.
            let now = Instant::now();
            while self.in_flight < MAX_IN_FLIGHT {
                let Some(job) = self.timers.pop_due(now) else {
                    break;
                };
                self.launch(job, &done_tx);
            }
            if self.dirty && save_at.is_none() {
                save_at = Some(Instant::now() + SAVE_EVERY);
            }
            let next_timer = if self.in_flight < MAX_IN_FLIGHT {
                self.timers.next()
            } else {
                None
            };
            tokio::select! {
                report = reports.recv() => match report {
                    Some(report) => self.on_report(report),
                    None => {
                        self.save().await;
                        return;
                    }
                },
                Some(question) = questions.recv() => {
                    let _ = question.reply.send(self.answer(&question.zone));
                }
                Some(zone) = watch.recv() => self.watch(zone),
                Some(result) = done_rx.recv() => {
                    self.in_flight -= 1;
                    self.on_result(result);
                }
                _ = sleep_until(next_timer.unwrap_or_else(Instant::now)), if next_timer.is_some() => {}
                _ = sleep_until(save_at.unwrap_or_else(Instant::now)), if save_at.is_some() => {
                    save_at = None;
                    self.save().await;
                }
            }
        }
    }

    /// Where `zone`'s NOTIFYs stand.
    fn answer(&self, zone: &Name) -> ChildNotifies {
        let states = [Kind::Cds, Kind::Csync]
            .into_iter()
            .map(|kind| {
                let key = (zone.clone(), kind);
                let closed = self.gating.get(&key).copied();
                NotifyState {
                    kind,
                    owed_since: self.ledger.get(zone).and_then(|e| e.pending(kind)),
                    waiting_for_agreement: closed == Some(Closed::Disagreement),
                    waiting_for_acceptance: closed == Some(Closed::Refusal),
                    held: self.held.get(&key) == Some(&true),
                    attempts: self.attempts.get(&key).copied().unwrap_or(0),
                    last: self.recent.get(&key).cloned(),
                }
            })
            .collect();
        ChildNotifies {
            states,
            check: self.checks.get(zone).cloned(),
        }
    }

    fn on_report(&mut self, report: ChildReport) {
        let zone = report.zone.clone();
        let now = Instant::now();
        let entry = self.ledger.entry(zone.clone()).or_default();
        let mut owed = Vec::new();
        let mut gone = Vec::new();
        for (kind, new) in [(Kind::Cds, report.cds), (Kind::Csync, report.csync)] {
            let old = match kind {
                Kind::Cds => &mut entry.cds,
                Kind::Csync => &mut entry.csync,
            };
            if *old != new {
                *old = new;
                self.dirty = true;
                // RFC 9859 §4.2: when an RRset is created or changed; a
                // removal asks nothing of the parent.
                entry.set_pending(kind, (new != 0).then(Timestamp::now));
                if new != 0 {
                    owed.push(kind);
                } else {
                    gone.push(kind);
                }
            } else if entry.pending(kind).is_some() {
                owed.push(kind); // owed from before a restart
            }
        }
        for kind in gone {
            self.stop_waiting(&zone, kind);
        }
        self.watch(zone.clone());
        if owed.is_empty() {
            self.children.remove(&zone);
        } else {
            self.children.insert(zone.clone(), Arc::new(report));
        }
        for kind in owed {
            self.attempts.remove(&(zone.clone(), kind));
            self.held.remove(&(zone.clone(), kind));
            self.schedule(Job::Notify(zone.clone(), kind), now);
        }
    }

    /// Starts looking at `zone` at the parent, the first time it is named.
    fn watch(&mut self, zone: Name) {
        if !self.known.insert(zone.clone()) {
            return;
        }
        let now = Instant::now();
        let poll = self.config.parent.poll_interval;
        let at = match self.observed.get(&zone) {
            Some(o) => {
                let age = Timestamp::now().duration_since(o.at).unsigned_abs();
                now + poll.saturating_sub(age)
            }
            // Spread first looks (over up to 10 min) so 100k children do not
            // all ask at once.
            None => now + spread(&zone, poll.min(Duration::from_secs(600))),
        };
        self.schedule(Job::Observe(zone), at);
    }

    fn launch(&mut self, job: Job, done: &mpsc::UnboundedSender<JobResult>) {
        let done = done.clone();
        let resolver = self.resolver.clone();
        match job {
            Job::Notify(zone, kind) => {
                let Some(report) = self.children.get(&zone).cloned() else {
                    return;
                };
                if self
                    .ledger
                    .get(&zone)
                    .and_then(|e| e.pending(kind))
                    .is_none()
                {
                    // Paid or superseded meanwhile: nothing waits.
                    self.stop_waiting(&zone, kind);
                    return;
                }
                let gate = self.config.notify.gate.asks_servers()
                    && !(self.held.get(&(zone.clone(), kind)) == Some(&true)
                        && self.config.notify.on_timeout == OnTimeout::Send);
                let notify = self.config.notify.clone();
                let limit = self.limit.clone();
                self.in_flight += 1;
                tokio::spawn(async move {
                    let job = JobInput {
                        report: &report,
                        kind,
                        gate,
                    };
                    let result = notify_job(&resolver, job, &notify, &limit).await;
                    let _ = done.send(JobResult::Notify {
                        zone,
                        kind,
                        result: Box::new(result),
                    });
                });
            }
            Job::Observe(zone) => {
                let port = self.config.notify.nameserver_port;
                let timeout = self.config.resolver.timeout;
                self.in_flight += 1;
                tokio::spawn(async move {
                    let result = observer::observe_child(&resolver, &zone, port, timeout).await;
                    let _ = done.send(JobResult::Observe { zone, result });
                });
            }
        }
    }

    fn on_result(&mut self, result: JobResult) {
        match result {
            JobResult::Notify { zone, kind, result } => self.on_notify(zone, kind, *result),
            JobResult::Observe { zone, result } => self.on_observe(zone, result),
        }
    }

    fn on_observe(&mut self, zone: Name, result: Result<Observation, ObserveError>) {
        let poll = self.config.parent.poll_interval;
        let now = Instant::now();
        match result {
            Ok(observation) => {
                let changed = self
                    .observed
                    .get(&zone)
                    .is_none_or(|old| old.ds != observation.ds || old.ns != observation.ns);
                if changed {
                    tracing::info!(
                        zone = display(&zone),
                        parent = display(&observation.parent),
                        ds = observation.ds.len(),
                        ns = observation.ns.len(),
                        "parent view changed"
                    );
                    let _ = self.views_tx.send((zone.clone(), observation.view()));
                }
                self.observed.insert(zone.clone(), observation);
                self.dirty = true;
                self.schedule(Job::Observe(zone), now + poll);
            }
            Err(why) => {
                let wait = poll.min(Duration::from_secs(300));
                tracing::warn!(
                    zone = display(&zone),
                    retry_in_s = wait.as_secs(),
                    "cannot read the parent: {why}"
                );
                self.schedule(Job::Observe(zone), now + wait);
            }
        }
    }

    async fn save(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let pending = self
            .ledger
            .values()
            .map(|e| {
                [Kind::Cds, Kind::Csync]
                    .iter()
                    .filter(|&&k| e.pending(k).is_some())
                    .count()
            })
            .sum();
        self.counters.set_pending(pending);
        let ledger = self.ledger.clone();
        let observed = self.observed.clone();
        let paths = self.paths.clone();
        let saved = tokio::task::spawn_blocking(move || {
            ledger::save_ledger(&paths.ledger, &ledger)
                .and_then(|()| ledger::save_observations(&paths.observations, &observed))
        })
        .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("{e}"),
            Err(e) => tracing::error!(error = %e, "saving the notify ledger failed"),
        }
    }
}

/// The wait before try `attempt` + 1: doubling from 1 s, at most `cap`.
fn backoff(attempt: u32, cap: Duration) -> Duration {
    Duration::from_secs(1u64 << attempt.min(12).saturating_sub(1)).min(cap)
}

/// A stable per-zone delay in `0..window`.
fn spread(zone: &Name, window: Duration) -> Duration {
    let hash = zone
        .to_lowercase()
        .to_ascii()
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    let millis = window.as_millis().max(1) as u64;
    Duration::from_millis(u64::from(hash) % millis)
}

/// One owed NOTIFY, as [`notify_job`] needs it.
struct JobInput<'a> {
    report: &'a ChildReport,
    kind: Kind,
    /// The gate (and the parent's-eye check) runs.
    gate: bool,
}

async fn notify_job(
    resolver: &Resolver,
    input: JobInput<'_>,
    config: &NotifyConfig,
    limit: &Mutex<RateLimit>,
) -> NotifyRun {
    let JobInput { report, kind, gate } = input;
    let groups = match kind {
        Kind::Cds => &report.cds_groups,
        Kind::Csync => &report.csync_groups,
    };
    let job = NotifyJob {
        zone: &report.zone,
        rtype: kind.rtype(),
        gate: if gate {
            GateInput::Groups(groups)
        } else {
            GateInput::Skip
        },
        parent_check: gate.then_some(ParentCheck {
            profile: config.profile,
            nameservers: &report.nameservers,
            hold_on_refusal: config.gate == Gate::Parent,
        }),
        config,
        pace: Some(limit),
        dry_run: false,
    };
    job::notify(resolver, job).await
}
