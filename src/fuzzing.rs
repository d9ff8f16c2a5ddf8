//! Entry points for the coverage-guided fuzz targets in `fuzz/` (cargo-fuzz,
//! libFuzzer): one per parser of outside input. Compiled only under
//! `--cfg fuzzing` (which cargo-fuzz sets) and in unit tests (which run the
//! seeds and the inputs fuzzing found through them), so the normal build and
//! public API are unchanged.
//!
//! Each entry point takes the raw fuzz input and must never panic: a panic
//! is a bug (outside input gets a typed error or is ignored). Some also
//! check a property that must hold for every input (answers are
//! well-formed, what is signed verifies, what is decoded re-encodes).
//! Checksummed state files get their SHA-256 appended here, so the fuzzer
//! reaches the parser behind the checksum.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
    sync::{Arc, OnceLock},
};

use hickory_proto::rr::{Name, RecordType};

use crate::{
    config::{AclEntry, JournalLimits, ZoneOptions},
    dns::{Dnskey, Ds, Dsync, Rrsig, Soa, message, parse_name, wire},
    dnssec::{self, Algorithm},
    keys::{Key, KeyFiles, PrivatePart, Timing, bind},
    server::{
        Answer, ServedZone, Snapshot, Transport,
        inbound::{FollowAcl, FollowInbox},
        respond,
    },
    tsig,
    zone::{
        RrsetData, ZoneContent, ZoneSigner, ZoneStore,
        blob::Bytes,
        journal::{Diff, Journal},
        persist,
    },
};

/// The signalling zone of the fixture.
const APEX: &str = "_signal.ns1.example.net.";
/// The followed zone of the fixture's NOTIFY inbox.
const FOLLOWED: &str = "child.example.";
/// The fixture's secondary: may transfer without a key.
const SECONDARY: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53));
/// The fixture's primary of the followed zone: may NOTIFY without a key.
const PRIMARY: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// Anyone else.
const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
/// The EDNS UDP size of the fixture's server.
const EDNS_SIZE: u16 = 1232;

fn name(text: &str) -> Name {
    parse_name(text).unwrap_or_else(|_| Name::root())
}

/// The fixture's TSIG keys (also in `fuzz/corpus`).
pub fn tsig_keys() -> Vec<tsig::Key> {
    vec![
        tsig::Key::new(
            name("xfr.key."),
            tsig::Algorithm::HmacSha256,
            b"fuzzing-secret-xfr-0123456789abc",
        ),
        tsig::Key::new(
            name("notify.key."),
            tsig::Algorithm::HmacSha512,
            b"fuzzing-secret-notify-0123456789",
        ),
    ]
}

/// The RFC 8080 Ed25519 test key as the fixture's CSK.
fn csk(apex: &Name) -> Option<Arc<Key>> {
    let dnskey = Dnskey::from_text("257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=").ok()?;
    let file = bind::private::parse(
        "Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=\n",
    )
    .ok()?;
    Some(Arc::new(Key {
        zone: apex.clone(),
        tag: dnssec::key_tag(&dnskey),
        dnskey,
        algorithm: Algorithm::Ed25519,
        ttl: None,
        timing: Timing::default(),
        state: None,
        private: PrivatePart::Present(Arc::new(file)),
        files: KeyFiles::default(),
    }))
}

/// The fixture zone's content, with `children` `_dsboot` owners.
fn content(key: &Key, children: &[&str]) -> ZoneContent {
    let rt = RecordType::from;
    let mut content = crate::zone::content::test_signalling_apex(&key.dnskey);
    for child in children {
        let owner = name(&format!("_dsboot.{child}.{APEX}"));
        content.add(
            &owner,
            RrsetData::new(rt(59), 3600, vec![key.dnskey.to_wire()]),
        );
        content.add(
            &owner,
            RrsetData::new(rt(60), 3600, vec![key.dnskey.to_wire()]),
        );
    }
    content
}

