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
    fmt, fs,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use super::{
    fqdn, kdig,
    process::{
        Daemon, free_port, launch, port_taken, restart_on_same_port, start_on_free_port, tail,
    },
};

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
    let records = r
        .answer
        .iter()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() < 4 || f[2] != "IN" {
                return None;
            }
            Some(Rr {
                owner: fqdn(f[0]),
                ttl: f[1].parse().ok()?,
                rtype: f[3].to_string(),
                rdata: f[4..].join(" "),
            })
        })
        .collect();
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
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 || f[2] != "IN" {
                return None;
            }
            Some(Rr {
                owner: fqdn(f[0]),
                ttl: f[1].parse().ok()?,
                rtype: f[3].to_string(),
                rdata: f[4..].join(" "),
            })
        })
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

// ---------------------------------------------------------------------------
// Knot
// ---------------------------------------------------------------------------

/// Knot's `cds-cdnskey-publish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CdsPublish {
    /// Only while a KSK is `ready` (Knot's default).
    Rollover,
    /// Always, for every active/ready KSK.
    Always,
    /// Never.
    None,
}

impl CdsPublish {
    fn knot(self) -> &'static str {
        match self {
            CdsPublish::Rollover => "rollover",
            CdsPublish::Always => "always",
            CdsPublish::None => "none",
        }
    }
}

/// One zone for [`KnotSigner::start`].
#[derive(Debug, Clone)]
pub struct KnotZone {
    /// The apex (a final dot is added when missing).
    pub apex: String,
    /// Zone-file text; `$ORIGIN <apex>` is put in front, so relative names
    /// work. Needs a SOA and NS; no DNSSEC records (Knot signs).
    pub body: String,
    /// `cds-cdnskey-publish` of the zone's policy.
    pub cds_publish: CdsPublish,
    /// Where Knot sends NOTIFY after every serial change (`notify:`).
    pub notify: Option<SocketAddr>,
    /// The key allowed to UPDATE the zone (hmac-sha256). Without one, no
    /// UPDATE is allowed.
    pub update_key: Option<TsigKey>,
    /// When set, AXFR/IXFR need this key (a TSIG-signed transfer request is
    /// refused by Knot's address-only rule). None: transfers from
    /// 127.0.0.0/8 without TSIG. Plain queries are always open.
    pub transfer_key: Option<TsigKey>,
    /// More zone options, YAML lines without indentation (e.g.
    /// `"zonefile-sync: -1"`). An option named here replaces the harness
    /// default of the same name (`zonefile-sync: 0`,
    /// `zonefile-load: difference-no-serial`, `journal-content: all`).
    pub extra: String,
}

impl KnotZone {
    /// A zone with `cds-cdnskey-publish: rollover`, no NOTIFY, no UPDATE.
    pub fn new(apex: &str, body: &str) -> KnotZone {
        KnotZone {
            apex: fqdn(apex),
            body: body.to_string(),
            cds_publish: CdsPublish::Rollover,
            notify: None,
            update_key: None,
            transfer_key: None,
            extra: String::new(),
        }
    }

    /// Sets `cds-cdnskey-publish`.
    pub fn cds(mut self, cds: CdsPublish) -> KnotZone {
        self.cds_publish = cds;
        self
    }

    /// Sets the NOTIFY target.
    pub fn notify(mut self, to: SocketAddr) -> KnotZone {
        self.notify = Some(to);
        self
    }

    /// Allows UPDATE with `key`.
    pub fn update_key(mut self, key: &TsigKey) -> KnotZone {
        self.update_key = Some(key.clone());
        self
    }

    /// Requires `key` for transfers.
    pub fn transfer_key(mut self, key: &TsigKey) -> KnotZone {
        self.transfer_key = Some(key.clone());
        self
    }

    /// Adds zone options (see [`KnotZone::extra`]).
    pub fn extra(mut self, yaml: &str) -> KnotZone {
        self.extra.push_str(yaml.trim_end());
        self.extra.push('\n');
        self
    }
}

/// A Knot key as `keymgr ZONE list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnotKey {
    /// Knot's key ID (hex).
    pub id: String,
    pub tag: u16,
    /// KSK (or CSK) rather than ZSK.
    pub ksk: bool,
    /// Timers (UNIX seconds) that are set: `publish`, `ready`, `active`,
    /// `retire`, `remove`, ...
    pub timers: Vec<(String, u64)>,
}

