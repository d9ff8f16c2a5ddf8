//! Key directory scanning: incremental rescans, in-flux keys, bad input.

use std::{
    fs,
    time::{Duration, Instant},
};

use crate::common::*;
use signalbox::{
    dns::parse_name,
    keys::dir::{Effect, KeyDirectory, Severity},
};

#[test]
fn scans_keys_grouped_by_zone_and_rereads_only_changes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = dnskey(257, 13, 1);
    let b = dnskey(256, 13, 2);
    let c = dnskey(257, 15, 3);
    write_key(
        tmp.path(),
        "a.example.",
        &a,
        &[("Created", "20250101000000")],
    );
    write_private(
        tmp.path(),
        "a.example.",
        &a,
        &[("Created", "20250101000000")],
    );
    write_key(tmp.path(), "a.example.", &b, &[]);
    write_key(tmp.path(), "b.example.", &c, &[]);
    fs::write(tmp.path().join("README"), "not a key").expect("write");
    fs::write(tmp.path().join("Ka.example.+013+12345.key.Xy12ab"), "temp").expect("write");

    let mut dir = KeyDirectory::new(tmp.path());
    let t0 = Instant::now();
    let report = dir.scan(t0);
    assert!(report.issues.is_empty(), "{:#?}", report.issues);
    assert_eq!(report.files_read, 4);
    let zone_a = parse_name("a.example.").expect("valid");
    assert_eq!(report.zones[&zone_a].len(), 2);
    assert_eq!(report.zones.len(), 2);

    // Nothing changed: nothing re-read.
    let report = dir.scan(t0);
    assert_eq!(report.files_read, 0);
    assert_eq!(report.zones.len(), 2);

    // One file replaced by rename (as BIND does): only it is re-read.
    let path = write_key(
        tmp.path(),
        "b.example.",
        &c,
        &[("Inactive", "20300101000000")],
    );
    let tmp_path = path.with_extension("tmp");
    fs::rename(&path, &tmp_path).expect("rename");
    fs::rename(&tmp_path, &path).expect("rename");
    let report = dir.scan(t0);
    assert_eq!(report.files_read, 1);

    // A key removed: gone from the view.
    fs::remove_file(path).expect("remove");
    let report = dir.scan(t0);
    assert_eq!(report.zones.len(), 1);
}

#[test]
fn files_that_disagree_are_in_flux_then_an_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let k = dnskey(257, 13, 7);
    write_key(
        tmp.path(),
        "flux.example.",
        &k,
        &[("Created", "20250101000000"), ("Publish", "20250101000000")],
    );
    write_private(
        tmp.path(),
        "flux.example.",
        &k,
        &[("Created", "20250101000000"), ("Publish", "20250101000000")],
    );
    let mut dir = KeyDirectory::new(tmp.path()).with_flux_grace(Duration::from_secs(5));
    let t0 = Instant::now();
    let zone = parse_name("flux.example.").expect("valid");
    let good = dir.scan(t0);
    assert_eq!(good.zones[&zone].len(), 1);
    assert!(good.issues.is_empty());

    // dnssec-settime rewrote the .key first: Inactive only in .key for now.
    write_key(
        tmp.path(),
        "flux.example.",
        &k,
        &[
            ("Created", "20250101000000"),
            ("Publish", "20250101000000"),
            ("Inactive", "20300101000000"),
        ],
    );
    let report = dir.scan(t0 + Duration::from_secs(1));
    let issue = &report.issues[0];
    assert_eq!(issue.severity, Severity::InFlux, "{issue}");
    assert_eq!(issue.effect, Effect::UsingLastGood);
    assert!(issue.message.contains("Inactive"), "{issue}");
    assert_eq!(report.zones[&zone].len(), 1, "last good view kept");
    assert!(
        report.zones[&zone][0]
            .timing
            .iter()
            .all(|(e, _)| e.key_file_tag() != "Inactive"),
        "the previous view, not the half-written one"
    );
    assert!(report.held.is_empty());

    // Still disagreeing after the grace period: an error, last view still kept.
    let report = dir.scan(t0 + Duration::from_secs(7));
    assert_eq!(report.issues[0].severity, Severity::Error);
    assert!(
        report.issues[0].message.contains("disagree for"),
        "{}",
        report.issues[0]
    );
    assert_eq!(report.zones[&zone].len(), 1);

    // The .private catches up: consistent again, the new view is used.
    write_private(
        tmp.path(),
        "flux.example.",
        &k,
        &[
            ("Created", "20250101000000"),
            ("Publish", "20250101000000"),
            ("Inactive", "20300101000000"),
        ],
    );
    let report = dir.scan(t0 + Duration::from_secs(8));
    assert!(report.issues.is_empty(), "{:#?}", report.issues);
    assert!(
        report.zones[&zone][0]
            .timing
            .iter()
            .any(|(e, _)| e.key_file_tag() == "Inactive")
    );
}

