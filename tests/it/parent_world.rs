//! Proves the parent-world harness (`common::parent`) before signalbox's
//! DSYNC discovery, NOTIFY sending, consistency gate and parent observer run
//! against it: DSYNC (type 66, written as RFC 3597 generic data) is signed by
//! `dnssec-signzone`, served by Knot 3.2 and validated by Unbound; negative
//! `_dsync` answers carry the SOA of the zone that answered; `set_zone` is
//! seen through the resolver at once; the NOTIFY receiver records and answers
//! as told.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    process::Command,
    time::{Duration, Instant},
};

use crate::common::{
    kdig,
    parent::{
        self, CDS, CSYNC, NotifyReceiver, ParentWorld, Received, ReceiverMode, WorldSpec, ZoneSpec,
    },
};

const PARENT: &str = "parent.test.";
const CHILD: &str = "child.parent.test.";

fn ready() -> bool {
    crate::common::tools(parent::TOOLS) && crate::common::tools(&["delv"])
}

/// The RDATA (everything after the type) of the `rtype` records in kdig
/// answer lines, e.g. `\# 26 003B...` for TYPE66 (kdig prints generic
/// data in upper case; compare with [`generic`]).
fn rdata(records: &[String], owner: &str, rtype: &str) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| {
            let fields: Vec<&str> = r.split(' ').collect();
            (fields.len() > 4 && fields[0].eq_ignore_ascii_case(owner) && fields[3] == rtype)
                .then(|| fields[4..].join(" "))
        })
        .collect()
}

/// [`parent::dsync_rdata`] as kdig prints it.
fn generic(rrtype: u16, scheme: u8, port: u16, target: &str) -> String {
    parent::dsync_rdata(rrtype, scheme, port, target).to_ascii_uppercase()
}

/// The RRSIG over `covered` in kdig answer lines: its labels field.
fn rrsig_labels(records: &[String], covered: &str) -> Option<u8> {
    records.iter().find_map(|r| {
        let fields: Vec<&str> = r.split(' ').collect();
        (fields.get(3) == Some(&"RRSIG") && fields.get(4) == Some(&covered))
            .then(|| fields.get(6)?.parse().ok())
            .flatten()
    })
}

fn parent_body() -> String {
    format!(
        "*._dsync TYPE66 {}\n\
         *._dsync TYPE66 {}\n\
         child._dsync TYPE66 {}\n\
         notify A 127.0.0.2\n\
         Rr-Endpoint A 127.0.0.2\n",
        parent::dsync_rdata(CDS, 1, 5359, "notify.parent.test."),
        parent::dsync_rdata(CSYNC, 1, 5360, "notify.parent.test."),
        // Upper case in the target: RFC 3597 §7 / RFC 9859 say the target is
        // not lower-cased for signing; the chain must agree on that.
        parent::dsync_rdata(CDS, 1, 5300, "Rr-Endpoint.parent.test."),
    )
}

fn world() -> ParentWorld {
    ParentWorld::start(&WorldSpec {
        zones: vec![
            ZoneSpec::signed("test.", ""),
            ZoneSpec::signed(PARENT, &parent_body()),
            ZoneSpec::signed(CHILD, "@ CDS 0 0 0 00\nns1 A 127.0.0.3\n")
                .with_ns(&["ns1", "ns2.elsewhere.test."]),
            ZoneSpec::unsigned("insecure.test.", &parent_body()),
        ],
        ..WorldSpec::default()
    })
}

