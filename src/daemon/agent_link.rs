//! The daemon's side of the parent agent ([`crate::parent::agent`]): what
//! the parent was last seen to publish (DS, NS) per child, which children's
//! signals the agent was last told about, and the signalling zones as the
//! consistency gate (RFC 9975) checks them.

use std::collections::{HashMap, HashSet};

use hickory_proto::rr::{Name, RecordType};
use rustc_hash::FxHashMap;

use super::Daemon;
use crate::{
    dns::name::display,
    event::{Event, EventKind},
    parent::{
        ChildReport, SignalingTarget,
        agent::{self, AgentConfig, AgentPaths},
    },
    policy::ParentView,
};

/// The daemon's side of the parent agent ([`crate::parent::agent`]).
#[derive(Debug, Default)]
pub(super) struct AgentLink {
    /// The agent runs (`[resolver]` servers set, `[notify]` enabled).
    pub(super) active: bool,
    /// What the parent was last seen to publish, per child.
    pub(super) views: HashMap<Name, ParentView>,
    /// Fingerprints last reported to the agent, per child.
    pub(super) reported: FxHashMap<Name, (u64, u64)>,
    /// Children to report even if unchanged (their parent view changed).
    pub(super) force_report: HashSet<Name>,
    /// Questions to the agent (`explain`), once it runs.
    pub(super) questions: Option<tokio::sync::mpsc::UnboundedSender<agent::Question>>,
}

impl Daemon {
    /// The signalling zones as the consistency gate checks them: their
    /// servers and the DNSKEYs they are served with.
    pub(super) fn signaling_targets(&self) -> Vec<SignalingTarget> {
        self.zones
            .values()
            .map(|zone| SignalingTarget {
                apex: zone.config.apex.clone(),
                ns_host: zone.config.ns_host(),
                hosts: zone.config.nameservers.clone(),
                dnskeys: zone
                    .store
                    .apex_node()
                    .and_then(|n| n.rrset(RecordType::DNSKEY))
                    .map(|set| {
                        set.rdatas()
                            .iter()
                            .filter_map(|r| crate::dns::Dnskey::from_wire(r).ok())
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Where the parent agent keeps its files.
    pub(super) fn agent_paths(&self) -> AgentPaths {
        AgentPaths::in_state_dir(self.state.path())
    }

    /// Starts the parent agent when the config asks for it; seeds the
    /// parent views from the last run.
    pub(super) fn start_agent(&mut self) -> Option<agent::AgentHandle> {
        let config = &self.config;
        if config.resolver.servers.is_empty() || !config.notify.enabled {
            tracing::info!(
                "no generalized NOTIFY and no parent observer: [resolver] servers is empty or [notify] enabled = false"
            );
            return None;
        }
        let paths = self.agent_paths();
        self.agent.views = agent::saved_views(&paths);
        self.agent.active = true;
        Some(agent::start(
            AgentConfig {
                resolver: config.resolver.clone(),
                notify: config.notify.clone(),
                parent: config.parent.clone(),
            },
            paths,
            self.events.clone(),
            &self.vitals,
        ))
    }

    /// Takes a changed parent view; returns whether the child must be
    /// recomputed.
    pub(super) fn parent_view(&mut self, zone: Name, view: ParentView) -> bool {
        let old = self.agent.views.get(&zone);
        let same = old.is_some_and(|old| old.ds == view.ds && old.ns == view.ns);
        if let Some(event) = old.and_then(|old| ds_event(&zone, old, &view)) {
            self.events.emit(event);
        }
        self.parent_ds_seen(&zone, &view);
        self.agent.views.insert(zone.clone(), view);
        if !same {
            self.agent.force_report.insert(zone);
        }
        !same
    }

    /// The reports whose signals differ from what the agent was last told
    /// (or whose parent view changed since).
    pub(super) fn changed_reports(&mut self, reports: Vec<ChildReport>) -> Vec<ChildReport> {
        reports
            .into_iter()
            .filter(|report| {
                let prints = (report.cds, report.csync);
                let forced = self.agent.force_report.remove(&report.zone);
                if forced || self.agent.reported.get(&report.zone) != Some(&prints) {
                    self.agent.reported.insert(report.zone.clone(), prints);
                    true
                } else {
                    false
                }
            })
            .collect()
    }
}

/// The event a new parent view makes against the last one: DS seen, gone
/// or changed (RFC 7344 §4: the parent acted on the child's CDS).
fn ds_event(zone: &Name, old: &ParentView, new: &ParentView) -> Option<Event> {
    if old.ds == new.ds {
        return None;
    }
    let ds: Vec<String> = new.ds.iter().map(crate::dns::Ds::short_form).collect();
    let event = match (old.ds.is_empty(), new.ds.is_empty()) {
        (true, false) => Event::new(EventKind::DsSeen, "the parent publishes DS for the zone"),
        (false, true) => Event::new(EventKind::DsGone, "the parent no longer publishes DS"),
        _ => Event::new(EventKind::DsChanged, "the parent's DS set changed"),
    };
    Some(event.with("zone", display(zone)).with("ds", ds.join(" ")))
}
