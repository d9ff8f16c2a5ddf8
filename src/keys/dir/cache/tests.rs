//! The key cache restores what the scan knew, is never trusted past a
//! changed stamp, never restores a signing key without its private half,
//! and rejects any damage whole, without panicking.

use std::{fs, path::Path, sync::Arc, time::Instant};

use super::{CacheError, DIGEST_LEN};
use crate::{
    dns::parse_name,
    keys::{Key, PrivatePart, dir::KeyDirectory},
};

/// BIND's own files of a `dnssec-policy` rollover (three keys of kasp.test,
/// each with `.key`, `.private` and `.state`), plus two public-only keys.
fn bind_keys() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kasp/04-rollover");
    for entry in fs::read_dir(fixture).expect("fixture") {
        let entry = entry.expect("entry");
        fs::copy(entry.path(), tmp.path().join(entry.file_name())).expect("copy");
    }
    for (zone, seed) in [("a.example.", 1u8), ("b.example.", 2)] {
        write_public_key(tmp.path(), zone, seed);
    }
    tmp
}

fn write_public_key(dir: &Path, zone: &str, seed: u8) -> String {
    let key = crate::dns::Dnskey {
        flags: 257,
        protocol: 3,
        algorithm: 13,
        public_key: (0..64u8)
            .map(|i| i.wrapping_mul(7).wrapping_add(seed))
            .collect(),
    };
    let tag = crate::dnssec::key_tag(&key);
    let file = format!("K{zone}+013+{tag:05}.key");
    let text = format!(
        "; Created: 20260101000000 (Thu Jan  1 00:00:00 2026)\n{zone} 3600 IN DNSKEY {key}\n"
    );
    fs::write(dir.join(&file), text).expect("write .key");
    file
}

/// The path of the key file in `dir` whose name starts with `prefix`.
fn key_file(dir: &Path, prefix: &str) -> std::path::PathBuf {
    fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* key file"))
        .path()
}

/// A key as it compares across a restore: the private half only by format.
fn comparable(key: &Key) -> Key {
    let mut key = key.clone();
    if let PrivatePart::Present(file) = &key.private {
        key.private = PrivatePart::NotLoaded {
            format: file.format,
        };
    }
    key
}

fn views(dir: &mut KeyDirectory) -> Vec<Key> {
    let report = dir.scan(Instant::now());
    report.zones.all_keys().map(|k| comparable(k)).collect()
}

fn scanned_cache(path: &Path) -> (Vec<Key>, Vec<u8>) {
    let mut dir = KeyDirectory::new(path);
    let views = views(&mut dir);
    assert!(dir.cache_stale());
    let cache = dir.cache().expect("a listed directory has a cache");
    assert!(!dir.cache_stale());
    (views, cache)
}

#[test]
fn a_restored_directory_reads_no_file_and_holds_the_same_keys() {
    let tmp = bind_keys();
    let (before, cache) = scanned_cache(tmp.path());
    assert_eq!(before.len(), 5);
    let mut dir = KeyDirectory::new(tmp.path());
    let restored = dir.restore(&cache, |_| false).expect("restored");
    assert_eq!(restored.keys, 5);
    let report = dir.scan(Instant::now());
    assert_eq!(report.files_read, 0, "nothing changed: nothing read");
    assert!(report.changed.is_empty());
    let after: Vec<Key> = report.zones.all_keys().map(|k| comparable(k)).collect();
    assert_eq!(after, before);
    // The BIND keys kept their .private format and .state key states.
    let kasp = parse_name("kasp.test.").expect("valid");
    let keys = &report.zones[&kasp];
    assert!(
        keys.iter()
            .all(|k| matches!(k.private, PrivatePart::NotLoaded { format: (1, 3) }))
    );
    assert!(
        keys.iter()
            .all(|k| k.state.is_some() && !k.timing.is_empty())
    );
    assert!(
        keys.iter().all(|k| k.signing_key().is_err()),
        "no private key material is restored"
    );
    assert!(!dir.cache_stale());
}

#[test]
fn a_file_changed_or_gone_since_the_cache_is_read_again() {
    let tmp = bind_keys();
    let (_, cache) = scanned_cache(tmp.path());
    // a.example. gets a second key; b.example.'s key is removed.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_public_key(tmp.path(), "a.example.", 9);
    fs::remove_file(key_file(tmp.path(), "Kb.example.")).expect("remove");
    let mut dir = KeyDirectory::new(tmp.path());
    dir.restore(&cache, |_| false).expect("restored");
    let report = dir.scan(Instant::now());
    assert_eq!(report.files_read, 1, "only the new file is read");
    let a = parse_name("a.example.").expect("valid");
    let b = parse_name("b.example.").expect("valid");
    assert_eq!(report.zones[&a].len(), 2);
    assert!(!report.zones.contains_key(&b));
    assert!(report.changed.contains(&a) && report.changed.contains(&b));
    assert!(dir.cache_stale());
}

