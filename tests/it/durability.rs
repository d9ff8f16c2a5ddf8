//! Durability of `signalbox serve`'s state directory (docs/ARCHITECTURE.md,
//! "State on disk"): a graceful shutdown saves what was served so the next
//! start is warm; damaged state files are named and never make the SOA
//! serial go back (RFC 1982 §3.1: a secondary ignores an older serial); a
//! serial that cannot be recorded (a full disk) is not served.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    time::{Duration, Instant},
};

use crate::{
    common::{
        dnskey, output,
        process::{Daemon, Log, free_port},
        records,
        secondary::{Kind, Secondary},
        serve::{answer_rdatas, serial},
        signalbox, tools, write_key,
    },
    serve::{many_children, signal_key, write_config},
    transfer::{change_child, setup},
};

const APEX: &str = "_signal.ns1.operator.test.";

/// A root with three children's keys, the signalling zone's CSK and a
/// config whose state directory is `state`.
struct World {
    tmp: tempfile::TempDir,
    config: PathBuf,
    addr: SocketAddr,
    state: PathBuf,
}

impl World {
    /// The setup of `serve.rs` (three children); `state_dir`, when given,
    /// is where `state` points.
    fn new(state_dir: Option<&Path>) -> World {
        World::with_children(state_dir, 3)
    }

    /// The same with `children` children.
    fn with_children(state_dir: Option<&Path>, children: usize) -> World {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path();
        many_children(&root.join("children"), children);
        signal_key(root);
        let state = root.join("state");
        if let Some(dir) = state_dir {
            fs::create_dir_all(dir).expect("mkdir");
            std::os::unix::fs::symlink(dir, &state).expect("symlink");
        }
        let port = free_port();
        World {
            config: write_config(root, port),
            tmp,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            state,
        }
    }

    /// A world whose daemon (logging to `first.log`) serves, and the
    /// serial it serves; `None` without `dnssec-keygen`.
    fn serving() -> Option<(World, Daemon, u32)> {
        if !tools(&["dnssec-keygen"]) {
            return None;
        }
        let world = World::new(None);
        let daemon = world.start("first");
        let serial = serial(world.addr, APEX).expect("serial");
        Some((world, daemon, serial))
    }

    /// Starts `signalbox serve`, its output in `<name>.log`, and waits until
    /// the zone answers with a serial.
    fn start(&self, name: &str) -> Daemon {
        let mut cmd = signalbox();
        cmd.args(["serve", "-c"]).arg(&self.config);
        let log = self.tmp.path().join(format!("{name}.log"));
        let mut daemon = Daemon::spawn("signalbox serve", cmd, &log, Log::Fresh);
        self.wait(&mut daemon, "answer with a serial", || {
            serial(self.addr, APEX).is_some()
        });
        daemon
    }

