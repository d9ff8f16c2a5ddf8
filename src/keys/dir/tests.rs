//! Partial reads are not deletions: a listing that fails part-way (through
//! the [`KeyDirectory::take_listing`] seam: a `readdir` that fails half-way
//! or a `stat` with EIO cannot be made on a real file system without FUSE),
//! and, on the real file system, a directory renamed away, a symlink loop
//! (ELOOP from `stat`) and a key file whose read fails with EIO.

use std::{fs, io, os::unix::fs::symlink, path::Path, time::Instant};

use super::{Effect, KeyDirectory, ListError, Listed, ScanReport, listing};
use crate::dns::{Dnskey, name::display, parse_name};

/// A made-up KSK for `zone`, written as a `.key` file with `comments`.
fn write_key(dir: &Path, zone: &str, seed: u8, comments: &str) -> String {
    let key = Dnskey {
        flags: 257,
        protocol: 3,
        algorithm: 13,
        public_key: (0..64u8)
            .map(|i| i.wrapping_mul(31).wrapping_add(seed))
            .collect(),
    };
    let name = parse_name(zone).expect("valid zone");
    let tag = crate::dnssec::key_tag(&key);
    let file = format!("K{}+013+{tag:05}.key", display(&name));
    let text = format!("{comments}{zone} 3600 IN DNSKEY {key}\n");
    fs::write(dir.join(&file), text).expect("write .key");
    file
}

/// The real listing of `dir`, the entry named `first` first.
fn listing_with_first(dir: &Path, first: &str) -> Vec<Result<Listed, ListError>> {
    let mut entries: Vec<Result<Listed, ListError>> =
        listing::entries(dir).expect("list").into_iter().collect();
    entries.sort_by_key(|e| e.as_ref().map_or(true, |l| l.file != first));
    entries
}

/// A directory with keys for a.example. and b.example.; their file names.
fn two_keys() -> (tempfile::TempDir, String, String) {
    let tmp = tempfile::tempdir().expect("tmp");
    let a_file = write_key(tmp.path(), "a.example.", 1, "");
    let b_file = write_key(tmp.path(), "b.example.", 2, "");
    (tmp, a_file, b_file)
}

/// `path` scanned once, finding `zones` zones.
fn scanned(path: &Path, zones: usize) -> KeyDirectory {
    let mut dir = KeyDirectory::new(path);
    assert_eq!(dir.scan(Instant::now()).zones.len(), zones);
    dir
}

/// Scans `dir` with `entries` as its listing (the directory unchanged).
fn scan_listed(dir: &mut KeyDirectory, entries: Vec<Result<Listed, ListError>>) -> ScanReport {
    let id = listing::identity(&dir.path).expect("dir");
    let listed = dir.take_listing(entries.into_iter(), || Ok(id));
    dir.scan_with(listed, Instant::now())
}

