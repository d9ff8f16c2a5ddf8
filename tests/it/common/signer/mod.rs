//! Real DNSSEC signers for sidecar tests: Knot 3.2 and BIND 9.18 signing
//! zones themselves, taking TSIG-signed UPDATEs and sending NOTIFY to a
//! configurable target, on 127.0.0.1 high ports, from Debian's packages.
//!
//! * [`KnotSigner`]: `knotd` in the foreground, automatic signing with an
//!   ECDSAP256SHA256 policy whose KSK is `ready` (CDS/CDNSKEY published with
//!   `cds-cdnskey-publish: rollover`) as soon as the zone is first signed and
//!   ~2 s after `knotc zone-key-rollover ZONE ksk` ([`KnotSigner::new_ksk`]);
//!   `knotc` through its control socket, `keymgr` on its KASP database.
//! * [`BindSigner`]: `named -g`, zones under a `dnssec-policy` with short
//!   timings ([`BindPolicy`], CDS/CDNSKEY ~4 s after the KSK is created),
//!   dynamic (`update-policy`) or inline-signing, `rndc` on its own port
//!   and key.
//! * [`TsigKey`], [`nsupdate`]/[`knsupdate`] to send UPDATEs,
//!   [`lookup`]/[`query`] to read back (kdig, `+dnssec +norecurse +tcp`),
//!   [`NotifyListener`] to catch the signers' NOTIFYs with arrival times.
//!
//! Every daemon is a [`Daemon`]: a child of the test process, killed on drop
//! and by its watchdog when the test process dies without unwinding.
//! [`KnotSigner::restart`] / [`BindSigner::restart`] kill a signer and start
//! it again on the same port with the same files.

use std::{
    fs,
    io::{Read, Write},
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    thread::{self},
    time::{Duration, Instant},
};

use super::{fqdn, kdig};

mod bind;
mod knot;
mod notify;

pub use bind::{BindPolicy, BindSigner, BindZone};
pub use knot::{CdsPublish, KnotSigner, KnotZone};
pub use notify::NotifyListener;

/// The tools [`KnotSigner`] and the helpers need; pass to `common::tools`.
pub const KNOT_TOOLS: &[&str] = &["knotd", "knotc", "keymgr", "kdig", "knsupdate", "timeout"];
/// The tools [`BindSigner`] and the helpers need.
pub const BIND_TOOLS: &[&str] = &["named", "rndc", "nsupdate", "kdig", "timeout"];

/// How long a signer may take to serve its zones signed after a (re)start.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for one knotc/keymgr/rndc/nsupdate run (killed after that).
const TOOL_TIMEOUT_SECS: u32 = 30;

// ---------------------------------------------------------------------------
// TSIG keys
// ---------------------------------------------------------------------------

/// A TSIG key (hmac-sha256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// Key name, without a final dot (`sidecar-key`).
    pub name: String,
    /// The secret, base64.
    pub secret: String,
}

impl TsigKey {
    /// A key named `name` with a fresh random 32-byte secret.
    pub fn generate(name: &str) -> TsigKey {
        let mut bytes = [0u8; 32];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .expect("read /dev/urandom");
        TsigKey {
            name: name.trim_end_matches('.').to_string(),
            secret: data_encoding::BASE64.encode(&bytes),
        }
    }

    /// The key in `tsig-keygen` format:
    /// `key "name" {\n\talgorithm hmac-sha256;\n\tsecret "...";\n};\n`.
    pub fn keyfile_text(&self) -> String {
        format!(
            "key \"{}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
            self.name, self.secret
        )
    }

    /// Writes [`TsigKey::keyfile_text`] to `path` (usable by `nsupdate -k`,
    /// `include` in named.conf, `knsupdate -k`).
    pub fn write_keyfile(&self, path: &Path) {
        fs::write(path, self.keyfile_text())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// `hmac-sha256:name:secret`, as `kdig -y` / `knsupdate -y` take it.
    pub fn spec(&self) -> String {
        format!("hmac-sha256:{}:{}", self.name, self.secret)
    }
}

// ---------------------------------------------------------------------------
// Queries and updates
// ---------------------------------------------------------------------------

/// One record of an answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    /// Owner, lower-case, fully qualified.
    pub owner: String,
    pub ttl: u32,
    /// Type mnemonic as kdig prints it (`CDS`, `RRSIG`, ...).
    pub rtype: String,
    /// RDATA, fields separated by one space (base64/hex in one piece).
    pub rdata: String,
}