    /// Polls `ready` every 50 ms for up to 60 s; panics with the log when
    /// the process exits or time runs out.
    fn wait(&self, daemon: &mut Daemon, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready() {
            if let Some(status) = daemon.exited() {
                panic!(
                    "signalbox serve exited with {status}:\n{}",
                    daemon.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "signalbox serve did not {what}:\n{}",
                daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Adds a child's key file.
    fn add_child(&self, name: &str, seed: u8) {
        write_key(
            &self.tmp.path().join("children"),
            name,
            &dnskey(257, 13, seed),
            &[],
        );
    }

    /// Configures a secondary that never answers (the socket returned):
    /// a warm start asks it what it holds for 1.5 s before its first
    /// round, so a key written right after the first answer comes before
    /// that round begins.
    fn silent_secondary(&self) -> std::net::UdpSocket {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let config = fs::read_to_string(&self.config).expect("config");
        let secondary = format!(
            "apex = \"{APEX}\"\nsecondaries = [\"{}\"]\nallow_transfer = [\"127.0.0.1\"]",
            silent.local_addr().expect("addr")
        );
        let with_secondary = config.replacen(&format!("apex = \"{APEX}\""), &secondary, 1);
        assert_ne!(config, with_secondary, "the secondary is configured");
        fs::write(&self.config, with_secondary).expect("config");
        silent
    }

    /// The key cache files in the state directory.
    fn key_caches(&self) -> Vec<PathBuf> {
        fs::read_dir(self.state.join("keys"))
            .expect("state/keys")
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "cache"))
            .collect()
    }

    /// Waits until the daemon logging to `<name>.log` finished its first
    /// round.
    fn finish_first_round(&self, daemon: &mut Daemon, name: &str) {
        self.wait(daemon, "finish its first round", || self.round_done(name));
    }

    /// Starts a daemon logging to `<name>.log`, waits for its first round
    /// and stops it cleanly (SIGTERM, exit 0).
    fn run_first_round_and_stop(&self, name: &str) {
        let mut daemon = self.start(name);
        self.finish_first_round(&mut daemon, name);
        let status = terminate(&mut daemon);
        assert!(status.success(), "{status}:\n{}", daemon.log_text());
    }

    /// True when the daemon logging to `<name>.log` finished a round.
    fn round_done(&self, name: &str) -> bool {
        fs::read_to_string(self.tmp.path().join(format!("{name}.log")))
            .is_ok_and(|log| log.contains("round done"))
    }

    /// The CDS records served for `child`.
    fn cds(&self, child: &str) -> Vec<Vec<u8>> {
        answer_rdatas(self.addr, &format!("_dsboot.{child}{APEX}"), 59)
    }

    fn zone_file(&self, extension: &str) -> PathBuf {
        self.state.join("zones").join(format!("{APEX}{extension}"))
    }
}

/// SIGTERM, and the exit status (SIGKILL after 60 s).
fn terminate(daemon: &mut Daemon) -> ExitStatus {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.pid().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = daemon.exited() {
            return status;
        }
        if Instant::now() > deadline {
            daemon.kill();
            panic!("no exit within 60 s of SIGTERM:\n{}", daemon.log_text());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Flips one byte in the middle of `path`.
fn damage(path: &Path) {
    let mut data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let middle = data.len() / 2;
    data[middle] ^= 0x55;
    fs::write(path, data).expect("write");
}

fn newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

#[test]
fn sigterm_right_after_a_key_change_saves_the_zone_for_a_warm_start() {
    let Some((world, mut first, _)) = World::serving() else {
        return;
    };
    world.add_child("late.example.", 77);
    world.wait(&mut first, "serve the new child", || {
        !world.cds("late.example.").is_empty()
    });
    let served = serial(world.addr, APEX).expect("serial");
    // At once: the background save (every 2 s) has not run yet.
    let status = terminate(&mut first);
    assert!(status.success(), "{status}:\n{}", first.log_text());

    let second = world.start("second");
    let log = second.log_text();
    let warm = log
        .lines()
        .find(|l| l.contains("warm start"))
        .unwrap_or_else(|| panic!("no warm start after SIGTERM:\n{log}"));
    assert!(
        warm.contains(&format!("serial={served}")),
        "the saved zone is not the one served ({served}): {warm}"
    );
    assert!(!world.cds("late.example.").is_empty());
}

/// The `key_files_read` of the first "round done" line of `log`.
fn first_round_reads(log: &str) -> usize {
    let line = log
        .lines()
        .find(|l| l.contains("round done"))
        .unwrap_or_else(|| panic!("no round done:\n{log}"));
    line.split("key_files_read=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no key_files_read: {line}"))
}

/// Issue 15: a warm start restores the key cache saved at shutdown and
/// reads only the key files that changed while it was stopped (not all
/// 2,000), and serves exactly what those files say: a new child appears, a
/// replaced key's CDS changes; the signalling zone's own key (signed here)
/// is read with its private key, so the zone is signed again.
#[test]
fn a_warm_start_reads_only_the_key_files_changed_while_stopped() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let world = World::with_children(None, 2_000);
    let mut first = world.start("first");
    world.finish_first_round(&mut first, "first");
    assert!(first_round_reads(&first.log_text()) >= 2_000);
    let old_cds = world.cds("child7.example.");
    assert!(!old_cds.is_empty());
    let status = terminate(&mut first);
    assert!(status.success(), "{status}:\n{}", first.log_text());
    let caches = world.key_caches();
    assert_eq!(
        caches.len(),
        2,
        "one key cache per key directory: {caches:?}"
    );

    // While stopped: a new child, and child7's key replaced by another.
    let children = world.tmp.path().join("children");
    world.add_child("late.example.", 77);
    for entry in fs::read_dir(&children).expect("children").flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("Kchild7.example.+")
        {
            fs::remove_file(entry.path()).expect("remove");
        }
    }
    write_key(&children, "child7.example.", &dnskey(257, 13, 201), &[]);

    let mut second = world.start("second");
    world.finish_first_round(&mut second, "second");
    let log = second.log_text();
    let restored: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("key cache restored"))
        .collect();
    assert_eq!(restored.len(), 2, "{log}");
    assert!(
        restored.iter().any(|l| l.contains("keys=2000")),
        "the children's cache: {restored:?}"
    );
    assert!(
        restored.iter().any(|l| l.contains("keys=0 left_out=1")),
        "the signalling zone's key is not restored: {restored:?}"
    );
    // The new child's key, the replacement, and the signalling zone's key
    // files (.key, .private, and .state when dnssec-keygen wrote one).
    let reads = first_round_reads(&log);
    assert!((4..=5).contains(&reads), "read {reads} key files:\n{log}");
    world.wait(&mut second, "serve the new child", || {
        !world.cds("late.example.").is_empty()
    });
    let new_cds = world.cds("child7.example.");
    assert!(
        !new_cds.is_empty() && new_cds != old_cds,
        "child7's CDS follows its new key"
    );
    assert_eq!(
        crate::common::serve::answer_rdatas(
            world.addr,
            &format!("_dsboot.child8.example.{APEX}"),
            59
        )
        .len(),
        1
    );
}