impl KnotKey {
    /// A timer's value if set.
    pub fn timer(&self, name: &str) -> Option<u64> {
        self.timers.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// `knotd` signing zones on its own port; stops when dropped.
pub struct KnotSigner {
    daemon: Option<Daemon>,
    addr: SocketAddr,
    run: PathBuf,
    conf: PathBuf,
    log: PathBuf,
    zones: Vec<KnotZone>,
}

impl KnotSigner {
    /// Writes the config and zone files in `dir/knot-signer-<port>/` and
    /// starts `knotd`; returns once every zone is served signed. Policy:
    /// ECDSAP256SHA256 KSK+ZSK, `dnskey-ttl 2`, `zone-max-ttl 2`,
    /// `propagation-delay 0`, unlimited key lifetimes, KSK submission
    /// confirmed only by [`KnotSigner::ksk_submitted`]. Panics with the log
    /// on failure.
    pub fn start(dir: &Path, zones: &[KnotZone]) -> KnotSigner {
        let zones: Vec<KnotZone> = zones
            .iter()
            .cloned()
            .map(|mut z| {
                z.apex = fqdn(&z.apex);
                z
            })
            .collect();
        let apexes: Vec<String> = zones.iter().map(|z| z.apex.clone()).collect();
        let (daemon, addr) = start_on_free_port(
            "knotd",
            START_TIMEOUT,
            |port| {
                let run = dir.join(format!("knot-signer-{port}"));
                fs::create_dir_all(&run).expect("create knot run directory");
                for z in &zones {
                    fs::write(
                        zone_file(&run, &z.apex),
                        format!("$ORIGIN {}\n{}\n", z.apex, z.body),
                    )
                    .expect("write zone file");
                }
                let conf = run.join("knot.conf");
                fs::write(&conf, knot_config(&run, port, &zones)).expect("write knot.conf");
                (knotd_command(&conf), run.join("knotd.log"))
            },
            |addr| probe_signed(addr, &apexes),
        );
        let run = dir.join(format!("knot-signer-{}", addr.port()));
        KnotSigner {
            daemon: Some(daemon),
            addr,
            conf: run.join("knot.conf"),
            log: run.join("knotd.log"),
            run,
            zones,
        }
    }

    /// Where Knot answers (UDP and TCP): queries, AXFR/IXFR, UPDATE.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The zone file Knot loads (and flushes to, with `zonefile-sync: 0`).
    pub fn zone_file(&self, apex: &str) -> PathBuf {
        zone_file(&self.run, &fqdn(apex))
    }

    /// The control socket, for `knotc -s`.
    pub fn socket(&self) -> PathBuf {
        self.run.join("knot.sock")
    }

    /// `knotc -c CONF -s SOCKET ARGS...`: (exit code, output).
    pub fn knotc(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec![
            "-c".to_string(),
            self.conf.display().to_string(),
            "-s".to_string(),
            self.socket().display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        run_tool("knotc", &all)
    }

    /// `knotc ARGS...`, panicking unless it succeeds; returns the output.
    #[track_caller]
    pub fn knotc_ok(&self, args: &[&str]) -> String {
        let (code, out) = self.knotc(args);
        assert!(
            code == 0,
            "knotc {args:?} failed ({code}): {out}\n{}",
            self.log_tail()
        );
        out
    }

    /// `keymgr -c CONF ARGS...` (e.g. `["example.com.", "list"]`).
    pub fn keymgr(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec!["-c".to_string(), self.conf.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        run_tool("keymgr", &all)
    }

    /// The zone's keys (`keymgr ZONE list`).
    pub fn keys(&self, apex: &str) -> Vec<KnotKey> {
        let apex = fqdn(apex);
        let (code, out) = self.keymgr(&[&apex, "list"]);
        assert!(code == 0, "keymgr {apex} list failed ({code}): {out}");
        out.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 3 {
                    return None;
                }
                Some(KnotKey {
                    id: f[0].to_string(),
                    tag: f[1].parse().ok()?,
                    ksk: f[2] == "KSK" || f[2] == "CSK",
                    timers: f[3..]
                        .iter()
                        .filter_map(|kv| {
                            let (k, v) = kv.split_once('=')?;
                            Some((k.to_string(), v.parse().ok()?))
                        })
                        .collect(),
                })
            })
            .collect()
    }

    /// Starts a KSK rollover (`knotc zone-key-rollover ZONE ksk`) and returns
    /// the new KSK's tag once keymgr lists it. Knot 3.2 publishes its DNSKEY
    /// at once; it becomes `ready` and gets CDS/CDNSKEY (with
    /// `cds-cdnskey-publish: rollover`) after dnskey-ttl + propagation-delay
    /// (~2 s here), and stays so until [`KnotSigner::ksk_submitted`].
    pub fn new_ksk(&self, apex: &str) -> u16 {
        let apex = fqdn(apex);
        let before: Vec<u16> = self
            .keys(&apex)
            .iter()
            .filter(|k| k.ksk)
            .map(|k| k.tag)
            .collect();
        self.knotc_ok(&["zone-key-rollover", &apex, "ksk"]);
        wait_until(Duration::from_secs(10), || {
            self.keys(&apex)
                .iter()
                .find(|k| k.ksk && !before.contains(&k.tag))
                .map(|k| k.tag)
        })
        .unwrap_or_else(|| {
            panic!(
                "no new KSK for {apex} within 10 s after zone-key-rollover\n{}",
                self.log_tail()
            )
        })
    }

    /// `knotc zone-ksk-submitted ZONE`: (exit code, output).
    pub fn ksk_submitted(&self, apex: &str) -> (i32, String) {
        self.knotc(&["zone-ksk-submitted", &fqdn(apex)])
    }

    /// `knotc zone-sign ZONE` (re-signs everything, bumps the serial).
    pub fn sign(&self, apex: &str) {
        self.knotc_ok(&["zone-sign", &fqdn(apex)]);
    }

    /// The served SOA serial.
    pub fn serial(&self, apex: &str) -> u32 {
        soa_serial(self.addr, apex)
    }

    /// Knot's whole log (all runs).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 80 lines of the log.
    pub fn log_tail(&self) -> String {
        tail("knotd", &self.log, 80)
    }

    /// Kills Knot (SIGKILL: nothing is flushed) and starts it again on the same port with the same
    /// files; returns once every zone is served signed again.
    pub fn restart(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
        let apexes: Vec<String> = self.zones.iter().map(|z| z.apex.clone()).collect();
        let addr = self.addr;
        self.daemon = Some(restart_on_same_port("knotd", || {
            launch(
                "knotd",
                knotd_command(&self.conf),
                &self.log,
                START_TIMEOUT,
                || probe_signed(addr, &apexes),
            )
        }));
    }
}

impl fmt::Debug for KnotSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnotSigner")
            .field("addr", &self.addr)
            .field("run", &self.run)
            .finish()
    }
}

