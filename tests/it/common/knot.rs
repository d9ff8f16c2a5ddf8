//! Knot DNS serving pre-signed zone files for the harness's worlds
//! ([`Chain`](super::chain::Chain), [`ParentWorld`](super::parent::ParentWorld)).
//!
//! Why Knot: it is one process (threads), so killing it leaves nothing
//! behind (NSD forks a main, xfrd and server processes, and Debian's NSD has
//! response-rate limiting on by default); it serves pre-signed zone files as
//! they are with no privilege drop unless configured (`user:` unset), keeps
//! its control socket, PID file and LMDB databases in one run directory, and
//! starts in ~0.1 s.

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use super::{
    fqdn,
    kdig::probe_authoritative,
    process::{Daemon, Log, start_daemon},
};

/// A Knot DNS instance serving pre-signed zone files as they are (no
/// signing, no journal, no zone-file write-back), on its own port.
pub struct Knot {
    daemon: Daemon,
    addr: SocketAddr,
}

impl Knot {
    /// Starts `knotd` with its config, sockets and databases in
    /// `dir/knot-<port>/`, serving each `(apex, zone file)`. Returns once
    /// every zone answers its SOA authoritatively; panics with the log
    /// otherwise.
    pub fn start(dir: &Path, zones: &[(&str, &Path)]) -> Knot {
        let zones: Vec<(String, PathBuf)> = zones
            .iter()
            .map(|(apex, file)| (fqdn(apex), file.to_path_buf()))
            .collect();
        let apexes: Vec<String> = zones.iter().map(|(a, _)| a.clone()).collect();
        let (daemon, addr) = start_daemon(
            "knotd",
            dir,
            |port| {
                let run = dir.join(format!("knot-{port}"));
                fs::create_dir_all(&run).expect("create knot run directory");
                let conf = run.join("knot.conf");
                fs::write(&conf, knot_config(&run, port, &zones)).expect("write knot.conf");
                let mut cmd = Command::new("knotd");
                cmd.arg("-c").arg(conf);
                cmd
            },
            |addr| {
                for apex in &apexes {
                    probe_authoritative(addr, apex)?;
                }
                Ok(())
            },
        );
        Knot { daemon, addr }
    }

    /// Starts a Knot on `addr` exactly (another one may hold the same port
    /// on another loopback address: a second nameserver on the port the
    /// tests ask nameservers on), serving each `(apex, zone file)`. Returns
    /// once every zone answers its SOA authoritatively.
    pub fn start_at(dir: &Path, addr: SocketAddr, zones: &[(&str, &Path)]) -> Knot {
        let zones: Vec<(String, PathBuf)> = zones
            .iter()
            .map(|(apex, file)| (fqdn(apex), file.to_path_buf()))
            .collect();
        let run = dir.join(format!("knot-{}-{}", addr.ip(), addr.port()));
        fs::create_dir_all(&run).expect("create knot run directory");
        let conf = run.join("knot.conf");
        let text = knot_config(&run, addr.port(), &zones).replace(
            &format!("listen: 127.0.0.1@{}", addr.port()),
            &format!("listen: {}@{}", addr.ip(), addr.port()),
        );
        fs::write(&conf, text).expect("write knot.conf");
        let mut cmd = Command::new("knotd");
        cmd.arg("-c").arg(&conf);
        let mut daemon = Daemon::spawn("knotd", cmd, &run.join("knotd.log"), Log::Fresh);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        for (apex, _) in &zones {
            while let Err(e) = probe_authoritative(addr, apex) {
                if let Some(status) = daemon.exited() {
                    panic!(
                        "knotd on {addr} exited with {status}: {}",
                        daemon.log_tail()
                    );
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "knotd on {addr} does not serve {apex}: {e}\n{}",
                    daemon.log_tail()
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        Knot { daemon, addr }
    }

    /// Where Knot listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The tail of Knot's log.
    pub fn log_tail(&self) -> String {
        self.daemon.log_tail()
    }
}

fn knot_config(run: &Path, port: u16, zones: &[(String, PathBuf)]) -> String {
    let r = run.display();
    let mut conf = server_config(run, port);
    conf.push_str(&format!(
        r#"
template:
  - id: default
    storage: "{r}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none

zone:
"#
    ));
    for (apex, file) in zones {
        conf.push_str(&format!(
            "  - domain: \"{apex}\"\n    file: \"{}\"\n",
            file.display()
        ));
    }
    conf
}

/// The `server`, `control`, `log` and `database` sections every Knot of the
/// harness starts with: 127.0.0.1 on `port`, one worker of each kind, the
/// control socket, databases and PID file in `run`, the log on stderr.
pub fn server_config(run: &Path, port: u16) -> String {
    let r = run.display();
    format!(
        r#"server:
    rundir: "{r}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

control:
    listen: "{r}/knot.sock"

log:
  - target: stderr
    any: info

database:
    storage: "{r}"
"#
    )
}
