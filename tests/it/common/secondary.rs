//! Knot and NSD as secondaries of signalbox, for transfer tests.

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use super::{
    process::{Daemon, Log},
    signer::TsigKey,
};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Knot 3.2.
    Knot,
    /// NSD 4.6.
    Nsd,
}

/// A running secondary; killed on drop.
pub struct Secondary {
    daemon: Daemon,
    /// Where it answers (and takes NOTIFY).
    pub addr: SocketAddr,
    /// Which server.
    pub kind: Kind,
    _dir: PathBuf,
}

impl Secondary {
    /// Starts `kind` as a secondary for `zone` from `primary` (with `key`
    /// if given), in `dir`, on `port`, allowing NOTIFY from 127.0.0.1 and
    /// transfers out to 127.0.0.1 (for dnssec-verify on its copy).
    pub fn start_on_port(
        kind: Kind,
        dir: &Path,
        zone: &str,
        primary: SocketAddr,
        key: Option<&TsigKey>,
        port: u16,
    ) -> Secondary {
        fs::create_dir_all(dir).expect("mkdir");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.join(format!("{kind:?}.log").to_lowercase());
        let daemon = match kind {
            Kind::Knot => start_knot(dir, zone, primary, port, key, &log),
            Kind::Nsd => start_nsd(dir, zone, primary, port, key, &log),
        };
        Secondary {
            daemon,
            addr,
            kind,
            _dir: dir.to_path_buf(),
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        self.daemon.log_text()
    }

    /// Waits until it serves `zone` with serial `serial` (or newer).
    pub fn wait_serial(&mut self, zone: &str, serial: u32, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = super::serve::serial(self.addr, zone) {
                if s == serial || (s.wrapping_sub(serial) as i32) > 0 {
                    return true;
                }
            }
            if let Some(status) = self.daemon.exited() {
                panic!("{:?} exited with {status}:\n{}", self.kind, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Secondary {
    fn drop(&mut self) {
        // SIGTERM first: NSD takes its helper processes down with it.
        self.daemon.terminate(Duration::from_secs(3));
    }
}

fn start_knot(
    dir: &Path,
    zone: &str,
    primary: SocketAddr,
    port: u16,
    key: Option<&TsigKey>,
    log: &Path,
) -> Daemon {
    let (key_section, key_ref) = match key {
        Some(k) => (
            format!(
                "key:\n  - id: {}\n    algorithm: hmac-sha256\n    secret: {}\n",
                k.name, k.secret
            ),
            format!("\n    key: {}", k.name),
        ),
        None => (String::new(), String::new()),
    };
    let conf = format!(
        r#"server:
    rundir: "{dir}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "{dir}"
{key_section}remote:
  - id: primary
    address: {ip}@{pport}{key_ref}
acl:
  - id: from_primary
    address: 127.0.0.1
    action: notify{key_ref}
  - id: out
    address: 127.0.0.1
    action: transfer
template:
  - id: default
    storage: "{dir}"
    zonefile-sync: -1
    journal-content: changes
    semantic-checks: off
zone:
  - domain: {zone}
    master: primary
    acl: [from_primary, out]
"#,
        dir = dir.display(),
        ip = primary.ip(),
        pport = primary.port(),
    );
    let path = dir.join("knot.conf");
    fs::write(&path, conf).expect("write knot.conf");
    let mut cmd = Command::new("knotd");
    cmd.arg("-c").arg(&path);
    Daemon::spawn("knotd", cmd, log, Log::Fresh)
}

fn start_nsd(
    dir: &Path,
    zone: &str,
    primary: SocketAddr,
    port: u16,
    key: Option<&TsigKey>,
    log: &Path,
) -> Daemon {
    let (key_section, key_ref) = match key {
        Some(k) => (
            format!(
                "key:\n  name: \"{}\"\n  algorithm: hmac-sha256\n  secret: \"{}\"\n",
                k.name, k.secret
            ),
            k.name.clone(),
        ),
        None => (String::new(), "NOKEY".to_string()),
    };
    let conf = format!(
        r#"server:
  ip-address: 127.0.0.1@{port}
  username: ""
  chroot: ""
  zonesdir: "{dir}"
  database: ""
  pidfile: "{dir}/nsd.pid"
  xfrdfile: "{dir}/xfrd.state"
  xfrdir: "{dir}"
  zonelistfile: "{dir}/zone.list"
  logfile: "{log}"
  verbosity: 2
  server-count: 1
  rrl-ratelimit: 0
remote-control:
  control-enable: no
{key_section}zone:
  name: "{zone}"
  zonefile: "{dir}/secondary.zone"
  allow-notify: 127.0.0.1 {key_ref}
  request-xfr: {ip}@{pport} {key_ref}
  provide-xfr: 127.0.0.1 NOKEY
"#,
        dir = dir.display(),
        log = log.display(),
        ip = primary.ip(),
        pport = primary.port(),
    );
    let path = dir.join("nsd.conf");
    fs::write(&path, conf).expect("write nsd.conf");
    let mut cmd = Command::new("nsd");
    cmd.arg("-d").arg("-c").arg(&path);
    // NSD writes its own log file (`logfile:` above).
    Daemon::spawn("nsd", cmd, log, Log::Own)
}
