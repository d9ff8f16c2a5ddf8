//! `foreign_from` (RFC 8901 model 2) against a real second provider: Knot
//! serves the child signed with provider B's own keys (by
//! `dnssec-signzone`), and the parent already has B's DS; signalbox is
//! provider A, joining, with its KSK in a key directory. Its CDS must be
//! the union of both providers' KSKs, each DS as `dnssec-dsfromkey`
//! computes it:
//!
//! 1. B's DNSKEY RRset not signed: nothing is published for the child (a
//!    CDS without B's key would ask the parent to drop B's DS); `explain`
//!    says it waits;
//! 2. B signs with the KSK the parent's DS points to: the CDS holds A's
//!    and B's KSKs;
//! 3. an RRset signed by a key nothing vouches for (what a spoofer would
//!    serve): refused, the keys last validated stay, also across a
//!    restart (`state/foreign-keys.state`);
//! 4. B rolls its KSK (new and old sign together, then the old goes): the
//!    CDS follows, the new key believed through the old.

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

use crate::{
    check::signed_child,
    common::{
        parent::{ParentWorld, WorldSpec, ZoneSpec},
        serve::{Serve, query},
        signzone, *,
    },
    notify::{CHILD, SIGNAL, ready, test_body, wait_until},
};

/// signalbox's config: the child as a `[[zone]]` fetching B's keys.
fn config(root: &Path, world: &ParentWorld) -> PathBuf {
    let port = world.auth().port();
    let path = root.join("signalbox.toml");
    fs::write(
        &path,
        format!(
            r#"version = 1
[[zone]]
name = "{CHILD}"
keys = "children"
nameservers = ["ns.other.test."]
cds = "always"
signal_ttl = "1s"
foreign_from = ["ns.other.test."]
foreign_refresh = "1s"

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

[parent]
poll_interval = "1s"
"#,
            resolver = world.resolver(),
        ),
    )
    .expect("write config");
    path
}

/// The DS RDATA (`tag alg 2 HEX`) of every CDS `explain` shows wanted.
fn wanted_ds(explained: &Value) -> Vec<String> {
    let mut ds: Vec<String> = explained["signals"]["cds"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(Value::as_str)
                .map(|l| signzone::ds_rdata(&l.replace(" CDS ", " DS ")))
                .collect()
        })
        .unwrap_or_default();
    ds.sort();
    ds
}

