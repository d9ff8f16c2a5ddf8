//! The parent-side jobs as functions both the daemon's [`super::agent`] and
//! the `signalbox notify` / `signalbox parent` commands call: one
//! generalized NOTIFY (discover -> gate -> send) and one look at the parent.
//!
//! A NOTIFY job (RFC 9859 §4): discover the parent's DSYNC target for the
//! type (§4.1); unless the gate is skipped, check that every server serves
//! the announced RRsets (the consistency gate, RFC 9975), then look at the
//! delegation as the parent will (the [`crate::check`] rules under the
//! configured profile: its verdict is kept, and with `gate = "parent"` a
//! NOTIFY(CDS) the parent would refuse waits); resolve the
//! target host and send NOTIFY(CDS or CSYNC) to its first address (§4.2),
//! paced per target when a [`RateLimit`] is given. What happened at each
//! step comes back in a [`NotifyRun`]; the callers decide what it means
//! (the agent retries or pays the debt, the CLI prints and picks an exit
//! code).

use std::{net::SocketAddr, sync::Mutex, time::Duration};

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use super::{
    discovery::{self, Discovery, DiscoveryError, DsyncTarget},
    gate::{self, GateReport, ServerGroup},
    observer::{self, Observation, ObserveError},
    resolver::{ResolveError, Resolver},
    scan::{self, Asking},
};
use crate::{
    check::{self, Verdict, profile::Profile},
    client::{
        Options, TcpFallback,
        notify::{self, Outcome, RateLimit},
    },
    config::NotifyConfig,
    dns::name::display,
    policy::ParentView,
};

/// Which servers the consistency gate asks before a NOTIFY.
pub enum GateInput<'a> {
    /// None: send straight away (`gate = "immediate"`, or a held NOTIFY
    /// with `on_timeout = "send"`).
    Skip,
    /// These groups (the agent's latest report for the child).
    Groups(&'a [ServerGroup]),
    /// Read the child's delegation at the parent first, with `timeout`,
    /// and check the groups `plan` derives from that view (`None` when
    /// the parent could not be read).
    FromParent {
        /// The observer's timeout.
        timeout: Duration,
        /// The child's groups for a parent view.
        plan: &'a (dyn Fn(Option<&ParentView>) -> Vec<ServerGroup> + Sync),
    },
}

/// The parent's-eye check run once the consistency gate is open.
pub struct ParentCheck<'a> {
    /// Whose rules.
    pub profile: &'static Profile,
    /// The nameservers asked when the parent's NS set cannot be read.
    pub nameservers: &'a [Name],
    /// A NOTIFY(CDS) the parent would refuse is not sent (`gate =
    /// "parent"`); otherwise the verdict is only reported.
    pub hold_on_refusal: bool,
}

/// One generalized NOTIFY to send.
pub struct NotifyJob<'a> {
    /// The child zone.
    pub zone: &'a Name,
    /// CDS or CSYNC.
    pub rtype: RecordType,
    /// The consistency gate.
    pub gate: GateInput<'a>,
    /// The parent's-eye check after the gate (not run when the gate is
    /// skipped).
    pub parent_check: Option<ParentCheck<'a>>,
    /// `[notify]`: nameserver port, UDP timeout and tries.
    pub config: &'a NotifyConfig,
    /// Per-target pacing, when the caller sends many.
    pub pace: Option<&'a Mutex<RateLimit>>,
    /// Stop before sending.
    pub dry_run: bool,
}

/// Why the target host has no address to send to.
#[derive(Debug, thiserror::Error)]
pub enum TargetAddressError {
    /// The host resolves to nothing.
    #[error("target {host} has no address")]
    None {
        /// The target host.
        host: String,
    },
    /// The lookup failed.
    #[error("target {host}: {source}")]
    Resolve {
        /// The target host.
        host: String,
        /// The failure.
        source: ResolveError,
    },
}

/// How a NOTIFY job ended.
#[derive(Debug)]
pub enum NotifyOutcome {
    /// Discovery failed: try again later.
    Discovery(DiscoveryError),
    /// The parent publishes no DSYNC target for the type: nothing to send.
    NoTarget,
    /// The DSYNC RRset is unusable (two targets for one type).
    BadTarget(DiscoveryError),
    /// The gate is closed (see [`NotifyRun::gate`]).
    GateClosed,
    /// The servers agree but the parent would refuse the CDS (see
    /// [`NotifyRun::verdict`]), and the job holds on refusal.
    ParentWouldRefuse,
    /// The target host has no address.
    NoAddress(TargetAddressError),
    /// Dry run: it would have been sent to this address.
    DryRun(SocketAddr),
    /// Sent to `addr`.
    Sent {
        /// Where.
        addr: SocketAddr,
        /// The answer.
        outcome: Outcome,
    },
}