#[test]
fn a_new_key_in_flux_holds_its_zone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let k = dnskey(257, 13, 8);
    write_key(
        tmp.path(),
        "new.example.",
        &k,
        &[("Created", "20250101000000")],
    );
    write_state(
        tmp.path(),
        "new.example.",
        &k,
        &["Algorithm: 13", "Generated: 20250102000000"],
    );
    let mut dir = KeyDirectory::new(tmp.path());
    let report = dir.scan(Instant::now());
    assert!(report.has_pending_flux());
    let zone = parse_name("new.example.").expect("valid");
    assert!(report.held.contains_key(&zone));
    assert!(!report.zones.contains_key(&zone));
}

#[test]
fn bad_files_are_reported_and_other_keys_still_work() {
    let tmp = tempfile::tempdir().expect("tmp");
    let good = dnskey(257, 13, 1);
    write_key(tmp.path(), "good.example.", &good, &[]);

    // Truncated .private.
    let t = dnskey(257, 13, 2);
    write_key(tmp.path(), "trunc.example.", &t, &[]);
    fs::write(
        tmp.path()
            .join(format!("{}.private", stem("trunc.example.", &t))),
        "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\n",
    )
    .expect("write");

    // Unknown algorithm.
    let u = dnskey(257, 99, 3);
    write_key(tmp.path(), "unknown.example.", &u, &[]);

    // Garbage timestamp.
    let g = dnskey(257, 13, 4);
    write_key(
        tmp.path(),
        "garbage.example.",
        &g,
        &[("Publish", "2025-01-01")],
    );

    // .state with unknown tags: a warning only.
    let s = dnskey(257, 13, 5);
    write_key(tmp.path(), "state.example.", &s, &[]);
    write_state(
        tmp.path(),
        "state.example.",
        &s,
        &["Algorithm: 13", "DSState: omnipresent", "Shiny: yes"],
    );

    // Unreadable (not UTF-8) file.
    let b = dnskey(257, 13, 6);
    fs::write(
        tmp.path()
            .join(format!("{}.key", stem("binary.example.", &b))),
        [0xff, 0xfe, 0x00],
    )
    .expect("write");

    // A .key whose file name says another zone than its content.
    let o = dnskey(257, 13, 7);
    let path = write_key(tmp.path(), "other.example.", &o, &[]);
    fs::rename(
        &path,
        tmp.path()
            .join(format!("{}.key", stem("misnamed.example.", &o))),
    )
    .expect("rename");

    let mut dir = KeyDirectory::new(tmp.path());
    let report = dir.scan(Instant::now());
    let find = |zone: &str| {
        let zone = parse_name(zone).expect("valid");
        report
            .issues
            .iter()
            .find(|i| i.zone.as_ref() == Some(&zone))
            .unwrap_or_else(|| panic!("no issue for {zone}: {:#?}", report.issues))
            .clone()
    };
    let trunc = find("trunc.example.");
    assert!(
        trunc.file.to_string_lossy().ends_with(".private"),
        "{trunc}"
    );
    assert!(trunc.message.contains("truncated"), "{trunc}");
    assert_eq!(
        (trunc.severity, trunc.effect),
        (Severity::Error, Effect::Held)
    );
    let unknown = find("unknown.example.");
    assert!(unknown.message.contains("algorithm 99"), "{unknown}");
    let garbage = find("garbage.example.");
    assert_eq!(garbage.line, 2, "{garbage}");
    assert!(garbage.message.contains("Publish"), "{garbage}");
    let state = find("state.example.");
    assert_eq!(
        (state.severity, state.effect),
        (Severity::Warning, Effect::None)
    );
    assert!(state.message.contains("Shiny"), "{state}");
    let binary = find("binary.example.");
    assert!(binary.message.contains("cannot read"), "{binary}");
    let misnamed = find("misnamed.example.");
    assert!(misnamed.message.contains("other.example."), "{misnamed}");

    for zone in [
        "trunc.example.",
        "unknown.example.",
        "garbage.example.",
        "binary.example.",
        "misnamed.example.",
    ] {
        assert!(
            report.held.contains_key(&parse_name(zone).expect("valid")),
            "{zone} not held"
        );
    }
    for zone in ["good.example.", "state.example."] {
        let zone = parse_name(zone).expect("valid");
        assert_eq!(report.zones[&zone].len(), 1, "{zone:?} lost");
        assert!(!report.held.contains_key(&zone));
    }
}

