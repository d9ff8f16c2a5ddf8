//! `signalbox check-config`: validate the config and what it points at.

use std::path::Path;

use signalbox::{
    config::CdsMode,
    dns::name::display,
    keys::dir::Severity,
    policy::{self, Verdict},
};

use super::{EXIT_CONFIG, EXIT_OK, Loaded, load};

pub fn run(path: &Path) -> u8 {
    let loaded = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let errors = errors(&loaded);
    for message in &errors {
        eprintln!("error: {message}");
    }
    let warnings = warnings(&loaded);
    for message in &warnings {
        eprintln!("warning: {message}");
    }
    print_served_elsewhere(&loaded);
    let (errors, warnings) = (errors.len(), warnings.len());
    if errors > 0 {
        eprintln!(
            "{}: {errors} error(s), {warnings} warning(s)",
            path.display()
        );
        return EXIT_CONFIG;
    }
    let config = &loaded.config;
    let from_sets = loaded
        .children
        .iter()
        .filter(|c| config.zone(&c.name).is_none())
        .count();
    outln!(
        "{}: OK: {} child zone(s) ({} from [[zone]], {} from [[zones]] sets), {} signaling zone(s), \
         {} key director{}; {warnings} warning(s)",
        path.display(),
        loaded.children.len(),
        loaded.children.len() - from_sets,
        from_sets,
        config.signaling_zones.len(),
        config.key_directories().len(),
        if config.key_directories().len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    EXIT_OK
}

/// Key directories that are not there, model errors, and policy errors of
/// any child.
fn errors(loaded: &Loaded) -> Vec<String> {
    let mut errors = Vec::new();
    for dir in loaded.config.key_directories() {
        match std::fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => errors.push(format!("key directory {}: not a directory", dir.display())),
            Err(e) => errors.push(format!("key directory {}: {e}", dir.display())),
        }
    }
    errors.extend(loaded.model_errors.iter().map(ToString::to_string));
    let now = jiff::Timestamp::now();
    for child in &loaded.children {
        let signals = policy::compute(&child.input(None, None), now);
        for d in signals
            .decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Error)
        {
            errors.push(format!("{d} (from {})", child.source));
        }
    }
    errors
}

/// Key file problems, and zone tables whose apex signals nothing publishes.
fn warnings(loaded: &Loaded) -> Vec<String> {
    let mut warnings = Vec::new();
    for (dir, report) in loaded.store.reports() {
        for issue in &report.issues {
            let label = if issue.severity == Severity::Warning {
                ""
            } else {
                "key error: "
            };
            warnings.push(format!("{label}{}: {issue}", dir.display()));
        }
    }
    warnings.extend(exposed_secrets(loaded));
    // Who publishes the apex? With BIND signing from the same key directory,
    // the apex carries BIND's own set, which only `auto` reproduces.
    let mut tables_warned: Vec<std::sync::Arc<str>> = Vec::new();
    for child in &loaded.children {
        let cds = child.settings.cds;
        let apex_mode = !matches!(cds, CdsMode::Auto | CdsMode::None);
        if (apex_mode || child.settings.csync) && !tables_warned.contains(&child.source) {
            tables_warned.push(child.source.clone());
            let what = match (apex_mode, child.settings.csync) {
                (true, true) => format!("CDS/CDNSKEY (cds = \"{cds}\") and CSYNC"),
                (true, false) => format!("CDS/CDNSKEY (cds = \"{cds}\")"),
                _ => "CSYNC".to_string(),
            };
            warnings.push(format!(
                "{} (e.g. zone {}): nothing publishes the apex {what} signalbox computes. \
                 RFC 9615 signals must equal the child's apex RRsets: configure the signer to the \
                 same mode (Knot: cds-cdnskey-publish) or use cds = \"auto\" with BIND",
                child.source,
                display(&child.name)
            ));
        }
    }
    warnings
}

/// A note per NS host outside its zones with no `[[signaling_zone]]` here.
fn print_served_elsewhere(loaded: &Loaded) {
    let mut elsewhere: std::collections::BTreeMap<String, (usize, String)> = Default::default();
    for child in &loaded.children {
        for ns in &child.settings.nameservers {
            if loaded.config.signaling_zone_for(ns).is_none()
                && !signalbox::dns::name::is_at_or_below(ns, &child.name)
            {
                let entry = elsewhere
                    .entry(display(ns))
                    .or_insert_with(|| (0, display(&child.name)));
                entry.0 += 1;
            }
        }
    }
    for (ns, (count, example)) in elsewhere {
        outln!(
            "note: NS {ns} (of {count} zone(s), e.g. {example}) has no [[signaling_zone]] here: \
             _signal.{ns} must be served elsewhere"
        );
    }
}

/// TSIG key files and `.private` files every user of the machine may read.
fn exposed_secrets(loaded: &Loaded) -> Vec<String> {
    // Every key directory's keys: the children's and the signalling zones'.
    let private_files = loaded.store.reports().flat_map(|(_, report)| {
        report
            .zones
            .all_keys()
            .filter_map(|key| key.files.private_path())
            .collect::<Vec<_>>()
    });
    let mut files: Vec<std::path::PathBuf> = loaded
        .config
        .tsig_keys
        .iter()
        .cloned()
        .chain(private_files)
        .collect();
    files.sort();
    files.dedup();
    files
        .into_iter()
        .filter(|file| signalbox::state::readable_by_others(file))
        .map(|file| {
            format!(
                "{}: readable by every user of this machine, and it holds a secret: chmod 600 (or 640 for a group signalbox is in)",
                file.display()
            )
        })
        .collect()
}