/// `report` holds the directory for a reason that says `why`.
fn assert_held(report: &ScanReport, why: &str) {
    assert!(report.hold.is_some(), "{:?}", report.issues);
    let error = report.directory_error.as_deref().unwrap_or_default();
    assert!(error.contains(why), "{error}");
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

#[test]
fn a_listing_that_fails_part_way_keeps_the_old_stamps_and_holds_the_directory() {
    let (tmp, a_file, _) = two_keys();
    let mut dir = KeyDirectory::new(tmp.path());
    let t0 = Instant::now();
    let first = dir.scan(t0);
    assert_eq!(first.zones.len(), 2);
    let a = parse_name("a.example.").expect("valid");
    let old_stamp = dir.stamp_of(&a_file).expect("a stamp");
    let old_view = first.zones[&a][0].clone();

    // a's key changes; the listing reads a's file, then readdir fails.
    write_key(tmp.path(), "a.example.", 1, "; Inactive: 20300101000000\n");
    let mut entries = listing_with_first(tmp.path(), &a_file);
    entries.insert(1, Err(ListError::Entry(eio())));
    let report = scan_listed(&mut dir, entries);
    assert_eq!(
        dir.stamp_of(&a_file).expect("a stamp"),
        old_stamp,
        "no stamp taken"
    );
    assert!(report.hold.is_some(), "the directory is held");
    assert_held(&report, "part-way");
    assert!(report.changed.is_empty(), "{:?}", report.changed);
    assert_eq!(report.zones.len(), 2, "every zone keeps its keys");
    assert!(std::sync::Arc::ptr_eq(&report.zones[&a][0], &old_view));
    assert_eq!(report.issues[0].effect, Effect::HeldWithLastGood);

    // The next clean listing sees the change the failed one had seen, and
    // recomputes every zone of the directory.
    let report = dir.scan(t0);
    assert!(report.hold.is_none() && dir.hold().is_none());
    assert_ne!(dir.stamp_of(&a_file).expect("a stamp"), old_stamp);
    assert_eq!(report.changed.len(), 2, "{:?}", report.changed);
    assert!(
        report.zones[&a][0]
            .timing
            .iter()
            .any(|(e, _)| e.key_file_tag() == "Inactive"),
        "the change is read"
    );
}

#[test]
fn a_failing_stat_holds_the_directory_and_removes_nothing() {
    let (tmp, a_file, b_file) = two_keys();
    let mut dir = scanned(tmp.path(), 2);

    // b's file is not listed (its stat said EIO): not a deletion.
    let mut entries = listing_with_first(tmp.path(), &a_file);
    entries.retain(|e| e.as_ref().is_ok_and(|l| l.file != b_file));
    entries.push(Err(ListError::Stat {
        file: tmp.path().join(&b_file),
        source: eio(),
    }));
    let report = scan_listed(&mut dir, entries);
    assert!(report.hold.is_some());
    assert_eq!(report.zones.len(), 2, "b keeps its key");
    assert!(dir.stamp_of(&b_file).is_some());

    // Really gone ("not found") once the directory lists cleanly.
    fs::remove_file(tmp.path().join(&b_file)).expect("rm");
    let report = dir.scan(Instant::now());
    assert!(report.hold.is_none());
    assert_eq!(report.zones.len(), 1);
}

#[test]
fn a_first_listing_that_fails_leaves_nothing_behind() {
    let (tmp, a_file, _) = two_keys();
    let mut dir = KeyDirectory::new(tmp.path());
    let mut entries = listing_with_first(tmp.path(), &a_file);
    entries.insert(1, Err(ListError::Entry(eio())));
    let report = scan_listed(&mut dir, entries);
    assert!(report.hold.is_some() && report.zones.is_empty());
    assert!(dir.slots.is_empty());
    assert_eq!(dir.scan(Instant::now()).zones.len(), 2);
}

#[test]
fn a_directory_replaced_while_listed_takes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    write_key(tmp.path(), "a.example.", 1, "");
    let mut dir = scanned(tmp.path(), 1);
    let b_file = write_key(tmp.path(), "b.example.", 2, "");
    let entries = listing::entries(tmp.path()).expect("list").into_iter();
    let listed = dir.take_listing(entries, || Err(ListError::Replaced));
    let report = dir.scan_with(listed, Instant::now());
    assert!(report.hold.is_some());
    assert!(dir.stamp_of(&b_file).is_none());
    assert_eq!(report.zones.len(), 1);
}

#[test]
fn a_renamed_directory_holds_even_when_inotify_names_a_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let keys = tmp.path().join("keys");
    fs::create_dir(&keys).expect("mkdir");
    let a_file = write_key(&keys, "a.example.", 1, "");
    let mut dir = KeyDirectory::new(&keys);
    let t0 = Instant::now();
    assert_eq!(dir.scan(t0).zones.len(), 1);
    fs::rename(&keys, tmp.path().join("away")).expect("rename");
    // The watch follows the moved directory's inode: an event for one of
    // its files names the old path, where the file is "not found".
    let report = dir.scan_files([a_file.as_str()], t0);
    assert!(report.hold.is_some(), "{:?}", report.issues);
    assert_eq!(report.zones.len(), 1, "the key is not dropped");
    // A file in its place: still held, for another reason.
    fs::write(&keys, "").expect("file");
    let report = dir.scan(t0);
    assert_held(&report, "not a directory");
    assert_eq!(report.zones.len(), 1);
    fs::remove_file(&keys).expect("rm");
    fs::rename(tmp.path().join("away"), &keys).expect("rename back");
    let report = dir.scan_files([a_file.as_str()], t0);
    assert!(report.hold.is_none());
    assert_eq!(report.changed.len(), 1, "recomputed after the hold");
}

#[test]
fn a_symlink_loop_is_a_stat_error_that_holds_the_directory() {
    let (tmp, _, _) = two_keys();
    let mut dir = scanned(tmp.path(), 2);
    let looped = tmp.path().join("Kloop.example.+013+00001.key");
    symlink(&looped, &looped).expect("symlink");
    let report = dir.scan(Instant::now());
    assert_held(&report, "cannot stat");
    assert_eq!(report.zones.len(), 2);
}

#[test]
fn a_key_file_that_fails_to_read_holds_its_zone_and_keeps_the_key() {
    let (tmp, a_file, _) = two_keys();
    let mut dir = scanned(tmp.path(), 2);
    let t0 = Instant::now();
    let a = parse_name("a.example.").expect("valid");
    // A regular file (to stat) whose read fails with EIO.
    let path = tmp.path().join(&a_file);
    fs::remove_file(&path).expect("rm");
    symlink("/proc/self/mem", &path).expect("symlink");
    let report = dir.scan(t0);
    assert_eq!(report.zones[&a].len(), 1, "the key is kept");
    assert!(report.held.contains_key(&a), "{:?}", report.issues);
    assert_eq!(report.held.len(), 1, "only its zone");
    assert!(report.changed.is_empty());
    // Readable again: recomputed.
    fs::remove_file(&path).expect("rm");
    write_key(tmp.path(), "a.example.", 1, "");
    let report = dir.scan(t0);
    assert!(report.held.is_empty());
    assert!(report.changed.contains(&a));
}

