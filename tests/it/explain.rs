//! `signalbox explain ZONE --json` on one child through a whole life, in
//! the parent world of [`crate::notify`] (Knot serving the parent and the
//! child, Unbound validating, a NOTIFY receiver as the parent's scanner):
//! bootstrap (signals out, NOTIFY acknowledged), the parent publishing DS
//! (`_dsboot` withdrawn), a second KSK whose activation is announced as the
//! next event, the rollover, KSK1 retired and the parent swapping DS. At
//! every step the explanation is checked against what the parent world and
//! the served signalling zone show, and the `[hooks] exec` program must have
//! been run for the parent's DS events (`ds-seen`, `ds-changed`).

use std::{fs, net::SocketAddr, os::unix::fs::PermissionsExt, path::Path, time::Duration};

use serde_json::Value;

use crate::{
    common::{
        serve::{Serve, query},
        signzone, *,
    },
    notify::{CHILD, SIGNAL, Side, ready, rollover_world, wait_until},
};

/// `explain --json` for the child, parsed.
fn explain(side: &Side) -> Value {
    let (code, stdout, stderr) = side.run(&["explain", CHILD, "--json"]);
    assert_eq!(code, 0, "explain failed: {stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Polls `explain` until `check` holds; returns the last explanation.
fn explain_until(side: &Side, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let ok = wait_until(Duration::from_secs(40), || {
        last = explain(side);
        check(&last)
    });
    assert!(ok, "explain never showed {what}:\n{last:#}");
    last
}

/// The key tag in a `Kname+alg+tag` stem.
fn tag_of(stem: &str) -> u64 {
    stem.rsplit('+')
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no tag in {stem}"))
}

fn tags(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn key(explained: &Value, tag: u64) -> &Value {
    explained["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["tag"].as_u64() == Some(tag)))
        .unwrap_or_else(|| panic!("no key {tag} in {explained:#}"))
}

fn cds_notify(explained: &Value) -> &Value {
    explained["notify"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["qtype"] == "CDS"))
        .unwrap_or_else(|| panic!("no CDS notify state in {explained:#}"))
}

fn dsboot(explained: &Value) -> &Value {
    &explained["published"][0]
}

/// A hook that appends `event zone ds` per event to `events.log`.
fn install_hook(root: &Path, config: &Path) -> std::path::PathBuf {
    let log = root.join("events.log");
    let hook = root.join("hook.sh");
    fs::write(
        &hook,
        format!(
            "#!/bin/sh\nprintf '%s %s %s\\n' \"$SIGNALBOX_EVENT\" \"$SIGNALBOX_ZONE\" \"$SIGNALBOX_DS\" >> '{}'\n",
            log.display()
        ),
    )
    .expect("hook");
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).expect("chmod");
    let text = fs::read_to_string(config).expect("config");
    fs::write(config, format!("{text}\n[hooks]\nexec = \"hook.sh\"\n")).expect("config");
    log
}

#[test]
fn explain_follows_a_child_through_bootstrap_and_a_ksk_rollover() {
    if !ready() || !tools(&["dnssec-dsfromkey"]) {
        return;
    }
    let (receiver, parent_body, mut world, side) = rollover_world();
    let events = install_hook(side.root(), &side.config);
    let ksk1 = tag_of(
        side.child_key
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("stem"),
    );
    // Knot serves the same CDS/CDNSKEY at once: the gate opens.
    world.set_zone(CHILD, &side.apex_lines());
    let addr = SocketAddr::new([127, 0, 0, 2].into(), world.auth().port());
    let daemon = Serve::start(&side.config, addr, SIGNAL);
    let dsboot_owner = format!("_dsboot.{CHILD}{SIGNAL}");

    // 1. Bootstrap: signals out, no DS, the NOTIFY(CDS) acknowledged.
    let got = receiver.wait_for(1, Duration::from_secs(30));
    assert_eq!(got.len(), 1, "{}", daemon.log_text());
    let e = explain_until(&side, "an acknowledged NOTIFY(CDS)", |e| {
        cds_notify(e)["last_sent"]["result"] == "acknowledged"
            && e["parent"]["source"] == "observer"
    });
    assert_eq!(e["zone"], CHILD);
    assert_eq!(e["state"], "bootstrapping", "{e:#}");
    // The parent's-eye check ran before the NOTIFY: Knot serves the CDS
    // unsigned, so a parent would refuse (RFC 7344 §4.1); with the default
    // gate ("consistent") that is reported here and in the log, not held.
    let check = &e["parent_check"];
    assert_eq!(
        (check["outcome"].as_str(), check["before"].as_str()),
        (Some("refused"), Some("CDS")),
        "{check:#}"
    );
    assert!(
        daemon
            .log_text()
            .contains("the parent would refuse; sending anyway"),
        "{}",
        daemon.log_text()
    );
    assert_eq!(e["held"], Value::Null);
    let k1 = key(&e, ksk1);
    assert_eq!(k1["role"], "KSK");
    assert_eq!(k1["phase"], "ready, DS not at parent");
    assert_eq!(k1["in_signals"], true);
    assert!(
        e["signals"]["cds"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    assert_eq!(dsboot(&e)["owner"], dsboot_owner.as_str());
    assert_eq!(dsboot(&e)["by"], "served");
    assert_eq!(dsboot(&e)["present"], true);
    assert_eq!(dsboot(&e)["current"], true);
    // The apex is Knot's (the operator's signer): signalbox neither writes
    // nor reads it, and says so.
    let apex = &e["published"][1];
    assert_eq!(
        (apex["kind"].as_str(), apex["by"].as_str()),
        (Some("apex"), Some("operator"))
    );
    assert_eq!(apex["present"], Value::Null, "{e:#}");
    let served = query(addr, &dsboot_owner, 59, false).expect("answer");
    assert!(!served.answers.is_empty(), "explain says served: it is");
    assert_eq!(e["parent"]["ds"], serde_json::json!([]));
    assert_eq!(cds_notify(&e)["owed_since"], Value::Null, "paid");
    assert!(
        cds_notify(&e)["last_sent"]["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("scanner.test.")),
        "{e:#}"
    );
    assert_eq!(e["next_event"], Value::Null, "no timing event ahead");
    // The text form tells the same.
    let (code, text, _) = side.run(&["explain", CHILD]);
    assert_eq!(code, 0);
    assert!(
        text.starts_with(&format!("{CHILD}: bootstrapping")),
        "{text}"
    );
    assert!(
        text.contains("last acknowledged to scanner.test."),
        "{text}"
    );

    // 2. The parent publishes KSK1's DS: in sync, the _dsboot withdrawn
    //    (RFC 9615 §5.1), and the hook hears ds-seen.
    let ds1 = signzone::dsfromkey(&side.child_key);
    world.set_zone("parent.test.", &format!("{parent_body}child DS {ds1}\n"));
    let e = explain_until(&side, "in_sync after the parent's DS", |e| {
        e["state"] == "in_sync" && dsboot(e)["present"] == false
    });
    assert_eq!(
        e["parent"]["ds"],
        serde_json::json!([format!("{ksk1}/13/2")])
    );
    assert_eq!(key(&e, ksk1)["phase"], "active, DS at parent");
    assert!(query(addr, &dsboot_owner, 59, false).is_some_and(|m| m.answers.is_empty()));
    let heard = wait_until(Duration::from_secs(10), || {
        fs::read_to_string(&events)
            .is_ok_and(|t| t.contains(&format!("ds-seen {CHILD} {ksk1}/13/2")))
    });
    assert!(
        heard,
        "{:?}\n{}",
        fs::read_to_string(&events),
        daemon.log_text()
    );

    // 3. KSK2, active in 6 s: explain names the event and what follows.
    let children = side.root().join("children");
    let stem2 = signzone::keygen(
        &children,
        &[
            "-f",
            "KSK",
            "-P",
            "now",
            "-A",
            "+6",
            CHILD.trim_end_matches('.'),
        ],
    );
    let ksk2 = tag_of(&stem2);
    let e = explain_until(&side, "KSK2's activation as the next event", |e| {
        e["next_event"]["events"]
            .as_array()
            .is_some_and(|ev| ev.iter().any(|x| x == &format!("KSK {ksk2} Activate")))
    });
    assert_eq!(e["state"], "in_sync", "not yet: {e:#}");
    assert_eq!(key(&e, ksk2)["phase"], "published, not active");
    assert_eq!(e["next_event"]["signals_change"], true, "{e:#}");
    assert!(tags(&e["next_event"]["signalled_keys_then"]).contains(&ksk2));
    assert_eq!(e["next_event"]["state_then"], "rolling");
    // The daemon wakes at the event by itself: rolling, KSK2 in the CDS.
    let e = explain_until(&side, "the rollover", |e| e["state"] == "rolling");
    assert_eq!(key(&e, ksk2)["in_signals"], true, "{e:#}");
    // A rollover is signalled at the apex only: the _dsboot stays withdrawn
    // once the parent has DS (RFC 9615 §5.1), and that is what is wanted.
    assert_eq!(dsboot(&e)["present"], false, "{e:#}");
    assert_eq!(dsboot(&e)["current"], true, "{e:#}");
    world.set_zone(CHILD, &side.apex_lines());
    let got = receiver.wait_for(2, Duration::from_secs(30));
    assert_eq!(got.len(), 2, "{}", daemon.log_text());
    let e = explain_until(&side, "the second NOTIFY acknowledged", |e| {
        cds_notify(e)["owed_since"].is_null()
            && cds_notify(e)["last_sent"]["result"] == "acknowledged"
    });
    assert_eq!(e["state"], "rolling");

    // 4. KSK1 retired (its files removed), then the parent swaps the DS.
    for ext in ["key", "private"] {
        let _ = fs::remove_file(side.child_key.with_extension(ext));
    }
    let e = explain_until(&side, "KSK1 gone", |e| {
        e["keys"].as_array().is_some_and(|k| k.len() == 1)
    });
    assert_eq!(
        e["state"], "rolling",
        "the parent still has KSK1's DS: {e:#}"
    );
    let ds2 = signzone::dsfromkey(&children.join(format!("{stem2}.key")));
    world.set_zone("parent.test.", &format!("{parent_body}child DS {ds2}\n"));
    let e = explain_until(&side, "in_sync on KSK2", |e| e["state"] == "in_sync");
    assert_eq!(
        e["parent"]["ds"],
        serde_json::json!([format!("{ksk2}/13/2")])
    );
    assert_eq!(key(&e, ksk2)["phase"], "active, DS at parent");
    let heard = wait_until(Duration::from_secs(10), || {
        fs::read_to_string(&events)
            .is_ok_and(|t| t.contains(&format!("ds-changed {CHILD} {ksk2}/13/2")))
    });
    assert!(
        heard,
        "{:?}\n{}",
        fs::read_to_string(&events),
        daemon.log_text()
    );
    // The log carries the same events, structured.
    let log = daemon.log_text();
    assert!(
        log.contains("event=\"ds-seen\"") || log.contains("event=ds-seen"),
        "{log}"
    );

    // Not a child: a clear error, exit 2.
    let (code, _, stderr) = side.run(&["explain", "nowhere.test."]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a child zone"), "{stderr}");
}

/// A child whose only key cannot be read is held: `explain` says why, the
/// metrics-facing count says so, the hook hears `zone-held`; once the key
/// reads, `zone-released` with the state it is released into.
#[test]
fn a_held_child_is_explained_and_its_hold_and_release_reach_the_hook() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let port = process::free_port();
    let config = crate::serve::write_config(root, port);
    crate::serve::signal_key(root);
    let children = root.join("children");
    crate::serve::many_children(&children, 2);
    let key = dnskey(257, 13, 77);
    write_key(&children, "held.example.", &key, &[]);
    let state = write_state(&children, "held.example.", &key, &["DSState: sideways"]);
    let events = install_hook(root, &config);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let daemon = Serve::start(&config, addr, "_signal.ns1.operator.test.");
    let run = |args: &[&str]| output(signalbox().args(args).arg("-c").arg(&config));

    let (code, out, err) = run(&["explain", "held.example.", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let e: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(e["state"], "held", "{e:#}");
    assert!(
        e["held"]
            .as_str()
            .is_some_and(|why| why.contains("cannot be read")),
        "{e:#}"
    );
    let (_, status, _) = run(&["status", "--json"]);
    let status: Value = serde_json::from_str(&status).expect("json");
    assert_eq!(status["children"]["held"], 1, "{status:#}");
    assert_eq!(status["children"]["bootstrapping"], 2, "{status:#}");
    let heard = wait_until(Duration::from_secs(10), || {
        fs::read_to_string(&events).is_ok_and(|t| t.contains("zone-held held.example."))
    });
    assert!(
        heard,
        "{:?}\n{}",
        fs::read_to_string(&events),
        daemon.log_text()
    );

    // The operator fixes the .state file: released, bootstrapping.
    fs::remove_file(&state).expect("rm .state");
    let released = wait_until(Duration::from_secs(10), || {
        fs::read_to_string(&events).is_ok_and(|t| t.contains("zone-released held.example."))
    });
    assert!(
        released,
        "{:?}\n{}",
        fs::read_to_string(&events),
        daemon.log_text()
    );
    let (_, out, _) = run(&["explain", "held.example.", "--json"]);
    let e: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(e["state"], "bootstrapping", "{e:#}");
    assert_eq!(e["held"], Value::Null, "{e:#}");
    let (_, status, _) = run(&["status", "--json"]);
    let status: Value = serde_json::from_str(&status).expect("json");
    assert_eq!(status["children"]["held"], 0, "{status:#}");
    assert_eq!(status["children"]["bootstrapping"], 3, "{status:#}");
}