impl Rr {
    /// One record line as kdig prints it (`owner ttl IN type rdata...`);
    /// None for anything else.
    fn parse(line: &str) -> Option<Rr> {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || f[2] != "IN" {
            return None;
        }
        Some(Rr {
            owner: fqdn(f[0]),
            ttl: f[1].parse().ok()?,
            rtype: f[3].to_string(),
            rdata: f[4..].join(" "),
        })
    }

    /// For an RRSIG: (type covered, key tag, signer). None otherwise.
    pub fn rrsig(&self) -> Option<(String, u16, String)> {
        if self.rtype != "RRSIG" {
            return None;
        }
        let f: Vec<&str> = self.rdata.split(' ').collect();
        Some((
            f.first()?.to_string(),
            f.get(6)?.parse().ok()?,
            fqdn(f.get(7)?),
        ))
    }
}

/// A response to [`lookup`].
#[derive(Debug, Clone)]
pub struct Answer {
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`...; empty when there was no response.
    pub rcode: String,
    /// The answer section (RRSIGs included).
    pub records: Vec<Rr>,
    /// kdig's whole output, for messages.
    pub output: String,
}

impl Answer {
    /// The RDATA of the records of type `rtype`, sorted.
    pub fn rdata(&self, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .records
            .iter()
            .filter(|r| r.rtype.eq_ignore_ascii_case(rtype))
            .map(|r| r.rdata.clone())
            .collect();
        v.sort();
        v
    }

    /// The TTLs of the records of type `rtype`.
    pub fn ttls(&self, rtype: &str) -> Vec<u32> {
        self.records
            .iter()
            .filter(|r| r.rtype.eq_ignore_ascii_case(rtype))
            .map(|r| r.ttl)
            .collect()
    }

    /// The key tags of the RRSIGs covering `rtype`, sorted.
    pub fn rrsig_tags(&self, rtype: &str) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .records
            .iter()
            .filter_map(Rr::rrsig)
            .filter(|(covered, _, _)| covered.eq_ignore_ascii_case(rtype))
            .map(|(_, tag, _)| tag)
            .collect();
        v.sort();
        v
    }
}

/// `kdig +dnssec +norecurse +tcp @server NAME RTYPE`, parsed.
pub fn lookup(server: SocketAddr, name: &str, rtype: &str) -> Answer {
    let r = kdig::kdig_with_options(server, name, rtype, &["+dnssec", "+norecurse", "+tcp"]);
    let records = r.answer.iter().filter_map(|line| Rr::parse(line)).collect();
    Answer {
        rcode: r.rcode,
        records,
        output: r.output,
    }
}

/// The RDATA (sorted) of the `rtype` records at `name` on `server`; empty
/// for NODATA, NXDOMAIN or no answer.
pub fn query(server: SocketAddr, name: &str, rtype: &str) -> Vec<String> {
    lookup(server, name, rtype).rdata(rtype)
}

/// A zone transfer by [`axfr`].
#[derive(Debug, Clone)]
pub struct Transfer {
    /// The records, in the order received (SOA first and last when complete).
    pub records: Vec<Rr>,
    /// kdig's whole output.
    pub output: String,
}

impl Transfer {
    /// True when the transfer is complete (starts and ends with the SOA).
    pub fn ok(&self) -> bool {
        self.records.len() >= 2
            && self.records[0].rtype == "SOA"
            && self.records[self.records.len() - 1].rtype == "SOA"
    }

    /// The RDATA (sorted) of the `rtype` records at `owner`.
    pub fn rdata(&self, owner: &str, rtype: &str) -> Vec<String> {
        let owner = fqdn(owner);
        let mut v: Vec<String> = self
            .records
            .iter()
            .filter(|r| r.owner == owner && r.rtype.eq_ignore_ascii_case(rtype))
            .map(|r| r.rdata.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// `kdig [-y KEY] @server ZONE AXFR`, parsed.
pub fn axfr(server: SocketAddr, zone: &str, key: Option<&TsigKey>) -> Transfer {
    let mut args = vec![
        format!("@{}", server.ip()),
        "-p".to_string(),
        server.port().to_string(),
        "+timeout=5".to_string(),
        "+retry=1".to_string(),
    ];
    if let Some(k) = key {
        args.push("-y".to_string());
        args.push(k.spec());
    }
    args.push(fqdn(zone));
    args.push("AXFR".to_string());
    let (_, output) = run_tool("kdig", &args);
    let records = output
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(Rr::parse)
        .collect();
    Transfer { records, output }
}

/// The SOA serial `server` gives for `apex`; panics without one.
pub fn soa_serial(server: SocketAddr, apex: &str) -> u32 {
    let a = lookup(server, apex, "SOA");
    a.rdata("SOA")
        .first()
        .and_then(|soa| soa.split(' ').nth(2)?.parse().ok())
        .unwrap_or_else(|| panic!("no SOA for {apex} from {server}:\n{}", a.output))
}

/// What an UPDATE got.
#[derive(Debug, Clone)]
pub struct UpdateResult {
    /// The tool's exit code (0 only when the server said NOERROR).
    pub code: i32,
    /// The server's RCODE (`NOERROR`, `REFUSED`, `NOTAUTH`...), or empty
    /// when the tool printed none (no response, TSIG failure...).
    pub rcode: String,
    /// The tool's whole output (stdout then stderr).
    pub output: String,
}

impl UpdateResult {
    /// True for exit code 0 and NOERROR.
    pub fn ok(&self) -> bool {
        self.code == 0 && self.rcode == "NOERROR"
    }
}

/// Sends one UPDATE with BIND's `nsupdate`. `script` holds the `zone` and
/// `update ...`/`prereq ...` lines; `server`, `key` (hmac-sha256) and the
/// final `send`/`answer` are added here.
pub fn nsupdate(server: SocketAddr, key: Option<&TsigKey>, script: &str) -> UpdateResult {
    run_update("nsupdate", server, key, script)
}

/// The same with Knot's `knsupdate`.
pub fn knsupdate(server: SocketAddr, key: Option<&TsigKey>, script: &str) -> UpdateResult {
    run_update("knsupdate", server, key, script)
}

fn run_update(tool: &str, server: SocketAddr, key: Option<&TsigKey>, script: &str) -> UpdateResult {
    let mut text = format!("server {} {}\n", server.ip(), server.port());
    if let Some(key) = key {
        text.push_str(&format!("key hmac-sha256:{} {}\n", key.name, key.secret));
    }
    text.push_str(script.trim_end());
    text.push_str("\nsend\nanswer\n");
    let mut child = Command::new("timeout")
        .args(["-k", "5", &TOOL_TIMEOUT_SECS.to_string(), tool])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("write to {tool}: {e}"));
    }
    let out = child.wait_with_output().expect("wait for the update tool");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    UpdateResult {
        code: out.status.code().unwrap_or(-1),
        rcode: update_rcode(&output),
        output,
    }
}

/// The RCODE an nsupdate/knsupdate output reports.
fn update_rcode(output: &str) -> String {
    // Failures first: nsupdate prints "update failed: REFUSED", knsupdate
    // "update failed with error 'REFUSED'" / "(REFUSED)".
    for line in output.lines() {
        if let Some(rest) = line.split("update failed").nth(1) {
            let word = rest
                .split(|c: char| !c.is_ascii_alphanumeric())
                .find(|w| w.len() > 2 && w.chars().all(|c| c.is_ascii_uppercase()));
            if let Some(w) = word {
                return w.to_string();
            }
        }
    }
    for line in output.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            return rest
                .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_string();
        }
    }
    String::new()
}

/// Polls `f` every 100 ms until it returns Some or `within` passes.
pub fn wait_until<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a command with a timeout: (exit code, stdout + stderr).
fn run_tool(program: &str, args: &[String]) -> (i32, String) {
    let out = Command::new("timeout")
        .args(["-k", "5", &TOOL_TIMEOUT_SECS.to_string(), program])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// First line of `program -V`/`-v` (e.g. `knotd (Knot DNS), version 3.2.6`),
/// for assertion messages about version-dependent behaviour.
pub fn version(program: &str, flag: &str) -> String {
    let (_, out) = run_tool(program, &[flag.to_string()]);
    out.lines().next().unwrap_or("").trim().to_string()
}

/// Ok when every apex answers SOA authoritatively and has a DNSKEY RRset.
fn probe_signed(addr: SocketAddr, apexes: &[String]) -> Result<(), String> {
    for apex in apexes {
        let r = kdig::kdig_with_options(
            addr,
            apex,
            "DNSKEY",
            &["+retry=0", "+timeout=1", "+norecurse", "+tcp"],
        );
        let has_dnskey = r.answer.iter().any(|l| l.contains(" DNSKEY "));
        if r.rcode != "NOERROR" || !r.aa || !has_dnskey {
            return Err(format!("{apex} DNSKEY not served yet:\n{}", r.output));
        }
    }
    Ok(())
}
