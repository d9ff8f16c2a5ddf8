//! The Debian package (issue 14): `scripts/package` builds
//! `signalbox_<version>_<arch>.deb` with cargo-deb; it holds the binary,
//! the systemd unit, man pages and completions, the shipped configuration
//! as a conffile, and the maintainer scripts. As root (CI), the package is
//! installed with `dpkg -i` on this machine: the `signalbox` user exists,
//! the shipped configuration passes `check-config` as that user, man pages
//! and completions are where man and the shells look, the installed unit
//! passes `systemd-analyze verify` and `security`, the installed binary
//! starts as `signalbox` and reports READY=1 to a notify socket; then the
//! package is purged again.

use std::{
    fs,
    net::SocketAddr,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::common::{process::free_port, serve::query, *};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs scripts/package into its own target directory (the test run holds
/// the lock of the usual one); returns the .deb.
fn build_package() -> PathBuf {
    let target = Path::new(ROOT).join("target/package");
    let (code, out, err) = output(
        Command::new(Path::new(ROOT).join("scripts/package"))
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS"),
    );
    assert_eq!(code, 0, "scripts/package failed:\n{out}{err}");
    let deb = PathBuf::from(out.lines().last().unwrap_or_default().trim());
    assert!(
        deb.starts_with(target.join("debian"))
            && deb
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("signalbox_") && n.ends_with(".deb")),
        "unexpected package path {deb:?}"
    );
    deb
}

#[test]
fn the_deb_installs_a_binary_unit_pages_and_a_working_config() {
    if !tools(&["dpkg-deb", "systemd-analyze"]) {
        return;
    }
    let _heavy = crate::common::process::cpu_heavy();
    let deb = build_package();
    let (code, listing, err) = output(Command::new("dpkg-deb").arg("-c").arg(&deb));
    assert_eq!(code, 0, "dpkg-deb -c: {err}");
    for path in [
        "./usr/bin/signalbox",
        "./usr/lib/systemd/system/signalbox.service",
        "./etc/signalbox/signalbox.toml",
        "./usr/share/man/man8/signalbox.8",
        "./usr/share/man/man8/signalbox-serve.8",
        "./usr/share/man/man8/signalbox-check-config.8",
        "./usr/share/man/man5/signalbox.toml.5",
        "./usr/share/bash-completion/completions/signalbox",
        "./usr/share/zsh/vendor-completions/_signalbox",
        "./usr/share/fish/vendor_completions.d/signalbox.fish",
    ] {
        assert!(
            listing.lines().any(|l| l.contains(path)),
            "{path} missing from the package:\n{listing}"
        );
    }
    let (_, conffiles, _) = output(
        Command::new("dpkg-deb")
            .args(["-I"])
            .arg(&deb)
            .arg("conffiles"),
    );
    assert!(
        conffiles.contains("/etc/signalbox/signalbox.toml"),
        "the config is not a conffile: {conffiles:?}"
    );

    // Installing it changes this machine: only as root, only where no
    // signalbox package is installed already, and purged afterwards.
    let root = output(Command::new("id").arg("-u")).1.trim() == "0";
    let installed = output(Command::new("dpkg").args(["-s", "signalbox"])).0 == 0;
    if !root || installed {
        eprintln!("not installing the package (needs root and no signalbox package installed)");
        return;
    }
    let _purge = Purge;
    let (code, out, err) = output(Command::new("dpkg").arg("-i").arg(&deb));
    assert_eq!(code, 0, "dpkg -i:\n{out}{err}");
    check_installed();
}

/// Purges the package when the test ends, passed or not.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = output(Command::new("dpkg").args(["--purge", "signalbox"]));
    }
}

fn as_signalbox(args: &[&str]) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "signalbox", "--"]).args(args);
    cmd
}

