//! `signalbox parent` (what the parent publishes, where it wants NOTIFYs,
//! whether our servers agree) and `signalbox notify` (discover and send
//! now), each printing every step.

use std::path::Path;

use signalbox::{
    client::notify::Outcome,
    dns::{Dnskey, Name, RecordType, name::display, parse_name, wire::rcode},
    model::ChildZone,
    parent::{
        self, ChildReport, SignalingTarget, discovery, gate,
        job::{self, GateInput, NotifyJob, NotifyOutcome, NotifyRun, ParentCheck},
        observer,
        resolver::Resolver,
    },
    policy::{self, ParentView},
};

use super::{EXIT_CONFIG, EXIT_OK, EXIT_WARNINGS, Loaded, load};

/// Which NOTIFY to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NotifyType {
    /// NOTIFY(CDS): the CDS/CDNSKEY changed.
    Cds,
    /// NOTIFY(CSYNC).
    Csync,
}

fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            EXIT_WARNINGS
        })
}

/// The index of child `zone` among the config's children, or an exit code.
fn child(loaded: &Loaded, zone: &str) -> Result<usize, u8> {
    let name = parse_name(zone).map_err(|e| {
        eprintln!("error: --zone: {e}");
        EXIT_CONFIG
    })?;
    loaded
        .children
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| {
            eprintln!(
                "error: --zone {}: not a configured zone, nor in any [[zones]] key directory",
                display(&name)
            );
            EXIT_CONFIG
        })
}