/// How the log names a cut-in while the key directories are listed (the
/// other points, "listing taken" and "children joined", come after it).
const WHILE_LISTING: &str = "point=\"while listing\"";

/// The log up to the end of the first full round (a later one, the periodic
/// rescan, may see cut-ins while it lists: the first listing is long over).
fn first_round_log(log: &str) -> &str {
    log.find("round done").map_or(log, |end| &log[..end])
}

/// Issue 15: a key written right after a warm start's first answer is
/// served by a round that cuts into the first full round
/// (`src/daemon/key_changes.rs`), not after it, when the last process shut
/// down cleanly (its key caches hold every key it knew); after a kill -9 it
/// waits for the first round, which lists the directory. A secondary that
/// never answers holds the first round back for 1.5 s from start-up (the
/// warm start asks it what it holds; 2,000 children load at once), so the
/// key is written before that round begins.
#[test]
fn a_key_change_right_after_a_clean_restart_cuts_into_the_first_round() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let world = World::with_children(None, 2_000);
    let _silent = world.silent_secondary();

    world.run_first_round_and_stop("first");
    assert!(world.state.join("keys/complete.json").exists());

    let mut second = world.start("second");
    assert!(
        !world.state.join("keys/complete.json").exists(),
        "taken at start: a kill -9 later must not leave it behind"
    );
    world.add_child("late.example.", 77);
    world.wait(&mut second, "serve the new child", || {
        !world.cds("late.example.").is_empty()
    });
    world.finish_first_round(&mut second, "second");
    let log = second.log_text();
    let cut_in = log
        .find("key change cut into the full round")
        .unwrap_or_else(|| panic!("no cut-in:\n{log}"));
    assert!(
        cut_in < log.find("round done").expect("round done"),
        "{log}"
    );
    // While the first listing ran, before it was taken: the restored keys
    // of a complete cache sufficed.
    assert!(
        log[cut_in..]
            .lines()
            .next()
            .is_some_and(|line| line.contains(WHILE_LISTING)),
        "{log}"
    );
    assert!(
        !world.cds("late.example.").is_empty(),
        "the full round keeps it"
    );
    let old = world.cds("child7.example.");
    assert!(!old.is_empty());

    // kill -9: no record of complete caches, the change waits for the
    // listing (a cache may miss keys the dead process served from).
    second.kill();
    let mut third = world.start("third");
    world.add_child("later.example.", 78);
    world.wait(&mut third, "serve the second new child", || {
        !world.cds("later.example.").is_empty()
    });
    world.finish_first_round(&mut third, "third");
    let log = third.log_text();
    // Once the listing is taken (or the children joined) a change may cut
    // in; while it runs, nothing may.
    assert!(
        !first_round_log(&log).contains(WHILE_LISTING),
        "no cut-in before the listing after a kill -9:\n{log}"
    );
    assert_eq!(world.cds("child7.example."), old);
}