fn explain(config: &Path) -> Value {
    let (code, stdout, stderr) = output(
        signalbox()
            .args(["explain", CHILD, "--json", "-c"])
            .arg(config),
    );
    assert_eq!(code, 0, "explain: {stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The number of CDS records served at the child's `_dsboot` owner.
fn served_cds(addr: SocketAddr) -> usize {
    query(addr, &format!("_dsboot.{CHILD}{SIGNAL}"), 59, false).map_or(0, |m| m.answers.len())
}

/// A key directory for provider B's zone signing: a KSK and a ZSK; the
/// KSK's `.key` file.
fn signer_dir(root: &Path, name: &str) -> (PathBuf, PathBuf) {
    let dir = root.join(name);
    fs::create_dir_all(&dir).expect("mkdir");
    let label = CHILD.trim_end_matches('.');
    let ksk = dir.join(format!(
        "{}.key",
        signzone::keygen(&dir, &["-f", "KSK", label])
    ));
    signzone::keygen(&dir, &[label]);
    (dir, ksk)
}

fn sorted(mut ds: Vec<String>) -> Vec<String> {
    ds.sort();
    ds
}

#[test]
fn the_cds_is_the_union_of_both_providers_ksks_fetched_and_believed() {
    if !ready() || !tools(&["dnssec-signzone", "dnssec-dsfromkey"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let label = CHILD.trim_end_matches('.');
    let (children, signal) = (root.join("children"), root.join("signal"));
    for d in [&children, &signal] {
        fs::create_dir_all(d).expect("mkdir");
    }
    let ours = children.join(format!(
        "{}.key",
        signzone::keygen(&children, &["-f", "KSK", label])
    ));
    signzone::keygen(&signal, &["-f", "KSK", SIGNAL.trim_end_matches('.')]);
    let (b, b_ksk) = signer_dir(root, "b");
    let mut world = ParentWorld::start(&WorldSpec {
        zones: vec![
            ZoneSpec::signed("test.", &test_body("")),
            ZoneSpec::signed("parent.test.", ""),
            ZoneSpec::unsigned(CHILD, "").with_ns(&["ns.other.test."]),
        ],
        ..WorldSpec::default()
    });
    let config = config(root, &world);
    let addr = SocketAddr::new([127, 0, 0, 2].into(), world.auth().port());
    let unsigned = format!("{CHILD} DNSKEY {}\n", signzone::dnskey_rdata(&b_ksk));

    // 1. B's DNSKEY RRset unsigned: the child waits, nothing published.
    world.set_zone(CHILD, &unsigned);
    let mut daemon = Serve::start(&config, addr, SIGNAL);
    let refused = wait_until(Duration::from_secs(20), || {
        daemon
            .log_text()
            .contains("could not be fetched (the zone waits: nothing validated yet)")
    });
    assert!(refused, "{}", daemon.log_text());
    assert!(
        daemon
            .log_text()
            .contains("no current signature over the DNSKEY RRset verifies"),
        "{}",
        daemon.log_text()
    );
    assert_eq!(served_cds(addr), 0, "nothing published while waiting");
    let e = explain(&config);
    assert!(
        e["held"]
            .as_str()
            .is_some_and(|h| h.contains("waiting for the other providers' keys")),
        "{e:#}"
    );

    // 2. B signs, but nothing vouches for its key yet: still waiting. Then
    //    the parent publishes B's DS (B serves the zone securely, A joins):
    //    A's and B's KSKs.
    world.set_zone(CHILD, &signed_child(&world, &b, "ns.other.test.", "", None));
    let untrusted = wait_until(Duration::from_secs(20), || {
        daemon
            .log_text()
            .contains("no DS at the parent points to it")
    });
    assert!(untrusted, "{}", daemon.log_text());
    assert_eq!(served_cds(addr), 0, "nothing published while untrusted");
    world.set_zone(
        "parent.test.",
        &format!("child DS {}\n", signzone::dsfromkey(&b_ksk)),
    );
    let both = sorted(vec![
        signzone::dsfromkey(&ours),
        signzone::dsfromkey(&b_ksk),
    ]);
    let mut e = Value::Null;
    let joined = wait_until(Duration::from_secs(20), || {
        e = explain(&config);
        wanted_ds(&e) == both
    });
    assert!(joined, "{e:#}\n{}", daemon.log_text());
    assert!(
        e["decisions"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["why"]
                .as_str()
                .is_some_and(|w| w.contains("foreign_from")))),
        "{e:#}"
    );
    assert_eq!(e["held"], Value::Null);
    let (code, text, _) = output(
        signalbox()
            .args(["signals", "--zone", CHILD, "-c"])
            .arg(&config),
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("other providers' KSKs (state/foreign-keys.state"),
        "signals reads what the daemon validated: {text}"
    );

    // 3. An RRset signed by a key nothing vouches for: refused, the keys
    //    last validated stay, also across a restart.
    let (stranger, _) = signer_dir(root, "stranger");
    world.set_zone(
        CHILD,
        &signed_child(&world, &stranger, "ns.other.test.", "", None),
    );
    let kept = wait_until(Duration::from_secs(20), || {
        let log = daemon.log_text();
        log.contains("could not be fetched (the keys last validated stay)")
            && log.contains("no DS at the parent points to it")
    });
    assert!(kept, "{}", daemon.log_text());
    assert_eq!(wanted_ds(&explain(&config)), both);
    daemon.kill();
    drop(daemon);
    let daemon = Serve::start(&config, addr, SIGNAL);
    let restored = wait_until(Duration::from_secs(20), || {
        let log = daemon.log_text();
        log.contains("as last validated (restored)")
            && log.contains("could not be fetched (the keys last validated stay)")
    });
    assert!(restored, "{}", daemon.log_text());
    assert_eq!(wanted_ds(&explain(&config)), both, "{}", daemon.log_text());

    // 4. B rolls its KSK: the new one signs beside the old, then the old
    //    goes; the new one is believed through the old.
    let b_ksk2 = b.join(format!(
        "{}.key",
        signzone::keygen(&b, &["-f", "KSK", label])
    ));
    world.set_zone(CHILD, &signed_child(&world, &b, "ns.other.test.", "", None));
    let three = sorted(vec![
        signzone::dsfromkey(&ours),
        signzone::dsfromkey(&b_ksk),
        signzone::dsfromkey(&b_ksk2),
    ]);
    let rolling = wait_until(Duration::from_secs(20), || {
        e = explain(&config);
        wanted_ds(&e) == three
    });
    assert!(rolling, "{e:#}\n{}", daemon.log_text());
    for ext in ["key", "private"] {
        fs::remove_file(b_ksk.with_extension(ext)).expect("remove B's old KSK");
    }
    world.set_zone(CHILD, &signed_child(&world, &b, "ns.other.test.", "", None));
    let rolled = sorted(vec![
        signzone::dsfromkey(&ours),
        signzone::dsfromkey(&b_ksk2),
    ]);
    let followed = wait_until(Duration::from_secs(20), || {
        e = explain(&config);
        wanted_ds(&e) == rolled
    });
    assert!(followed, "{e:#}\n{}", daemon.log_text());
}
