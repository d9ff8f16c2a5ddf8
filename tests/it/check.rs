//! `signalbox check` against real servers, in the parent world of
//! [`crate::notify`]: Knot serves the parent and the child (the child's
//! DNSKEY, CDS and CDNSKEY signed offline by `dnssec-signzone`), signalbox
//! serves the signalling zone `_signal.ns.other.test.`, now delegated
//! securely from `test.` so that Unbound validates the RFC 9615 signals.
//!
//! 1. no DS at the parent, consistent servers, validated signals: a
//!    bootstrap, authenticated, exit 0 (also under the `.cz` profile);
//!    then a second nameserver without a signal: refused, the signal named;
//! 2. the parent publishes the DS: nothing to do, exit 0;
//! 3. the CDS re-signed by the ZSK only: refused (RFC 7344 §4.1: not by a
//!    key the parent's DS points to), exit 1;
//! 4. a second nameserver in the delegation that does not serve the child:
//!    refused (RFC 9975 §3), exit 1, the server named;
//! 5. two Knot instances that disagree (a second Knot, on another loopback
//!    address, still serving the child without CDS): refused, the server
//!    and the RRset named.
//! 6. the delete form mixed with another CDS, served by the child's only
//!    nameserver (a third Knot loading the zone file as it is): refused
//!    (RFC 8078 §4).
//!
//! And a delegation whose only nameserver is inside the child: refused
//! where the signals are needed, an unauthenticated bootstrap under `.ch`.
//!
//! BIND's `named-compilezone`, which the harness compiles zones with,
//! refuses a zone with the delete form mixed in ("CDS/CDNSKEY consistency
//! checks failed"), so step 6 has Knot load its file directly. Registry
//! limits, expired signatures and the rest are unit-tested rule by rule in
//! `check::evaluate::tests`.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    process::Command,
};

use serde_json::Value;

use crate::{
    common::parent::{NotifyReceiver, ParentWorld, ReceiverMode, WorldSpec, ZoneSpec},
    common::{knot::Knot, process::run, serve::Serve, signzone, *},
    notify::{CHILD, SIGNAL, Side, dsync, ready, test_body},
};