/// After a full round a cache is written again only once one key in
/// `RESAVE_SHARE` changed (encoding them all costs more than the reads a
/// few stale keys cost a warm start); at shutdown, after any change.
#[test]
fn a_cache_is_due_again_after_a_share_of_its_keys_changed() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Due after 4 changes; a new key counts up to twice (its stamp, then
    // its view).
    let keys = 4 * super::RESAVE_SHARE;
    for i in 0..keys {
        write_public_key(tmp.path(), &format!("c{i}.example."), i as u8);
    }
    let mut dir = KeyDirectory::new(tmp.path());
    dir.scan(Instant::now());
    assert!(dir.cache_due(), "a first scan read every key");
    dir.cache().expect("cache");
    assert!(!dir.cache_stale() && !dir.cache_due());
    // One new key: stale (written at shutdown), not due.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_public_key(tmp.path(), "new1.example.", 201);
    dir.scan(Instant::now());
    assert!(dir.cache_stale());
    assert!(!dir.cache_due(), "1 of {} keys changed", keys + 1);
    for (zone, seed) in [("new2.example.", 202), ("new3.example.", 203)] {
        write_public_key(tmp.path(), zone, seed);
    }
    dir.scan(Instant::now());
    assert!(dir.cache_due(), "3 of {} keys changed", keys + 3);
    dir.cache().expect("cache");
    assert!(!dir.cache_stale() && !dir.cache_due());
}

#[test]
fn keys_of_a_zone_signed_here_are_read_with_their_private_keys() {
    let tmp = bind_keys();
    let (_, cache) = scanned_cache(tmp.path());
    let kasp = parse_name("kasp.test.").expect("valid");
    let mut dir = KeyDirectory::new(tmp.path());
    let restored = dir.restore(&cache, |zone| *zone == kasp).expect("restored");
    assert_eq!((restored.keys, restored.left_out), (2, 3));
    let report = dir.scan(Instant::now());
    assert_eq!(report.files_read, 9, "three keys, three files each");
    assert!(
        report.zones[&kasp]
            .iter()
            .all(|k| matches!(k.private, PrivatePart::Present(_)))
    );

    // A reload that starts signing a zone restored without private keys.
    let mut dir = KeyDirectory::new(tmp.path());
    dir.restore(&cache, |_| false).expect("restored");
    assert_eq!(dir.reread_not_loaded(|zone| *zone == kasp), 3);
    let report = dir.scan(Instant::now());
    assert_eq!(report.files_read, 9);
    assert!(
        report.zones[&kasp]
            .iter()
            .all(|k| matches!(k.private, PrivatePart::Present(_)))
    );
}

#[test]
fn a_key_with_a_problem_is_not_cached() {
    let tmp = bind_keys();
    let file = write_public_key(tmp.path(), "c.example.", 3);
    fs::write(
        tmp.path().join(&file),
        "c.example. 3600 IN DNSKEY garbage\n",
    )
    .expect("write");
    let mut dir = KeyDirectory::new(tmp.path());
    dir.scan(Instant::now());
    let cache = dir.cache().expect("cache");
    let mut restored = KeyDirectory::new(tmp.path());
    assert_eq!(restored.restore(&cache, |_| false).expect("ok").keys, 5);
    let report = restored.scan(Instant::now());
    assert_eq!(report.files_read, 1, "the broken key is read again");
    assert!(!report.issues.is_empty());
}

#[test]
fn a_damaged_or_foreign_cache_is_refused_whole() {
    let tmp = bind_keys();
    let (before, cache) = scanned_cache(tmp.path());
    let fresh = || KeyDirectory::new(tmp.path());
    // Cut short, or a flipped octet: the checksum.
    for bad in [&cache[..cache.len() / 2], &cache[..10], &[][..]] {
        assert!(matches!(
            fresh().restore(bad, |_| false),
            Err(CacheError::Damaged(_))
        ));
    }
    let mut flipped = cache.clone();
    flipped[40] ^= 1;
    assert!(matches!(
        fresh().restore(&flipped, |_| false),
        Err(CacheError::Damaged(_))
    ));
    // Another directory's cache.
    let other = tempfile::tempdir().expect("tmp");
    let mut dir = KeyDirectory::new(other.path());
    assert!(matches!(
        dir.restore(&cache, |_| false),
        Err(CacheError::OtherPath(_))
    ));
    // Only a fresh directory is seeded.
    let mut dir = fresh();
    dir.scan(Instant::now());
    assert!(matches!(
        dir.restore(&cache, |_| false),
        Err(CacheError::NotFresh)
    ));
    // A refused cache leaves the directory as new: its scan reads everything.
    let mut dir = fresh();
    let _ = dir.restore(&flipped, |_| false);
    assert_eq!(views(&mut dir), before);
}

#[test]
fn a_replaced_directory_is_not_restored() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("keys");
    fs::create_dir(&path).expect("mkdir");
    write_public_key(&path, "a.example.", 1);
    let (_, cache) = scanned_cache(&path);
    fs::rename(&path, tmp.path().join("old")).expect("rename");
    fs::create_dir(&path).expect("mkdir");
    let mut dir = KeyDirectory::new(&path);
    assert!(matches!(
        dir.restore(&cache, |_| false),
        Err(CacheError::Replaced)
    ));
}

