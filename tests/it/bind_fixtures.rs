//! `auto` against what `named` 9.18 really served: every snapshot under
//! tests/fixtures/ (made by make-fixtures.sh with named, dnssec-keygen and
//! dnssec-settime) holds a key directory and the apex CDS/CDNSKEY named
//! served at that instant; `signals --at <instant>` must print exactly those.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use crate::common::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `owner ttl TYPE rdata` with the rdata's split digest/base64 joined (dig
/// splits them in 56-character chunks) and hex upper-cased.
fn normalize(line: &str) -> Option<String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields.iter().position(|f| *f == "CDS" || *f == "CDNSKEY")?;
    let rtype = fields[at];
    let (owner, ttl) = (fields[0].to_ascii_lowercase(), fields[1]);
    let head = &fields[at + 1..at + 4];
    let mut tail: String = fields[at + 4..].concat();
    if rtype == "CDS" {
        tail = tail.to_ascii_uppercase();
    }
    Some(format!("{owner} {ttl} {rtype} {} {tail}", head.join(" ")))
}

fn zone_of(dir: &Path) -> String {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("fixture dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('K') && n.ends_with(".key"))
        .collect();
    names.sort();
    let first = names.first().expect("a key file");
    let zone = first
        .strip_prefix('K')
        .expect("K")
        .rsplitn(3, '+')
        .last()
        .expect("zone");
    zone.to_string()
}

/// Runs `signals` for the snapshot and returns (our apex lines, named's).
fn compare(dir: &Path, signal_ttl: Option<&str>) -> (BTreeSet<String>, BTreeSet<String>) {
    let zone = zone_of(dir);
    let at = fs::read_to_string(dir.join("snapshot-time.txt")).expect("snapshot-time.txt");
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tmp.path().join("c.toml");
    let ttl = signal_ttl.map_or_else(String::new, |t| format!("signal_ttl = \"{t}\"\n"));
    fs::write(
        &config,
        format!(
            "version = 1\n[[zone]]\nname = \"{zone}\"\nkeys = \"{}\"\ncds = \"auto\"\n{ttl}",
            dir.display()
        ),
    )
    .expect("write config");
    let (code, stdout, stderr) = output(
        signalbox()
            .args(["signals", "-c"])
            .arg(&config)
            .args(["--at", at.trim()]),
    );
    assert_eq!(code, 0, "{}: {stderr}\n{stdout}", dir.display());
    let ours: BTreeSet<String> = records(&stdout)
        .iter()
        .filter_map(|l| normalize(l))
        .collect();
    let served = fs::read_to_string(dir.join("apex.txt")).expect("apex.txt");
    let named: BTreeSet<String> = served.lines().filter_map(normalize).collect();
    (ours, named)
}

#[test]
fn auto_equals_what_named_served_under_dnssec_policy() {
    let mut compared = 0;
    let mut with_cds = 0;
    for set in ["kasp", "kasp-csk"] {
        let mut dirs: Vec<PathBuf> = fs::read_dir(fixtures().join(set))
            .expect("fixture set")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("apex.txt").exists())
            .collect();
        dirs.sort();
        for dir in dirs {
            let (ours, named) = compare(&dir, None);
            assert_eq!(ours, named, "{}", dir.display());
            compared += 1;
            with_cds += usize::from(!named.is_empty());
        }
    }
    assert_eq!(compared, 9, "kasp 01-06 and kasp-csk 01-03");
    assert!(with_cds >= 6, "most snapshots serve CDS: {with_cds}");
}

#[test]
fn auto_equals_what_named_served_for_timing_keys() {
    // No .state: named (auto-dnssec maintain) follows SyncPublish/SyncDelete.
    // The .key files carry no TTL, named served the zone's DNSKEY TTL (10 s).
    let (ours, named) = compare(&fixtures().join("nostate"), Some("10s"));
    assert_eq!(ours, named);
    assert_eq!(named.len(), 4, "two keys, CDS + CDNSKEY each");
}