/// The signalling zones with the DNSKEYs of their key directories.
fn signaling_targets(loaded: &Loaded) -> Vec<SignalingTarget> {
    loaded
        .config
        .signaling_zones
        .iter()
        .map(|sz| SignalingTarget {
            apex: sz.apex.clone(),
            ns_host: sz.ns_host(),
            hosts: sz.nameservers.clone(),
            dnskeys: sz
                .keys
                .as_ref()
                .and_then(|dir| loaded.store.report(dir))
                .and_then(|r| r.zones.get(&sz.apex))
                .map(|keys| {
                    keys.iter()
                        .map(|k| k.dnskey.clone())
                        .collect::<Vec<Dnskey>>()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// What the policy wants for `child` given the parent's view.
fn plan(loaded: &Loaded, child: &ChildZone, view: Option<&ParentView>) -> ChildReport {
    let signals = policy::compute(&child.input(view, None), jiff::Timestamp::now());
    parent::plan(
        &signals,
        &child.settings.nameservers,
        view,
        &signaling_targets(loaded),
    )
}

/// The config with `zone` among its children, a resolver configured, and
/// a runtime: what `parent` and `notify` start from.
fn prepare(config: &Path, zone: &str) -> Result<(Loaded, usize, tokio::runtime::Runtime), u8> {
    let loaded = load(config)?;
    let index = child(&loaded, zone)?;
    if loaded.config.resolver.servers.is_empty() {
        eprintln!("error: [resolver] servers is empty: the parent cannot be looked up");
        return Err(EXIT_CONFIG);
    }
    Ok((loaded, index, runtime()?))
}

/// `signalbox parent`: discovery, the parent's view, then each gate.
pub fn run_parent(config: &Path, zone: &str) -> u8 {
    let (loaded, index, rt) = match prepare(config, zone) {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let child = &loaded.children[index];
    rt.block_on(async {
        let resolver = Resolver::new(loaded.config.resolver.clone());
        outln!("; child {}", display(&child.name));
        let found = match discovery::discover(&resolver, &child.name).await {
            Ok(found) => found,
            Err(e) => {
                outln!("; error: {e}");
                return EXIT_WARNINGS;
            }
        };
        for step in &found.steps {
            outln!("; lookup {step}");
        }
        let Some(parent_zone) = &found.parent else {
            outln!("; error: the parent zone could not be found");
            return EXIT_WARNINGS;
        };
        outln!("; parent zone {}", display(parent_zone));
        let mut code = print_targets(&found);
        let observed = observer::observe(
            &resolver,
            parent_zone,
            &child.name,
            loaded.config.notify.nameserver_port,
            loaded.config.resolver.timeout,
            jiff::Timestamp::now(),
        )
        .await;
        let view = match observed {
            Ok(o) => {
                print_observation(&child.name, &o);
                Some(o.view())
            }
            Err(e) => {
                outln!("; error: {e}");
                code = EXIT_WARNINGS;
                None
            }
        };
        let report = plan(&loaded, child, view.as_ref());
        print_gates(&resolver, &loaded, &report).await;
        code
    })
}

/// `signalbox check`: the parent's-eye preflight of one child, or of every
/// child (`zone` = `None`: `--all`).
pub fn run_check(config: &Path, zone: Option<&str>, profile: &str, json: bool) -> u8 {
    use signalbox::{
        check::{self, Outcome},
        parent::scan,
    };
    let Some(profile) = check::profile::find(profile) else {
        eprintln!(
            "error: --profile {profile}: not one of {}",
            check::profile::names().join(", ")
        );
        return EXIT_CONFIG;
    };
    let loaded = match load(config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let indices = match zone {
        Some(zone) => match child(&loaded, zone) {
            Ok(index) => vec![index],
            Err(code) => return code,
        },
        None => (0..loaded.children.len()).collect(),
    };
    if loaded.config.resolver.servers.is_empty() {
        eprintln!("error: [resolver] servers is empty: the parent cannot be looked up");
        return EXIT_CONFIG;
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let verdicts: Vec<check::Verdict> = rt.block_on(async {
        let resolver = Resolver::new(loaded.config.resolver.clone());
        let mut verdicts = Vec::with_capacity(indices.len());
        for index in indices {
            let child = &loaded.children[index];
            let asking = scan::Asking {
                port: loaded.config.notify.nameserver_port,
                timeout: loaded.config.resolver.timeout,
                configured: child.settings.nameservers.clone(),
            };
            let facts = scan::scan(&resolver, &child.name, &asking).await;
            verdicts.push(check::evaluate(&facts, profile, jiff::Timestamp::now()));
        }
        verdicts
    });
    let printed = match (json, zone.is_some()) {
        (true, true) => serde_json::to_string_pretty(&verdicts[0]).map(|t| outln!("{t}")),
        (true, false) => serde_json::to_string_pretty(&verdicts).map(|t| outln!("{t}")),
        (false, true) => {
            out!("{}", verdicts[0].to_text());
            Ok(())
        }
        (false, false) => {
            let mut tally: std::collections::BTreeMap<String, usize> = Default::default();
            for verdict in &verdicts {
                let outcome = format!("{:?}", verdict.outcome).to_ascii_lowercase();
                *tally.entry(outcome).or_default() += 1;
                if verdict.outcome != Outcome::NothingToDo {
                    outln!("{}: {}", display(&verdict.child), verdict.summary);
                    for f in verdict
                        .findings
                        .iter()
                        .filter(|f| f.severity == check::Severity::Error)
                    {
                        outln!("  error: {} ({})", f.message, f.rule);
                    }
                }
            }
            let tally: Vec<String> = tally.iter().map(|(k, n)| format!("{n} {k}")).collect();
            outln!("; {} children: {}", verdicts.len(), tally.join(", "));
            Ok(())
        }
    };
    if let Err(e) = printed {
        eprintln!("error: {e}");
        return EXIT_WARNINGS;
    }
    verdicts
        .iter()
        .map(|v| v.exit_code())
        .max()
        .unwrap_or(EXIT_OK)
}

/// The DSYNC RRset and the NOTIFY target per type; warnings when one is
/// unusable.
fn print_targets(found: &discovery::Discovery) -> u8 {
    let mut code = EXIT_OK;
    for (owner, d) in &found.records {
        outln!("{} DSYNC {d}", display(owner));
    }
    for rtype in [RecordType::CDS, RecordType::CSYNC] {
        match found.target(rtype) {
            Ok(Some(t)) => outln!(
                "; NOTIFY({rtype}) target {} port {} (from {})",
                display(&t.host),
                t.port,
                display(&t.owner)
            ),
            Ok(None) => outln!("; NOTIFY({rtype}): no target (nothing would be sent)"),
            Err(e) => {
                outln!("; NOTIFY({rtype}): error: {e}");
                code = EXIT_WARNINGS;
            }
        }
    }
    code
}

/// The child's DS and NS as the parent serves them.
fn print_observation(child: &Name, o: &observer::Observation) {
    outln!("; parent server {} answered", o.server);
    for ds in &o.ds {
        outln!("{} DS {ds}", display(child));
    }
    if o.ds.is_empty() {
        outln!("; no DS at the parent");
    }
    for ns in &o.ns {
        outln!("{} NS {}", display(child), display(ns));
    }
}

/// Checks and prints the consistency gate for each wanted NOTIFY type.
async fn print_gates(resolver: &Resolver, loaded: &Loaded, report: &ChildReport) {
    let port = loaded.config.notify.nameserver_port;
    for (label, groups, wanted) in [
        ("CDS", &report.cds_groups, report.cds != 0),
        ("CSYNC", &report.csync_groups, report.csync != 0),
    ] {
        if !wanted {
            outln!("; gate {label}: nothing to announce (no {label} desired)");
            continue;
        }
        let verdict = gate::check(resolver, groups, port, loaded.config.notify.udp_timeout).await;
        for server in &verdict.checked {
            outln!("; gate {label}: asked {server}");
        }
        for problem in &verdict.disagreements {
            outln!("; gate {label}: disagrees: {problem}");
        }
        outln!(
            "; gate {label}: {}",
            if verdict.open() {
                "open (every server agrees)"
            } else {
                "closed"
            }
        );
    }
}

/// `signalbox notify`: the agent's NOTIFY job, printed step by step.
pub fn run_notify(config: &Path, zone: &str, kind: NotifyType, dry_run: bool) -> u8 {
    let (loaded, index, rt) = match prepare(config, zone) {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let child = &loaded.children[index];
    let rtype = match kind {
        NotifyType::Cds => RecordType::CDS,
        NotifyType::Csync => RecordType::CSYNC,
    };
    let groups = |view: Option<&ParentView>| {
        let report = plan(&loaded, child, view);
        if rtype == RecordType::CDS {
            report.cds_groups
        } else {
            report.csync_groups
        }
    };
    let notify_config = &loaded.config.notify;
    let gate = if notify_config.gate.asks_servers() {
        GateInput::FromParent {
            timeout: loaded.config.resolver.timeout,
            plan: &groups,
        }
    } else {
        GateInput::Skip
    };
    let parent_check = matches!(gate, GateInput::FromParent { .. }).then_some(ParentCheck {
        profile: notify_config.profile,
        nameservers: &child.settings.nameservers,
        hold_on_refusal: notify_config.gate == signalbox::config::Gate::Parent,
    });
    let job = NotifyJob {
        zone: &child.name,
        rtype,
        gate,
        parent_check,
        config: notify_config,
        pace: None,
        dry_run,
    };
    let run = rt.block_on(async {
        let resolver = Resolver::new(loaded.config.resolver.clone());
        job::notify(&resolver, job).await
    });
    print_notify(&run, &child.name, rtype)
}

/// Prints what a NOTIFY job did, in the order it did it; returns the exit
/// code.
fn print_notify(run: &NotifyRun, zone: &Name, rtype: RecordType) -> u8 {
    if let NotifyOutcome::Discovery(e) = &run.outcome {
        eprintln!("error: {e}");
        return EXIT_WARNINGS;
    }
    for step in run.discovery.iter().flat_map(|d| &d.steps) {
        outln!("; lookup {step}");
    }
    match &run.outcome {
        NotifyOutcome::NoTarget => {
            outln!("; no DSYNC target for ({rtype}, NOTIFY): nothing sent");
            return EXIT_WARNINGS;
        }
        NotifyOutcome::BadTarget(e) => {
            eprintln!("error: {e}");
            return EXIT_WARNINGS;
        }
        _ => {}
    }
    if let Some(target) = &run.target {
        outln!(
            "; target {} port {} (from {})",
            display(&target.host),
            target.port,
            display(&target.owner)
        );
    }
    if let Some(e) = &run.parent_unreadable {
        outln!("; parent not readable ({e}); checking the configured nameservers");
    }
    if let Some(verdict) = &run.gate {
        for problem in &verdict.disagreements {
            outln!("; gate: disagrees: {problem}");
        }
        if verdict.open() {
            outln!("; gate open: {} server(s) agree", verdict.checked.len());
        }
    }
    if let Some(verdict) = &run.verdict {
        outln!(
            "; parent check (profile {}): {}",
            verdict.profile,
            verdict.summary
        );
        for f in &verdict.findings {
            let label = f.severity.as_str();
            outln!("; parent check: {label}: {} ({})", f.message, f.rule);
        }
    }
    match &run.outcome {
        NotifyOutcome::ParentWouldRefuse => {
            outln!("; the parent would refuse ([notify] gate = \"parent\"); nothing sent");
            EXIT_WARNINGS
        }
        NotifyOutcome::GateClosed => {
            outln!("; gate closed: the nameservers do not agree yet; nothing sent");
            EXIT_WARNINGS
        }
        NotifyOutcome::NoAddress(e) => {
            eprintln!("error: {e}");
            EXIT_WARNINGS
        }
        NotifyOutcome::DryRun(addr) => {
            outln!(
                "; dry run: would send NOTIFY({rtype}) for {} to {addr}",
                display(zone)
            );
            EXIT_OK
        }
        NotifyOutcome::Sent { addr, outcome } => match outcome {
            Outcome::Acknowledged => {
                outln!(
                    "; NOTIFY({rtype}) for {} acknowledged by {addr}",
                    display(zone)
                );
                EXIT_OK
            }
            Outcome::Rejected(code) => {
                outln!(
                    "; NOTIFY({rtype}) rejected by {addr}: {}",
                    rcode::name(*code)
                );
                EXIT_WARNINGS
            }
            Outcome::Failed(why) => {
                outln!("; NOTIFY({rtype}) failed: {why}");
                EXIT_WARNINGS
            }
        },
        // Handled above.
        NotifyOutcome::Discovery(_) | NotifyOutcome::NoTarget | NotifyOutcome::BadTarget(_) => {
            EXIT_WARNINGS
        }
    }
}