/// Every octet changed (with the checksum made right again, so the parser
/// itself sees the damage): a restore never panics, and what it accepts
/// still describes keys whose DNSKEY matches their file name.
#[test]
fn any_damage_behind_a_valid_checksum_is_handled() {
    let tmp = bind_keys();
    let (_, cache) = scanned_cache(tmp.path());
    let body_len = cache.len() - DIGEST_LEN;
    for at in 0..body_len {
        for value in [0u8, 0xff, cache[at].wrapping_add(1)] {
            let mut bad = cache[..body_len].to_vec();
            bad[at] = value;
            let digest = ring::digest::digest(&ring::digest::SHA256, &bad);
            bad.extend_from_slice(digest.as_ref());
            let mut dir = KeyDirectory::new(tmp.path());
            if dir.restore(&bad, |_| false).is_ok() {
                for key in dir.zones.all_keys() {
                    assert_eq!(key.tag, crate::dnssec::key_tag(&key.dnskey));
                    assert!(Arc::strong_count(key) >= 1);
                }
            }
        }
    }
}

/// A key file rewritten in place (same name, new stamp) while stopped is
/// read again and its new content used.
#[test]
fn a_file_rewritten_in_place_is_read_again() {
    let tmp = bind_keys();
    let (_, cache) = scanned_cache(tmp.path());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let a = key_file(tmp.path(), "Ka.example.");
    let text = fs::read_to_string(&a).expect("read");
    let rewritten = text.replace(
        "; Created: 20260101000000",
        "; Created: 20260101000000\n; Inactive: 20300101000000",
    );
    assert_ne!(rewritten, text);
    fs::write(&a, rewritten).expect("rewrite");
    let mut dir = KeyDirectory::new(tmp.path());
    dir.restore(&cache, |_| false).expect("restored");
    let report = dir.scan(Instant::now());
    assert_eq!(report.files_read, 1);
    let zone = parse_name("a.example.").expect("valid");
    let key = &report.zones[&zone][0];
    assert!(
        key.timing.get(crate::keys::TimingEvent::Inactive).is_some(),
        "{key:?}"
    );
    assert!(report.changed.contains(&zone));
}

/// A cached view is no last good view: a key whose file changed while
/// stopped and now does not read holds its zone, exactly as on a cold
/// start, instead of publishing from the old view.
#[test]
fn a_changed_file_that_does_not_read_holds_its_zone_as_on_a_cold_start() {
    let tmp = bind_keys();
    let (_, cache) = scanned_cache(tmp.path());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let a = key_file(tmp.path(), "Ka.example.");
    fs::write(&a, "a.example. 3600 IN DNSKEY garbage\n").expect("rewrite");
    let zone = parse_name("a.example.").expect("valid");
    let mut cold = KeyDirectory::new(tmp.path());
    let cold_report = cold.scan(Instant::now());
    assert!(
        cold_report.held.contains_key(&zone),
        "a cold start holds it"
    );
    let mut dir = KeyDirectory::new(tmp.path());
    dir.restore(&cache, |_| false).expect("restored");
    let report = dir.scan(Instant::now());
    assert!(report.held.contains_key(&zone), "{:?}", report.issues);
    assert!(
        !report.zones.contains_key(&zone),
        "the old view is not used"
    );
    assert_eq!(
        report.held.keys().collect::<Vec<_>>(),
        cold_report.held.keys().collect::<Vec<_>>()
    );
}

/// The keys of a zone signed here are left out of a restore and read; that
/// reading does not make the directory's cache stale (it would otherwise be
/// rewritten whole at every start).
#[test]
fn reading_the_left_out_signing_keys_does_not_make_the_cache_stale() {
    let tmp = bind_keys();
    let (_, cache) = scanned_cache(tmp.path());
    let kasp = parse_name("kasp.test.").expect("valid");
    let mut dir = KeyDirectory::new(tmp.path());
    dir.restore(&cache, |zone| *zone == kasp).expect("restored");
    let report = dir.scan(Instant::now());
    assert_eq!(report.files_read, 9);
    assert!(!dir.cache_stale());
}

/// A cache naming a key under another zone than its file's is refused.
#[test]
fn a_key_under_another_zone_than_its_file_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    write_public_key(tmp.path(), "a.example.", 1);
    let (_, cache) = scanned_cache(tmp.path());
    // The zone's wire form follows the file name and stamp; swap one
    // octet of its label ("a" -> "b") and fix the checksum.
    let body_len = cache.len() - DIGEST_LEN;
    let mut bad = cache[..body_len].to_vec();
    let at = bad
        .windows(10)
        .position(|w| w == b"\x01a\x07example")
        .expect("the zone's wire form");
    bad[at + 1] = b'b';
    let digest = ring::digest::digest(&ring::digest::SHA256, &bad);
    bad.extend_from_slice(digest.as_ref());
    let mut dir = KeyDirectory::new(tmp.path());
    assert!(matches!(
        dir.restore(&bad, |_| false),
        Err(CacheError::Damaged(_))
    ));
}