/// The cases where a key change right after a clean restart must wait for
/// the first listing, because what the key cache restored may lack keys:
/// the cache file is not the one the last process recorded as complete (a
/// failed write leaves an older one), or another key file of the same zone
/// changed while stopped (a rollover went on: there may be keys no cache
/// knows). Either way the change is served after the listing.
#[test]
fn a_key_change_waits_for_the_listing_when_the_cache_may_lack_keys() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let world = World::with_children(None, 2_000);
    let _silent = world.silent_secondary();
    let mut first = world.start("first");
    world.finish_first_round(&mut first, "first");
    // The saver writes the caches after the round is logged: wait for both
    // (with none, step 1 below would restore nothing and prove nothing).
    world.wait(&mut first, "save its key caches", || {
        world.key_caches().len() == 2
    });
    let older: Vec<(PathBuf, Vec<u8>)> = world
        .key_caches()
        .iter()
        .map(|path| (path.clone(), fs::read(path).expect("cache")))
        .collect();
    world.add_child("between.example.", 90);
    world.wait(&mut first, "serve the child added", || {
        !world.cds("between.example.").is_empty()
    });
    let status = terminate(&mut first);
    assert!(status.success(), "{status}:\n{}", first.log_text());

    // 1. The older cache files back in place, as a failed write leaves them.
    for (path, data) in &older {
        fs::write(path, data).expect("older cache");
    }
    let no_early_cut_in = |name: &str, child: &str, seed: u8| {
        let mut daemon = world.start(name);
        world.add_child(child, seed);
        world.wait(&mut daemon, "serve the new child", || {
            !world.cds(child).is_empty()
        });
        world.finish_first_round(&mut daemon, name);
        let log = daemon.log_text();
        assert!(
            !first_round_log(&log).contains(WHILE_LISTING),
            "no cut-in before the listing:\n{log}"
        );
        assert!(!world.cds("between.example.").is_empty(), "{log}");
        let status = terminate(&mut daemon);
        assert!(status.success(), "{status}:\n{log}");
    };
    no_early_cut_in("second", "late.example.", 91);

    // 2. A clean restart, but child7's key file rewritten while stopped;
    // then a second key for child7.
    let children = world.tmp.path().join("children");
    for entry in fs::read_dir(&children).expect("children").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("Kchild7.example.+") {
            let text = fs::read_to_string(entry.path()).expect("key");
            fs::write(entry.path(), format!("; rewritten while stopped\n{text}")).expect("key");
        }
    }
    no_early_cut_in("third", "child7.example.", 92);
}

/// What a process wrote through write(2) and friends (`wchar` in
/// /proc/PID/io: file and terminal writes, whatever the file system).
fn written(pid: u32) -> u64 {
    let io = fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar")
}