fn knotd_command(conf: &Path) -> Command {
    let mut cmd = Command::new("knotd");
    cmd.arg("-c").arg(conf);
    cmd
}

fn zone_file(run: &Path, apex: &str) -> PathBuf {
    let stem = apex.trim_end_matches('.');
    run.join(format!(
        "{}.zone",
        if stem.is_empty() { "root" } else { stem }
    ))
}

fn knot_config(run: &Path, port: u16, zones: &[KnotZone]) -> String {
    let r = run.display();
    let mut conf = format!(
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
    );
    let mut keys: Vec<&TsigKey> = Vec::new();
    for z in zones {
        for k in z.update_key.iter().chain(z.transfer_key.iter()) {
            if !keys.iter().any(|have| have.name == k.name) {
                keys.push(k);
            }
        }
    }
    if !keys.is_empty() {
        conf.push_str("key:\n");
        for k in &keys {
            conf.push_str(&format!(
                "  - id: \"{}\"\n    algorithm: hmac-sha256\n    secret: \"{}\"\n",
                k.name, k.secret
            ));
        }
        conf.push('\n');
    }
    let mut remotes: Vec<SocketAddr> = zones.iter().filter_map(|z| z.notify).collect();
    remotes.sort();
    remotes.dedup();
    if !remotes.is_empty() {
        conf.push_str("remote:\n");
        for (i, a) in remotes.iter().enumerate() {
            conf.push_str(&format!(
                "  - id: notify-{i}\n    address: {}@{}\n",
                a.ip(),
                a.port()
            ));
        }
        conf.push('\n');
    }
    conf.push_str("acl:\n  - id: transfer\n    address: 127.0.0.0/8\n    action: transfer\n");
    for k in &keys {
        conf.push_str(&format!(
            "  - id: \"update-{0}\"\n    key: \"{0}\"\n    action: update\n\
             \x20 - id: \"transfer-{0}\"\n    key: \"{0}\"\n    action: transfer\n",
            k.name
        ));
    }
    conf.push_str("\nsubmission:\n  - id: manual\n    check-interval: 1d\n\npolicy:\n");
    let mut modes: Vec<CdsPublish> = Vec::new();
    for z in zones {
        if !modes.contains(&z.cds_publish) {
            modes.push(z.cds_publish);
        }
    }
    for m in &modes {
        conf.push_str(&format!(
            "  - id: cds-{m}\n    algorithm: ecdsap256sha256\n    dnskey-ttl: 2\n    \
             zone-max-ttl: 2\n    propagation-delay: 0\n    ksk-lifetime: 0\n    \
             zsk-lifetime: 0\n    ksk-submission: manual\n    cds-cdnskey-publish: {m}\n",
            m = m.knot()
        ));
    }
    conf.push_str("\nzone:\n");
    for z in zones {
        conf.push_str(&format!(
            "  - domain: \"{}\"\n    file: \"{}\"\n    dnssec-signing: on\n    \
             dnssec-policy: cds-{}\n",
            z.apex,
            zone_file(run, &z.apex).display(),
            z.cds_publish.knot()
        ));
        let mut acl = match &z.transfer_key {
            Some(k) => vec![format!("\"transfer-{}\"", k.name)],
            None => vec!["transfer".to_string()],
        };
        if let Some(k) = &z.update_key {
            acl.push(format!("\"update-{}\"", k.name));
        }
        conf.push_str(&format!("    acl: [{}]\n", acl.join(", ")));
        if let Some(a) = z.notify {
            let i = remotes.iter().position(|r| *r == a).expect("listed above");
            conf.push_str(&format!("    notify: notify-{i}\n"));
        }
        for (option, default) in [
            ("zonefile-sync", "0"),
            ("zonefile-load", "difference-no-serial"),
            ("journal-content", "all"),
        ] {
            let overridden = z
                .extra
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{option}:")));
            if !overridden {
                conf.push_str(&format!("    {option}: {default}\n"));
            }
        }
        for line in z.extra.lines().filter(|l| !l.trim().is_empty()) {
            conf.push_str(&format!("    {}\n", line.trim()));
        }
    }
    conf
}

