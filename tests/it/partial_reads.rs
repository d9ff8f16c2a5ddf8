//! Partial reads are not deletions (issue 13 item 5), against a real
//! `signalbox serve`: a key directory renamed away (while a writer still
//! touches its files), replaced by a file, made unreadable (chmod 000, only
//! when not root), or missing when the daemon starts keeps every served
//! `_dsboot` CDS/CDNSKEY exactly as it was, `status` names the held
//! directory, and once the directory is back (with a changed key) the
//! change is served. Too few children for the safety brake (its floor is
//! 100) to be what keeps them.

use std::{
    fs,
    net::SocketAddr,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::common::{process::free_port, serve::*, signzone, *};

const APEX: &str = "_signal.ns1.operator.test.";
const CHILDREN: [&str; 3] = ["c0.example.", "c1.example.", "c2.example."];

/// A config for the children in `root/children` and the signalling zone
/// keyed in `root/signal`; rescans are hourly, so only the watch and the
/// held-directory poll can see a change.
fn config(root: &Path, port: u16) -> PathBuf {
    let path = root.join("signalbox.toml");
    let text = format!(
        r#"version = 1
[[zones]]
keys = "children"
nameservers = ["ns1.operator.test."]
cds = "always"
signal_ttl = "1s"

[[signaling_zone]]
apex = "{APEX}"
keys = "signal"
nameservers = ["ns1.operator.test."]

[server]
listen = ["127.0.0.1:{port}"]

[state]
dir = "state"

[watch]
rescan_interval = "1h"
poll_interval = "1s"
"#
    );
    fs::write(&path, text).expect("write config");
    path
}

/// The signalling zone's key, and one KSK per child.
fn setup(root: &Path) -> PathBuf {
    let signal = root.join("signal");
    fs::create_dir_all(&signal).expect("mkdir");
    signzone::keygen(&signal, &["-f", "KSK", APEX.trim_end_matches('.')]);
    let children = root.join("children");
    fs::create_dir_all(&children).expect("mkdir");
    for (i, child) in CHILDREN.iter().enumerate() {
        write_key(&children, child, &dnskey(257, 13, i as u8), &[]);
    }
    children
}

/// Every child's `_dsboot` CDS and CDNSKEY, as served.
fn signals(addr: SocketAddr) -> Vec<Vec<Vec<u8>>> {
    CHILDREN
        .iter()
        .flat_map(|child| {
            let owner = format!("_dsboot.{child}{APEX}");
            [
                answer_rdatas(addr, &owner, 59),
                answer_rdatas(addr, &owner, 60),
            ]
        })
        .collect()
}

/// Polls until `ready`, at most `within`.
fn wait_until(within: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ready()
}

fn status(cfg: &Path) -> String {
    let (code, out, err) = output(signalbox().arg("status").arg("-c").arg(cfg));
    assert_eq!(code, 0, "{out}{err}");
    out
}

/// Asserts the served signals stay `before` for a while (rounds, polls).
fn assert_kept(server: &Serve, before: &[Vec<Vec<u8>>], what: &str) {
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        before.iter().all(|s| !s.is_empty()),
        "every child had signals"
    );
    assert_eq!(
        signals(server.addr),
        before,
        "{what}: the served signals changed:\n{}",
        server.log_text()
    );
}

/// A second KSK for c1 in `dir`: its CDS set grows from one to two.
fn add_key_for_c1(dir: &Path) {
    write_key(dir, CHILDREN[1], &dnskey(257, 13, 77), &[]);
}

/// Waits until c1's second CDS is served (the directory read again).
fn assert_change_served(server: &Serve, cfg: &Path) {
    let owner = format!("_dsboot.{}{APEX}", CHILDREN[1]);
    assert!(
        wait_until(Duration::from_secs(15), || answer_rdatas(server.addr, &owner, 59).len() == 2),
        "the changed key was not served once the directory was back:\n{}",
        server.log_text()
    );
    let text = status(cfg);
    assert!(!text.contains("HELD"), "{text}");
}