fn check_installed() {
    let (code, out, err) = output(Command::new("id").arg("signalbox"));
    assert_eq!(code, 0, "no signalbox user: {out}{err}");
    let (code, out, err) = output(&mut as_signalbox(&[
        "/usr/bin/signalbox",
        "check-config",
        "-c",
        "/etc/signalbox/signalbox.toml",
    ]));
    assert_eq!(
        code, 0,
        "the shipped config as the signalbox user:\n{out}{err}"
    );
    for page in [
        "/usr/share/man/man8/signalbox.8",
        "/usr/share/man/man5/signalbox.toml.5",
    ] {
        let found = Path::new(page).exists() || Path::new(&format!("{page}.gz")).exists();
        assert!(found, "{page} not installed");
    }
    let unit = "/usr/lib/systemd/system/signalbox.service";
    let (code, out, err) =
        output(Command::new("systemd-analyze").args(["verify", "--man=no", unit]));
    assert!(
        code == 0 && err.trim().is_empty(),
        "systemd-analyze verify {unit}: {out}{err}"
    );
    let (_, out, _) = output(Command::new("systemd-analyze").args([
        "security",
        "--offline=true",
        "--no-pager",
        unit,
    ]));
    assert!(
        out.contains("Overall exposure level for signalbox.service: 1.")
            || out.contains("Overall exposure level for signalbox.service: 0.")
            || out.contains("Overall exposure level for signalbox.service: 2.0"),
        "installed unit exposure above 2.0:\n{out}"
    );
    starts_as_the_signalbox_user();
}

/// The installed binary serves the shipped configuration (moved to a free
/// port, with a signalling key made for it) as the `signalbox` user and
/// says READY=1.
fn starts_as_the_signalbox_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path();
    fs::set_permissions(work, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let keys = Path::new("/etc/signalbox/keys/_signal.ns1.example.net");
    let (code, out, err) = output(
        Command::new("dnssec-keygen")
            .args(["-q", "-a", "ECDSAP256SHA256", "-f", "KSK", "-K"])
            .arg(keys)
            .arg("_signal.ns1.example.net"),
    );
    assert_eq!(code, 0, "dnssec-keygen: {out}{err}");
    let _ = output(Command::new("chgrp").arg("-R").arg("signalbox").arg(keys));
    let _ = output(Command::new("chmod").arg("-R").arg("g+r").arg(keys));
    let port = free_port();
    let shipped = fs::read_to_string("/etc/signalbox/signalbox.toml").expect("shipped config");
    let config = work.join("signalbox.toml");
    fs::write(
        &config,
        shipped.replace(
            "listen = [\"127.0.0.1:53\"]",
            &format!("listen = [\"127.0.0.1:{port}\"]"),
        ),
    )
    .expect("write config");
    let socket_path = work.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let _ = output(Command::new("chmod").arg("666").arg(&socket_path));
    let mut cmd = as_signalbox(&["/usr/bin/signalbox", "serve", "-c"]);
    cmd.arg(&config).env("NOTIFY_SOCKET", &socket_path);
    let mut daemon = crate::common::process::Daemon::spawn(
        "installed signalbox",
        cmd,
        &work.join("serve.log"),
        crate::common::process::Log::Fresh,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = false;
    while !ready && Instant::now() < deadline && daemon.alive() {
        let mut buf = [0u8; 4096];
        if let Ok(n) = socket.recv(&mut buf) {
            ready = String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1");
        }
    }
    assert!(
        ready,
        "no READY=1 from the installed binary:\n{}",
        daemon.log_text()
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let soa = query(addr, "_signal.ns1.example.net.", 6, true);
    assert!(
        soa.is_some_and(|m| !m.answers.is_empty()),
        "the installed signalbox does not answer:\n{}",
        daemon.log_text()
    );
    daemon.terminate(Duration::from_secs(30));
    // The key made for this test goes; the directory stays (the package
    // made it).
    for entry in fs::read_dir(keys).expect("keys").flatten() {
        let _ = fs::remove_file(entry.path());
    }
}
