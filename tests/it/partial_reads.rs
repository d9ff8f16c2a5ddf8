//! Partial reads are not deletions (issue 13 item 5), against a real
//! `signalbox serve`: a key directory renamed away (while a writer still
//! touches its files), replaced by a file, made unreadable (chmod 000, only
//! when not root), or missing when the daemon starts keeps every served
//! `_dsboot` CDS/CDNSKEY exactly as it was, `status` names the held
//! directory, and once the directory is back (with a changed key) the
//! change is served. The safety brake is opened wide (`max_change_share =
//! 1.0`), so it is not what keeps them.

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

[safety]
max_change_share = 1.0
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
        wait_until(Duration::from_secs(15), || answer_rdatas(
            server.addr,
            &owner,
            59
        )
        .len()
            == 2),
        "the changed key was not served once the directory was back:\n{}",
        server.log_text()
    );
    let text = status(cfg);
    assert!(!text.contains("HELD"), "{text}");
}

/// A running daemon serving three children's signals.
struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    /// The children's key directory.
    children: PathBuf,
    server: Serve,
    cfg: PathBuf,
    /// The signals served before anything happened.
    before: Vec<Vec<Vec<u8>>>,
}

impl World {
    /// `None` when dnssec-keygen is missing (and not required).
    fn start() -> Option<World> {
        if !tools(&["dnssec-keygen"]) {
            return None;
        }
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().to_path_buf();
        let children = setup(&root);
        let port = free_port();
        let cfg = config(&root, port);
        let server = Serve::start(&cfg, SocketAddr::from(([127, 0, 0, 1], port)), APEX);
        let owner = format!("_dsboot.{}{APEX}", CHILDREN[2]);
        let served = || !answer_rdatas(server.addr, &owner, 59).is_empty();
        assert!(
            wait_until(Duration::from_secs(10), served),
            "{}",
            server.log_text()
        );
        let before = signals(server.addr);
        Some(World {
            _tmp: tmp,
            root,
            children,
            server,
            cfg,
            before,
        })
    }

    /// Moves the key directory away; returns where it is.
    fn move_away(&self) -> PathBuf {
        let away = self.root.join("children.away");
        fs::rename(&self.children, &away).expect("rename");
        away
    }

    /// The signals stay as they were, `status` says the directory is held
    /// for a reason that says `why`, and the log said so once.
    fn assert_held(&self, why: &str) {
        assert_kept(&self.server, &self.before, why);
        let text = status(&self.cfg);
        let held = format!("key directory {}: HELD since", self.children.display());
        assert!(text.contains(&held) && text.contains(why), "{text}");
        // Logged when the hold starts, not at every poll since.
        let log = self.server.log_text();
        assert_eq!(log.matches("key directory held").count(), 1, "{log}");
    }
}

#[test]
fn a_renamed_key_directory_keeps_its_signals_until_it_is_back() {
    let Some(world) = World::start() else { return };
    let away = world.move_away();
    // Something still writes in the moved directory: a watch that follows
    // it would name the files under the old path, where they are "not found".
    for (i, child) in CHILDREN.iter().enumerate() {
        write_key(&away, child, &dnskey(257, 13, i as u8), &[]);
    }
    world.assert_held("No such file or directory");

    add_key_for_c1(&away);
    fs::rename(&away, &world.children).expect("rename back");
    assert_change_served(&world.server, &world.cfg);
}

#[test]
fn a_key_directory_replaced_by_a_file_keeps_its_signals_until_a_directory_is_back() {
    let Some(world) = World::start() else { return };
    let away = world.move_away();
    let children = &world.children;
    fs::write(
        children,
        "not a directory
",
    )
    .expect("file");
    world.assert_held("not a directory");

    // A new directory (a new inode the old watch does not see), with a
    // changed key.
    fs::remove_file(children).expect("rm");
    fs::create_dir(children).expect("mkdir");
    for entry in fs::read_dir(&away).expect("away") {
        let entry = entry.expect("entry");
        fs::copy(entry.path(), children.join(entry.file_name())).expect("copy");
    }
    add_key_for_c1(children);
    assert_change_served(&world.server, &world.cfg);
}

#[test]
fn an_unreadable_key_directory_keeps_its_signals_until_it_reads() {
    // /proc/self belongs to the test's effective user.
    if fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        eprintln!("skipped: running as root, which reads a chmod 000 directory anyway");
        return;
    }
    let Some(world) = World::start() else { return };
    let children = &world.children;
    let mode = |mode| fs::set_permissions(children, fs::Permissions::from_mode(mode));
    // A change the watch reports, in a directory that cannot be read.
    mode(0o300).expect("chmod");
    add_key_for_c1(children);
    mode(0o000).expect("chmod");
    world.assert_held("Permission denied");

    mode(0o755).expect("chmod");
    assert_change_served(&world.server, &world.cfg);
}

#[test]
fn a_daemon_started_while_its_key_directory_is_gone_withdraws_nothing() {
    let Some(mut world) = World::start() else {
        return;
    };
    let saved = world.root.join(format!("state/zones/{APEX}zone"));
    assert!(
        wait_until(Duration::from_secs(10), || saved.exists()),
        "the zone was not saved"
    );
    std::thread::sleep(Duration::from_millis(2500)); // the last save
    world.server.kill();

    // Restarted while the directory is away (an unmounted share).
    let away = world.move_away();
    world.server = Serve::start(&world.cfg, world.server.addr, APEX);
    world.assert_held("No such file or directory");

    add_key_for_c1(&away);
    fs::rename(&away, &world.children).expect("rename back");
    assert_change_served(&world.server, &world.cfg);
}
