//! Property tests (proptest) for the query path: whatever arrives, the server
//! answers with a well-formed message or drops the packet; it never panics.

use std::sync::{Arc, OnceLock};

use hickory_proto::op::Message;
use proptest::prelude::*;
use signalbox::server::{Answer, ServedZone, Snapshot, Transport, respond};

/// A small signed zone to answer from, built once.
fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        use signalbox::{
            config::ZoneOptions,
            dns::{Dnskey, parse_name},
            dnssec::{self, Algorithm},
            keys::{Key, KeyFiles, PrivatePart, Timing, bind::private},
            zone::{RrsetData, ZoneContent, ZoneSigner, ZoneStore},
        };
        let apex = parse_name("_signal.ns1.example.net.").expect("valid");
        let dnskey = Dnskey::from_text("257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=").expect("valid");
        let file = private::parse(
            "Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=\n",
        )
        .expect("valid");
        let key = Arc::new(Key {
            zone: apex.clone(),
            tag: dnssec::key_tag(&dnskey),
            dnskey: dnskey.clone(),
            algorithm: Algorithm::Ed25519,
            ttl: None,
            timing: Timing::default(),
            state: None,
            private: PrivatePart::Present(Arc::new(file)),
            files: KeyFiles::default(),
        });
        let mut content = ZoneContent::new(apex.clone());
        let soa = signalbox::dns::Soa {
            mname: parse_name("ns1.example.net.").expect("valid"),
            rname: parse_name("hostmaster.example.net.").expect("valid"),
            serial: 0,
            refresh: 3600,
            retry: 600,
            expire: 1_209_600,
            minimum: 300,
        };
        let rt = hickory_proto::rr::RecordType::from;
        content.add(&apex, RrsetData::new(rt(6), 3600, vec![soa.to_wire()]));
        content.add(&apex, RrsetData::new(rt(48), 3600, vec![dnskey.to_wire()]));
        for child in ["a.example", "b.example.com", "c.d.e.f"] {
            let owner = parse_name(&format!("_dsboot.{child}._signal.ns1.example.net.")).expect("valid");
            content.add(&owner, RrsetData::new(rt(60), 3600, vec![dnskey.to_wire()]));
        }
        let now = jiff::Timestamp::from_second(1_800_000_000).expect("valid");
        let mut zone = ZoneStore::new(apex);
        zone.sync(&content, &ZoneSigner::from_keys(&[key], now), 1, now, &ZoneOptions::default())
            .expect("signed");
        Snapshot::new(vec![Arc::new(ServedZone::new(zone))], 1232)
    })
}

fn check(packet: &[u8], transport: Transport) {
    let mut out = Vec::new();
    let peer = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    if let Answer::Message = respond(snapshot(), packet, transport, peer, &mut out) {
        let message = Message::from_vec(&out).expect("answers are well-formed");
        assert_eq!(&out[..2], &packet[..2], "same ID");
        assert!(out[2] & 0x80 != 0, "QR set");
        let _ = message;
        if transport == Transport::Udp {
            assert!(
                out.len() <= 1232,
                "a UDP answer never exceeds our EDNS size"
            );
        }
    }
}

/// A query with arbitrary labels, type, class, flags and EDNS.
fn query() -> impl Strategy<Value = Vec<u8>> {
    let label = prop_oneof![
        prop::sample::select(vec![
            b"_dsboot".to_vec(),
            b"_signal".to_vec(),
            b"ns1".to_vec(),
            b"example".to_vec(),
            b"net".to_vec(),
            b"A".to_vec()
        ]),
        prop::collection::vec(any::<u8>(), 1..64),
    ];
    (
        any::<u16>(),
        any::<u16>(),
        prop::collection::vec(label, 0..12),
        any::<u16>(),
        prop_oneof![Just(1u16), any::<u16>()],
        prop::option::of((any::<u16>(), any::<u8>(), any::<bool>())),
    )
        .prop_map(|(id, flags, labels, qtype, qclass, edns)| {
            let mut q = id.to_be_bytes().to_vec();
            q.extend_from_slice(&(flags & 0x7fff).to_be_bytes());
            q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
            for label in labels {
                q.push(label.len() as u8);
                q.extend_from_slice(&label);
            }
            q.push(0);
            q.extend_from_slice(&qtype.to_be_bytes());
            q.extend_from_slice(&qclass.to_be_bytes());
            if let Some((size, version, dnssec)) = edns {
                q.extend_from_slice(&[0, 0, 41]);
                q.extend_from_slice(&size.to_be_bytes());
                q.extend_from_slice(&[0, version, if dnssec { 0x80 } else { 0 }, 0, 0, 0]);
            }
            q
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn arbitrary_bytes_never_panic(packet in prop::collection::vec(any::<u8>(), 0..700)) {
        check(&packet, Transport::Udp);
        check(&packet, Transport::Tcp);
    }

    #[test]
    fn structured_queries_get_well_formed_answers(packet in query()) {
        check(&packet, Transport::Udp);
        check(&packet, Transport::Tcp);
    }

    #[test]
    fn mutated_valid_queries_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        packet.extend_from_slice(b"\x07_dsboot\x01a\x07example\x07_signal\x03ns1\x07example\x03net\x00\x00\x3c\x00\x01");
        packet.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        for (at, byte) in flips {
            let i = at.index(packet.len());
            packet[i] = byte;
        }
        check(&packet, Transport::Udp);
    }
}