#[test]
fn dsync_signed_served_and_validated() {
    if !ready() {
        return;
    }
    let started = Instant::now();
    let world = world();
    eprintln!("world up after {:?}", started.elapsed());
    let logs = || world.logs();

    // The helper's wire form is RFC 9859's example, byte for byte.
    assert_eq!(
        parent::dsync_rdata(CDS, 1, 5300, "rr-endpoint.example."),
        "\\# 26 003b0114b40b72722d656e64706f696e74076578616d706c6500"
    );

    // Knot serves the generic data it was given, with an RRSIG over TYPE66.
    let child_dsync = generic(CDS, 1, 5300, "Rr-Endpoint.parent.test.");
    let k = world.query_auth("child._dsync.parent.test.", "TYPE66");
    assert!(k.aa && k.rcode == "NOERROR", "{}\n{}", k.output, logs());
    assert_eq!(
        rdata(&k.answer, "child._dsync.parent.test.", "TYPE66"),
        [child_dsync.as_str()],
        "{}",
        k.output
    );
    assert_eq!(rrsig_labels(&k.answer, "TYPE66"), Some(4), "{}", k.output);

    // Through the validating resolver: the per-child record, case kept.
    let k = world.query("child._dsync.parent.test.", "TYPE66");
    assert!(k.ad && k.rcode == "NOERROR", "{}\n{}", k.output, logs());
    assert_eq!(
        rdata(&k.answer, "child._dsync.parent.test.", "TYPE66"),
        [child_dsync],
        "{}",
        k.output
    );

    // The wildcard: synthesised for any child, both RRtypes, validated (the
    // RRSIG's labels field, 3, shows the wildcard expansion).
    let k = world.query("other._dsync.parent.test.", "TYPE66");
    assert!(k.ad && k.rcode == "NOERROR", "{}\n{}", k.output, logs());
    let mut got = rdata(&k.answer, "other._dsync.parent.test.", "TYPE66");
    got.sort();
    assert_eq!(
        got,
        [
            generic(CDS, 1, 5359, "notify.parent.test."),
            generic(CSYNC, 1, 5360, "notify.parent.test."),
        ],
        "{}",
        k.output
    );
    assert_eq!(rrsig_labels(&k.answer, "TYPE66"), Some(3), "{}", k.output);

    // delv, which knows DSYNC, checks the whole chain itself.
    let mut delv = Command::new("timeout");
    delv.args(["-k", "5", "20", "delv"])
        .arg(format!("@{}", world.resolver().ip()))
        .arg("-p")
        .arg(world.resolver().port().to_string())
        .arg("-a")
        .arg(world.anchor_conf())
        .args(["+root=test.", "other._dsync.parent.test.", "DSYNC"]);
    let out = delv.output().expect("delv runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines().any(|l| l.trim() == "; fully validated")
            && text.contains("DSYNC\tCDS NOTIFY 5359 notify.parent.test."),
        "{text}\n{}",
        logs()
    );

    // Negative answers carry the SOA of the zone that answered, validated:
    // discovery step 1 for x.sub.parent.test. (NXDOMAIN in parent.test.) ...
    let k = world.query("x._dsync.sub.parent.test.", "TYPE66");
    assert!(k.ad && k.rcode == "NXDOMAIN", "{}\n{}", k.output, logs());
    assert_eq!(
        kdig::soa_owner(&k.output).as_deref(),
        Some(PARENT),
        "{}",
        k.output
    );
    // ... for a grandchild (answered by child.parent.test.) ...
    let k = world.query("www._dsync.child.parent.test.", "TYPE66");
    assert!(k.ad && k.rcode == "NXDOMAIN", "{}\n{}", k.output, logs());
    assert_eq!(
        kdig::soa_owner(&k.output).as_deref(),
        Some(CHILD),
        "{}",
        k.output
    );
    // ... and NODATA at the empty non-terminal `_dsync` itself.
    let k = world.query("_dsync.parent.test.", "TYPE66");
    assert!(
        k.ad && k.rcode == "NOERROR" && k.answer.is_empty(),
        "{}\n{}",
        k.output,
        logs()
    );
    assert_eq!(
        kdig::soa_owner(&k.output).as_deref(),
        Some(PARENT),
        "{}",
        k.output
    );

    // The child's apex CDS validates through test. -> parent.test. -> child.
    let k = world.query(CHILD, "CDS");
    assert!(k.ad && k.rcode == "NOERROR", "{}\n{}", k.output, logs());
    assert_eq!(rdata(&k.answer, CHILD, "CDS"), ["0 0 0 00"], "{}", k.output);

    // The delegation: NS from ZoneSpec::ns, DS, and glue copied from the
    // child's body; the out-of-zone NS name got 127.0.0.1 in test.
    // (Knot answers NS queries at the child apex from the child, so the
    // parent side is read from the served file.)
    let mut ns = world.records(PARENT, CHILD, "NS");
    ns.sort();
    assert_eq!(ns, ["ns1.child.parent.test.", "ns2.elsewhere.test."]);
    assert_eq!(world.records(PARENT, CHILD, "DS"), world.ds(CHILD));
    assert_eq!(
        world.records(PARENT, "ns1.child.parent.test.", "A"),
        ["127.0.0.3"]
    );
    assert!(world.records(PARENT, "ns2.elsewhere.test.", "A").is_empty());
    assert_eq!(
        world.records("test.", "ns2.elsewhere.test.", "A"),
        ["127.0.0.1"]
    );
    // Knot does answer DS from the parent side.
    let k = world.query_auth(CHILD, "DS");
    assert_eq!(
        rdata(&k.answer, CHILD, "DS"),
        world.ds(CHILD),
        "{}",
        k.output
    );
    let k = world.query("ns2.elsewhere.test.", "A");
    assert!(k.ad, "{}", k.output);
    assert_eq!(
        rdata(&k.answer, "ns2.elsewhere.test.", "A"),
        ["127.0.0.1"],
        "{}",
        k.output
    );

    // Negative control: the same DSYNC in an unsigned zone is served
    // without AD, so AD above means validated.
    let k = world.query("other._dsync.insecure.test.", "TYPE66");
    assert!(!k.ad && k.rcode == "NOERROR", "{}\n{}", k.output, logs());
    assert_eq!(
        rdata(&k.answer, "other._dsync.insecure.test.", "TYPE66").len(),
        2,
        "{}",
        k.output
    );
    eprintln!("all checks after {:?}", started.elapsed());
}