// ---------------------------------------------------------------------------
// BIND
// ---------------------------------------------------------------------------

/// The timings of a BIND `dnssec-policy` (seconds). CDS/CDNSKEY of a new
/// KSK appear at SyncPublish = creation + max-zone-ttl + zone-propagation-
/// delay + publish-safety (4 s with [`BindPolicy::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindPolicy {
    pub dnskey_ttl: u32,
    /// Also caps the TTL of every record added by UPDATE (BIND 9.18 logs
    /// "reducing TTL to the configured max-zone-ttl").
    pub max_zone_ttl: u32,
    pub zone_propagation_delay: u32,
    pub parent_propagation_delay: u32,
    pub parent_ds_ttl: u32,
    pub publish_safety: u32,
    pub retire_safety: u32,
}

impl Default for BindPolicy {
    fn default() -> Self {
        BindPolicy {
            dnskey_ttl: 2,
            max_zone_ttl: 2,
            zone_propagation_delay: 1,
            parent_propagation_delay: 1,
            parent_ds_ttl: 2,
            publish_safety: 1,
            retire_safety: 1,
        }
    }
}

impl BindPolicy {
    fn name(&self) -> String {
        format!(
            "sb-{}-{}-{}-{}-{}-{}-{}",
            self.dnskey_ttl,
            self.max_zone_ttl,
            self.zone_propagation_delay,
            self.parent_propagation_delay,
            self.parent_ds_ttl,
            self.publish_safety,
            self.retire_safety
        )
    }

    fn config(&self) -> String {
        format!(
            "dnssec-policy \"{}\" {{\n\
             \tkeys {{\n\
             \t\tksk key-directory lifetime unlimited algorithm ecdsap256sha256;\n\
             \t\tzsk key-directory lifetime unlimited algorithm ecdsap256sha256;\n\
             \t}};\n\
             \tdnskey-ttl {};\n\tmax-zone-ttl {};\n\tzone-propagation-delay {};\n\
             \tparent-propagation-delay {};\n\tparent-ds-ttl {};\n\
             \tpublish-safety {};\n\tretire-safety {};\n}};\n",
            self.name(),
            self.dnskey_ttl,
            self.max_zone_ttl,
            self.zone_propagation_delay,
            self.parent_propagation_delay,
            self.parent_ds_ttl,
            self.publish_safety,
            self.retire_safety
        )
    }
}

