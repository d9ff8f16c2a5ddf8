//! The bucket arithmetic with a driven clock (no sleeping), the answer
//! classes, slip, exemption and the counters.

use std::{net::IpAddr, sync::Arc};

use super::*;

fn limiter(rate: u32, slip: u32, exempt: &[&str]) -> Arc<Rrl> {
    let config = RrlConfig {
        rate,
        slip,
        exempt: exempt
            .iter()
            .map(|p| {
                let (a, l) = p.split_once('/').expect("prefix");
                AclEntry::Prefix(a.parse().expect("addr"), l.parse().expect("len"))
            })
            .collect(),
        ..RrlConfig::default()
    };
    Arc::new(Rrl::new(&config, 1))
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

/// How many of `n` answers at `now` pass.
fn passed(t: &mut RrlThread, peer: &str, class: AnswerClass, n: usize, now: u64) -> usize {
    (0..n)
        .filter(|_| t.check(ip(peer), class, false, now) == Verdict::Send)
        .count()
}

#[test]
fn a_full_bucket_gives_a_burst_of_rate_then_refills_at_rate() {
    let rrl = limiter(200, 0, &[]);
    let mut t = rrl.thread(0);
    let start = 5_000_000;
    assert_eq!(
        passed(&mut t, "192.0.2.1", AnswerClass::Dnssec, 500, start),
        200
    );
    // 100 ms later: 20 more.
    assert_eq!(
        passed(
            &mut t,
            "192.0.2.1",
            AnswerClass::Dnssec,
            500,
            start + 100_000
        ),
        20
    );
    // Over ten seconds at 1000/s offered, 200/s pass.
    let mut sent = 0;
    for ms in 1..=10_000u64 {
        sent += passed(
            &mut t,
            "192.0.2.1",
            AnswerClass::Dnssec,
            1,
            start + 100_000 + ms * 1000,
        );
    }
    assert!((1990..=2010).contains(&sent), "{sent} in 10 s at 200/s");
    // Idle for a minute: a full burst again, not more.
    assert_eq!(
        passed(
            &mut t,
            "192.0.2.1",
            AnswerClass::Dnssec,
            500,
            start + 70_000_000
        ),
        200
    );
}

#[test]
fn prefixes_and_classes_have_their_own_buckets() {
    let rrl = limiter(10, 0, &[]);
    let mut t = rrl.thread(0);
    let now = 1_000_000;
    assert_eq!(
        passed(&mut t, "192.0.2.1", AnswerClass::Nxdomain, 50, now),
        10
    );
    // The same /24: limited.
    assert_eq!(
        passed(&mut t, "192.0.2.200", AnswerClass::Nxdomain, 5, now),
        0
    );
    // Another /24, another class: their own bursts.
    assert_eq!(
        passed(&mut t, "192.0.3.1", AnswerClass::Nxdomain, 50, now),
        10
    );
    assert_eq!(
        passed(&mut t, "192.0.2.1", AnswerClass::Positive, 50, now),
        10
    );
    // IPv6: one /56.
    assert_eq!(
        passed(&mut t, "2001:db8:0:1::1", AnswerClass::Nodata, 50, now),
        10
    );
    assert_eq!(
        passed(&mut t, "2001:db8:0:ff::2", AnswerClass::Nodata, 5, now),
        0
    );
    assert_eq!(
        passed(&mut t, "2001:db8:0:100::1", AnswerClass::Nodata, 50, now),
        10
    );
}

#[test]
fn slip_sends_every_nth_limited_answer_truncated() {
    for (slip, expect_slipped) in [(0, 0), (1, 90), (2, 45), (3, 30)] {
        let rrl = limiter(10, slip, &[]);
        let mut t = rrl.thread(0);
        let verdicts: Vec<Verdict> = (0..100)
            .map(|_| t.check(ip("198.51.100.7"), AnswerClass::Positive, false, 0))
            .collect();
        t.flush();
        let slipped = verdicts.iter().filter(|v| **v == Verdict::Slip).count();
        assert_eq!(slipped, expect_slipped, "slip {slip}");
        let totals = rrl.totals();
        assert_eq!(totals.checked, 100);
        assert_eq!(totals.slipped, expect_slipped as u64);
        assert_eq!(totals.dropped, 90 - expect_slipped as u64);
    }
}

#[test]
fn exempt_sources_and_signed_queries_are_never_limited() {
    let rrl = limiter(1, 0, &["192.0.2.0/25", "2001:db8::/32"]);
    let mut t = rrl.thread(0);
    assert_eq!(
        passed(&mut t, "192.0.2.9", AnswerClass::Dnssec, 100, 0),
        100
    );
    assert_eq!(
        passed(&mut t, "2001:db8::53", AnswerClass::Dnssec, 100, 0),
        100
    );
    // Outside the exempt /25 but in the same /24: limited.
    assert_eq!(
        passed(&mut t, "192.0.2.200", AnswerClass::Dnssec, 100, 0),
        1
    );
    let signed = (0..100)
        .filter(|_| t.check(ip("203.0.113.1"), AnswerClass::Dnssec, true, 0) == Verdict::Send)
        .count();
    assert_eq!(signed, 100);
    t.flush();
    assert_eq!(rrl.totals().exempt, 300);
    assert_eq!(rrl.totals().checked, 100);
}

#[test]
fn answers_are_classed_from_their_header_and_qtype() {
    let mut answer = vec![0u8; 12];
    answer[3] = 3;
    assert_eq!(AnswerClass::of(&answer, 1), AnswerClass::Nxdomain);
    answer[3] = 5;
    assert_eq!(AnswerClass::of(&answer, 1), AnswerClass::Error);
    answer[3] = 0;
    assert_eq!(AnswerClass::of(&answer, 48), AnswerClass::Nodata);
    answer[7] = 1;
    assert_eq!(AnswerClass::of(&answer, 48), AnswerClass::Dnssec);
    assert_eq!(AnswerClass::of(&answer, 60), AnswerClass::Dnssec);
    assert_eq!(AnswerClass::of(&answer, 255), AnswerClass::Any);
    assert_eq!(AnswerClass::of(&answer, 1), AnswerClass::Positive);
    answer.resize(1024, 0);
    assert_eq!(AnswerClass::of(&answer, 1), AnswerClass::Large);
    assert_eq!(AnswerClass::of(&[0u8; 5], 1), AnswerClass::Error);
}

#[test]
fn a_slipped_answer_keeps_header_and_question_with_tc() {
    // Header (AA, one answer, one additional), question, then records.
    let mut answer = vec![0xab, 0xcd, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 1];
    let question = [3, b'f', b'o', b'o', 0, 0, 48, 0, 1];
    answer.extend_from_slice(&question);
    answer.extend_from_slice(&[0xc0, 12, 0, 48, 0, 1, 0, 0, 0, 60]);
    slip(&mut answer, 12 + question.len());
    assert_eq!(answer.len(), 12 + question.len());
    assert_eq!(&answer[..2], &[0xab, 0xcd]);
    assert_eq!(answer[2] & 0x02, 0x02, "TC");
    assert_eq!(answer[2] & 0x04, 0, "AA cleared");
    assert_eq!(&answer[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn another_key_in_a_slot_takes_it_over_full() {
    // Same slot, different tags: simulated by writing a foreign tag.
    let rrl = limiter(5, 0, &[]);
    let mut t = rrl.thread(0);
    assert_eq!(passed(&mut t, "192.0.2.1", AnswerClass::Positive, 10, 0), 5);
    let (prefix, _) = rrl.prefix(ip("192.0.2.1"));
    let hash = rrl.hash(prefix, AnswerClass::Positive);
    let slot = &rrl.buckets[hash as usize & (BUCKETS - 1)];
    let foreign = ((hash >> TAG_SHIFT) ^ 1) << TAG_SHIFT | 999_999;
    slot.store(foreign, Relaxed);
    assert_eq!(passed(&mut t, "192.0.2.1", AnswerClass::Positive, 10, 0), 5);
}

#[test]
fn a_repeated_limited_query_is_limited_without_answering_it() {
    let rrl = limiter(2, 2, &[]);
    let mut t = rrl.thread(0);
    let peer = ip("192.0.2.1");
    // A query (ID 0x1111) and its answer: header, question, one record.
    let question = [3, b'f', b'o', b'o', 0, 0, 48, 0, 1];
    let mut query = vec![0x11, 0x11, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(&question);
    let mut answer = query.clone();
    answer[2] = 0x85;
    answer[7] = 1;
    answer.extend_from_slice(&[0xc0, 12, 0, 48, 0, 1, 0, 0, 0, 60, 0, 0]);
    let class = AnswerClass::of(&answer, 48);
    assert_eq!(passed(&mut t, "192.0.2.1", class, 2, 0), 2);
    // Nothing remembered yet: answer it.
    let mut out = Vec::new();
    assert_eq!(t.repeat(peer, &query, 7, 0, &mut out), None);
    assert_eq!(t.check(peer, class, false, 0), Verdict::Drop);
    t.remember(peer, &query, 7, class, &answer, 12 + question.len());
    // The same query with another ID: the bucket's verdict, no answer.
    query[..2].copy_from_slice(&[0x22, 0x22]);
    assert_eq!(t.repeat(peer, &query, 7, 0, &mut out), Some(Verdict::Slip));
    assert_eq!(&out[..2], &[0x22, 0x22], "the reply carries the query's ID");
    assert_eq!(out.len(), 12 + question.len());
    assert_eq!(out[2] & 0x02, 0x02, "TC");
    assert_eq!(t.repeat(peer, &query, 7, 0, &mut out), Some(Verdict::Drop));
    // Another zone version, another prefix, another query: answered again.
    assert_eq!(t.repeat(peer, &query, 8, 0, &mut out), None);
    assert_eq!(t.repeat(ip("192.0.3.1"), &query, 7, 0, &mut out), None);
    let mut other = query.clone();
    other[14] = b'x';
    assert_eq!(t.repeat(peer, &other, 7, 0, &mut out), None);
    // Once the bucket refills, a repeat passes (and takes its token).
    assert_eq!(
        t.repeat(peer, &query, 7, 500_000, &mut out),
        Some(Verdict::Send)
    );
    t.flush();
    let totals = rrl.totals();
    assert_eq!((totals.dropped, totals.slipped), (2, 1));
}
