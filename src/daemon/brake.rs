//! The safety brake: one round may not withdraw or change the signals of
//! more than a configured share of the child zones. An emptied or
//! unmounted key directory, or a bad deploy, would otherwise take every
//! delegation's signals down at once. Above the limit the round's child
//! changes are held — served `_dsboot` signals, the RRsets written by UPDATE
//! into signer-hosted signalling zones and child apexes, and the reports
//! that would make the parent agent NOTIFY — the previous signals stay
//! published, and the daemon waits for `signalbox confirm` or a config whose
//! limit allows the change.
//!
//! The brake is the round's fourth phase ([`Daemon::brake`], after the
//! compare phase dropped what is already served): the children whose
//! published signals the plan would withdraw or change, counted against
//! the limit.
//!
//! The limit ([`crate::config::SafetyConfig::limit`]) is
//! `max(ceil(share * published), min(min_changes, published / 2))`: 10% of a
//! large deployment, at least 100 for a mid-sized one, and never more than
//! half of a small one, so a deployment of five children is protected as
//! well as one of a million.

use std::collections::BTreeSet;

use hickory_proto::rr::Name;

use super::Daemon;
use crate::{
    config::SafetyConfig,
    dns::name::{canonical_wire, display},
    event::{Event, EventKind},
    plan::{RoundPlan, TouchedChild},
};

/// What the brake holds back between rounds.
#[derive(Debug, Default)]
pub(super) struct BrakeState {
    /// Children to recompute next round (their changes were held).
    pub(super) pending: BTreeSet<Name>,
    /// The verdict that holds, while one does.
    pub(super) held: Option<Verdict>,
    /// `signalbox confirm` lets the next round through.
    pub(super) confirmed: bool,
}

/// What the brake decided for one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Apply the changes.
    Go,
    /// Hold them: too many children would lose or change their signals.
    Hold {
        /// Children whose signals would be withdrawn or changed.
        affected: usize,
        /// Children with published signals.
        published: usize,
        /// The most one round may touch.
        limit: usize,
        /// Some of them, for the log.
        examples: Vec<Name>,
    },
}

/// Decides on a round that withdraws or changes the signals of `affected`
/// children out of `published`; `confirmed` lets one round through.
pub fn decide(
    safety: &SafetyConfig,
    affected: &BTreeSet<Name>,
    published: usize,
    confirmed: bool,
) -> Verdict {
    let limit = safety.limit(published);
    if confirmed || affected.len() <= limit {
        return Verdict::Go;
    }
    Verdict::Hold {
        affected: affected.len(),
        published,
        limit,
        examples: affected.iter().take(5).cloned().collect(),
    }
}

impl Daemon {
    /// Phase 4: the safety brake. Holds the plan's child changes when they
    /// would withdraw or change the signals of too many children.
    pub(super) fn brake(&mut self, plan: &RoundPlan) -> Verdict {
        let affected = self.withdrawn_or_changed(plan);
        let published = self.published_children();
        let verdict = decide(
            &self.config.safety,
            &affected,
            published,
            self.brake.confirmed,
        );
        match &verdict {
            Verdict::Go => {
                if self.brake.confirmed && !affected.is_empty() {
                    tracing::warn!(
                        children = affected.len(),
                        "confirmed: applying the held changes"
                    );
                }
                if self.brake.held.take().is_some() {
                    self.events.emit(Event::new(
                        EventKind::BrakeReleased,
                        "safety brake released: rounds publish again",
                    ));
                }
                self.brake.confirmed = false;
            }
            Verdict::Hold {
                affected,
                published,
                limit,
                examples,
            } => {
                let examples: Vec<String> = examples.iter().map(display).collect();
                tracing::error!(
                    affected,
                    published,
                    limit,
                    examples = examples.join(" "),
                    "SAFETY BRAKE: this round would withdraw or change the signals of {affected} of \
                     {published} child zones (limit {limit}); keeping the previous signals. Check the key \
                     directories; if the change is intended run `signalbox confirm -c CONFIG` or raise \
                     [safety] max_change_share / min_changes and reload"
                );
                if self.brake.held.is_none() {
                    self.events.emit(
                        Event::new(
                            EventKind::BrakeHolding,
                            "the safety brake holds a round (signalbox confirm lets it through)",
                        )
                        .with("affected", affected.to_string())
                        .with("published", published.to_string())
                        .with("limit", limit.to_string()),
                    );
                }
                self.brake.held = Some(verdict.clone());
            }
        }
        verdict
    }