/// One zone for [`BindSigner::start`].
#[derive(Debug, Clone)]
pub struct BindZone {
    /// The apex (a final dot is added when missing).
    pub apex: String,
    /// Zone-file text; `$ORIGIN <apex>` is put in front. SOA and NS needed.
    pub body: String,
    /// `inline-signing yes` (UPDATEs go to the raw zone) instead of a
    /// dynamic zone signed in place.
    pub inline: bool,
    /// `also-notify` target (`notify explicit`); none: `notify no`.
    pub notify: Option<SocketAddr>,
    /// `update-policy { grant KEY zonesub ANY; }`. Without a key a dynamic
    /// zone gets `update-policy local` (dnssec-policy needs a dynamic or an
    /// inline-signing zone) and an inline one no update permission.
    pub update_key: Option<TsigKey>,
    /// When set, `allow-transfer { key K; }`; None: `allow-transfer {
    /// 127.0.0.0/8; }` (signed requests with any key named knows pass too).
    pub transfer_key: Option<TsigKey>,
    /// The zone's dnssec-policy timings.
    pub policy: BindPolicy,
}

impl BindZone {
    /// A dynamic zone (signed in place), fast policy, no NOTIFY, no key.
    pub fn new(apex: &str, body: &str) -> BindZone {
        BindZone {
            apex: fqdn(apex),
            body: body.to_string(),
            inline: false,
            notify: None,
            update_key: None,
            transfer_key: None,
            policy: BindPolicy::default(),
        }
    }

    /// Makes it an inline-signing zone.
    pub fn inline(mut self) -> BindZone {
        self.inline = true;
        self
    }

    /// Sets the also-notify target.
    pub fn notify(mut self, to: SocketAddr) -> BindZone {
        self.notify = Some(to);
        self
    }

    /// Allows UPDATE with `key`.
    pub fn update_key(mut self, key: &TsigKey) -> BindZone {
        self.update_key = Some(key.clone());
        self
    }

    /// Requires `key` for transfers.
    pub fn transfer_key(mut self, key: &TsigKey) -> BindZone {
        self.transfer_key = Some(key.clone());
        self
    }

    /// Sets the policy timings.
    pub fn policy(mut self, policy: BindPolicy) -> BindZone {
        self.policy = policy;
        self
    }
}

/// A key as `rndc dnssec -status` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindKey {
    pub tag: u16,
    /// `KSK`, `ZSK` or `CSK`.
    pub role: String,
}

/// `named -g` signing zones under dnssec-policy; stops when dropped.
pub struct BindSigner {
    daemon: Option<Daemon>,
    addr: SocketAddr,
    control: SocketAddr,
    run: PathBuf,
    conf: PathBuf,
    rndc_conf: PathBuf,
    log: PathBuf,
    zones: Vec<BindZone>,
}