/// Issue 15: one child's change appends its difference to the zone's change
/// log instead of rewriting the signed image; kill -9 right after it, and
/// the next start serves it warm, from the image plus the log.
#[test]
fn a_change_is_appended_not_rewritten_and_survives_kill_9() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let world = World::with_children(None, 20_000);
    let mut first = world.start("first");
    let changes = world.zone_file("changes");
    world.wait(&mut first, "save the zone and start its change log", || {
        changes.exists()
    });
    let image = fs::metadata(world.zone_file("zone")).expect("image").len();
    assert!(image > 4 << 20, "a 20k-child image is megabytes: {image}");
    let log_before = fs::metadata(&changes).expect("log").len();
    let before = written(first.pid());

    world.add_child("late.example.", 77);
    world.wait(&mut first, "serve the new child", || {
        !world.cds("late.example.").is_empty()
    });
    let served = serial(world.addr, APEX).expect("serial");
    world.wait(&mut first, "append the change", || {
        fs::metadata(&changes).is_ok_and(|m| m.len() > log_before)
    });
    let delta = written(first.pid()) - before;
    assert!(
        delta <= 64 << 10,
        "one child's change wrote {delta} octets (the image is {image})"
    );

    first.kill();
    let second = world.start("second");
    let log = second.log_text();
    let replayed = log
        .lines()
        .find(|l| l.contains("replayed the change log"))
        .unwrap_or_else(|| panic!("no replay after kill -9:\n{log}"));
    assert!(replayed.contains(&format!("serial={served}")), "{replayed}");
    assert!(!world.cds("late.example.").is_empty());
}

#[test]
fn a_damaged_saved_zone_is_named_and_the_serial_still_moves_on() {
    let Some((world, mut first, before)) = World::serving() else {
        return;
    };
    let cds = world.cds("child1.example.");
    assert_eq!(cds.len(), 1);
    // Past the background save, so the file exists even without a flush.
    std::thread::sleep(Duration::from_secs(3));
    assert!(terminate(&mut first).success());

    let zone_file = world.zone_file("zone");
    damage(&zone_file);
    damage(&world.zone_file("journal"));
    let mut second = world.start("second");
    world.wait(&mut second, "serve a newer serial", || {
        serial(world.addr, APEX).is_some_and(|s| newer(s, before))
    });
    let log = second.log_text();
    let named = log
        .lines()
        .find(|l| l.contains(&zone_file.display().to_string()) && l.contains("damaged"))
        .unwrap_or_else(|| panic!("no error naming {}:\n{log}", zone_file.display()));
    assert!(
        named.contains("ERROR") && named.contains(&format!("continues from {before}")),
        "{named}"
    );
    assert_eq!(world.cds("child1.example."), cds);
}

