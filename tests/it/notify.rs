//! Generalized NOTIFY (RFC 9859) against real servers: DSYNC records in a
//! parent zone served by Knot (RFC 3597 syntax), discovered through a
//! validating Unbound; NOTIFYs caught by a receiver written for the tests
//! that checks every message; the consistency gate asking Knot and
//! signalbox directly; the parent observer withdrawing signals.
//!
//! The world (`common::parent`), all on loopback:
//!
//! ```text
//!   test. (signed)         ns.other.test. A 127.0.0.1   (Knot: serves the child)
//!                          ns1.operator.test. A 127.0.0.2   (signalbox: _signal.ns.other.test.)
//!                          scanner.test. A 127.0.0.3   (the NOTIFY receiver)
//!   parent.test. (signed)  DSYNC records per case
//!   child.parent.test.     NS ns.other.test.; apex CDS/CDNSKEY as the case needs
//! ```
//! Knot listens on 127.0.0.1:P and signalbox on 127.0.0.2:P, so
//! `[notify] nameserver_port = P` reaches both as the NS records say.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::common::{
    parent::{self, NotifyReceiver, ParentWorld, ReceiverMode, WorldSpec, ZoneSpec},
    serve::{Serve, query},
    signzone, *,
};

pub(crate) const CHILD: &str = "child.parent.test.";
pub(crate) const SIGNAL: &str = "_signal.ns.other.test.";

pub(crate) fn ready() -> bool {
    let mut needed: Vec<&str> = parent::TOOLS.to_vec();
    needed.push("dnssec-keygen");
    tools(&needed)
}

pub(crate) fn test_body(extra: &str) -> String {
    format!("ns.other A 127.0.0.1\nns1.operator A 127.0.0.2\nscanner A 127.0.0.3\n{extra}\n")
}

pub(crate) fn dsync(rrtype: u16, port: u16, target: &str) -> String {
    parent::dsync_rdata(rrtype, 1, port, target)
}

/// A world with `parent_body` in parent.test. and `child_body` in the
/// (unsigned) child.
pub(crate) fn world(parent_body: &str, child_body: &str) -> ParentWorld {
    world_with(parent_body, child_body, Vec::new())
}

fn world_with(parent_body: &str, child_body: &str, more: Vec<ZoneSpec>) -> ParentWorld {
    let mut zones = vec![
        ZoneSpec::signed("test.", &test_body("")),
        ZoneSpec::signed("parent.test.", parent_body),
        ZoneSpec::unsigned(CHILD, child_body).with_ns(&["ns.other.test."]),
    ];
    zones.extend(more);
    ParentWorld::start(&WorldSpec {
        zones,
        ..WorldSpec::default()
    })
}

/// signalbox's side: a key directory for the child and for the signalling
/// zone, and a config.
pub(crate) struct Side {
    dir: tempfile::TempDir,
    pub(crate) config: PathBuf,
    pub(crate) child_key: PathBuf,
}

