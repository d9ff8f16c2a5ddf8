//! Answer tests: responses parsed back by hickory-proto's message parser.

use std::sync::Arc;

use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{Name, RecordType},
};

use super::{writer::owner_in_question, *};
use crate::{config::ZoneOptions, dns::parse_name, dns::wire, zone::ZoneSigner};

fn apex() -> Name {
    parse_name("_signal.ns1.example.net.").expect("valid")
}

fn zone(children: &[&str]) -> ZoneStore {
    let key = crate::keys::rfc8080_csk("_signal.ns1.example.net.");
    let content = crate::zone::content::test_signalling_zone(children, true);
    let mut signed = ZoneStore::new(apex());
    let now = jiff::Timestamp::from_second(1_800_000_000).expect("valid");
    signed
        .sync(
            &content,
            &ZoneSigner::from_keys(&[key], now),
            42,
            now,
            &ZoneOptions::default(),
        )
        .expect("signed");
    signed
}

fn snapshot() -> Snapshot {
    Snapshot::new(
        vec![Arc::new(ServedZone::new(zone(&[
            "example.com",
            "example.co.uk",
        ])))],
        1232,
    )
}

/// A query in wire form; `edns` = (udp size, DO, version).
fn query(name: &str, qtype: u16, edns: Option<(u16, bool, u8)>) -> Vec<u8> {
    let mut q = vec![
        0xab,
        0xcd,
        0x01,
        0x00,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        u8::from(edns.is_some()),
    ];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    wire::put_u16(&mut q, qtype);
    wire::put_u16(&mut q, 1u16);
    if let Some((size, dnssec_ok, version)) = edns {
        q.extend_from_slice(&[0, 0, 41]);
        wire::put_u16(&mut q, size);
        q.extend_from_slice(&[0, version, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    q
}

fn ask(snap: &Snapshot, packet: &[u8], transport: Transport) -> (Vec<u8>, Message) {
    let mut out = Vec::new();
    assert!(
        matches!(
            respond(snap, packet, transport, LOCAL, &mut out),
            Answer::Message
        ),
        "dropped"
    );
    let message = Message::from_vec(&out).expect("a well-formed response");
    (out, message)
}

fn types(records: &[hickory_proto::rr::Record]) -> Vec<RecordType> {
    records.iter().map(|r| r.record_type()).collect()
}

const DO: Option<(u16, bool, u8)> = Some((1232, true, 0));
const LOCAL: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[test]
fn positive_answer_with_and_without_signatures() {
    let snap = snapshot();
    let (raw, m) = ask(
        &snap,
        &query("_dsboot.EXAMPLE.com._signal.ns1.example.net.", 59, DO),
        Transport::Udp,
    );
    assert_eq!(m.metadata.id, 0xabcd);
    assert!(m.metadata.authoritative);
    assert!(m.metadata.recursion_desired && !m.metadata.recursion_available);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(types(&m.answers), [RecordType::CDS, RecordType::RRSIG]);
    // The question and the answer owner keep the query's case.
    assert_eq!(
        m.answers[0].name.to_ascii(),
        "_dsboot.EXAMPLE.com._signal.ns1.example.net."
    );
    assert!(raw.windows(8).any(|w| w == b"\x07EXAMPLE"));
    let (_, m) = ask(
        &snap,
        &query("_dsboot.example.com._signal.ns1.example.net.", 60, None),
        Transport::Udp,
    );
    assert_eq!(types(&m.answers), [RecordType::CDNSKEY]);
    assert!(m.additionals.is_empty());
}

#[test]
fn nodata_carries_soa_and_the_names_nsec() {
    let snap = snapshot();
    let (_, m) = ask(
        &snap,
        &query("_dsboot.example.com._signal.ns1.example.net.", 16, DO),
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(
        types(&m.authorities),
        [
            RecordType::SOA,
            RecordType::RRSIG,
            RecordType::NSEC,
            RecordType::RRSIG
        ]
    );
    assert_eq!(
        m.authorities[2].name.to_ascii(),
        "_dsboot.example.com._signal.ns1.example.net."
    );
    // Without DO: the SOA only.
    let (_, m) = ask(
        &snap,
        &query("_signal.ns1.example.net.", 43, None),
        Transport::Udp,
    );
    assert_eq!(types(&m.authorities), [RecordType::SOA]);
    // RFC 2308 §3: a negative answer's SOA carries min(SOA TTL 3600, MINIMUM 300).
    assert_eq!(m.authorities[0].ttl, 300);
}

#[test]
fn negative_answers_cap_the_soa_ttl_at_its_minimum_field() {
    let snap = snapshot();
    for (qname, qtype) in [
        ("_dsboot.example.com._signal.ns1.example.net.", 16),
        ("_dsboot.nope.example._signal.ns1.example.net.", 59),
    ] {
        let (_, m) = ask(&snap, &query(qname, qtype, DO), Transport::Udp);
        assert!(m.answers.is_empty(), "{qname}");
        // The writer puts the SOA's RRSIG right after the SOA.
        let at = m
            .authorities
            .iter()
            .position(|r| r.record_type() == RecordType::SOA)
            .expect("negative answer carries the SOA");
        let soa = &m.authorities[at..at + 2];
        assert_eq!(soa[1].record_type(), RecordType::RRSIG, "{qname}");
        assert_eq!(soa[1].name, soa[0].name, "{qname}");
        assert!(soa.iter().all(|r| r.ttl == 300), "{qname}: {soa:?}");
    }
    // The SOA itself, asked for, keeps its own TTL.
    let (_, m) = ask(
        &snap,
        &query("_signal.ns1.example.net.", 6, None),
        Transport::Udp,
    );
    assert_eq!(m.answers[0].ttl, 3600);
    // Compressed MNAME/RNAME decode to the same SOA.
    let (wire, neg) = ask(
        &snap,
        &query("_dsboot.nope.example._signal.ns1.example.net.", 59, DO),
        Transport::Udp,
    );
    assert_eq!(neg.authorities[0].data, m.answers[0].data);
    let spelled = b"\x0ahostmaster\x07example";
    assert!(
        !wire.windows(spelled.len()).any(|w| w == spelled),
        "RNAME compressed"
    );
}

#[test]
fn empty_non_terminals_are_nodata_with_the_covering_nsec() {
    let snap = snapshot();
    for ent in [
        "com._signal.ns1.example.net.",
        "example.com._signal.ns1.example.net.",
        "co.uk._signal.ns1.example.net.",
    ] {
        let (_, m) = ask(&snap, &query(ent, 59, DO), Transport::Udp);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{ent}");
        assert!(m.answers.is_empty(), "{ent}");
        assert_eq!(
            types(&m.authorities),
            [
                RecordType::SOA,
                RecordType::RRSIG,
                RecordType::NSEC,
                RecordType::RRSIG
            ],
            "{ent}"
        );
    }
}

/// The owners of the NSEC records in the authority section.
fn nsec_owners_of(m: &Message) -> Vec<String> {
    m.authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NSEC)
        .map(|r| r.name.to_ascii())
        .collect()
}

#[test]
fn nxdomain_proves_name_and_wildcard() {
    let snap = snapshot();
    let (_, m) = ask(
        &snap,
        &query("zzz._signal.ns1.example.net.", 1, DO),
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    let nsec_owners = nsec_owners_of(&m);
    // zzz sorts last: covered by the last name's NSEC; *.apex by the apex NSEC.
    assert_eq!(nsec_owners.len(), 2, "{nsec_owners:?}");
    assert!(nsec_owners.contains(&"_signal.ns1.example.net.".to_string()));
    // A name below a signal: one NSEC covers both the name and the wildcard.
    let (_, m) = ask(
        &snap,
        &query("x._dsboot.example.com._signal.ns1.example.net.", 1, DO),
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        types(&m.authorities),
        [
            RecordType::SOA,
            RecordType::RRSIG,
            RecordType::NSEC,
            RecordType::RRSIG
        ]
    );
    // The closest encloser is an empty non-terminal that only the data name
    // after the query name shows (example.co.uk): the wildcard below it is
    // covered by the same NSEC as the name, so one NSEC proves both (with
    // the apex as encloser, the apex's NSEC would be a second).
    let (_, m) = ask(
        &snap,
        &query("0.example.co.uk._signal.ns1.example.net.", 1, DO),
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let nsec_owners = nsec_owners_of(&m);
    assert_eq!(
        nsec_owners,
        ["_dsboot.example.com._signal.ns1.example.net."],
        "{m:?}"
    );
    // Owner names are compressed against the question, RRSIGs against their
    // RRset's owner: the NSEC owner _dsboot.example.com._signal... shares all
    // but the question's first label, so no owner name is spelled out twice.
    let (wire, m) = ask(
        &snap,
        &query("X._dsboot.example.com._signal.ns1.example.net.", 1, DO),
        Transport::Udp,
    );
    let nsec = &m.authorities[2];
    assert_eq!(
        nsec.name.to_ascii(),
        "_dsboot.example.com._signal.ns1.example.net."
    );
    assert_eq!(m.authorities[3].name, nsec.name);
    let spelled = b"\x07_dsboot\x07example\x03com";
    let count = wire.windows(spelled.len()).filter(|w| w == spelled).count();
    assert_eq!(count, 1, "only the question spells the name out");
}

#[test]
fn a_mixed_case_query_gets_our_names_in_our_case() {
    let snap = snapshot();
    let (_, m) = ask(
        &snap,
        &query("X._DSBOOT.Example.COM._signal.NS1.example.net.", 1, DO),
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // The NSEC owner (compressed against the question where it matches
    // exactly) and the SOA's RNAME come back as the zone has them.
    let nsec = m
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::NSEC)
        .expect("an NSEC");
    assert_eq!(
        nsec.name.to_ascii(),
        "_dsboot.example.com._signal.ns1.example.net."
    );
    let soa = m.authorities[0].data.to_string();
    assert!(soa.contains("hostmaster.example.net."), "{soa}");
}

#[test]
fn owners_compress_against_the_longest_shared_suffix_of_the_question() {
    let q = b"\x01A\x01b\x07example\x03net\x00";
    match owner_in_question(b"\x01c\x01b\x07example\x03net\x00", q) {
        Owner::Suffixed(labels, at) => assert_eq!((labels, at), (&b"\x01c"[..], 12 + 2)),
        _ => panic!("expected labels and a pointer"),
    }
    let apex = owner_in_question(b"\x07example\x03net\x00", q);
    assert!(matches!(apex, Owner::Pointer(16)));
    let other = owner_in_question(b"\x07example\x03org\x00", q);
    assert!(matches!(other, Owner::Wire(_)));
    // Octet for octet: a label that differs only in case ends the match, so
    // our names keep their own case (RFC 4343 §4.1).
    let mixed = b"\x01A\x01b\x07Example\x03net\x00";
    match owner_in_question(b"\x01c\x01b\x07example\x03net\x00", mixed) {
        Owner::Suffixed(labels, at) => {
            assert_eq!((labels, at), (&b"\x01c\x01b\x07example"[..], 12 + 12))
        }
        _ => panic!("expected labels and a pointer"),
    }
}

#[test]
fn refused_notimp_badvers_any() {
    let snap = snapshot();
    let (_, m) = ask(&snap, &query("example.com.", 1, None), Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(!m.metadata.authoritative);
    // NOTIFY for a zone nobody follows: REFUSED; other opcodes: NOTIMP.
    let mut notify = query("_signal.ns1.example.net.", 6, None);
    notify[2] = 0x20; // opcode 4
    let (_, m) = ask(&snap, &notify, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let mut status = query("_signal.ns1.example.net.", 6, None);
    status[2] = 0x10; // opcode 2 (STATUS)
    let (_, m) = ask(&snap, &status, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    let (raw, _) = ask(
        &snap,
        &query("_signal.ns1.example.net.", 6, Some((1232, false, 1))),
        Transport::Udp,
    );
    // BADVERS: RCODE 0 in the header, extended RCODE 1 in the OPT TTL.
    let opt = &raw[raw.len() - 11..];
    assert_eq!((raw[3] & 0x0f, opt[2], opt[5], opt[6]), (0, 41, 1, 0));
    let (_, m) = ask(
        &snap,
        &query("_signal.ns1.example.net.", 255, DO),
        Transport::Udp,
    );
    let answered: Vec<RecordType> = types(&m.answers)
        .into_iter()
        .filter(|t| *t != RecordType::RRSIG)
        .collect();
    assert_eq!(answered.len(), 1, "RFC 8482: one RRset");
    let mut chaos = query("version.bind.", 16, None);
    let len = chaos.len();
    chaos[len - 1] = 3;
    let (_, m) = ask(&snap, &chaos, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let (_, m) = ask(
        &snap,
        &query("_signal.ns1.example.net.", 252, None),
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn udp_truncation_and_tcp() {
    let snap = snapshot();
    // The DNSKEY answer with DO fits in 1232 but not in 512.
    let q = query("zzz._signal.ns1.example.net.", 1, Some((512, true, 0)));
    let (raw, m) = ask(&snap, &q, Transport::Udp);
    assert!(m.metadata.truncation);
    assert!(raw.len() <= 512);
    assert!(m.answers.is_empty() && m.authorities.is_empty());
    let (raw, m) = ask(&snap, &q, Transport::Tcp);
    assert!(!m.metadata.truncation);
    assert!(raw.len() > 512);
    // Without EDNS: 512.
    let (raw, _) = ask(
        &snap,
        &query("zzz._signal.ns1.example.net.", 1, None),
        Transport::Udp,
    );
    assert!(raw.len() <= 512);
}

#[test]
fn formerr_and_drops() {
    let snap = snapshot();
    let mut out = Vec::new();
    assert!(matches!(
        respond(&snap, &[1, 2, 3], Transport::Udp, LOCAL, &mut out),
        Answer::Drop
    ));
    let mut two = query("_signal.ns1.example.net.", 6, None);
    two[5] = 2;
    assert!(matches!(
        respond(&snap, &two, Transport::Udp, LOCAL, &mut out),
        Answer::Message
    ));
    assert_eq!(out[3] & 0x0f, 1);
    assert_eq!(&out[0..2], &[0xab, 0xcd]);
    let (_, m) = ask(
        &snap,
        &query("_signal.ns1.example.net.", 41, None),
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn broken_zone_is_servfail() {
    let snap = Snapshot::new(
        vec![Arc::new(ServedZone::broken(&apex(), "no keys".into()))],
        1232,
    );
    let (_, m) = ask(
        &snap,
        &query("_signal.ns1.example.net.", 6, None),
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn notify_from_the_followed_primary_is_accepted_and_delivered() {
    let (tx, rx) = std::sync::mpsc::channel();
    let zone = crate::dns::parse_name("child.example.").expect("valid");
    let inbox = crate::server::inbound::FollowInbox::new(
        vec![crate::server::inbound::FollowAcl {
            zone: zone.clone(),
            primary: "127.0.0.9".parse().expect("valid"),
            key: None,
            notify_key: None,
        }],
        Box::new(move |zone| tx.send(zone.clone()).is_ok()),
    );
    let snap = snapshot().with_inbox(Some(Arc::new(inbox)));
    let mut notify = query("Child.Example.", 6, None);
    notify[2] = 0x24; // opcode 4, AA
    let mut out = Vec::new();
    let from = |ip: &str| ip.parse().expect("valid");
    respond(&snap, &notify, Transport::Udp, from("127.0.0.9"), &mut out);
    let m = Message::from_vec(&out).expect("parses");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(u8::from(m.metadata.op_code), 4);
    assert_eq!(rx.try_recv().expect("delivered"), zone);
    // From anywhere else: refused, nothing delivered.
    out.clear();
    respond(&snap, &notify, Transport::Udp, from("127.0.0.8"), &mut out);
    let m = Message::from_vec(&out).expect("parses");
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(rx.try_recv().is_err());
}

#[test]
fn a_query_signed_at_a_stale_time_gets_a_signed_badtime() {
    let key = tsig::Key::new(
        parse_name("xfr-key.").expect("valid"),
        tsig::Algorithm::HmacSha256,
        b"0123456789abcdef0123456789abcdef",
    );
    let snap = snapshot().with_keyring(Arc::new(tsig::Keyring::from_keys(vec![key.clone()])));
    // Signed an hour ago: outside any fudge.
    let mut q = query("_dsboot.example.com._signal.ns1.example.net.", 59, None);
    let signed_at = crate::dns::wire::unix_now() - 3600;
    tsig::sign(&mut q, &key, None, signed_at, 0);
    let request = tsig::find(&q).expect("parses").expect("present");
    let (raw, m) = ask(&snap, &q, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::NotAuth);
    let answer = tsig::find(&raw).expect("parses").expect("a TSIG record");
    assert_eq!(answer.error, tsig::error::BADTIME);
    assert_eq!(answer.time_signed, signed_at, "the client's time");
    assert_eq!(answer.other.len(), 6, "the server's time");
    assert!(
        tsig::verify_response(&key, &raw, &answer, &request.mac),
        "signed with the request's key and MAC (RFC 8945 §5.2.3)"
    );
    // An unknown key still gets the unsigned BADKEY.
    let other = tsig::Key::new(
        parse_name("other-key.").expect("valid"),
        tsig::Algorithm::HmacSha256,
        b"another secret",
    );
    let mut q = query("_dsboot.example.com._signal.ns1.example.net.", 59, None);
    tsig::sign(&mut q, &other, None, crate::dns::wire::unix_now(), 0);
    let (raw, _) = ask(&snap, &q, Transport::Udp);
    let answer = tsig::find(&raw).expect("parses").expect("a TSIG record");
    assert_eq!(answer.error, tsig::error::BADKEY);
    assert!(answer.mac.is_empty());
}

#[test]
fn with_an_agent_every_edns_answer_from_a_zone_names_the_report_channel() {
    let agent_name = parse_name("agent.example.org.").expect("valid");
    let (agent, _queue) = crate::server::report::ReportAgent::new(&agent_name);
    let option = agent.channel_option().to_vec();
    // RFC 9567 §6.1: code 18, the agent domain in wire form.
    let mut expected = vec![0, 18, 0, 19];
    expected.extend_from_slice(b"\x05agent\x07example\x03org\x00");
    assert_eq!(option, expected);
    let snap = snapshot().with_report_agent(Some(Arc::new(agent)));
    // An answer (DO or not) and a negative answer carry it, at the end of
    // the OPT record, its RDLENGTH covering it.
    for (name, qtype, edns) in [
        ("_signal.ns1.example.net.", 6, DO),
        ("_signal.ns1.example.net.", 6, Some((1232, false, 0))),
        ("nothing._signal.ns1.example.net.", 1, DO),
    ] {
        let (out, message) = ask(&snap, &query(name, qtype, edns), Transport::Udp);
        assert!(out.ends_with(&option), "{name}: {out:?}");
        let rdlength = &out[out.len() - option.len() - 2..out.len() - option.len()];
        assert_eq!(rdlength, [0, option.len() as u8]);
        assert!(message.edns.is_some());
    }
    // Without EDNS there is no OPT record to carry it.
    let (out, message) = ask(
        &snap,
        &query("_signal.ns1.example.net.", 6, None),
        Transport::Udp,
    );
    assert!(message.edns.is_none() && !out.ends_with(&option));
    // The agent's own answers never invite a report about themselves.
    let (out, message) = ask(
        &snap,
        &query("_er.1.x.example.7._er.agent.example.org.", 16, DO),
        Transport::Udp,
    );
    assert_eq!(message.answers.len(), 1, "a report is answered");
    assert!(!out.ends_with(&option));
    // Without an agent, nothing changes.
    let (out, _) = ask(
        &snapshot(),
        &query("_signal.ns1.example.net.", 6, DO),
        Transport::Udp,
    );
    assert!(out.ends_with(&[0, 0]), "an empty OPT RDATA");
}