impl BindSigner {
    /// Writes named.conf, rndc.conf and the zone files in
    /// `dir/named-<port>/` and starts `named -g`; returns once every zone
    /// is served with its DNSKEY RRset and rndc answers. Panics with the log
    /// on failure.
    pub fn start(dir: &Path, zones: &[BindZone]) -> BindSigner {
        let zones: Vec<BindZone> = zones
            .iter()
            .cloned()
            .map(|mut z| {
                z.apex = fqdn(&z.apex);
                z
            })
            .collect();
        let rndc_key = TsigKey::generate("signalbox-rndc");
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port();
            let control_port = free_port();
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let control = SocketAddr::from((Ipv4Addr::LOCALHOST, control_port));
            let run = dir.join(format!("named-{port}"));
            fs::create_dir_all(&run).expect("create named directory");
            for z in &zones {
                fs::create_dir_all(keys_dir(&run, &z.apex)).expect("create key directory");
                fs::write(
                    bind_zone_file(&run, &z.apex),
                    format!("$ORIGIN {}\n{}\n", z.apex, z.body),
                )
                .expect("write zone file");
            }
            let conf = run.join("named.conf");
            fs::write(&conf, named_config(&run, addr, control, &rndc_key, &zones))
                .expect("write named.conf");
            let rndc_conf = run.join("rndc.conf");
            fs::write(
                &rndc_conf,
                format!(
                    "{}options {{\n\tdefault-key \"{}\";\n\tdefault-server 127.0.0.1;\n\
                     \tdefault-port {control_port};\n}};\n",
                    rndc_key.keyfile_text(),
                    rndc_key.name
                ),
            )
            .expect("write rndc.conf");
            let log = run.join("named.log");
            let mut signer = BindSigner {
                daemon: None,
                addr,
                control,
                run,
                conf,
                rndc_conf,
                log,
                zones: zones.clone(),
            };
            match signer.launch() {
                Ok(daemon) => {
                    signer.daemon = Some(daemon);
                    return signer;
                }
                Err(e) if port_taken(&e) && attempts < 4 => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn launch(&self) -> Result<Daemon, String> {
        let apexes: Vec<String> = self.zones.iter().map(|z| z.apex.clone()).collect();
        let mut cmd = Command::new("named");
        cmd.arg("-g").arg("-n").arg("1").arg("-c").arg(&self.conf);
        let addr = self.addr;
        let rndc_conf = self.rndc_conf.clone();
        launch("named", cmd, &self.log, START_TIMEOUT, || {
            probe_signed(addr, &apexes)?;
            let (code, out) = run_tool(
                "rndc",
                &[
                    "-c".to_string(),
                    rndc_conf.display().to_string(),
                    "status".to_string(),
                ],
            );
            if code == 0 { Ok(()) } else { Err(out) }
        })
    }

    /// Where named answers (UDP and TCP): queries, AXFR/IXFR, UPDATE.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The zone's key directory (`K<zone>+013+<tag>.{key,private,state}`).
    pub fn keys_dir(&self, apex: &str) -> PathBuf {
        keys_dir(&self.run, &fqdn(apex))
    }

    /// `rndc -c RNDC_CONF ARGS...`: (exit code, output).
    pub fn rndc(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec!["-c".to_string(), self.rndc_conf.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        run_tool("rndc", &all)
    }

    /// `rndc ARGS...`, panicking unless it succeeds; returns the output.
    #[track_caller]
    pub fn rndc_ok(&self, args: &[&str]) -> String {
        let (code, out) = self.rndc(args);
        assert!(
            code == 0,
            "rndc {args:?} failed ({code}): {out}\n{}",
            self.log_tail()
        );
        out
    }

    /// The zone's keys (`rndc dnssec -status ZONE`).
    pub fn keys(&self, apex: &str) -> Vec<BindKey> {
        let out = self.rndc_ok(&["dnssec", "-status", apex.trim_end_matches('.')]);
        out.lines()
            .filter_map(|l| {
                // "key: 11801 (ECDSAP256SHA256), KSK"
                let rest = l.strip_prefix("key: ")?;
                let tag = rest.split_whitespace().next()?.parse().ok()?;
                let role = rest.rsplit(", ").next()?.trim().to_string();
                Some(BindKey { tag, role })
            })
            .collect()
    }

    /// The tags of the zone's KSKs (and CSKs).
    pub fn ksks(&self, apex: &str) -> Vec<u16> {
        self.keys(apex)
            .into_iter()
            .filter(|k| k.role != "ZSK")
            .map(|k| k.tag)
            .collect()
    }

    /// `rndc dnssec -checkds -key TAG published|withdrawn ZONE`.
    pub fn checkds(&self, apex: &str, tag: u16, published: bool) {
        let what = if published { "published" } else { "withdrawn" };
        self.rndc_ok(&[
            "dnssec",
            "-checkds",
            "-key",
            &tag.to_string(),
            what,
            apex.trim_end_matches('.'),
        ]);
    }

    /// `rndc dnssec -rollover -key TAG ZONE`: a successor KSK is created at
    /// once; its CDS/CDNSKEY replace the old key's after the policy's
    /// SyncPublish delay (~4 s with [`BindPolicy::default`]).
    pub fn rollover(&self, apex: &str, tag: u16) {
        self.rndc_ok(&[
            "dnssec",
            "-rollover",
            "-key",
            &tag.to_string(),
            apex.trim_end_matches('.'),
        ]);
    }

    /// The served SOA serial.
    pub fn serial(&self, apex: &str) -> u32 {
        soa_serial(self.addr, apex)
    }

    /// named's whole log (all runs).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 80 lines of the log.
    pub fn log_tail(&self) -> String {
        tail("named", &self.log, 80)
    }

    /// Kills named (SIGKILL: nothing is flushed) and starts it again on the same ports with the
    /// same files; returns once every zone is served signed again.
    pub fn restart(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
        self.daemon = Some(restart_on_same_port("named", || self.launch()));
    }
}

impl fmt::Debug for BindSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindSigner")
            .field("addr", &self.addr)
            .field("control", &self.control)
            .field("run", &self.run)
            .finish()
    }
}

fn keys_dir(run: &Path, apex: &str) -> PathBuf {
    let stem = apex.trim_end_matches('.');
    run.join(format!(
        "keys-{}",
        if stem.is_empty() { "root" } else { stem }
    ))
}

fn bind_zone_file(run: &Path, apex: &str) -> PathBuf {
    let stem = apex.trim_end_matches('.');
    run.join(format!(
        "{}.db",
        if stem.is_empty() { "root" } else { stem }
    ))
}

fn named_config(
    run: &Path,
    addr: SocketAddr,
    control: SocketAddr,
    rndc_key: &TsigKey,
    zones: &[BindZone],
) -> String {
    let r = run.display();
    let mut conf = rndc_key.keyfile_text();
    let mut keys: Vec<&TsigKey> = Vec::new();
    for z in zones {
        for k in z.update_key.iter().chain(z.transfer_key.iter()) {
            if !keys.iter().any(|have| have.name == k.name) {
                keys.push(k);
                conf.push_str(&k.keyfile_text());
            }
        }
    }
    conf.push_str(&format!(
        "controls {{\n\tinet {} port {} allow {{ 127.0.0.1; }} keys {{ \"{}\"; }};\n}};\n",
        control.ip(),
        control.port(),
        rndc_key.name
    ));
    conf.push_str(&format!(
        "options {{\n\
         \tdirectory \"{r}\";\n\
         \tpid-file \"{r}/named.pid\";\n\
         \tsession-keyfile \"{r}/session.key\";\n\
         \tmanaged-keys-directory \"{r}\";\n\
         \tdump-file \"{r}/named_dump.db\";\n\
         \tstatistics-file \"{r}/named.stats\";\n\
         \tlisten-on port {} {{ {}; }};\n\
         \tlisten-on-v6 {{ none; }};\n\
         \trecursion no;\n\
         \tdnssec-validation no;\n\
         \tallow-query {{ any; }};\n\
         \tallow-transfer {{ 127.0.0.0/8; }};\n\
         }};\n",
        addr.port(),
        addr.ip()
    ));
    let mut policies: Vec<BindPolicy> = Vec::new();
    for z in zones {
        if !policies.contains(&z.policy) {
            policies.push(z.policy);
            conf.push_str(&z.policy.config());
        }
    }
    for z in zones {
        let name = z.apex.trim_end_matches('.');
        conf.push_str(&format!(
            "zone \"{name}\" {{\n\ttype primary;\n\tfile \"{}\";\n\tkey-directory \"{}\";\n\
             \tdnssec-policy \"{}\";\n\tinline-signing {};\n",
            bind_zone_file(run, &z.apex).display(),
            keys_dir(run, &z.apex).display(),
            z.policy.name(),
            if z.inline { "yes" } else { "no" }
        ));
        match (&z.update_key, z.inline) {
            (Some(k), _) => conf.push_str(&format!(
                "\tupdate-policy {{ grant \"{}\" zonesub ANY; }};\n",
                k.name
            )),
            (None, false) => conf.push_str("\tupdate-policy local;\n"),
            (None, true) => {}
        }
        if let Some(k) = &z.transfer_key {
            conf.push_str(&format!("\tallow-transfer {{ key \"{}\"; }};\n", k.name));
        }
        match z.notify {
            Some(a) => conf.push_str(&format!(
                "\tnotify explicit;\n\talso-notify {{ {} port {}; }};\n",
                a.ip(),
                a.port()
            )),
            None => conf.push_str("\tnotify no;\n"),
        }
        conf.push_str("};\n");
    }
    conf
}

// ---------------------------------------------------------------------------
// NOTIFY listener
// ---------------------------------------------------------------------------

/// One NOTIFY a [`NotifyListener`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notified {
    /// When it arrived.
    pub at: Instant,
    /// `"udp"` or `"tcp"`.
    pub transport: &'static str,
    pub from: SocketAddr,
    /// The question name, lower-case, fully qualified.
    pub qname: String,
    /// The serial of the SOA in the answer section, when there is one.
    pub serial: Option<u32>,
}

