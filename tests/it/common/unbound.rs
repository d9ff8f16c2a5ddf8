//! A validating Unbound for the harness: one config template, one start.
//!
//! Unbound runs in the foreground (`-d`) as the current user inside the
//! test's directory, on 127.0.0.1 and one high port, and reaches every zone
//! through a `stub-zone` (RFC 4033 validation from the given trust anchor
//! down; no iteration from the root). Special-use names it would answer
//! itself (RFC 6761: `test.`, `invalid.`, `localhost.`; `onion.`,
//! `home.arpa.`) are turned into ordinary zones when a stub lives below
//! them. Outgoing queries keep off 0-32767, the ports
//! [`free_port`](super::process::free_port) hands out.
//!
//! Users: [`Chain`](super::chain::Chain) (fixed zones) and
//! [`ParentWorld`](super::parent::ParentWorld) (zones that change during a
//! test: short cache limits and `unbound-control` to flush).

use std::{
    fmt::Write as _,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use super::{
    is_at_or_below, kdig,
    process::{Daemon, start_daemon},
};

/// Special-use names Unbound answers itself unless told not to.
const SPECIAL_USE: [&str; 5] = ["test.", "invalid.", "onion.", "home.arpa.", "localhost."];

/// What an [`Unbound`] validates and where it finds each zone.
#[derive(Debug, Clone)]
pub struct UnboundSpec<'a> {
    /// A file of DNSKEY (or DS) records: `trust-anchor-file`. None leaves
    /// Unbound without a trust anchor (everything is insecure).
    pub anchor: Option<&'a Path>,
    /// `(apex, server)`: one `stub-zone` each.
    pub stubs: Vec<(String, SocketAddr)>,
    /// The zones change during the test: cache nothing for more than 2 s,
    /// keep bogus answers 1 s, and open `unbound-control` on a Unix socket
    /// in the directory.
    pub changing_zones: bool,
}

/// A running validating Unbound; killed on drop.
pub struct Unbound {
    daemon: Daemon,
    addr: SocketAddr,
    conf: PathBuf,
}

impl Unbound {
    /// Writes `dir/unbound.conf` and starts Unbound on a fresh port; returns
    /// once it answers `probe SOA` (any rcode: validation is the caller's to
    /// check). Panics with the log otherwise.
    pub fn start(dir: &Path, spec: &UnboundSpec, probe: &str) -> Unbound {
        let conf = dir.join("unbound.conf");
        let (daemon, addr) = start_daemon(
            "unbound",
            dir,
            |port| {
                fs::write(&conf, config(dir, port, spec)).expect("write unbound.conf");
                let mut cmd = Command::new("unbound");
                cmd.arg("-d").arg("-c").arg(&conf);
                cmd
            },
            |addr| {
                let r = kdig::kdig_with_options(
                    addr,
                    probe,
                    "SOA",
                    &["+retry=0", "+timeout=1", "+tcp"],
                );
                if r.rcode.is_empty() {
                    Err(r.output)
                } else {
                    Ok(())
                }
            },
        );
        Unbound { daemon, addr, conf }
    }

    /// Where it answers (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its configuration file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Its whole log so far.
    pub fn log_text(&self) -> String {
        self.daemon.log_text()
    }

    /// The tail of its log.
    pub fn log_tail(&self) -> String {
        self.daemon.log_tail()
    }
}

/// The configuration text for `spec` on `port`.
fn config(dir: &Path, port: u16, spec: &UnboundSpec) -> String {
    let d = dir.display();
    let anchor = spec
        .anchor
        .map(|a| format!("    trust-anchor-file: \"{}\"\n", a.display()))
        .unwrap_or_default();
    let mut local = String::new();
    for special in SPECIAL_USE {
        if spec
            .stubs
            .iter()
            .any(|(apex, _)| is_at_or_below(apex, special))
        {
            let _ = writeln!(local, "    local-zone: \"{special}\" nodefault");
        }
    }
    let (caches, control) = if spec.changing_zones {
        (
            "    # Tests change zones: keep nothing for long (flush after changes).\n    \
             cache-min-ttl: 0\n    cache-max-ttl: 2\n    cache-max-negative-ttl: 2\n    \
             infra-host-ttl: 5\n    val-bogus-ttl: 1\n",
            format!(
                "    control-enable: yes\n    control-interface: \"{d}/unbound.ctl\"\n    \
                 control-use-cert: no\n"
            ),
        )
    } else {
        (
            "    # Fail fast and retry soon: daemons come and go in tests.\n    \
             infra-host-ttl: 5\n    val-bogus-ttl: 5\n",
            "    control-enable: no\n".to_string(),
        )
    };
    let mut stubs = String::new();
    for (apex, server) in &spec.stubs {
        let _ = write!(
            stubs,
            "\nstub-zone:\n    name: \"{apex}\"\n    stub-addr: {}@{}\n",
            server.ip(),
            server.port()
        );
    }
    format!(
        r#"server:
    # Stay in the foreground (-d), as the current user, inside the temp dir.
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    val-log-level: 2
    log-servfail: yes
    interface: 127.0.0.1
    port: {port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    access-control: 127.0.0.0/8 allow
    num-threads: 1
    so-reuseport: no
    # Our servers live on 127.0.0.1 high ports.
    do-not-query-localhost: no
    # Keep outgoing queries off the low high ports the harness hands out.
    outgoing-port-avoid: 0-32767
    module-config: "validator iterator"
{anchor}    trust-anchor-signaling: no
    root-key-sentinel: no
{local}    qname-minimisation: no
    # Negative answers come from the servers, never synthesised from NSEC.
    aggressive-nsec: no
    prefetch: no
    serve-expired: no
{caches}    minimal-responses: no

remote-control:
{control}{stubs}"#
    )
}