    /// How many children have published signals: the most `_dsboot` owners
    /// of any signalling zone, served or hosted by a signer, or the children
    /// with RRsets written at their apex, whichever is largest.
    fn published_children(&self) -> usize {
        let served = self.zones.values().map(|z| z.store.len().saturating_sub(1));
        let hosted = self
            .sidecar
            .published_state
            .values()
            .map(|owners| owners.values().filter(|rrsets| rrsets.is_some()).count());
        served
            .chain(hosted)
            .chain(std::iter::once(self.apex_published()))
            .max()
            .unwrap_or(0)
    }

    /// The children whose published signals the plan would withdraw or
    /// change: `_dsboot` owners in every signalling zone, and the RRsets
    /// written at child apexes by UPDATE.
    fn withdrawn_or_changed(&self, plan: &RoundPlan) -> BTreeSet<Name> {
        let mut out = BTreeSet::new();
        for (child, wanted) in &plan.apex_updates {
            if wanted.iter().any(|w| self.apex_differs(w)) {
                out.insert(child.clone());
            }
        }
        for TouchedChild { child, owners } in &plan.touched {
            for owner in owners {
                let Some(change) = plan.change(owner) else {
                    continue;
                };
                let apex = &owner.0;
                let differs = match self.published_differs(apex, change) {
                    Some(differs) => differs,
                    None => self.zones.get(apex).is_some_and(|zone| {
                        zone.store
                            .node(&canonical_wire(&change.owner))
                            .is_some_and(|node| {
                                !change.rrsets.as_ref().is_some_and(|new| node.holds(new))
                            })
                    }),
                };
                if differs {
                    out.insert(child.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse_name;

    fn names(n: usize) -> BTreeSet<Name> {
        (0..n)
            .map(|i| parse_name(&format!("c{i}.example.")).expect("valid"))
            .collect()
    }

    #[test]
    fn share_with_a_floor() {
        let safety = SafetyConfig::default();
        // 10% of 5000 = 500.
        assert_eq!(decide(&safety, &names(500), 5000, false), Verdict::Go);
        assert!(matches!(
            decide(&safety, &names(501), 5000, false),
            Verdict::Hold { limit: 500, .. }
        ));
        // Mid-sized sets: at least 100.
        assert_eq!(decide(&safety, &names(100), 200, false), Verdict::Go);
        assert!(matches!(
            decide(&safety, &names(101), 200, false),
            Verdict::Hold { limit: 100, .. }
        ));
        // Small sets: at most half (the floor of 100 no longer lets a
        // deployment of 100 or fewer lose every signal at once).
        assert!(matches!(
            decide(&safety, &names(100), 100, false),
            Verdict::Hold { limit: 50, .. }
        ));
        assert_eq!(decide(&safety, &names(50), 100, false), Verdict::Go);
        assert!(matches!(
            decide(&safety, &names(3), 3, false),
            Verdict::Hold { limit: 1, .. }
        ));
        assert_eq!(decide(&safety, &names(1), 3, false), Verdict::Go);
        // One child alone may change (a rollover of the only zone).
        assert_eq!(decide(&safety, &names(1), 1, false), Verdict::Go);
        // Confirmed: through.
        assert_eq!(decide(&safety, &names(1000), 1000, true), Verdict::Go);
        // A raised limit lets it through.
        let lax = SafetyConfig {
            max_change_share: 0.6,
            min_changes: 100,
        };
        assert_eq!(decide(&lax, &names(150), 300, false), Verdict::Go);
    }
}