/// A NOTIFY target on a fresh 127.0.0.1 port, UDP and TCP (Knot 3.2 sends
/// NOTIFY over TCP, BIND 9.18 over UDP): records every NOTIFY (opcode 4,
/// QR clear) with its arrival time and answers NOERROR (so the signer does
/// not retry). Stops on drop.
pub struct NotifyListener {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Notified>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl NotifyListener {
    /// Binds and starts listening.
    pub fn start() -> NotifyListener {
        let (udp, tcp) = (0..50)
            .find_map(|_| {
                let port = free_port();
                let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).ok()?;
                let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).ok()?;
                Some((udp, tcp))
            })
            .expect("a port for the NOTIFY listener");
        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set timeout");
        tcp.set_nonblocking(true).expect("nonblocking listener");
        let addr = udp.local_addr().expect("listener address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let udp_thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = vec![0u8; 65535];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some(reply) = record_notify(&seen, "udp", from, &buf[..len]) {
                        let _ = udp.send_to(&reply, from);
                    }
                }
            })
        };
        let tcp_thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        Ok((stream, from)) => {
                            let seen = seen.clone();
                            thread::spawn(move || serve_tcp(stream, from, &seen));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        NotifyListener {
            addr,
            seen,
            stop,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything received so far, in arrival order.
    pub fn seen(&self) -> Vec<Notified> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits up to `within` for a NOTIFY for `zone` that arrived at or after
    /// `since` and whose serial is at least `serial` (any serial when None,
    /// serial arithmetic otherwise). Returns the first such.
    pub fn wait_for(
        &self,
        zone: &str,
        since: Instant,
        serial: Option<u32>,
        within: Duration,
    ) -> Option<Notified> {
        let zone = fqdn(zone);
        wait_until(within, || {
            self.seen().into_iter().find(|n| {
                n.qname == zone
                    && n.at >= since
                    && match (serial, n.serial) {
                        (None, _) => true,
                        (Some(want), Some(got)) => {
                            got == want || (got.wrapping_sub(want) as i32) > 0
                        }
                        (Some(_), None) => false,
                    }
            })
        })
    }
}

impl Drop for NotifyListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Records `msg` if it is a NOTIFY; returns the reply to send.
fn record_notify(
    seen: &Mutex<Vec<Notified>>,
    transport: &'static str,
    from: SocketAddr,
    msg: &[u8],
) -> Option<Vec<u8>> {
    let at = Instant::now();
    let (qname, serial, reply) = parse_notify(msg)?;
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Notified {
            at,
            transport,
            from,
            qname,
            serial,
        });
    Some(reply)
}