#[test]
fn an_unreadable_serial_record_holds_the_zone_instead_of_reusing_serials() {
    let Some((world, mut first, saved)) = World::serving() else {
        return;
    };
    std::thread::sleep(Duration::from_secs(3)); // the background save has run
    world.add_child("late.example.", 77);
    world.wait(&mut first, "serve the new child", || {
        !world.cds("late.example.").is_empty()
    });
    let served = serial(world.addr, APEX).expect("serial");
    assert!(newer(served, saved));
    first.kill();
    // A crash before the last change reached the change log (the
    // milliseconds between serving a version and appending it): what is
    // saved (at `saved`) lags what was served.
    fs::remove_file(world.zone_file("changes")).expect("rm the change log");

    let record = world.zone_file("toml");
    fs::write(&record, "serial = \"garbage\"\n").expect("write");
    let mut second = world.start("second");
    // Serial `saved` again is the old data; anything up to `served` would
    // reuse a serial secondaries already have with other data.
    for _ in 0..30 {
        let now = serial(world.addr, APEX).expect("serial");
        assert_eq!(
            now,
            saved,
            "served {now} (last served before: {served}):\n{}",
            second.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = second.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains(&record.display().to_string())),
        "no error naming {}:\n{log}",
        record.display()
    );
    // The operator writes the serial the secondaries have: the zone moves on.
    fs::write(&record, format!("serial = {served}\n")).expect("write");
    world.wait(&mut second, "move past the fixed serial", || {
        serial(world.addr, APEX).is_some_and(|s| newer(s, served))
    });
    assert!(!world.cds("late.example.").is_empty());
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `dir`; `None` (with a message) when this
    /// process may not mount.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).expect("mkdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(out) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: no mount command: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = fs::File::create(path).expect("create filler");
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[test]
fn a_full_state_disk_keeps_the_last_good_version_and_retries() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let mount_dir = tempfile::tempdir().expect("tmp");
    let Some(tmpfs) = Tmpfs::mount(mount_dir.path(), "512k") else {
        return;
    };
    let world = World::new(Some(&tmpfs.0.join("state")));
    let mut daemon = world.start("serve");
    let before = serial(world.addr, APEX).expect("serial");
    std::thread::sleep(Duration::from_secs(3)); // the background save has run
    let filler = tmpfs.0.join("filler");
    fill(&filler);

    world.add_child("late.example.", 77);
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        let now = serial(world.addr, APEX).expect("serial");
        assert_eq!(
            now,
            before,
            "a serial was served that could not be recorded:\n{}",
            daemon.log_text()
        );
        assert!(world.cds("late.example.").is_empty());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = daemon.log_text();
    let held: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot record serial"))
        .collect();
    assert!(!held.is_empty(), "no error about the full disk:\n{log}");
    assert!(held.len() <= 5, "not rate limited: {} lines", held.len());

    fs::remove_file(&filler).expect("remove filler");
    world.wait(&mut daemon, "serve the change once there is room", || {
        !world.cds("late.example.").is_empty()
    });
    assert!(newer(serial(world.addr, APEX).expect("serial"), before));
    let litter: Vec<String> = fs::read_dir(world.state.join("zones"))
        .expect("zones dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(litter.is_empty(), "temporary files left: {litter:?}");
    assert!(terminate(&mut daemon).success());
    drop(world);
}

/// A tiny deterministic PRNG (xorshift) for the moments to kill at.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Each child's CDS as `tag alg digest-type HEX`, from `signalbox signals`.
fn cds_by_signals(config: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let (code, stdout, stderr) = output(signalbox().args(["signals", "-c"]).arg(config));
    assert_eq!(code, 0, "{stderr}");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in records(&stdout) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let own_apex = !fields.first().is_some_and(|f| f.starts_with("_dsboot."));
        if own_apex && fields.get(3) == Some(&"CDS") && fields.len() >= 8 {
            let hex = fields[7..].concat().to_uppercase();
            let cds = format!("{} {} {} {hex}", fields[4], fields[5], fields[6]);
            out.entry(fields[0].to_string()).or_default().insert(cds);
        }
    }
    out
}

/// Each child's CDS as served at `_dsboot.<child>.<APEX>` by `addr`.
fn cds_served(addr: SocketAddr, children: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for child in children {
        for rdata in answer_rdatas(addr, &format!("_dsboot.{child}{APEX}"), 59) {
            let [t0, t1, alg, dt, digest @ ..] = &rdata[..] else {
                continue;
            };
            let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
            let tag = u16::from_be_bytes([*t0, *t1]);
            out.entry(child.clone())
                .or_default()
                .insert(format!("{tag} {alg} {dt} {hex}"));
        }
    }
    out
}