/// A signed store of the fixture zone at `serial`, following `base`, and
/// the wire names the update touched (for the IXFR diff from `base`).
fn signed(
    base: ZoneStore,
    key: &Arc<Key>,
    children: &[&str],
    serial: u32,
) -> (ZoneStore, Vec<Bytes>) {
    let now = jiff::Timestamp::from_second(1_800_000_000).unwrap_or_default();
    let mut zone = base;
    let signer = ZoneSigner::from_keys(std::slice::from_ref(key), now);
    // The fixture is fixed data: signing it cannot fail; if it did, the
    // zone would stay unsigned and the fuzzer would still run.
    let touched = zone
        .sync(
            &content(key, children),
            &signer,
            serial,
            now,
            &ZoneOptions::default(),
        )
        .map(|stats| stats.touched)
        .unwrap_or_default();
    (zone, touched)
}

/// The served snapshot of the query target: a signed zone with a journal
/// (two versions), a transfer ACL (an address and a key), TSIG keys and a
/// NOTIFY inbox for one followed zone. Built once.
pub fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let apex = name(APEX);
        let Some(key) = csk(&apex) else {
            return Snapshot::new(Vec::new(), EDNS_SIZE);
        };
        let (old, _) = signed(
            ZoneStore::new(apex.clone()),
            &key,
            &["a.example", "b.example.com"],
            1,
        );
        let (new, touched) = signed(old.clone(), &key, &["a.example", "c.d.e.f"], 2);
        let mut journal = Journal::default();
        if let Some(diff) = Diff::between(&old, &new, touched.iter().map(|w| &w[..])) {
            journal.push(diff, &JournalLimits::default());
        }
        let acl: Arc<[AclEntry]> = Arc::from(vec![
            AclEntry::Prefix(SECONDARY, 32),
            AclEntry::Key(name("xfr.key.")),
        ]);
        let zone = ServedZone::new(new).with_transfers(Arc::new(journal), acl);
        let inbox = FollowInbox::new(
            vec![FollowAcl {
                zone: name(FOLLOWED),
                primary: PRIMARY,
                key: Some(name("notify.key.")),
                notify_key: None,
            }],
            Box::new(|_| true),
        );
        Snapshot::new(vec![Arc::new(zone)], EDNS_SIZE)
            .with_keyring(Arc::new(tsig::Keyring::from_keys(tsig_keys())))
            .with_inbox(Some(Arc::new(inbox)))
    })
}

/// Answers `packet` as the server would, checking the answer is a
/// well-formed message with the query's ID that fits the UDP limit.
fn answer(snapshot: &Snapshot, packet: &[u8], transport: Transport, peer: IpAddr) {
    let mut out = Vec::new();
    if let Answer::Message = respond(snapshot, packet, transport, peer, &mut out) {
        if let Err(e) = message::parse(&out) {
            panic!("a malformed answer ({e}): {out:02x?}");
        }
        assert_eq!(
            out.get(..2),
            packet.get(..2),
            "the answer has the query's ID"
        );
        if transport == Transport::Udp {
            assert!(
                out.len() <= usize::from(EDNS_SIZE).max(512),
                "UDP answer too long"
            );
        }
    }
}

/// The query path: a packet as it arrives over UDP and TCP, from a
/// secondary in the transfer ACL, the followed zone's primary and a stranger.
pub fn query(packet: &[u8]) {
    let snapshot = snapshot();
    answer(snapshot, packet, Transport::Udp, STRANGER);
    answer(snapshot, packet, Transport::Tcp, SECONDARY);
    answer(snapshot, packet, Transport::Udp, PRIMARY);
}

/// TSIG: locating and verifying the TSIG record of a request, verifying an
/// answer, appending errors; and the property that a message signed with a
/// key verifies with it.
pub fn tsig(data: &[u8]) {
    let keyring = tsig::Keyring::from_keys(tsig_keys());
    if let Ok(Some(found)) = tsig::find(data) {
        let _ = tsig::verify_request(&keyring, data, &found, found.time_signed);
        for key in tsig_keys() {
            let _ = tsig::verify_response(&key, data, &found, &found.mac);
        }
        let mut copy = data[..found.offset.min(data.len())].to_vec();
        tsig::append_error(&mut copy, &found, tsig::error::BADKEY, found.time_signed);
        let _ = tsig::find(&copy);
    }
    // Whatever a well-formed message holds (nothing after its records, room
    // for one more), signing it yields a TSIG that `find` locates and
    // `verify_request` accepts. What we sign is always such a message.
    let well_formed = records_end(data) == Some(data.len())
        && wire::u16_at(data, 10).is_some_and(|n| n < u16::MAX)
        && message::parse(data).is_ok();
    if well_formed && tsig::find(data) == Ok(None) {
        for key in tsig_keys() {
            let mut signed = data.to_vec();
            let now = 1_800_000_000;
            let mac = tsig::sign(&mut signed, &key, None, now, 0);
            match tsig::find(&signed) {
                Ok(Some(found)) => {
                    let verified = tsig::verify_request(&keyring, &signed, &found, now);
                    assert!(verified.is_ok(), "our own signature does not verify");
                    assert_eq!(found.mac, mac);
                }
                other => panic!("our own TSIG is not found: {other:?}"),
            }
        }
    }
}