#[test]
fn set_zone_is_seen_through_the_resolver() {
    if !ready() {
        return;
    }
    let started = Instant::now();
    let mut world = world();
    eprintln!("world up after {:?}", started.elapsed());

    // Not there yet, and the resolver has the proof cached.
    let k = world.query("other.parent.test.", "DS");
    assert!(
        k.ad && k.rcode == "NXDOMAIN",
        "{}\n{}",
        k.output,
        world.logs()
    );

    // The parent gains a signed delegation; serial goes up; Knot reloads.
    let ds = world.ds(CHILD)[0].clone();
    let body = format!(
        "{}other NS ns.other\nns.other A 127.0.0.9\nother DS {ds}\n",
        parent_body()
    );
    let t = Instant::now();
    world.set_zone(PARENT, &body);
    assert_eq!(world.serial(PARENT), 2);
    assert_eq!(world.serial(CHILD), 1, "the child did not change");
    assert_eq!(world.serial("test."), 1, "test. did not change");
    let mut k = world.query("other.parent.test.", "DS");
    while !(k.ad && k.rcode == "NOERROR") && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        k = world.query("other.parent.test.", "DS");
    }
    let seen = t.elapsed();
    eprintln!("new DS validated {seen:?} after set_zone began");
    assert!(
        k.ad && k.rcode == "NOERROR",
        "{}\n{}",
        k.output,
        world.logs()
    );
    assert_eq!(
        rdata(&k.answer, "other.parent.test.", "DS"),
        [ds],
        "{}",
        k.output
    );
    assert!(seen < Duration::from_secs(5), "took {seen:?}");
    // The rest of the parent still validates (same keys, new signatures).
    let k = world.query("child._dsync.parent.test.", "TYPE66");
    assert!(
        k.ad && k.rcode == "NOERROR",
        "{}\n{}",
        k.output,
        world.logs()
    );

    // The child publishes its real CDS/CDNSKEY: its keys are kept, so the
    // DS above still matches and the new RRsets validate at once.
    let cds = world.ds(CHILD)[0].clone();
    let cdnskey = world.ksk(CHILD);
    let k = world.query(CHILD, "CDS");
    assert_eq!(rdata(&k.answer, CHILD, "CDS"), ["0 0 0 00"], "{}", k.output);
    world.set_zone(
        CHILD,
        &format!("@ CDS {cds}\n@ CDNSKEY {cdnskey}\nns1 A 127.0.0.3\n"),
    );
    assert_eq!(world.serial(CHILD), 2);
    let k = world.query(CHILD, "CDS");
    assert!(
        k.ad && k.rcode == "NOERROR",
        "{}\n{}",
        k.output,
        world.logs()
    );
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    assert_eq!(
        rdata(&k.answer, CHILD, "CDS")
            .iter()
            .map(|r| squash(r))
            .collect::<Vec<_>>(),
        [squash(&cds)],
        "{}",
        k.output
    );
    let k = world.query(CHILD, "CDNSKEY");
    assert!(
        k.ad && k.rcode == "NOERROR",
        "{}\n{}",
        k.output,
        world.logs()
    );

    // Glue follows the child's addresses: a changed ns1 address re-signs
    // the parent as well.
    world.set_zone(CHILD, "ns1 A 127.0.0.4\n");
    assert_eq!(world.serial(PARENT), 3, "glue changed in the parent");
    assert_eq!(
        world.records(PARENT, "ns1.child.parent.test.", "A"),
        ["127.0.0.4"]
    );
    let k = world.query_auth("ns1.child.parent.test.", "A");
    assert_eq!(
        rdata(&k.answer, "ns1.child.parent.test.", "A"),
        ["127.0.0.4"],
        "{}",
        k.output
    );
    let k = world.query(CHILD, "CDS");
    assert!(
        k.ad && k.rcode == "NOERROR" && k.answer.is_empty(),
        "CDS gone (proven NODATA):\n{}",
        k.output
    );
    eprintln!("all checks after {:?}", started.elapsed());
}