/// A listing read before a key file was created, taken after a scan of
/// that one file saw it (a key change cutting into a full round,
/// `daemon::key_changes`), counts the file as gone; looking at the file
/// again after taking the listing brings it back. The daemon does exactly
/// that for every file a cut-in read while its listing ran.
#[test]
fn a_file_seen_after_an_older_listing_is_looked_at_again() {
    let (tmp, _, _) = two_keys();
    let mut dir = scanned(tmp.path(), 2);
    let listing = super::Listing::read(tmp.path());
    let late = write_key(tmp.path(), "late.example.", 3, "");
    let late_zone = parse_name("late.example.").expect("name");
    let cut_in = dir.scan_files([late.as_str()], Instant::now());
    assert!(cut_in.zones.contains_key(&late_zone));

    let taken = dir.scan_listing(listing, Instant::now());
    assert!(
        !taken.zones.contains_key(&late_zone),
        "the older listing does not have it"
    );
    let again = dir.scan_files([late.as_str()], Instant::now());
    assert!(again.zones.contains_key(&late_zone));
    assert_eq!(again.zones.len(), 3);
}

/// `file` (a key file in `dir`) renamed with capitals in its zone part,
/// as BIND names it when the zone was given so; the new name.
fn with_capitals(dir: &Path, file: &str) -> String {
    let capitals = format!("K{}", file[1..].replacen("example", "EXAMPLE", 1));
    assert_ne!(capitals, file);
    fs::rename(dir.join(file), dir.join(&capitals)).expect("rename");
    capitals
}

/// A key file not named as BIND spells it from its stem is found, read
/// once, cached and restored under its own name, and is gone when removed.
#[test]
fn a_key_file_named_with_capitals_keeps_its_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = with_capitals(tmp.path(), &write_key(tmp.path(), "caps.example.", 1, ""));
    let zone = parse_name("caps.example.").expect("name");
    let mut dir = scanned(tmp.path(), 1);
    let report = dir.scan(Instant::now());
    assert_eq!(report.files_read, 0, "unchanged: not read again");
    assert_eq!(
        report.zones[&zone][0].files.key_path(),
        tmp.path().join(&file)
    );

    let cache = dir.cache().expect("a cache");
    let mut restored = KeyDirectory::new(tmp.path());
    restored.restore(&cache, |_| false).expect("restored");
    let report = restored.scan(Instant::now());
    assert_eq!(report.files_read, 0, "restored stamps match");
    assert_eq!(
        report.zones[&zone][0].files.key_path(),
        tmp.path().join(&file)
    );
    assert!(report.changed.is_empty());

    fs::remove_file(tmp.path().join(&file)).expect("rm");
    let report = restored.scan(Instant::now());
    assert!(report.zones.is_empty() && report.changed.contains(&zone));
}

/// Two spellings of one key file (names that differ in case only): the
/// one taken first is read, the other is not read while the first is
/// there, and stands in for it when it goes, by a listing or by a watch
/// event: the key is not dropped while a file of it is there.
#[test]
fn a_second_spelling_of_a_key_file_stands_in_when_the_first_goes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lower = write_key(tmp.path(), "a.example.", 1, "");
    let upper = with_capitals(tmp.path(), &lower);
    fs::copy(tmp.path().join(&upper), tmp.path().join(&lower)).expect("copy");
    let a = parse_name("a.example.").expect("name");
    let t0 = Instant::now();
    let mut dir = KeyDirectory::new(tmp.path());
    let report = dir.scan(t0);
    assert_eq!(report.zones[&a].len(), 1);
    let first = report.zones[&a][0].files.key_path();
    let report = dir.scan(t0);
    assert_eq!(report.files_read, 0, "neither is read again");
    assert!(report.changed.is_empty());

    // The one read is gone: the other stands in at the listing.
    fs::remove_file(&first).expect("rm");
    let report = dir.scan(t0);
    assert_eq!(report.zones[&a].len(), 1, "the key is not dropped");
    let second = report.zones[&a][0].files.key_path();
    assert_ne!(second, first);

    // Back, then the one read goes by a watch event: the same.
    fs::copy(&second, &first).expect("copy");
    assert_eq!(dir.scan(t0).files_read, 0, "the one back is a spare");
    fs::remove_file(&second).expect("rm");
    let gone = second.file_name().and_then(|f| f.to_str()).expect("name");
    let report = dir.scan_files([gone], t0);
    assert_eq!(report.zones[&a].len(), 1, "the key is not dropped");
    assert_eq!(report.zones[&a][0].files.key_path(), first);

    // Both gone: so is the key.
    fs::remove_file(&first).expect("rm");
    let last = first.file_name().and_then(|f| f.to_str()).expect("name");
    let report = dir.scan_files([last], t0);
    assert!(report.zones.is_empty() && report.changed.contains(&a));
}