#[test]
fn auto_never_publishes_for_v12_keys_like_named() {
    let dir = fixtures().join("legacy");
    let (ours, named) = compare(&dir, Some("10s"));
    assert!(named.is_empty() && ours.is_empty(), "{ours:?} {named:?}");
    // The same key with a v1.3 .private (or none) would get CDS: the v1.2 rule decided.
    let tmp = tempfile::tempdir().expect("tmp");
    for entry in fs::read_dir(&dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "key")
            || path
                .file_name()
                .is_some_and(|n| n == "snapshot-time.txt" || n == "apex.txt")
        {
            fs::copy(&path, tmp.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let (ours, _) = compare(tmp.path(), Some("10s"));
    assert_eq!(
        ours.len(),
        2,
        "without the v1.2 .private the key is v1.3: {ours:?}"
    );
}

/// The tags in parentheses of a TIMELINE.md row.
fn tags_in(text: &str) -> BTreeSet<u16> {
    text.split('(')
        .skip(1)
        .filter_map(|s| s.split(')').next()?.trim().parse().ok())
        .collect()
}

#[test]
fn settime_rollover_timeline_in_every_mode() {
    let dir = fixtures().join("settime");
    let timeline = fs::read_to_string(dir.join("TIMELINE.md")).expect("TIMELINE.md");
    // Key table rows: | KSK1 (tag N) | file | Publish | ...
    let tag_of = |name: &str| -> u16 {
        let row = timeline
            .lines()
            .find(|l| l.starts_with(&format!("| {name} (tag ")))
            .unwrap_or_else(|| panic!("{name} row"));
        row.split("(tag ")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .and_then(|s| s.parse().ok())
            .expect("tag")
    };
    let (ksk1, ksk2) = (tag_of("KSK1"), tag_of("KSK2"));
    let zsk = tag_of("ZSK ");
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tmp.path().join("c.toml");
    let run = |mode: &str, at: &str| -> BTreeSet<u16> {
        fs::write(
            &config,
            format!(
                "version = 1\n[[zone]]\nname = \"roll.test.\"\nkeys = \"{}\"\ncds = \"{mode}\"\n",
                dir.display()
            ),
        )
        .expect("write");
        let (code, stdout, stderr) = output(
            signalbox()
                .args(["signals", "-c"])
                .arg(&config)
                .args(["--at", at]),
        );
        assert_eq!(code, 0, "{stderr}");
        records(&stdout)
            .iter()
            .filter(|l| l.contains(" CDS "))
            .filter_map(|l| l.split_whitespace().nth(4)?.parse().ok())
            .collect()
    };

    // auto: the rows BIND's rule gives, as written in TIMELINE.md.
    let mut rows = 0;
    for line in timeline.lines().filter(|l| l.starts_with("| 20")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (at, expect) = (cells[1], tags_in(cells[2]));
        assert_eq!(run("auto", at), expect, "auto at {at}");
        rows += 1;
    }
    assert!(rows >= 8, "{rows} timeline rows");

    // Knot-style modes. No DS is ever recorded at the parent here, so every
    // published, active, unretired KSK is ready.
    let one = |t| BTreeSet::from([t]);
    let both = BTreeSet::from([ksk1, ksk2]);
    for mode in ["always", "rollover", "double-ds"] {
        assert!(
            run(mode, "20291231000000").is_empty(),
            "{mode}: before any key"
        );
        assert_eq!(run(mode, "20300101000000"), one(ksk1), "{mode}: KSK1 ready");
        assert_eq!(
            run(mode, "20300203000000"),
            one(ksk1),
            "{mode}: KSK2 published, not active"
        );
        assert_eq!(run(mode, "20300206000000"), both, "{mode}: both ready");
        assert_eq!(
            run(mode, "20300302000000"),
            one(ksk2),
            "{mode}: KSK1 inactive"
        );
        assert!(
            !run(mode, "20300402000000").contains(&zsk),
            "{mode}: never the ZSK"
        );
    }
}