#[test]
fn kill_9_at_random_moments_never_moves_the_serial_back() {
    if !tools(&["knotd", "dnssec-keygen"]) {
        return;
    }
    let n = 40;
    let secondary_port = free_port();
    let s = setup(n, secondary_port, false, "");
    let children_dir = s.root.join("children");
    let names: Vec<String> = (0..n).map(|i| format!("c{i}.example.")).collect();
    let log = s.root.join("serve.log");
    let spawn = || {
        let mut cmd = signalbox();
        cmd.args(["serve", "-c"]).arg(&s.config);
        Daemon::spawn("signalbox serve", cmd, &log, Log::Append)
    };
    // Waits until a round of the new process serves a serial past `high`.
    let serving_past = |daemon: &mut Daemon, high: Option<u32>| -> u32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(now) = serial(s.addr, APEX) {
                if high.is_none_or(|high| newer(now, high)) {
                    return now;
                }
            }
            assert!(daemon.alive(), "exited:\n{}", daemon.log_text());
            assert!(
                Instant::now() < deadline,
                "no serial past {high:?}:\n{}",
                daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut rng = Rng(0x5eed_1e55_ba5e_ba11);
    let mut high = None;
    let mut generation = 1;
    let mut daemon = spawn();
    high = Some(serving_past(&mut daemon, high));
    let mut knot = Secondary::start_on_port(
        Kind::Knot,
        &s.root.join("secondary"),
        APEX,
        s.addr,
        None,
        secondary_port,
    );
    for _ in 0..8 {
        // Key changes, then a kill at a random moment among them.
        let kill_at = Instant::now() + Duration::from_millis(rng.below(1500));
        while Instant::now() < kill_at {
            change_child(&children_dir, rng.below(n as u64) as usize, generation);
            generation += 1;
            std::thread::sleep(Duration::from_millis(rng.below(300)));
            if let Some(now) = serial(s.addr, APEX) {
                if high.is_none_or(|high| newer(now, high)) {
                    high = Some(now);
                }
            }
        }
        daemon.kill();
        daemon = spawn();
        high = Some(serving_past(&mut daemon, high));
    }
    // Settled: what is served is what the key files say, and Knot has it.
    let want = cds_by_signals(&s.config);
    assert_eq!(want.len(), n, "{want:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while cds_served(s.addr, &names) != want {
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = serial(s.addr, APEX).expect("serial");
    assert!(
        knot.wait_serial(APEX, last, Duration::from_secs(20)),
        "Knot did not reach {last}:\n{}",
        knot.log_text()
    );
    assert_eq!(cds_served(knot.addr, &names), want);
}

/// Issue 15: the secondaries are asked what they hold as soon as the
/// configuration is read, beside the saved zones' load, not once the
/// server answers: at a million children the load takes seconds, and a
/// secondary that does not answer used to hold every new serial (a key
/// change right after a warm start) back by its whole 1.5 s after that.
#[test]
fn the_secondaries_are_asked_while_the_saved_zones_load() {
    if !tools(&["dnssec-keygen"]) {
        return;
    }
    let world = World::with_children(None, 20);
    let silent = world.silent_secondary();
    world.run_first_round_and_stop("first");

    // Drain what the first process asked.
    silent.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 512];
    while silent.recv_from(&mut buf).is_ok() {}
    silent.set_nonblocking(false).expect("blocking");

    let mut second = world.start("second");
    world.finish_first_round(&mut second, "second");
    let log = second.log_text();
    let asked = log
        .find("asking the secondaries what they hold")
        .unwrap_or_else(|| panic!("no ask logged:\n{log}"));
    // Before the saved zone is loaded, not once it is served.
    let loaded = log
        .find("warm start: serving the saved zone")
        .expect("a warm start");
    assert!(
        asked < loaded,
        "asked after the load, not beside it:\n{log}"
    );
    // The secondary was asked for the zone's SOA.
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (len, _) = silent.recv_from(&mut buf).expect("an SOA query");
    let query = &buf[..len];
    let mut at = 12;
    while at < len && query[at] != 0 {
        at += 1 + usize::from(query[at]);
    }
    assert_eq!(
        query.get(at + 1..at + 3),
        Some(&[0u8, 6][..]),
        "QTYPE SOA: {query:?}"
    );
}