/// Where the records of a message end (`None` when they run off its end).
fn records_end(data: &[u8]) -> Option<usize> {
    let count = |i: usize| wire::u16_at(data, 4 + 2 * i).map(usize::from);
    let mut at = 12;
    for _ in 0..count(0)? {
        at = message::read_name(data, at).ok()?.1 + 4;
    }
    for _ in 0..count(1)? + count(2)? + count(3)? {
        let after = message::read_name(data, at).ok()?.1;
        at = after + 10 + usize::from(wire::u16_at(data, after + 8)?);
    }
    (at <= data.len()).then_some(at)
}

/// The client side: a datagram that arrives as the answer to a query (to a
/// parent, a signer or a primary), parsed and checked as `client::exchange`
/// does, with and without TSIG; then the RDATA parsers its callers use.
pub fn client_answer(raw: &[u8]) {
    let question = message::parse(raw).ok().and_then(|m| m.question);
    let (qname, qtype) = question
        .map(|(n, t, _)| (n, RecordType::from(t)))
        .unwrap_or_else(|| (name(APEX), RecordType::SOA));
    let id = wire::u16_at(raw, 0).unwrap_or(0);
    let query = message::query(id, &qname, qtype, false, true);
    let server = std::net::SocketAddr::from((PRIMARY, 53));
    for key in [None, tsig_keys().into_iter().next()] {
        let mut query = query.clone();
        let mac = key
            .as_ref()
            .map(|k| tsig::sign(&mut query, k, None, 1_800_000_000, 0));
        let options = crate::client::Options {
            tsig: key,
            ..crate::client::Options::default()
        };
        let Some(Ok(answer)) =
            crate::client::acceptable(server, &query, raw, &options, mac.as_deref())
        else {
            continue;
        };
        let _ = answer.negative_soa_owner();
        for record in answer.answers(&qname, qtype) {
            let _ = (record.target(), record.address());
        }
        for record in answer
            .answer
            .iter()
            .chain(&answer.authority)
            .chain(&answer.additional)
        {
            let _ = (record.target(), record.address());
            let _ = crate::zone::store::soa_serial_of(&record.rdata);
            let _ = Rrsig::from_wire(&record.rdata);
            let _ = Ds::from_wire(&record.rdata);
            let _ = Dnskey::from_wire(&record.rdata);
            let _ = Dsync::from_wire(&record.rdata);
            let _ = crate::dns::Csync::from_wire(&record.rdata);
        }
    }
}

/// Key files: the first byte picks the parser (BIND `.key`, `.private`,
/// `.state`, a TSIG key file, a BIND key file name), the rest is the text.
pub fn key_files(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 5 {
        0 => drop(bind::keyfile::parse(text)),
        1 => drop(bind::private::parse(text)),
        2 => drop(bind::state::parse(text)),
        3 => drop(tsig::parse_key_text(Path::new("fuzz.key"), text)),
        _ => drop(bind::filename::parse(text)),
    }
}

/// The config loader, on TOML text.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::parse(Path::new("/nonexistent/fuzz/signalbox.toml"), text);
    }
}

/// Appends the SHA-256 a state file ends with.
fn checksummed(body: &[u8]) -> Vec<u8> {
    let mut data = body.to_vec();
    data.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, body).as_ref());
    data
}