#[test]
fn a_key_that_turns_bad_keeps_its_last_good_view() {
    let tmp = tempfile::tempdir().expect("tmp");
    let k = dnskey(257, 13, 9);
    let path = write_key(tmp.path(), "keep.example.", &k, &[]);
    let mut dir = KeyDirectory::new(tmp.path());
    let t0 = Instant::now();
    assert!(dir.scan(t0).issues.is_empty());
    let text = fs::read_to_string(&path).expect("read");
    fs::write(&path, &text[..text.len() / 2]).expect("truncate");
    let report = dir.scan(t0);
    let zone = parse_name("keep.example.").expect("valid");
    assert_eq!(report.zones[&zone].len(), 1);
    assert_eq!(report.issues[0].effect, Effect::UsingLastGood);
    assert!(report.held.is_empty());
}

#[test]
fn empty_and_missing_directories() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut dir = KeyDirectory::new(tmp.path());
    let report = dir.scan(Instant::now());
    assert!(report.zones.is_empty() && report.issues.is_empty());
    let mut missing = KeyDirectory::new(tmp.path().join("nope"));
    let report = missing.scan(Instant::now());
    assert!(
        report
            .directory_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot read key directory"))
    );
}

#[test]
fn unreadable_private_is_a_warning_for_child_keys() {
    // Only meaningful when not running as root (root reads anything).
    if unsafe_is_root() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let k = dnskey(257, 13, 10);
    write_key(tmp.path(), "perm.example.", &k, &[]);
    let private = write_private(tmp.path(), "perm.example.", &k, &[]);
    fs::set_permissions(&private, fs::Permissions::from_mode(0o000)).expect("chmod");
    let report = KeyDirectory::new(tmp.path()).scan(Instant::now());
    assert_eq!(report.issues[0].severity, Severity::Warning);
    assert_eq!(report.zones.len(), 1);
}

fn unsafe_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn targeted_rescans_read_only_the_named_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = dnskey(257, 13, 1);
    let b = dnskey(257, 13, 2);
    write_key(tmp.path(), "a.example.", &a, &[]);
    let mut dir = KeyDirectory::new(tmp.path());
    let t0 = Instant::now();
    assert_eq!(dir.scan(t0).zones.len(), 1);

    // A new key, named by the event: read, and only it.
    let new = write_key(tmp.path(), "b.example.", &b, &[]);
    let name = new
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_string();
    let report = dir.scan_files([name.as_str(), "README", "dnssec-keyA1b2"], t0);
    assert_eq!(report.files_read, 1);
    assert_eq!(report.zones.len(), 2);
    assert!(
        report
            .changed
            .contains(&parse_name("b.example.").expect("valid"))
    );

    // A key changed but not named: a targeted rescan does not see it (the
    // periodic full rescan does).
    write_key(
        tmp.path(),
        "a.example.",
        &a,
        &[("Inactive", "20300101000000")],
    );
    let report = dir.scan_files(std::iter::empty(), t0);
    assert_eq!(report.files_read, 0);
    assert!(
        dir.scan(t0)
            .changed
            .contains(&parse_name("a.example.").expect("valid"))
    );

    // A removed file, named by the event: the zone goes.
    fs::remove_file(&new).expect("remove");
    let report = dir.scan_files([name.as_str()], t0);
    assert_eq!(report.zones.len(), 1);
    assert!(
        report
            .changed
            .contains(&parse_name("b.example.").expect("valid"))
    );
}