impl Side {
    /// `notify` lines go into the `[notify]` table.
    pub(crate) fn new(world: &ParentWorld, zones: &[&str], cds: &str, notify: &str) -> Side {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let children = root.join("children");
        fs::create_dir_all(&children).expect("mkdir");
        let mut child_key = PathBuf::new();
        for zone in zones {
            let stem = signzone::keygen(&children, &["-f", "KSK", zone.trim_end_matches('.')]);
            if *zone == CHILD {
                child_key = children.join(format!("{stem}.key"));
            }
        }
        let signal = root.join("signal");
        fs::create_dir_all(&signal).expect("mkdir");
        signzone::keygen(&signal, &["-f", "KSK", SIGNAL.trim_end_matches('.')]);
        let port = world.auth().port();
        let config = root.join("signalbox.toml");
        fs::write(
            &config,
            format!(
                r#"version = 1
[[zones]]
keys = "children"
nameservers = ["ns.other.test."]
cds = "{cds}"
signal_ttl = "1s"

[[signaling_zone]]
apex = "{SIGNAL}"
keys = "signal"
nameservers = ["ns1.operator.test."]
soa_minimum = "1s"

[server]
listen = ["127.0.0.2:{port}"]

[state]
dir = "state"

[resolver]
servers = ["{resolver}"]

[notify]
nameserver_port = {port}
udp_timeout = "200ms"
udp_tries = 2
{notify}

[parent]
poll_interval = "1s"
after_notify = "1s"
"#,
                resolver = world.resolver(),
            ),
        )
        .expect("write config");
        Side {
            dir,
            config,
            child_key,
        }
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn run(&self, args: &[&str]) -> (i32, String, String) {
        output(signalbox().args(args).arg("-c").arg(&self.config))
    }

    /// The child's apex CDS and CDNSKEY lines as `signals` prints them,
    /// with the DNSKEY they describe (BIND's zone checks want it there).
    pub(crate) fn apex_lines(&self) -> String {
        let (code, stdout, stderr) = self.run(&["signals", "--zone", CHILD]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        let dnskey = format!(
            "{CHILD} DNSKEY {}\n",
            signzone::dnskey_rdata(&self.child_key)
        );
        let lines: String = stdout
            .lines()
            .filter(|l| l.starts_with(CHILD) && (l.contains(" CDS ") || l.contains(" CDNSKEY ")))
            .map(|l| format!("{l}\n"))
            .collect();
        dnskey + &lines
    }
}

/// Checks one received NOTIFY against RFC 9859 §4.2 and returns its QTYPE.
fn check_notify(r: &parent::Received, child: &str) -> u16 {
    assert_eq!(r.opcode, 4, "opcode NOTIFY: {r:?}");
    assert!(!r.qr, "a query, not a response: {r:?}");
    assert!(r.aa, "AA set: {r:?}");
    assert_eq!(r.qdcount, 1, "one question: {r:?}");
    assert_eq!(
        (r.ancount, r.nscount, r.arcount),
        (0, 0, 0),
        "nothing else: {r:?}"
    );
    assert_eq!(r.qname, child, "QNAME = the child apex: {r:?}");
    assert_eq!(r.qclass, 1);
    r.qtype
}

/// Discovery and sending cases do not need the gate.
const IMMEDIATE: &str = "gate = \"immediate\"";

#[test]
fn discovery_finds_each_kind_of_dsync_and_the_notify_is_well_formed() {
    if !ready() {
        return;
    }
    let receiver = NotifyReceiver::start(Ipv4Addr::new(127, 0, 0, 3), ReceiverMode::Answer);
    let port = receiver.addr().port();
    // A wildcard pointing at a dead port, a child-specific record at the
    // receiver, and a record for a deeper child; a second parent, bare.test.,
    // with only the bare _dsync name (for CDS and CSYNC).
    let parent_body = format!(
        "*._dsync TYPE66 {wild}\nchild._dsync TYPE66 {specific}\na.b._dsync TYPE66 {deep}\n",
        wild = dsync(59, 9, "scanner.test."),
        specific = dsync(59, port, "scanner.test."),
        deep = dsync(59, port, "scanner.test."),
    );
    let bare = format!(
        "_dsync TYPE66 {}\n_dsync TYPE66 {}\n",
        dsync(59, port, "scanner.test."),
        dsync(62, port, "scanner.test."),
    );
    let world = world_with(
        &parent_body,
        "",
        vec![ZoneSpec::signed("bare.test.", &bare)],
    );
    let side = Side::new(
        &world,
        &[
            CHILD,
            "a.b.parent.test.",
            "other.parent.test.",
            "c.bare.test.",
        ],
        "always",
        IMMEDIATE,
    );

    // 1. The child-specific record wins over the wildcard.
    let (code, stdout, stderr) = side.run(&["notify", "--zone", CHILD]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("child._dsync.parent.test."), "{stdout}");
    let got = receiver.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].transport, "udp");
    assert_eq!(check_notify(&got[0], CHILD), 59);