/// The saved zone loader, on `body` with its checksum appended: a zone that
/// loads re-encodes to what loads again, and can be served (queried for its
/// apex, a name it holds, a name it lacks, and transferred).
pub fn saved_zone(body: &[u8]) {
    let _ = persist::decode(body);
    let Some(zone) = persist::decode(&checksummed(body)) else {
        return;
    };
    let again = persist::decode(&persist::encode(&zone));
    assert!(
        again.is_some(),
        "a loaded zone re-encodes to a damaged file"
    );
    let apex = zone.apex().clone();
    let some_owner = zone
        .nodes()
        .last()
        .and_then(|n| crate::zone::store::name_of(n.wire()));
    let _ = zone.earliest_expiration();
    let _ = zone.next_after(None);
    let served = ServedZone::new(zone).with_transfers(
        Arc::new(Journal::default()),
        Arc::from(vec![AclEntry::Prefix(SECONDARY, 32)]),
    );
    let snapshot = Snapshot::new(vec![Arc::new(served)], EDNS_SIZE);
    let nowhere = name("zz-fuzz-nowhere").append_domain(&apex).ok();
    for (qname, qtype) in [
        (Some(apex.clone()), RecordType::SOA),
        (Some(apex.clone()), RecordType::DNSKEY),
        (some_owner, RecordType::CDS),
        (nowhere, RecordType::A),
        (Some(apex.clone()), RecordType::AXFR),
    ] {
        if let Some(qname) = qname {
            let packet = message::query(0x4242, &qname, qtype, false, true);
            answer(&snapshot, &packet, Transport::Udp, STRANGER);
            answer(&snapshot, &packet, Transport::Tcp, SECONDARY);
        }
    }
}

/// The journal loader, on `body` with its checksum appended (and the serial
/// high-water mark, a TOML file, on the raw text): a journal that loads
/// re-encodes to itself, and serves IXFR from the fixture zone.
pub fn journal(body: &[u8]) {
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = toml::from_str::<crate::state::ZoneState>(text);
    }
    let _ = Journal::decode(body);
    let Some(journal) = Journal::decode(&checksummed(body)) else {
        return;
    };
    let encoded = journal.encode();
    assert!(
        Journal::decode(&encoded).is_some(),
        "a loaded journal re-encodes to a damaged file"
    );
    let first = journal.since(0).and_then(|d| d.first().map(|d| d.from));
    let from = journal_first_serial(&journal).or(first).unwrap_or(0);
    let _ = journal.last_serial();
    // Serve IXFR from this journal on the fixture zone.
    let Some(base) = snapshot().zones().next().map(|z| z.store().clone()) else {
        return;
    };
    // Replay it as a warm start replays a change log (`zone::changes`):
    // diffs that do not fit are refused whole, never half-applied; and the
    // same octets framed as a change log.
    let diffs: Vec<_> = journal
        .since(from)
        .unwrap_or_default()
        .iter()
        .map(|d| (**d).clone())
        .collect();
    let _ = crate::zone::changes::replay(&base, diffs);
    let _ = crate::zone::changes::parse(body);
    let served = ServedZone::new(base).with_transfers(
        Arc::new(journal),
        Arc::from(vec![AclEntry::Prefix(SECONDARY, 32)]),
    );
    let snapshot = Snapshot::new(vec![Arc::new(served)], EDNS_SIZE);
    let apex = name(APEX);
    let packet = ixfr(&apex, from);
    answer(&snapshot, &packet, Transport::Tcp, SECONDARY);
    answer(&snapshot, &packet, Transport::Udp, SECONDARY);
}

/// The serial the journal's first diff starts from.
fn journal_first_serial(journal: &Journal) -> Option<u32> {
    let encoded = journal.encode();
    // `SBJRNL1\n`, count, then the first diff's `from`.
    wire::u32_at(&encoded, 12).filter(|_| !journal.is_empty())
}

/// An IXFR request (RFC 1995 §3) for `apex` from `serial`.
fn ixfr(apex: &Name, serial: u32) -> Vec<u8> {
    let mut packet = message::header(0x1995, 0, 0, [1, 0, 1, 0]);
    message::push_question(&mut packet, apex, RecordType::IXFR);
    packet.extend_from_slice(&crate::dns::name::canonical_wire(apex));
    let soa = Soa {
        mname: name("ns1.example.net."),
        rname: name("hostmaster.example.net."),
        serial,
        refresh: 0,
        retry: 0,
        expire: 0,
        minimum: 0,
    };
    wire::put_record_body(&mut packet, 6, 0, &soa.to_wire());
    packet
}

