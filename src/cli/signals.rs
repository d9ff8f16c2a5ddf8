//! `signalbox signals`: what every child zone should publish at a time, as
//! master-file lines, each decision explained on a `;` line.

use std::{collections::HashMap, path::Path};

use jiff::Timestamp;
use signalbox::{
    config::Config,
    dns::{Name, name::display, parse_name},
    keys::dir::{Effect, Severity},
    model::ChildZone,
    policy::{self, ParentView, Verdict, ZoneSignals},
};

use super::{EXIT_CONFIG, EXIT_OK, EXIT_WARNINGS, load, time_arg};

pub fn run(config: &Path, zone: Option<&str>, at: Option<&str>, soa_serial: Option<u32>) -> u8 {
    let now = match time_arg(at) {
        Ok(now) => now,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    let only: Option<Name> = match zone.map(parse_name).transpose() {
        Ok(name) => name,
        Err(e) => {
            eprintln!("error: --zone: {e}");
            return EXIT_CONFIG;
        }
    };
    let loaded = match load(config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let mut code = EXIT_OK;
    for error in &loaded.model_errors {
        eprintln!("error: {error}");
        code = EXIT_CONFIG;
    }
    let children: Vec<_> = loaded
        .children
        .iter()
        .filter(|c| only.as_ref().is_none_or(|z| &c.name == z))
        .collect();
    if let (Some(name), true) = (&only, children.is_empty()) {
        eprintln!(
            "error: --zone {}: not a configured zone, nor in any [[zones]] key directory",
            display(name)
        );
        return EXIT_CONFIG;
    }

    // What the daemon last saw at the parent is a fact for the policy (the
    // same one the daemon uses), so `signals` agrees with what is served.
    let views = signalbox::parent::agent::saved_views(
        &signalbox::parent::agent::AgentPaths::in_state_dir(&loaded.config.state.dir),
    );
    // So are the other providers' keys it last validated (foreign_from).
    let foreign =
        signalbox::providers::load(&signalbox::providers::state_path(&loaded.config.state.dir));
    let facts = Facts {
        views: &views,
        foreign: &foreign,
    };
    outln!("; signalbox signals at {now}");
    if at.is_some()
        && children
            .iter()
            .any(|c| c.keys.iter().any(|k| k.state.is_some()))
    {
        outln!("; note: .state key states are a snapshot; --at moves only timing metadata");
    }
    for child in children {
        code = code.max(print_zone(child, &facts, &loaded.config, now, soa_serial));
    }
    drop(loaded.store);
    code
}

/// What the daemon last learnt from outside, from the state directory.
struct Facts<'a> {
    views: &'a HashMap<Name, ParentView>,
    foreign: &'a std::collections::BTreeMap<Name, signalbox::providers::ForeignKeys>,
}

/// Prints one zone: where it comes from, its key problems, the parent's
/// view, every decision and the records; returns the exit code it calls for.
fn print_zone(
    child: &ChildZone,
    facts: &Facts<'_>,
    config: &Config,
    now: Timestamp,
    soa_serial: Option<u32>,
) -> u8 {
    let zone = display(&child.name);
    let mut code = EXIT_OK;
    outln!();
    outln!(
        "; zone {zone} from {}; keys {}; cds {}",
        child.source,
        child
            .key_dir
            .as_ref()
            .map_or_else(|| "none".to_string(), |d| d.display().to_string()),
        child.settings.cds
    );
    for issue in &child.issues {
        let label = match issue.severity {
            Severity::Warning => "warning",
            Severity::InFlux | Severity::Error => "error",
        };
        outln!("; {label}: {issue}");
        eprintln!("{label}: {zone}: {issue}");
        if issue.severity != Severity::Warning && issue.effect != Effect::None {
            code = code.max(EXIT_WARNINGS);
        }
    }
    for reason in &child.held {
        outln!("; warning: zone held: {reason}");
        eprintln!(
            "warning: {zone}: held ({reason}); the records below are what the readable keys give"
        );
        code = code.max(EXIT_WARNINGS);
    }
    let view = facts.views.get(&child.name);
    let foreign = facts
        .foreign
        .get(&child.name)
        .filter(|_| child.fetches_foreign);
    match foreign {
        Some(f) => outln!(
            "; other providers' KSKs (state/foreign-keys.state, validated {}): {}",
            f.fetched_at,
            f.keys.len()
        ),
        None if child.fetches_foreign => {
            outln!(
                "; warning: foreign_from: no other provider's key validated yet (the daemon \
                 publishes nothing new for the zone until then); the records below lack them"
            );
            code = code.max(EXIT_WARNINGS);
        }
        None => {}
    }
    if let Some(view) = view {
        outln!(
            "; parent view (state/parent.state, observed {}): {} DS, NS {}",
            view.observed_at
                .map_or_else(|| "?".to_string(), |t| t.to_string()),
            view.ds.len(),
            view.ns.as_ref().map_or_else(
                || "?".to_string(),
                |ns| ns.iter().map(display).collect::<Vec<_>>().join(" ")
            )
        );
    }
    let signals = policy::compute(
        &policy::ZoneInput {
            foreign: foreign.map_or(&[], |f| f.keys.as_slice()),
            ..child.input(view, soa_serial)
        },
        now,
    );
    signals.trace();
    for decision in &signals.decisions {
        outln!("; {decision}");
        if decision.verdict == Verdict::Error {
            code = code.max(EXIT_WARNINGS);
        }
    }
    print_records(&signals, config);
    code
}

/// The apex RRsets, then each RFC 9615 signal with where it is served.
fn print_records(signals: &ZoneSignals, config: &Config) {
    for set in [&signals.cds, &signals.cdnskey]
        .into_iter()
        .chain(signals.csync.iter())
    {
        for record in set.records() {
            outln!("{record}");
        }
    }
    for boot in &signals.dsboot {
        if boot.cds.is_empty() && boot.cdnskey.is_empty() {
            continue;
        }
        let carrier = match config.signaling_zone_for(&boot.ns) {
            Some(sz) => format!(
                "served here in signaling zone {} ({})",
                display(&sz.apex),
                sz.origin
            ),
            None => format!(
                "no [[signaling_zone]] here for {}: publish _signal.{} elsewhere",
                display(&boot.ns),
                display(&boot.ns)
            ),
        };
        outln!("; RFC 9615 signal for NS {}: {carrier}", display(&boot.ns));
        for set in [&boot.cds, &boot.cdnskey] {
            for record in set.records() {
                outln!("{record}");
            }
        }
    }
}
