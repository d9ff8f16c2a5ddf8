//! The change log's promise: the image saved at any version plus the log of
//! the diffs after it is the last version, record for record and octet for
//! octet in its saved form; a log cut anywhere by a crash gives the last
//! version whose record is whole; a log of another image is not applied.

use proptest::prelude::*;

use super::*;
use crate::zone::{
    journal::tests::{records, step, versions},
    persist,
};

/// Writes `diffs` as a log continuing `base` and reads it back.
fn round_trip(dir: &Path, base: u32, diffs: &[Diff]) -> ChangeLog {
    let path = dir.join("z.changes");
    create(&path, base).expect("create");
    let arcs: Vec<Arc<Diff>> = diffs.iter().cloned().map(Arc::new).collect();
    for diff in arcs.chunks(2) {
        append(&path, diff).expect("append");
    }
    read(&path).expect("read").expect("a log")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn an_image_plus_its_log_is_the_last_version(
        steps in proptest::collection::vec(step(), 1..10),
        saved_at in 0usize..10,
    ) {
        let (first, versions) = versions(&steps);
        let saved_at = saved_at.min(versions.len());
        // The image as saved at some version (through its file form).
        let image = if saved_at == 0 { first } else { versions[saved_at - 1].0.clone() };
        let image = persist::decode(&persist::encode(&image)).expect("decodes");
        let tmp = tempfile::tempdir().expect("tmp");
        // The log holds every diff; those before the image are skipped.
        let diffs: Vec<Diff> = versions.iter().map(|(_, d)| d.clone()).collect();
        let log = round_trip(tmp.path(), image.serial(), &diffs);
        prop_assert_eq!(log.dropped_tail, 0);
        let (replayed, applied) = replay(&image, log.diffs).expect("fits");
        let last = versions.last().map_or(&image, |(zone, _)| zone);
        prop_assert_eq!(applied.len(), versions.len() - saved_at);
        prop_assert_eq!(replayed.serial(), last.serial());
        prop_assert_eq!(records(&replayed), records(last));
        prop_assert_eq!(persist::encode(&replayed), persist::encode(last));
    }
}

#[test]
fn a_cut_log_keeps_every_whole_record() {
    let steps: Vec<_> = (0..4u8)
        .map(|c| (crate::zone::journal::tests::Step::Add(c), false))
        .collect();
    let (first, versions) = versions(&steps);
    let diffs: Vec<Diff> = versions.iter().map(|(_, d)| d.clone()).collect();
    let tmp = tempfile::tempdir().expect("tmp");
    let log = round_trip(tmp.path(), first.serial(), &diffs);
    assert_eq!(log.diffs.len(), 4);
    // kill -9 in the middle of the last append: its record is cut short.
    let path = tmp.path().join("z.changes");
    let len = std::fs::metadata(&path).expect("meta").len();
    let file = OpenOptions::new().write(true).open(&path).expect("open");
    file.set_len(len - 20).expect("truncate");
    let log = read(&path).expect("read").expect("a log");
    assert_eq!(log.diffs.len(), 3);
    assert!(log.dropped_tail > 0);
    let (replayed, _) = replay(&first, log.diffs).expect("fits");
    assert_eq!(records(&replayed), records(&versions[2].0));
    // A damaged header is named, not replayed.
    std::fs::write(&path, b"SBCHNG1\nXXXX").expect("write");
    assert!(matches!(read(&path), Err(StateError::Damaged { .. })));
    // A diff made against another version (its removals include that
    // version's SOA signature, which this image lacks) is refused whole.
    let image = versions[3].0.clone();
    let mut wrong = versions[1].1.clone();
    wrong.from = image.serial();
    assert!(replay(&image, vec![wrong]).is_none());
}

#[test]
fn a_new_soa_ttl_and_minimum_are_replayed_with_the_soa() {
    let steps = [(crate::zone::journal::tests::Step::Add(1), false)];
    let (first, versions) = versions(&steps);
    let mut diff = versions[0].1.clone();
    // The same SOA with TTL 1200 and MINIMUM 60 (an operator's new
    // `soa_minimum`): the replayed zone answers negatively with 60.
    let mut soa = diff.new_soa.to_vec();
    soa[4..8].copy_from_slice(&1200u32.to_be_bytes());
    let len = soa.len();
    soa[len - 4..].copy_from_slice(&60u32.to_be_bytes());
    diff.new_soa = soa.into();
    let (replayed, _) = replay(&first, vec![diff]).expect("fits");
    let set = replayed
        .apex_node()
        .and_then(|n| n.rrset(hickory_proto::rr::RecordType::SOA))
        .expect("SOA");
    assert_eq!(set.ttl, 1200);
    assert_eq!(replayed.negative_ttl(), 60);
}