/// `signalbox check --json` (with `extra` arguments): exit code and verdict.
fn check(side: &Side, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["check", "--zone", CHILD, "--json"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = side.run(&args);
    let verdict = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    (code, verdict)
}

/// `check --json` must refuse (exit 1); its findings, one per line.
fn refused(side: &Side) -> String {
    let (code, verdict) = check(side, &[]);
    assert_eq!(
        (code, verdict["outcome"].as_str()),
        (1, Some("refused")),
        "{verdict:#}"
    );
    findings(&verdict)
}

/// The delegation (`parent`, the parent zone's body) and the child's apex
/// NS get a second nameserver `ns` besides ns.other.test. (Knot serves the
/// parent and the child, so the NS set the parent side answers is the
/// child's apex NS.)
fn second_nameserver(
    world: &mut ParentWorld,
    side: &Side,
    cds_lines: &str,
    parent: &str,
    ns: &str,
) {
    world.set_zone("parent.test.", &format!("{parent}child NS {ns}\n"));
    let apex = signed_apex(world, side, cds_lines, false);
    world.set_zone(CHILD, &format!("{apex}{CHILD} NS {ns}\n"));
}

fn findings(verdict: &Value) -> String {
    verdict["findings"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|f| format!("{} {} ({})", f["severity"], f["message"], f["rule"]))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The child's apex as the harness writes it next (SOA with the next
/// serial, NS ns.other.test.) plus `cds_lines`, signed by `dnssec-signzone
/// -O full` with the side's KSK and a ZSK in `signer`: the DNSKEY, CDS and
/// CDNSKEY records with their RRSIGs, and the RRSIG over that SOA (Knot
/// treats a zone whose SOA is signed as signed and adds RRSIGs to its
/// answers). With `zsk_signs_cds`, the CDS and CDNSKEY signatures are the
/// ZSK's only (taken from a second run with `-z`, where every key signs
/// everything).
fn signed_apex(world: &ParentWorld, side: &Side, cds_lines: &str, zsk_signs_cds: bool) -> String {
    signed_apex_at(world, side, "ns.other.test.", cds_lines, zsk_signs_cds)
}

/// [`signed_apex`] for a child whose only nameserver is `ns`.
fn signed_apex_at(
    world: &ParentWorld,
    side: &Side,
    ns: &str,
    cds_lines: &str,
    zsk_signs_cds: bool,
) -> String {
    let ksk_tag = zsk_signs_cds.then(|| {
        side.child_key
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.rsplit('+').next())
            .and_then(|t| t.parse::<u16>().ok())
            .expect("KSK tag")
    });
    signed_child(world, &side.root().join("signer"), ns, cds_lines, ksk_tag)
}

/// The child's apex as the harness writes it next (SOA with the next
/// serial, NS `ns`) plus `cds_lines`, signed by `dnssec-signzone -O full`
/// with the keys in `signer`: the DNSKEY, CDS and CDNSKEY records with
/// their RRSIGs, and the RRSIG over that SOA. With `zsk_signs_cds` (the
/// KSK's tag), the CDS and CDNSKEY signatures are all but that KSK's.
pub(crate) fn signed_child(
    world: &ParentWorld,
    signer: &std::path::Path,
    ns: &str,
    cds_lines: &str,
    zsk_signs_cds: Option<u16>,
) -> String {
    let serial: u32 = world
        .records(CHILD, CHILD, "SOA")
        .first()
        .and_then(|soa| soa.split_whitespace().nth(2).and_then(|s| s.parse().ok()))
        .expect("the child's SOA serial");
    let zone = signer.join("child.zone");
    fs::write(
        &zone,
        format!(
            "{CHILD} 300 IN SOA {ns} hostmaster.{CHILD} {} 3600 600 86400 300\n{CHILD} 300 IN NS {ns}\n{cds_lines}",
            serial + 1
        ),
    )
    .expect("zone");
    let sign = |all_keys: bool| -> String {
        let out = signer.join(if all_keys {
            "all.signed"
        } else {
            "child.signed"
        });
        let mut cmd = Command::new("dnssec-signzone");
        cmd.args(["-S", "-O", "full", "-K"]).arg(signer);
        if all_keys {
            cmd.arg("-z");
        }
        cmd.arg("-d")
            .arg(signer)
            .args(["-o", CHILD, "-f"])
            .arg(&out)
            .arg(&zone);
        let (code, stdout, stderr) = run(&mut cmd);
        assert_eq!(code, 0, "dnssec-signzone: {stdout}{stderr}");
        fs::read_to_string(out).expect("signed zone")
    };
    // (record type, type covered by an RRSIG) of a line at the apex.
    let kind = |line: &str| -> Option<(String, String)> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.first() == Some(&CHILD) && fields.len() > 4)
            .then(|| (fields[3].to_string(), fields[4].to_string()))
    };
    let wanted = |line: &str, cds_signatures: bool| -> bool {
        match kind(line) {
            Some((t, covered)) if t == "RRSIG" => {
                let cds = matches!(covered.as_str(), "CDS" | "CDNSKEY");
                if cds_signatures {
                    cds
                } else {
                    cds || matches!(covered.as_str(), "DNSKEY" | "SOA")
                }
            }
            Some((t, _)) => !cds_signatures && matches!(t.as_str(), "DNSKEY" | "CDS" | "CDNSKEY"),
            None => false,
        }
    };
    let normal = sign(false);
    let mut lines: Vec<&str> = normal.lines().filter(|l| wanted(l, false)).collect();
    let everything;
    if let Some(ksk_tag) = zsk_signs_cds {
        lines.retain(|l| !wanted(l, true));
        everything = sign(true);
        lines.extend(everything.lines().filter(|l| {
            wanted(l, true)
                && l.split_whitespace()
                    .nth(10)
                    .and_then(|t| t.parse::<u16>().ok())
                    != Some(ksk_tag)
        }));
    }
    lines.join("\n") + "\n"
}