/// Sends `msg` by UDP and returns the reply, if one comes within `wait`.
fn udp_exchange(to: SocketAddr, msg: &[u8], wait: Duration) -> (SocketAddr, Option<Vec<u8>>) {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    socket.set_read_timeout(Some(wait)).expect("timeout");
    socket.send_to(msg, to).expect("send");
    let mut buf = [0u8; 512];
    let reply = socket
        .recv_from(&mut buf)
        .ok()
        .map(|(n, _)| buf[..n].to_vec());
    (socket.local_addr().expect("local address"), reply)
}

/// Sends `msg` over a new TCP connection and returns the reply, if one comes
/// within `wait`.
fn tcp_exchange(to: SocketAddr, msg: &[u8], wait: Duration) -> (SocketAddr, Option<Vec<u8>>) {
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("timeout");
    let mut out = (msg.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    stream.write_all(&out).expect("send");
    let mut len = [0u8; 2];
    let reply = stream.read_exact(&mut len).ok().and_then(|()| {
        let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut reply).ok().map(|()| reply)
    });
    (stream.local_addr().expect("local address"), reply)
}

/// Checks a reply to `query`: same ID, QR, opcode NOTIFY, AA, `rcode`, the
/// question echoed, nothing else.
#[track_caller]
fn assert_reply(query: &[u8], reply: &[u8], rcode: u8) {
    assert_eq!(&reply[..2], &query[..2], "ID echoed: {reply:02x?}");
    assert_eq!(
        reply[2],
        0x80 | (4 << 3) | 0x04,
        "QR, NOTIFY, AA: {reply:02x?}"
    );
    assert_eq!(reply[3] & 0x0f, rcode, "RCODE: {reply:02x?}");
    assert_eq!(
        &reply[4..12],
        &[0, 1, 0, 0, 0, 0, 0, 0],
        "counts: {reply:02x?}"
    );
    assert_eq!(&reply[12..], &query[12..], "question echoed: {reply:02x?}");
}

#[track_caller]
fn assert_notify(r: &Received, transport: &str, from: SocketAddr, id: u16, msg: &[u8]) {
    assert_eq!(r.transport, transport, "{r:?}");
    assert_eq!(r.from, from, "{r:?}");
    assert_eq!(r.id, id, "{r:?}");
    assert_eq!(
        (r.opcode, r.qr, r.aa),
        (parent::OPCODE_NOTIFY, false, true),
        "{r:?}"
    );
    assert_eq!(
        (r.qdcount, r.ancount, r.nscount, r.arcount),
        (1, 0, 0, 0),
        "{r:?}"
    );
    assert_eq!(
        (r.qname.as_str(), r.qtype, r.qclass),
        (CHILD, CDS, 1),
        "{r:?}"
    );
    assert_eq!(r.raw, msg, "{r:?}");
}