/// One TCP connection: length-prefixed messages until EOF or 10 s idle.
fn serve_tcp(mut stream: TcpStream, from: SocketAddr, seen: &Mutex<Vec<Notified>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if stream.read_exact(&mut msg).is_err() {
            return;
        }
        if let Some(reply) = record_notify(seen, "tcp", from, &msg) {
            let mut out = (reply.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&reply);
            if stream.write_all(&out).is_err() {
                return;
            }
        }
    }
}

/// For a NOTIFY query: (qname, SOA serial if present, NOERROR reply).
fn parse_notify(msg: &[u8]) -> Option<(String, Option<u32>, Vec<u8>)> {
    if msg.len() < 12 || msg[2] & 0x80 != 0 || (msg[2] >> 3) & 0xf != 4 {
        return None;
    }
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    let ancount = u16::from_be_bytes([msg[6], msg[7]]);
    if qdcount != 1 {
        return None;
    }
    let (qname, end) = read_name(msg, 12)?;
    let question_end = end + 4;
    if question_end > msg.len() {
        return None;
    }
    let mut serial = None;
    let mut pos = question_end;
    for _ in 0..ancount {
        let (_, name_end) = read_name(msg, pos)?;
        let rtype = u16::from_be_bytes([*msg.get(name_end)?, *msg.get(name_end + 1)?]);
        let rdlen = u16::from_be_bytes([*msg.get(name_end + 8)?, *msg.get(name_end + 9)?]) as usize;
        let rdata = name_end + 10;
        if rtype == 6 {
            let (_, after_mname) = read_name(msg, rdata)?;
            let (_, after_rname) = read_name(msg, after_mname)?;
            let s = msg.get(after_rname..after_rname + 4)?;
            serial = Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
        }
        pos = rdata + rdlen;
    }
    let mut reply = Vec::with_capacity(question_end);
    reply.extend_from_slice(&msg[..2]);
    reply.push(0x80 | (4 << 3) | 0x04);
    reply.push(0);
    reply.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    reply.extend_from_slice(&msg[12..question_end]);
    Some((qname, serial, reply))
}

/// Reads a (possibly compressed) name at `pos`: (lower-case FQDN, position
/// after the name in the message).
fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(pos)? as usize;
        if len == 0 {
            if name.is_empty() {
                name.push('.');
            }
            return Some((name, end.unwrap_or(pos + 1)));
        }
        if len & 0xc0 == 0xc0 {
            end.get_or_insert(pos + 2);
            pos = ((len & 0x3f) << 8) | *msg.get(pos + 1)? as usize;
            continue;
        }
        for &b in msg.get(pos + 1..pos + 1 + len)? {
            name.push(b.to_ascii_lowercase() as char);
        }
        name.push('.');
        pos += 1 + len;
    }
    None
}