/// Everything one NOTIFY job saw, step by step.
#[derive(Debug)]
pub struct NotifyRun {
    /// What discovery found (`None` when it failed).
    pub discovery: Option<Discovery>,
    /// The DSYNC target.
    pub target: Option<DsyncTarget>,
    /// Why the parent could not be read for [`GateInput::FromParent`].
    pub parent_unreadable: Option<ObserveError>,
    /// The gate's verdict, when it was checked.
    pub gate: Option<GateReport>,
    /// The parent's-eye verdict, when it was checked.
    pub verdict: Option<Verdict>,
    /// How it ended.
    pub outcome: NotifyOutcome,
}

impl NotifyRun {
    fn ended(mut self, outcome: NotifyOutcome) -> Self {
        self.outcome = outcome;
        self
    }
}

/// How generalized NOTIFYs are sent (RFC 9859 §4.2.1: UDP, with TCP
/// fallback).
fn options(config: &NotifyConfig) -> Options {
    Options {
        timeout: config.udp_timeout,
        udp_tries: config.udp_tries,
        tcp: TcpFallback::OnSilence,
        tsig: None,
    }
}

/// Runs one NOTIFY job.
pub async fn notify(resolver: &Resolver, job: NotifyJob<'_>) -> NotifyRun {
    let mut run = NotifyRun {
        discovery: None,
        target: None,
        parent_unreadable: None,
        gate: None,
        verdict: None,
        outcome: NotifyOutcome::NoTarget,
    };
    let found = match discovery::discover(resolver, job.zone).await {
        Ok(found) => run.discovery.insert(found),
        Err(e) => return run.ended(NotifyOutcome::Discovery(e)),
    };
    let target = match found.target(job.rtype) {
        Ok(Some(target)) => target,
        Ok(None) => return run.ended(NotifyOutcome::NoTarget),
        Err(e) => return run.ended(NotifyOutcome::BadTarget(e)),
    };
    let parent = found.parent.clone();
    let host = target.host.clone();
    run.target = Some(target.clone());
    let port = job.config.nameserver_port;
    let planned;
    let groups = match job.gate {
        GateInput::Skip => None,
        GateInput::Groups(groups) => Some(groups),
        GateInput::FromParent { timeout, plan } => {
            // The parent's own delegation names the servers it will ask.
            let view = match &parent {
                Some(parent) => {
                    let observed = observer::observe(
                        resolver,
                        parent,
                        job.zone,
                        port,
                        timeout,
                        Timestamp::now(),
                    )
                    .await;
                    observed.map_err(|e| run.parent_unreadable = Some(e)).ok()
                }
                None => None,
            };
            planned = plan(view.as_ref().map(Observation::view).as_ref());
            Some(planned.as_slice())
        }
    };
    if let Some(groups) = groups {
        let verdict = gate::check(resolver, groups, port, job.config.udp_timeout).await;
        let open = verdict.open();
        run.gate = Some(verdict);
        if !open {
            return run.ended(NotifyOutcome::GateClosed);
        }
        if let Some(parent_check) = &job.parent_check {
            let asking = Asking {
                port,
                timeout: job.config.udp_timeout,
                configured: parent_check.nameservers.to_vec(),
            };
            let facts = scan::scan(resolver, job.zone, &asking).await;
            let verdict = check::evaluate(&facts, parent_check.profile, Timestamp::now());
            let refused = verdict.outcome == check::Outcome::Refused;
            run.verdict = Some(verdict);
            // The verdict is about the CDS/CDNSKEY; a CSYNC is the
            // parent's to ignore (the verdict says what becomes of it).
            if refused && parent_check.hold_on_refusal && job.rtype == RecordType::CDS {
                return run.ended(NotifyOutcome::ParentWouldRefuse);
            }
        }
    }
    let addresses = match resolver.addresses(&host).await {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => {
            let host = display(&host);
            return run.ended(NotifyOutcome::NoAddress(TargetAddressError::None { host }));
        }
        Err(source) => {
            let host = display(&host);
            let error = TargetAddressError::Resolve { host, source };
            return run.ended(NotifyOutcome::NoAddress(error));
        }
    };
    // One of the endpoints (RFC 9859 §4.2): the first address.
    let addr = SocketAddr::new(addresses[0], target.port);
    if job.dry_run {
        return run.ended(NotifyOutcome::DryRun(addr));
    }
    let outcome = notify::send(
        addr,
        job.zone,
        job.rtype,
        job.config.report_channel.as_ref(),
        &options(job.config),
        job.pace,
    )
    .await;
    run.ended(NotifyOutcome::Sent { addr, outcome })
}