/// Seeds for the wire-format targets, as `(target, input)`: queries (one
/// signed with each TSIG key), the fixture server's own answers, and the
/// saved zone and journal as the code writes them (without the checksum,
/// which the targets append). `fuzz/corpus/` holds these plus the repo's key
/// files and example config.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let apex = name(APEX);
    let child = name(&format!("_dsboot.a.example.{APEX}"));
    let keys = tsig_keys();
    let now = wire::unix_now();
    let mut queries = vec![
        message::query(1, &apex, RecordType::SOA, false, false),
        message::query(2, &apex, RecordType::DNSKEY, false, true),
        message::query(3, &child, RecordType::CDS, false, true),
        message::query(
            4,
            &name(&format!("nowhere.{APEX}")),
            RecordType::A,
            true,
            true,
        ),
        message::query(5, &apex, RecordType::AXFR, false, false),
        ixfr(&apex, 1),
        message::notify(6, &name(FOLLOWED), RecordType::SOA),
    ];
    let mut signed = message::query(7, &apex, RecordType::AXFR, false, false);
    let _ = tsig::sign(&mut signed, &keys[0], None, now, 0);
    queries.push(signed);
    let mut signed = message::notify(8, &name(FOLLOWED), RecordType::SOA);
    let _ = tsig::sign(&mut signed, &keys[1], None, now, 0);
    queries.push(signed);
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();
    for q in &queries {
        seeds.push(("query", q.clone()));
        seeds.push(("tsig", q.clone()));
        for (transport, peer) in [(Transport::Udp, STRANGER), (Transport::Tcp, SECONDARY)] {
            let mut out = Vec::new();
            if let Answer::Message = respond(snapshot(), q, transport, peer, &mut out) {
                seeds.push(("client_answer", out));
            }
        }
    }
    if let Some(zone) = snapshot().zones().next() {
        let saved = persist::encode(zone.store());
        seeds.push((
            "saved_zone",
            saved[..saved.len().saturating_sub(32)].to_vec(),
        ));
        let old = signed_fixture_journal();
        seeds.push(("journal", old[..old.len().saturating_sub(32)].to_vec()));
    }
    seeds.push(("journal", b"serial = 2026120601\n".to_vec()));
    seeds
}

/// The fixture's journal as the code writes it.
fn signed_fixture_journal() -> Vec<u8> {
    let apex = name(APEX);
    let Some(key) = csk(&apex) else {
        return Vec::new();
    };
    let (old, _) = signed(ZoneStore::new(apex), &key, &["a.example"], 1);
    let (new, touched) = signed(old.clone(), &key, &["b.example"], 2);
    let (newer, touched_after) = signed(new.clone(), &key, &["b.example", "c.example"], 3);
    let mut journal = Journal::default();
    for (a, b, touched) in [(&old, &new, touched), (&new, &newer, touched_after)] {
        if let Some(diff) = Diff::between(a, b, touched.iter().map(|w| &w[..])) {
            journal.push(diff, &JournalLimits::default());
        }
    }
    journal.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed runs through its target; with `SIGNALBOX_FUZZ_SEEDS=DIR`
    /// they are also written to `DIR/<target>/seed-N` (how `fuzz/corpus/`
    /// got its wire-format seeds).
    #[test]
    fn seeds_run_clean() {
        assert!(snapshot().zones().next().is_some(), "the fixture builds");
        let out = std::env::var_os("SIGNALBOX_FUZZ_SEEDS").map(std::path::PathBuf::from);
        for (n, (target, data)) in seeds().into_iter().enumerate() {
            match target {
                "query" => query(&data),
                "tsig" => tsig(&data),
                "client_answer" => client_answer(&data),
                "saved_zone" => {
                    assert!(persist::decode(&checksummed(&data)).is_some());
                    saved_zone(&data);
                }
                _ => journal(&data),
            }
            if let Some(dir) = &out {
                let dir = dir.join(target);
                std::fs::create_dir_all(&dir).expect("seed dir");
                std::fs::write(dir.join(format!("seed-{n:02}")), &data).expect("seed");
            }
        }
    }
}
