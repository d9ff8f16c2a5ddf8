//! Running `signalbox serve` for a test (a [`Daemon`] like every server of
//! the harness), and asking it questions over UDP (RFC 1035 section 4.2.1).

use std::{
    net::{SocketAddr, UdpSocket},
    path::Path,
    time::{Duration, Instant},
};

use hickory_proto::op::Message;

use super::{
    process::{Daemon, Log},
    signalbox,
};

/// The signalling zone of the one-operator configs ([`operator_config`]).
pub const OPERATOR_APEX: &str = "_signal.ns1.operator.test.";

/// The usual test world's config in `root/signalbox.toml`: a `[[zones]]`
/// set in `children/` served on `_signal.ns1.operator.test.` (keys in
/// `signal/`), on 127.0.0.1:`port`, state in `state/`. `signalling`
/// lines go into the `[[signaling_zone]]` table, `server` lines into
/// `[server]`, `tail` after everything.
pub fn operator_config(
    root: &Path,
    port: u16,
    signalling: &str,
    server: &str,
    tail: &str,
) -> std::path::PathBuf {
    let path = root.join("signalbox.toml");
    std::fs::write(
        &path,
        format!(
            r#"version = 1
[[zones]]
keys = "children"
nameservers = ["ns1.operator.test."]
cds = "always"

[[signaling_zone]]
apex = "{OPERATOR_APEX}"
keys = "signal"
nameservers = ["ns1.operator.test."]
{signalling}

[server]
listen = ["127.0.0.1:{port}"]
{server}

[state]
dir = "state"
{tail}"#
        ),
    )
    .expect("write config");
    path
}

/// A running `signalbox serve`, killed on drop; its log is kept in a file.
pub struct Serve {
    daemon: Daemon,
    /// Where it answers.
    pub addr: SocketAddr,
}

impl Serve {
    /// Starts `signalbox serve -c config` and waits until `apex` answers.
    pub fn start(config: &Path, addr: SocketAddr, apex: &str) -> Serve {
        let mut serve = Serve::launch(config, addr);
        serve.wait(
            Duration::from_secs(120),
            &format!("answer for {apex}"),
            || query(addr, apex, 6, false).is_some_and(|m| !m.answers.is_empty()),
        );
        serve
    }

    /// Starts `signalbox serve -c config` without waiting for any zone
    /// (sidecar configs serve none); waits until `addr` takes queries.
    pub fn spawn(config: &Path, addr: SocketAddr) -> Serve {
        let mut serve = Serve::launch(config, addr);
        serve.wait(Duration::from_secs(30), "answer", || {
            query(addr, ".", 6, false).is_some()
        });
        serve
    }

    /// Starts `signalbox serve -c config` with `RUST_LOG=filter` and
    /// returns at once: for tests that follow its log from the start.
    pub fn launch_logging(config: &Path, addr: SocketAddr, filter: &str) -> Serve {
        Serve::launch_with(config, addr, Some(filter))
    }

    /// `signalbox serve -c config`, its output in `config` with the
    /// extension `log` (emptied first).
    fn launch(config: &Path, addr: SocketAddr) -> Serve {
        Serve::launch_with(config, addr, None)
    }

    fn launch_with(config: &Path, addr: SocketAddr, filter: Option<&str>) -> Serve {
        let log = config.with_extension("log");
        let mut cmd = signalbox();
        cmd.args(["serve", "-c"]).arg(config);
        if let Some(filter) = filter {
            cmd.env("RUST_LOG", filter);
        }
        let daemon = Daemon::spawn("signalbox serve", cmd, &log, Log::Fresh);
        Serve { daemon, addr }
    }

    /// Polls `ready` every 100 ms; panics with the log when the process
    /// exits or `within` passes first.
    pub fn wait(&mut self, within: Duration, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !ready() {
            if let Some(status) = self.daemon.exited() {
                panic!("signalbox serve exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "signalbox serve did not {what}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        self.daemon.log_text()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.daemon.alive()
    }

    /// Kills it (SIGKILL) and waits.
    pub fn kill(&mut self) {
        self.daemon.kill();
    }
}

/// A query in wire form.
pub fn query_bytes(name: &str, qtype: u16, dnssec: bool) -> Vec<u8> {
    let mut q = vec![0x42, 0x42, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q.extend_from_slice(&[
        0,
        0,
        41,
        0x04,
        0xd0,
        0,
        0,
        if dnssec { 0x80 } else { 0 },
        0,
        0,
        0,
    ]);
    q
}

/// Asks over UDP; `None` on timeout or a malformed answer.
pub fn query(addr: SocketAddr, name: &str, qtype: u16, dnssec: bool) -> Option<Message> {
    let raw = query_raw(addr, &query_bytes(name, qtype, dnssec))?;
    Message::from_vec(&raw).ok()
}

/// Sends raw bytes over UDP and returns the raw answer, if any.
pub fn query_raw(addr: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    socket.send_to(packet, addr).ok()?;
    let mut buf = [0u8; 65_535];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    Some(buf[..len].to_vec())
}

/// The SOA serial a server answers for `apex`.
pub fn serial(addr: SocketAddr, apex: &str) -> Option<u32> {
    let m = query(addr, apex, 6, false)?;
    match &m.answers.first()?.data {
        hickory_proto::rr::RData::SOA(soa) => Some(soa.serial),
        _ => None,
    }
}

/// The RDATA of the answer records of type `qtype` for `name` (raw wire,
/// parsed here: hickory without its DNSSEC feature does not decode CDS).
pub fn answer_rdatas(addr: SocketAddr, name: &str, qtype: u16) -> Vec<Vec<u8>> {
    let Some(raw) = query_raw(addr, &query_bytes(name, qtype, false)) else {
        return Vec::new();
    };
    let skip_name = |mut at: usize| -> Option<usize> {
        loop {
            let len = *raw.get(at)?;
            if len == 0 {
                return Some(at + 1);
            }
            if len & 0xc0 == 0xc0 {
                return Some(at + 2);
            }
            at += 1 + usize::from(len);
        }
    };
    let word = |at: usize| {
        raw.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let mut out = Vec::new();
    let Some(ancount) = word(6) else { return out };
    let Some(mut at) = skip_name(12).map(|a| a + 4) else {
        return out;
    };
    for _ in 0..ancount {
        let Some(after) = skip_name(at) else { break };
        let (Some(rtype), Some(rdlen)) = (word(after), word(after + 8)) else {
            break;
        };
        let start = after + 10;
        let Some(rdata) = raw.get(start..start + usize::from(rdlen)) else {
            break;
        };
        if rtype == qtype {
            out.push(rdata.to_vec());
        }
        at = start + usize::from(rdlen);
    }
    out
}