#[test]
fn notify_receiver_records_and_answers_per_mode() {
    let started = Instant::now();
    let ip = Ipv4Addr::new(127, 0, 0, 2);
    let receiver = NotifyReceiver::start(ip, ReceiverMode::Answer);
    let to = receiver.addr();
    assert_eq!(to.ip(), ip);
    let wait = Duration::from_secs(2);
    let short = Duration::from_millis(300);

    // RFC 9859's example message, byte for byte (mixed case goes in as is,
    // is recorded lower-case).
    let example = parent::notify_message(0x1234, "example.co.uk", CDS);
    let hex: String = example.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "123424000001000000000000076578616d706c6502636f02756b00003b0001"
    );
    let msg = parent::notify_message(0x1234, "Child.Parent.Test.", CDS);

    // Answer, over UDP and TCP: NOERROR.
    let (from, reply) = udp_exchange(to, &msg, wait);
    assert_reply(&msg, &reply.expect("UDP reply"), 0);
    let got = receiver.wait_for(1, wait);
    assert_eq!(got.len(), 1);
    assert_notify(&got[0], "udp", from, 0x1234, &msg);

    let msg2 = parent::notify_message(0xbeef, CHILD, CDS);
    let (from, reply) = tcp_exchange(to, &msg2, wait);
    assert_reply(&msg2, &reply.expect("TCP reply"), 0);
    let got = receiver.wait_for(2, wait);
    assert_eq!(got.len(), 2);
    assert_notify(&got[1], "tcp", from, 0xbeef, &msg2);

    // Refuse: REFUSED over both.
    receiver.set_mode(ReceiverMode::Refuse);
    let (_, reply) = udp_exchange(to, &msg, wait);
    assert_reply(&msg, &reply.expect("UDP reply"), 5);
    let (_, reply) = tcp_exchange(to, &msg2, wait);
    assert_reply(&msg2, &reply.expect("TCP reply"), 5);
    assert_eq!(receiver.wait_for(4, wait).len(), 4);

    // Silent: recorded, never answered.
    receiver.set_mode(ReceiverMode::Silent);
    let (from, reply) = udp_exchange(to, &msg, short);
    assert!(reply.is_none(), "silent answered UDP: {reply:02x?}");
    let (tcp_from, reply) = tcp_exchange(to, &msg2, short);
    assert!(reply.is_none(), "silent answered TCP: {reply:02x?}");
    let got = receiver.wait_for(6, wait);
    assert_eq!(got.len(), 6);
    assert_notify(&got[4], "udp", from, 0x1234, &msg);
    assert_notify(&got[5], "tcp", tcp_from, 0xbeef, &msg2);

    // TcpOnly: UDP ignored (but recorded), TCP answered.
    receiver.set_mode(ReceiverMode::TcpOnly);
    let (_, reply) = udp_exchange(to, &msg, short);
    assert!(reply.is_none(), "tcp-only answered UDP: {reply:02x?}");
    let (_, reply) = tcp_exchange(to, &msg2, wait);
    assert_reply(&msg2, &reply.expect("TCP reply"), 0);
    let got = receiver.wait_for(8, wait);
    assert_eq!(
        got.iter().map(|r| r.transport).collect::<Vec<_>>()[6..],
        ["udp", "tcp"]
    );

    // wait_for returns what it has at the deadline.
    let t = Instant::now();
    assert_eq!(receiver.wait_for(9, short).len(), 8);
    assert!(t.elapsed() >= short);

    // Garbage is recorded too, and a message without a question gets
    // FORMERR with no question.
    receiver.set_mode(ReceiverMode::Answer);
    let bare = [0xab, 0xcd, 0x20, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
    let (_, reply) = udp_exchange(to, &bare, wait);
    assert_eq!(
        reply.expect("UDP reply"),
        [0xab, 0xcd, 0xa4, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    let got = receiver.wait_for(9, wait);
    assert_eq!(
        (got[8].id, got[8].qdcount, got[8].qname.as_str()),
        (0xabcd, 0, "")
    );
    eprintln!("receiver checks took {:?}", started.elapsed());
}