    // A positive answer ends the search (RFC 9859 §4.1): child._dsync has
    // no CSYNC record, so there is no CSYNC target.
    let (code, stdout, _) = side.run(&["notify", "--zone", CHILD, "--type", "csync"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("no DSYNC target for (CSYNC, NOTIFY)"),
        "{stdout}"
    );

    // 2. Only the bare name: c._dsync.bare.test. is NXDOMAIN, so
    //    _dsync.bare.test. is asked (step 3), for CSYNC here.
    let (code, stdout, stderr) = side.run(&["notify", "--zone", "c.bare.test.", "--type", "csync"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("c._dsync.bare.test. DSYNC: NXDOMAIN"),
        "{stdout}"
    );
    assert!(
        stdout.contains("; lookup _dsync.bare.test. DSYNC: NOERROR"),
        "{stdout}"
    );
    let got = receiver.wait_for(2, Duration::from_secs(5));
    assert_eq!(check_notify(&got[1], "c.bare.test."), 62);

    // 3. A child two labels below its parent: a._dsync.b.parent.test. is
    //    NXDOMAIN from parent.test., so _dsync is re-inserted above it.
    let (code, stdout, stderr) = side.run(&["notify", "--zone", "a.b.parent.test."]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("a._dsync.b.parent.test. DSYNC: NXDOMAIN"),
        "{stdout}"
    );
    assert!(
        stdout.contains("a.b._dsync.parent.test. DSYNC: NOERROR"),
        "{stdout}"
    );
    let got = receiver.wait_for(3, Duration::from_secs(5));
    assert_eq!(check_notify(&got[2], "a.b.parent.test."), 59);

    // 4. The wildcard (the answer is synthesised at the name asked): any
    //    other child goes to the dead port; nothing reaches the receiver and
    //    the failure is reported.
    let (code, stdout, _) = side.run(&["notify", "--zone", "other.parent.test."]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("target scanner.test. port 9 (from other._dsync.parent.test.)"),
        "{stdout}"
    );
    assert!(stdout.contains("failed"), "{stdout}");
    assert_eq!(receiver.received().len(), 3);

    // `parent` shows the same, step by step.
    let (_, stdout, _) = side.run(&["parent", "--zone", CHILD]);
    assert!(stdout.contains("; parent zone parent.test."), "{stdout}");
    assert!(
        stdout.contains(&format!("NOTIFY(CDS) target scanner.test. port {port}")),
        "{stdout}"
    );
}

#[test]
fn no_dsync_or_duplicates_send_nothing_and_say_why() {
    if !ready() {
        return;
    }
    let receiver = NotifyReceiver::start(Ipv4Addr::new(127, 0, 0, 3), ReceiverMode::Answer);
    let port = receiver.addr().port();
    let parent_body = format!(
        "dup._dsync TYPE66 {a}\ndup._dsync TYPE66 {b}\nnull._dsync TYPE66 {null}\n",
        a = dsync(59, port, "scanner.test."),
        b = dsync(59, port + 1, "scanner.test."),
        null = parent::dsync_rdata(59, 0, port, "scanner.test."),
    );
    let world = world(&parent_body, "");
    let side = Side::new(
        &world,
        &[CHILD, "dup.parent.test.", "null.parent.test."],
        "always",
        IMMEDIATE,
    );

    // No DSYNC anywhere for child: three lookups, then nothing.
    let (code, stdout, _) = side.run(&["notify", "--zone", CHILD]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("child._dsync.parent.test. DSYNC: NXDOMAIN"),
        "{stdout}"
    );
    assert!(
        stdout.contains("_dsync.parent.test. DSYNC: NXDOMAIN"),
        "{stdout}"
    );
    assert!(stdout.contains("no DSYNC target"), "{stdout}");
    let (_, stdout, _) = side.run(&["parent", "--zone", CHILD]);
    assert!(stdout.contains("NOTIFY(CDS): no target"), "{stdout}");

    // Two records for (CDS, NOTIFY): an error, nothing sent (BIND does the same).
    let (code, _, stderr) = side.run(&["notify", "--zone", "dup.parent.test."]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("2 DSYNC records for (CDS, NOTIFY)"),
        "{stderr}"
    );

    // Scheme 0 is the null scheme: ignored, so no target.
    let (code, stdout, _) = side.run(&["notify", "--zone", "null.parent.test."]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("no DSYNC target"), "{stdout}");

    std::thread::sleep(Duration::from_millis(500));
    assert!(receiver.received().is_empty(), "{:?}", receiver.received());
}

#[test]
fn a_silent_target_gets_udp_retries_then_tcp_then_the_failure_is_reported() {
    if !ready() {
        return;
    }
    let (receiver, _, _world, side) = receiver_world(ReceiverMode::Silent, "always", IMMEDIATE);
    let started = Instant::now();
    let (code, stdout, _) = side.run(&["notify", "--zone", CHILD]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("failed") && stdout.contains("then TCP"),
        "{stdout}"
    );
    let got = receiver.received();
    let udp = got.iter().filter(|r| r.transport == "udp").count();
    let tcp = got.iter().filter(|r| r.transport == "tcp").count();
    assert_eq!((udp, tcp), (2, 1), "{got:?}");
    for r in &got {
        check_notify(r, CHILD);
    }
    // 200 ms + 400 ms of UDP, then TCP with its own timeout: bounded.
    assert!(started.elapsed() < Duration::from_secs(10));

    // A target that answers only over TCP still gets it.
    receiver.set_mode(ReceiverMode::TcpOnly);
    let (code, stdout, _) = side.run(&["notify", "--zone", CHILD]);
    assert_eq!(code, 0, "{stdout}");
}

/// The daemon: the gate holds the NOTIFY while Knot (the child's NS) lags
/// behind; a restart keeps the owed NOTIFY; once Knot serves the same
/// CDS/CDNSKEY as signalbox computes, the NOTIFY goes out; then the parent
/// publishes the DS and the `_dsboot` signals and the rollover CDS go.
#[test]
fn the_daemon_waits_for_agreement_survives_a_restart_and_withdraws_once_the_parent_acts() {
    if !ready() {
        return;
    }
    let (receiver, parent_body, mut world, side) = rollover_world();
    let addr = SocketAddr::new([127, 0, 0, 2].into(), world.auth().port());
    let dsboot = format!("_dsboot.{CHILD}{SIGNAL}");

    // Knot serves the child without CDS: the gate stays closed.
    let mut daemon = Serve::start(&side.config, addr, SIGNAL);
    let served = wait_until(Duration::from_secs(20), || {
        query(addr, &dsboot, 59, false).is_some_and(|m| !m.answers.is_empty())
    });
    assert!(
        served,
        "signalbox serves the _dsboot CDS:\n{}",
        daemon.log_text()
    );
    let waiting = wait_until(Duration::from_secs(20), || {
        daemon
            .log_text()
            .contains("NOTIFY waits for the nameservers to agree")
    });
    assert!(waiting, "{}", daemon.log_text());
    let log = daemon.log_text();
    assert!(
        log.contains("child child.parent.test.: ns.other.test. 127.0.0.1:"),
        "the log names the server that disagrees:\n{log}"
    );
    assert!(receiver.received().is_empty());

    // The NOTIFY is owed in the ledger; a restart keeps it.
    let ledger = side.root().join("state/notify.state");
    let owed = wait_until(Duration::from_secs(10), || {
        fs::read_to_string(&ledger).is_ok_and(|t| {
            t.lines()
                .any(|l| l.starts_with(CHILD) && l.split_whitespace().nth(3) != Some("-"))
        })
    });
    assert!(owed, "{:?}", fs::read_to_string(&ledger));
    daemon.kill();
    drop(daemon);

    // Knot catches up (the same CDS/CDNSKEY as signalbox computes), then
    // signalbox comes back: the owed NOTIFY goes out after the gate opens.
    world.set_zone(CHILD, &side.apex_lines());
    let daemon = Serve::start(&side.config, addr, SIGNAL);
    let got = receiver.wait_for(1, Duration::from_secs(30));
    assert_eq!(got.len(), 1, "{got:?}\n{}", daemon.log_text());
    assert_eq!(check_notify(&got[0], CHILD), 59);
    // The parent has the NOTIFY before signalbox has read its answer and
    // logged it (through the log queue): wait for the line.
    let acknowledged = wait_until(Duration::from_secs(10), || {
        daemon.log_text().contains("NOTIFY acknowledged")
    });
    assert!(acknowledged, "{}", daemon.log_text());

    // The parent publishes our DS: the observer sees it, the _dsboot
    // signals are withdrawn (RFC 9615 §5.1) and rollover comes to rest
    // (no CDS wanted: the ledger's fingerprint drops to zero).
    let ds = signzone::dsfromkey(&side.child_key);
    world.set_zone("parent.test.", &format!("{parent_body}child DS {ds}\n"));
    let withdrawn = wait_until(Duration::from_secs(30), || {
        query(addr, &dsboot, 59, false).is_some_and(|m| m.answers.is_empty())
    });
    assert!(withdrawn, "{}", daemon.log_text());
    assert!(daemon.log_text().contains("parent view changed"));
    let at_rest = wait_until(Duration::from_secs(10), || {
        fs::read_to_string(&ledger).is_ok_and(|t| {
            t.lines().any(|l| {
                l.starts_with(CHILD) && l.split_whitespace().nth(1) == Some("0000000000000000")
            })
        })
    });
    assert!(at_rest, "{:?}", fs::read_to_string(&ledger));
    // No second NOTIFY for a removal.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(receiver.received().len(), 1);

    // A new KSK in the key directory (no human step besides it): rollover
    // wants its DS at the parent, so the CDS come back and, once Knot serves
    // them too, a second NOTIFY(CDS) goes out.
    let waits_before = daemon
        .log_text()
        .matches("NOTIFY waits for the nameservers to agree")
        .count();
    signzone::keygen(
        &side.root().join("children"),
        &["-f", "KSK", CHILD.trim_end_matches('.')],
    );
    let wanted = wait_until(Duration::from_secs(10), || {
        side.apex_lines().contains(" CDS ")
    });
    assert!(wanted, "{}", side.apex_lines());
    let reopened = wait_until(Duration::from_secs(10), || {
        daemon
            .log_text()
            .matches("NOTIFY waits for the nameservers to agree")
            .count()
            > waits_before
    });
    assert!(reopened, "{}", daemon.log_text());
    world.set_zone(CHILD, &side.apex_lines());
    let got = receiver.wait_for(2, Duration::from_secs(30));
    assert_eq!(got.len(), 2, "{got:?}\n{}", daemon.log_text());
    assert_eq!(check_notify(&got[1], CHILD), 59);
}

/// Issue 13 item 4: a round the safety brake holds sends no NOTIFY (the
/// reports that lead to one were made even when the round was held). Three
/// children, every KSK replaced at once: held, nothing reaches the parent's
/// scanner until `signalbox confirm`.
#[test]
fn a_held_round_notifies_no_parent() {
    if !ready() {
        return;
    }
    let receiver = NotifyReceiver::start(Ipv4Addr::new(127, 0, 0, 3), ReceiverMode::Answer);
    let parent_body = format!(
        "*._dsync TYPE66 {}\n",
        dsync(59, receiver.addr().port(), "scanner.test.")
    );
    let world = world(&parent_body, "");
    let zones = [CHILD, "two.parent.test.", "three.parent.test."];
    let side = Side::new(&world, &zones, "always", IMMEDIATE);
    // A limit the old rule also enforced (one child per round), so this
    // is about the NOTIFYs, not the limit.
    let mut text = fs::read_to_string(&side.config).expect("config");
    text.push_str("\n[safety]\nmin_changes = 1\n");
    fs::write(&side.config, text).expect("config");
    let addr = SocketAddr::new([127, 0, 0, 2].into(), world.auth().port());
    let daemon = Serve::start(&side.config, addr, SIGNAL);
    let got = receiver.wait_for(3, Duration::from_secs(30));
    assert_eq!(got.len(), 3, "{got:?}\n{}", daemon.log_text());

    let children = side.root().join("children");
    for entry in fs::read_dir(&children).expect("children").flatten() {
        fs::remove_file(entry.path()).expect("remove");
    }
    for zone in zones {
        signzone::keygen(&children, &["-f", "KSK", zone.trim_end_matches('.')]);
    }
    let held = wait_until(Duration::from_secs(10), || {
        daemon.log_text().contains("SAFETY BRAKE")
    });
    assert!(held, "{}", daemon.log_text());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        receiver.received().len(),
        3,
        "no NOTIFY while the brake holds:\n{}",
        daemon.log_text()
    );

    let (code, out, err) = side.run(&["confirm"]);
    assert_eq!(code, 0, "{out}{err}");
    let got = receiver.wait_for(6, Duration::from_secs(30));
    assert_eq!(got.len(), 6, "{got:?}\n{}", daemon.log_text());
}

/// A NOTIFY receiver that acknowledges, a parent zone whose DSYNC points
/// at it for CDS, and signalbox's side for [`CHILD`] with `cds = "rollover"`;
/// the parent zone's body is returned to be extended (with DS) later.
pub(crate) fn rollover_world() -> (NotifyReceiver, String, ParentWorld, Side) {
    receiver_world(ReceiverMode::Answer, "rollover", "")
}

/// A NOTIFY receiver in `mode`, a parent zone whose wildcard DSYNC points
/// at it for CDS, and signalbox's side for [`CHILD`] (`cds`, `[notify]`
/// lines `notify`); with the parent zone's body.
fn receiver_world(
    mode: ReceiverMode,
    cds: &str,
    notify: &str,
) -> (NotifyReceiver, String, ParentWorld, Side) {
    let receiver = NotifyReceiver::start(Ipv4Addr::new(127, 0, 0, 3), mode);
    let parent_body = format!(
        "*._dsync TYPE66 {}\n",
        dsync(59, receiver.addr().port(), "scanner.test.")
    );
    let world = world(&parent_body, "");
    let side = Side::new(&world, &[CHILD], cds, notify);
    (receiver, parent_body, world, side)
}

pub(crate) fn wait_until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// RFC 9567 §6.1: with `[report] agent`, the NOTIFY carries the
/// Report-Channel EDNS option (code 18) naming the agent domain, as
/// dnspython reads it off the wire the receiver caught.
#[test]
fn a_notify_names_the_report_channel_as_dnspython_reads_it() {
    if !ready() {
        return;
    }
    let (receiver, _, _world, side) = receiver_world(ReceiverMode::Answer, "always", IMMEDIATE);
    let text = fs::read_to_string(&side.config).expect("config");
    fs::write(
        &side.config,
        format!("{text}\n[report]\nagent = \"Agent.Example.NET.\"\n"),
    )
    .expect("config");
    let (code, stdout, stderr) = side.run(&["notify", "--zone", CHILD]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let got = receiver.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "{got:?}");
    let n = &got[0];
    assert_eq!(
        (n.opcode, n.qr, n.aa, n.qdcount),
        (4, false, true, 1),
        "{n:?}"
    );
    assert_eq!((n.qname.as_str(), n.qtype), (CHILD, 59), "{n:?}");
    assert_eq!(
        (n.ancount, n.nscount, n.arcount),
        (0, 0, 1),
        "only an OPT record: {n:?}"
    );
    let wire = side.root().join("notify.bin");
    fs::write(&wire, &got[0].raw).expect("write");
    let script = r#"
import sys, dns.message, dns.name, dns.opcode
m = dns.message.from_wire(open(sys.argv[1], "rb").read())
assert dns.opcode.from_flags(m.flags) == dns.opcode.NOTIFY
options = [o for o in m.options if o.otype == 18]
assert len(options) == 1, m.options
data = options[0].to_wire() if hasattr(options[0], "to_wire") else options[0].data
name, used = dns.name.from_wire(data, 0)
assert used == len(data), (used, len(data))
print(m.edns, name.to_text())
"#;
    let (code, stdout, stderr) = output(
        std::process::Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(&wire),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "0 agent.example.net.", "{stdout}");
}