#[test]
fn the_bulk_model_equals_one_zone_at_a_time() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    fs::create_dir_all(&one).expect("mkdir");
    fs::create_dir_all(&two).expect("mkdir");
    for (i, zone) in ["a.example.", "b.example.", "c.example.", "x.test."]
        .iter()
        .enumerate()
    {
        write_key(&one, zone, &dnskey(257, 13, i as u8 + 1), &[]);
    }
    // In two sets: held with an error; overridden by a [[zone]]; a bad file.
    write_key(&two, "c.example.", &dnskey(257, 13, 9), &[]);
    write_key(&two, "d.example.", &dnskey(257, 13, 10), &[]);
    fs::write(two.join("Kbad.example.+013+00001.key"), "garbage\n").expect("write");
    let config_path = tmp.path().join("c.toml");
    fs::write(
        &config_path,
        r#"version = 1
[[zones]]
keys = "one"
nameservers = ["ns1.example.net."]
[[zones]]
keys = "two"
cds = "always"
[[zone]]
name = "b.example."
cds = "none"
"#,
    )
    .expect("write");
    let config = signalbox::config::load(&config_path).expect("valid");
    let mut store = signalbox::model::KeyStore::new(&config);
    store.scan(Instant::now());
    let (bulk, errors) = signalbox::model::children(&config, &store);
    let names: Vec<String> = bulk.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(
        names,
        [
            "a.example.",
            "b.example.",
            "bad.example.",
            "c.example.",
            "d.example.",
            "x.test."
        ],
        "canonical order"
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    for child in &bulk {
        let (single, _) = signalbox::model::child(&config, &store, &child.name);
        let single = single.expect("a child");
        assert_eq!(single.settings, child.settings, "{}", child.name);
        assert_eq!(single.key_dir, child.key_dir, "{}", child.name);
        assert_eq!(single.keys, child.keys, "{}", child.name);
        assert_eq!(single.held, child.held, "{}", child.name);
        assert_eq!(single.issues, child.issues, "{}", child.name);
        assert_eq!(single.source, child.source, "{}", child.name);
    }
    assert!(
        bulk.iter()
            .any(|c| c.name.to_string() == "c.example." && c.is_held())
    );
}

#[test]
fn symlinked_key_files_are_followed_and_dangling_ones_skipped() {
    let tmp = tempfile::tempdir().expect("tmp");
    let elsewhere = tempfile::tempdir().expect("tmp");
    let a = dnskey(257, 13, 1);
    let real = write_key(elsewhere.path(), "a.example.", &a, &[]);
    let name = real.file_name().expect("file name");
    std::os::unix::fs::symlink(&real, tmp.path().join(name)).expect("symlink");
    std::os::unix::fs::symlink(
        elsewhere.path().join("Kgone.example.+013+00001.key"),
        tmp.path().join("Kgone.example.+013+00001.key"),
    )
    .expect("symlink");

    let mut dir = KeyDirectory::new(tmp.path());
    let report = dir.scan(Instant::now());
    let zone_a = parse_name("a.example.").expect("valid");
    assert_eq!(report.zones[&zone_a].len(), 1, "{:#?}", report.issues);
    assert_eq!(report.zones.len(), 1, "the dangling link is no key");
    assert_eq!(report.files_read, 1);
}