/// The child's signer: the side's KSK and a new ZSK in `side/signer`;
/// returns the CDS and CDNSKEY lines signalbox computes for the child.
fn signer(side: &Side) -> String {
    let signer = side.root().join("signer");
    fs::create_dir_all(&signer).expect("mkdir");
    for ext in ["key", "private"] {
        let from = side.child_key.with_extension(ext);
        fs::copy(&from, signer.join(from.file_name().expect("name"))).expect("copy KSK");
    }
    signzone::keygen(&signer, &[CHILD.trim_end_matches('.')]);
    side.apex_lines()
        .lines()
        .filter(|l| l.contains(" CDS ") || l.contains(" CDNSKEY "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The world of these tests: Knot serves `test.`, `parent.test.` (with
/// `parent_body`) and the child (unsigned, NS ns.other.test.); signalbox's
/// side for the child (`[notify]` lines `notify`), and the daemon serving
/// the signalling zone, delegated securely from `test.` so that Unbound
/// validates the RFC 9615 signals.
struct SignalWorld {
    world: ParentWorld,
    side: Side,
    daemon: Serve,
    /// The signalling zone's delegation lines in `test.`.
    delegation: String,
}

fn signal_world(parent_body: &str, notify: &str) -> SignalWorld {
    let mut world = ParentWorld::start(&WorldSpec {
        zones: vec![
            ZoneSpec::signed("test.", &test_body("")),
            ZoneSpec::signed("parent.test.", parent_body),
            ZoneSpec::unsigned(CHILD, "").with_ns(&["ns.other.test."]),
        ],
        stubs_elsewhere: vec![(SIGNAL.to_string(), [127, 0, 0, 2].into())],
    });
    let side = Side::new(&world, &[CHILD], "always", notify);
    let signal_key = fs::read_dir(side.root().join("signal"))
        .expect("signal keys")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "key"))
        .expect("the signalling zone's KSK");
    let signal_ds = signzone::dsfromkey(&signal_key);
    let signal_label = SIGNAL.trim_end_matches(".test.");
    let delegation =
        format!("{signal_label} NS ns1.operator.test.\n{signal_label} DS {signal_ds}\n");
    world.set_zone("test.", &test_body(&delegation));
    let addr = SocketAddr::new([127, 0, 0, 2].into(), world.auth().port());
    let daemon = Serve::start(&side.config, addr, SIGNAL);
    SignalWorld {
        world,
        side,
        daemon,
        delegation,
    }
}

#[test]
fn check_predicts_the_parents_verdict_against_knot_and_unbound() {
    if !ready() || !tools(&["dnssec-signzone", "dnssec-dsfromkey"]) {
        return;
    }
    let parent_body = format!("*._dsync TYPE66 {}\n", dsync(59, 9, "scanner.test."));
    let SignalWorld {
        mut world,
        side,
        daemon,
        delegation,
    } = signal_world(&parent_body, "");

    let cds_lines = signer(&side);
    // The child as it was (no CDS, unsigned): what a lagging second
    // nameserver serves in step 5.
    let stale = side.root().join("stale-child.zone");
    fs::copy(world.zone_file(CHILD), &stale).expect("copy the child's zone file");
    world.set_zone(CHILD, &signed_apex(&world, &side, &cds_lines, false));

    // 1. A bootstrap the parent accepts, authenticated by the signal.
    let mut verdict = Value::Null;
    let authenticated = crate::notify::wait_until(std::time::Duration::from_secs(30), || {
        let (code, v) = check(&side, &[]);
        verdict = v;
        code == 0 && verdict["authenticated"] == true
    });
    assert!(authenticated, "{verdict:#}\n{}", daemon.log_text());
    assert_eq!(verdict["outcome"], "bootstrap", "{verdict:#}");
    assert_eq!(
        verdict["findings"],
        serde_json::json!([]),
        "{}",
        findings(&verdict)
    );
    let asked = verdict["asked"].as_array().map_or(0, Vec::len);
    assert_eq!(asked, 2, "ns.other.test. over UDP and TCP: {verdict:#}");
    let (code, cz) = check(&side, &["--profile", "cz"]);
    assert_eq!(
        (code, cz["outcome"].as_str()),
        (0, Some("bootstrap")),
        "{cz:#}"
    );
    let (code, text, _) = side.run(&["check", "--zone", CHILD]);
    assert_eq!(code, 0);
    assert!(
        text.contains("verdict: bootstrap will be accepted"),
        "{text}"
    );
    let (code, text, _) = side.run(&["check", "--all"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("{CHILD}: bootstrap will be accepted"))
            && text.contains("; 1 children: 1 bootstrap"),
        "{text}"
    );
    let (code, _, stderr) = side.run(&["check"]);
    assert_eq!(code, 2, "--zone or --all is required: {stderr}");

    // 1b. A second nameserver (the same Knot, so the servers agree) under
    //     which no signal exists: the bootstrap is refused, that signal named.
    world.set_zone(
        "test.",
        &test_body(&format!("{delegation}ns2.other A 127.0.0.1\n")),
    );
    second_nameserver(
        &mut world,
        &side,
        &cds_lines,
        &parent_body,
        "ns2.other.test.",
    );
    let all = refused(&side);
    assert!(
        all.contains(&format!(
            "_dsboot.{CHILD}_signal.ns2.other.test.: its CDS RRset (0 records)"
        )) && all.contains("RFC 9615 §4.2")
            && !all.contains("RFC 9975"),
        "{all}"
    );
    world.set_zone("test.", &test_body(&delegation));
    world.set_zone("parent.test.", &parent_body);
    world.set_zone(CHILD, &signed_apex(&world, &side, &cds_lines, false));

    // 2. The parent publishes the DS: nothing left to do.
    let ds = signzone::dsfromkey(&side.child_key);
    world.set_zone("parent.test.", &format!("{parent_body}child DS {ds}\n"));
    let (code, verdict) = check(&side, &[]);
    assert_eq!(
        (code, verdict["outcome"].as_str()),
        (0, Some("nothing-to-do")),
        "{verdict:#}"
    );

    // 3. The CDS signed by the ZSK only: the parent cannot tie it to its DS.
    world.set_zone(CHILD, &signed_apex(&world, &side, &cds_lines, true));
    let all = refused(&side);
    assert!(
        all.contains("not signed by a key the parent's current DS points to"),
        "{all}"
    );
    assert!(all.contains("ZSKs only"), "{all}");

    // 4. A second nameserver (signalbox's address) that does not serve the
    //    child: the parent's scan aborts.
    second_nameserver(
        &mut world,
        &side,
        &cds_lines,
        &format!("{parent_body}child DS {ds}\n"),
        "ns1.operator.test.",
    );
    let all = refused(&side);
    assert!(
        all.contains("ns1.operator.test. 127.0.0.2") && all.contains("RFC 9975 §3"),
        "{all}"
    );

    // 5. Two Knot instances that disagree: ns2.other.test. (127.0.0.4, a
    //    second Knot on the same port) still serves the child without CDS.
    let ns2 = SocketAddr::new([127, 0, 0, 4].into(), world.auth().port());
    let _knot2 = Knot::start_at(side.root(), ns2, &[(CHILD, stale.as_path())]);
    world.set_zone(
        "test.",
        &test_body(&format!("{delegation}ns2.other A 127.0.0.4\n")),
    );
    second_nameserver(
        &mut world,
        &side,
        &cds_lines,
        &format!("{parent_body}child DS {ds}\n"),
        "ns2.other.test.",
    );
    let all = refused(&side);
    assert!(
        all.contains("ns2.other.test. 127.0.0.4")
            && all.contains("serves another CDS RRset")
            && all.contains("RFC 9975 §3"),
        "{all}"
    );

    // 6. The delete form mixed with the other CDS, served alike by the
    //    child's only nameserver (a third Knot, loading the file as it is:
    //    BIND's tools refuse to compile such a zone).
    let mixed = side.root().join("mixed-child.zone");
    fs::write(
        &mixed,
        format!(
            "{CHILD} 300 IN SOA ns.other.test. hostmaster.{CHILD} 1 3600 600 86400 300\n\
             {CHILD} 300 IN NS ns.other.test.\n\
             {CHILD} 300 IN DNSKEY {}\n\
             {CHILD} 300 IN CDS 0 0 0 00\n{cds_lines}",
            signzone::dnskey_rdata(&side.child_key)
        ),
    )
    .expect("write the mixed zone");
    let ns3 = SocketAddr::new([127, 0, 0, 5].into(), world.auth().port());
    let _knot3 = Knot::start_at(side.root(), ns3, &[(CHILD, mixed.as_path())]);
    world.set_zone(
        "test.",
        &format!(
            "ns.other A 127.0.0.5\nns1.operator A 127.0.0.2\nscanner A 127.0.0.3\n{delegation}"
        ),
    );
    // (Knot on 127.0.0.1 hosts the parent and the child, so the NS set the
    // parent side answers is that child's apex NS: one nameserver again.)
    world.set_zone("parent.test.", &format!("{parent_body}child DS {ds}\n"));
    world.set_zone(CHILD, &signed_apex(&world, &side, &cds_lines, false));
    let all = refused(&side);
    assert!(
        all.contains("\"error\" \"the delete form is mixed with other records")
            && all.contains("RFC 8078 §4"),
        "{all}"
    );
    assert!(!all.contains("RFC 9975"), "one server, consistent: {all}");
}

/// A delegation whose only nameserver is inside the child: no RFC 9615
/// signal can authenticate its first DS. A parent that needs the signals
/// refuses (exit 1); `.ch` bootstraps it unauthenticated after its wait.
#[test]
fn an_in_bailiwick_only_delegation_is_not_bootstrappable_by_signals() {
    if !ready() || !tools(&["dnssec-signzone"]) {
        return;
    }
    const NS: &str = "ns1.child.parent.test.";
    let parent_body = format!("*._dsync TYPE66 {}\n", dsync(59, 9, "scanner.test."));
    let mut world = ParentWorld::start(&WorldSpec {
        zones: vec![
            ZoneSpec::signed("test.", &test_body("")),
            ZoneSpec::signed("parent.test.", &parent_body),
            ZoneSpec::unsigned(CHILD, "").with_ns(&[NS]),
        ],
        ..WorldSpec::default()
    });
    let side = Side::new(&world, &[CHILD], "always", "");
    let cds_lines = signer(&side);
    world.set_zone(CHILD, &signed_apex_at(&world, &side, NS, &cds_lines, false));
    let (code, verdict) = check(&side, &[]);
    assert_eq!(
        (code, verdict["outcome"].as_str()),
        (1, Some("refused")),
        "{verdict:#}"
    );
    assert_eq!(
        verdict["asked"][0],
        format!("{NS} 127.0.0.1:{} udp", world.auth().port())
    );
    let all = findings(&verdict);
    assert!(
        all.contains("every nameserver is inside the child"),
        "{all}"
    );
    let (code, ch) = check(&side, &["--profile", "ch"]);
    assert_eq!(
        (code, ch["outcome"].as_str()),
        (0, Some("bootstrap")),
        "{ch:#}"
    );
    assert_eq!(ch["authenticated"], false);
    assert!(ch["expected_by"].is_string(), "{ch:#}");
}

/// The daemon with `[notify] gate = "parent"`: the servers agree on the
/// CDS/CDNSKEY, but the child's apex is not signed, so the parent would
/// refuse (RFC 7344 §4.1) and the NOTIFY(CDS) waits, as `explain` says;
/// once the apex is signed (and the signal validates), the check passes
/// and the NOTIFY goes out, the verdict a bootstrap.
#[test]
fn the_parent_gate_holds_a_notify_the_parent_would_refuse() {
    if !ready() || !tools(&["dnssec-signzone", "dnssec-dsfromkey"]) {
        return;
    }
    let receiver = NotifyReceiver::start(Ipv4Addr::new(127, 0, 0, 3), ReceiverMode::Answer);
    let parent_body = format!(
        "*._dsync TYPE66 {}\n",
        dsync(59, receiver.addr().port(), "scanner.test.")
    );
    let SignalWorld {
        mut world,
        side,
        daemon,
        ..
    } = signal_world(&parent_body, "gate = \"parent\"");
    let cds_lines = signer(&side);

    // The same CDS/CDNSKEY as signalbox wants, unsigned.
    world.set_zone(CHILD, &side.apex_lines());
    let mut explained = Value::Null;
    let waits = crate::notify::wait_until(std::time::Duration::from_secs(30), || {
        explained = explain(&side);
        explained["notify"][0]["waiting_for_acceptance"] == true
    });
    assert!(waits, "{explained:#}\n{}", daemon.log_text());
    let check = &explained["parent_check"];
    assert_eq!(
        (check["outcome"].as_str(), check["before"].as_str()),
        (Some("refused"), Some("CDS")),
        "{check:#}"
    );
    assert_eq!(check["profile"], "generic");
    assert!(
        findings(check).contains("RFC 7344 §4.1"),
        "{}",
        findings(check)
    );
    assert_eq!(explained["notify"][0]["waiting_for_agreement"], false);
    let log = daemon.log_text();
    assert!(
        log.contains("the parent would refuse; the NOTIFY(CDS) waits")
            && log.contains("NOTIFY waits for the parent's acceptance"),
        "{log}"
    );
    assert!(receiver.received().is_empty(), "nothing sent while refused");
    let (code, text, _) = side.run(&["notify", "--zone", CHILD, "--dry-run"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("; parent check (profile generic): refused") && text.contains("nothing sent"),
        "{text}"
    );

    // Signed: the parent would bootstrap, authenticated by the signal.
    world.set_zone(CHILD, &signed_apex(&world, &side, &cds_lines, false));
    let got = receiver.wait_for(1, std::time::Duration::from_secs(60));
    assert_eq!(got.len(), 1, "{}", daemon.log_text());
    let explained = explain(&side);
    let check = &explained["parent_check"];
    assert_eq!(
        (check["outcome"].as_str(), check["authenticated"].as_bool()),
        (Some("bootstrap"), Some(true)),
        "{check:#}"
    );
    assert_eq!(explained["notify"][0]["waiting_for_acceptance"], false);
}

/// `explain --json` for the child, parsed.
fn explain(side: &Side) -> Value {
    let (code, stdout, stderr) = side.run(&["explain", CHILD, "--json"]);
    assert_eq!(code, 0, "explain: {stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}