fn start(root: &Path) -> (Serve, PathBuf) {
    let port = free_port();
    let cfg = config(root, port);
    let server = Serve::start(&cfg, SocketAddr::from(([127, 0, 0, 1], port)), APEX);
    let owner = format!("_dsboot.{}{APEX}", CHILDREN[2]);
    assert!(
        wait_until(Duration::from_secs(10), || !answer_rdatas(server.addr, &owner, 59).is_empty()),
        "{}",
        server.log_text()
    );
    (server, cfg)
}

#[test]
fn a_renamed_key_directory_keeps_its_signals_until_it_is_back() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let children = setup(root);
    let (server, cfg) = start(root);
    let before = signals(server.addr);

    let away = root.join("children.away");
    fs::rename(&children, &away).expect("rename");
    // Something still writes in the moved directory: its watch reports
    // the files under the old path, where they are "not found".
    for (i, child) in CHILDREN.iter().enumerate() {
        write_key(&away, child, &dnskey(257, 13, i as u8), &[]);
    }
    assert_kept(&server, &before, "directory renamed away");
    let text = status(&cfg);
    assert!(
        text.contains(&format!("key directory {}: HELD since", children.display())),
        "{text}"
    );

    add_key_for_c1(&away);
    fs::rename(&away, &children).expect("rename back");
    assert_change_served(&server, &cfg);
}

#[test]
fn a_key_directory_replaced_by_a_file_keeps_its_signals_until_a_directory_is_back() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let children = setup(root);
    let (server, cfg) = start(root);
    let before = signals(server.addr);

    let away = root.join("children.away");
    fs::rename(&children, &away).expect("rename");
    fs::write(&children, "not a directory\n").expect("file");
    assert_kept(&server, &before, "directory replaced by a file");
    let text = status(&cfg);
    assert!(text.contains("HELD since") && text.contains("not a directory"), "{text}");

    // A new directory (a new inode the old watch does not see), with a
    // changed key.
    fs::remove_file(&children).expect("rm");
    fs::create_dir(&children).expect("mkdir");
    for entry in fs::read_dir(&away).expect("away") {
        let entry = entry.expect("entry");
        fs::copy(entry.path(), children.join(entry.file_name())).expect("copy");
    }
    add_key_for_c1(&children);
    assert_change_served(&server, &cfg);
}

#[test]
fn an_unreadable_key_directory_keeps_its_signals_until_it_reads() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    // /proc/self belongs to the test's effective user.
    if fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        eprintln!("skipped: running as root, which reads a chmod 000 directory anyway");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let children = setup(root);
    let (server, cfg) = start(root);
    let before = signals(server.addr);

    fs::set_permissions(&children, fs::Permissions::from_mode(0o000)).expect("chmod");
    // A change the watch reports, in a directory that cannot be read.
    fs::set_permissions(&children, fs::Permissions::from_mode(0o300)).expect("chmod");
    add_key_for_c1(&children);
    fs::set_permissions(&children, fs::Permissions::from_mode(0o000)).expect("chmod");
    assert_kept(&server, &before, "directory unreadable");
    let text = status(&cfg);
    assert!(text.contains("HELD since"), "{text}");

    fs::set_permissions(&children, fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_change_served(&server, &cfg);
}

#[test]
fn a_daemon_started_while_its_key_directory_is_gone_withdraws_nothing() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let children = setup(root);
    let (mut server, cfg) = start(root);
    let before = signals(server.addr);
    let saved = root.join(format!("state/zones/{APEX}zone"));
    assert!(
        wait_until(Duration::from_secs(10), || saved.exists()),
        "the zone was not saved"
    );
    std::thread::sleep(Duration::from_millis(2500)); // the last save
    server.kill();

    // Restarted while the directory is away (an unmounted share).
    let away = root.join("children.away");
    fs::rename(&children, &away).expect("rename");
    let server = Serve::start(&cfg, server.addr, APEX);
    assert_kept(&server, &before, "started without its key directory");
    let text = status(&cfg);
    assert!(text.contains("HELD since"), "{text}");

    add_key_for_c1(&away);
    fs::rename(&away, &children).expect("rename back");
    assert_change_served(&server, &cfg);
}
