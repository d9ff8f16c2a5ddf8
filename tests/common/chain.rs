//! A local DNSSEC chain of trust for integration tests.
//!
//! [`Chain::start`] builds, in its own temporary directory and on its own
//! 127.0.0.1 high ports:
//!
//! ```text
//!   test.  --DS-->  operator.test.  --DS (ChainSpec::signaling_ds)-->  <signaling apex>
//!   \____________ Knot ____________/                                   \ spec.signaling_server /
//!                        \________ validating Unbound (stub-zones) ________/
//! ```
//!
//! * `test.` and `operator.test.` are signed bottom-up with `dnssec-signzone`
//!   (ECDSAP256SHA256 KSK + ZSK made by `dnssec-keygen`) and served by one
//!   Knot instance ([`Knot`]); `operator.test.` delegates the signaling apex
//!   to `ns1.operator.test.` with the DS records of [`ChainSpec::signaling_ds`].
//! * A validating Unbound has `stub-zone`s for `test.`, `operator.test.`
//!   (both -> Knot) and the signaling apex (-> [`ChainSpec::signaling_server`]),
//!   and `test.`'s KSK as its trust anchor.
//! * [`Chain::delv`] runs `delv` through that Unbound with the same anchor
//!   (delv 9.18 does not iterate, so it needs one server that answers for the
//!   whole chain) and classifies the verdict; [`Chain::kdig`] is a second,
//!   independent check (`ad` flag / rcode as seen by a stub client).
//!
//! [`CorruptingProxy`] sits between Unbound and a signaling server and flips a
//! byte of one record type's RDATA: the negative control that proves a
//! "validated" verdict means something.
//!
//! Why Knot for `test.`/`operator.test.`: it is one process (threads), so
//! killing it leaves nothing behind (NSD forks a main, xfrd and server
//! processes, and Debian's NSD has response-rate limiting on by default); it
//! serves pre-signed zone files as they are with no privilege drop unless
//! configured (`user:` unset), keeps its control socket, PID file and LMDB
//! databases in one run directory, and starts in ~0.1 s.
//!
//! Every daemon runs in the foreground as a child of the test process and is
//! killed (SIGKILL) when its owner is dropped, which includes unwinding from a
//! failed assertion. A small `sh` watchdog per daemon also kills it when the
//! test process itself dies without unwinding (SIGKILL, abort, timeout).
//! `Chain`, `Knot` and `CorruptingProxy` are independent, so tests running in
//! parallel threads can each start their own.
#![allow(dead_code)]

use std::{
    collections::HashSet,
    fmt, fs,
    io::{self, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use tempfile::TempDir;

/// The tools a test using this module needs; pass to `common::tools`.
pub const TOOLS: &[&str] = &[
    "knotd",
    "kdig",
    "unbound",
    "delv",
    "dnssec-keygen",
    "dnssec-signzone",
    "dnssec-dsfromkey",
    "timeout",
];

/// How long a daemon may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound for one `delv` or `kdig` run (killed after that).
const QUERY_TIMEOUT_SECS: u32 = 20;
/// DNS record type numbers, for [`CorruptingProxy::start`].
pub const CDS: u16 = 59;
/// See [`CDS`].
pub const CDNSKEY: u16 = 60;

// ---------------------------------------------------------------------------
// The chain
// ---------------------------------------------------------------------------

/// What the chain leads to: the signaling zone and where it is served.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    /// The signaling zone's apex, e.g. `_signal.ns1.operator.test.` (must be
    /// below `operator.test.`; a missing final dot is added).
    pub signaling_apex: String,
    /// DS records for the signaling zone, placed at the delegation in
    /// `operator.test.`. Either bare RDATA (`"3613 13 2 0686..."`) or whole
    /// lines as `dnssec-dsfromkey` prints them (`"name. IN DS 3613 13 2 ..."`).
    /// Empty means an insecure delegation (then nothing below validates).
    pub signaling_ds: Vec<String>,
    /// Where the signaling zone is served (signalbox, a stand-in, or a
    /// [`CorruptingProxy`] in front of either). UDP and TCP.
    pub signaling_server: SocketAddr,
}

/// How `delv` judged an answer. Every variant carries delv's whole output
/// (stdout then stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DelvResult {
    /// `; fully validated`: a positive answer with a complete chain of trust.
    Validated(String),
    /// `; negative response, fully validated`: NXDOMAIN or NODATA, proven.
    NegativeValidated(String),
    /// Anything else: bogus, SERVFAIL, unsigned/insecure answer, timeout.
    Failed(String),
}

impl DelvResult {
    /// delv's output, whatever the verdict.
    pub fn output(&self) -> &str {
        match self {
            Self::Validated(o) | Self::NegativeValidated(o) | Self::Failed(o) => o,
        }
    }

    /// The verdict's name, for messages.
    pub fn verdict(&self) -> &'static str {
        match self {
            Self::Validated(_) => "Validated",
            Self::NegativeValidated(_) => "NegativeValidated",
            Self::Failed(_) => "Failed",
        }
    }

    /// The answer's records (non-comment lines, per-record comments cut),
    /// whitespace-normalised; RRSIGs are omitted.
    pub fn records(&self) -> Vec<String> {
        self.output()
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
            // Drop per-record comments (`; KSK; alg = ...`).
            .map(|l| l.split(';').next().unwrap_or(""))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.split(' ').any(|f| f == "RRSIG"))
            .collect()
    }

    fn classify(output: String) -> Self {
        if output
            .lines()
            .any(|l| l.trim() == "; negative response, fully validated")
        {
            Self::NegativeValidated(output)
        } else if output.lines().any(|l| l.trim() == "; fully validated") {
            Self::Validated(output)
        } else {
            Self::Failed(output)
        }
    }
}

/// What a validating resolver told a stub client (`kdig +dnssec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdigResult {
    /// The response code as kdig names it (`NOERROR`, `NXDOMAIN`,
    /// `SERVFAIL`, ...); empty if there was no response.
    pub rcode: String,
    /// Whether the AD (authentic data) flag was set.
    pub ad: bool,
    /// Whether the AA (authoritative answer) flag was set.
    pub aa: bool,
    /// The answer section's records (RRSIGs included), whitespace-normalised.
    pub answer: Vec<String>,
    /// kdig's whole output (stdout then stderr).
    pub output: String,
}

/// A running chain of trust; everything stops when it is dropped.
pub struct Chain {
    // Fields drop in order: the daemons go before their directory.
    unbound: Daemon,
    knot: Knot,
    resolver: SocketAddr,
    anchor_conf: PathBuf,
    unbound_conf: PathBuf,
    trust_anchor: String,
    spec: ChainSpec,
    dir: TempDir,
}

impl Chain {
    /// Signs `test.` and `operator.test.`, starts Knot and a validating
    /// Unbound, waits until both answer and `operator.test.` validates
    /// through Unbound. Panics with the servers' logs on any failure.
    /// The signaling server is not contacted here (it may start later).
    pub fn start(spec: &ChainSpec) -> Chain {
        let mut spec = spec.clone();
        spec.signaling_apex = fqdn(&spec.signaling_apex);
        assert!(
            spec.signaling_apex.ends_with(".operator.test."),
            "the signaling apex {} must be below operator.test.",
            spec.signaling_apex
        );
        assert!(
            spec.signaling_server.is_ipv4(),
            "the signaling server must be on IPv4 (Unbound runs with do-ip6: no): {}",
            spec.signaling_server
        );
        let dir = tempfile::Builder::new()
            .prefix("signalbox-chain-")
            .tempdir()
            .expect("temporary directory");
        let d = dir.path();

        // Bottom-up: operator.test. holds the signaling DS, test. holds
        // operator.test.'s DS.
        let delegated = spec
            .signaling_apex
            .strip_suffix(".operator.test.")
            .expect("checked above");
        let mut operator = String::from(
            "$TTL 300\n\
             @ SOA ns1 hostmaster 1 3600 600 86400 300\n\
             @ NS ns1\n\
             ns1 A 127.0.0.1\n",
        );
        operator.push_str(&format!("{delegated} NS ns1.operator.test.\n"));
        for ds in &spec.signaling_ds {
            operator.push_str(&format!("{delegated} DS {}\n", ds_rdata(ds)));
        }
        let operator = sign_zone(d, "operator.test.", &operator, false);

        let mut test = String::from(
            "$TTL 300\n\
             @ SOA ns hostmaster 1 3600 600 86400 300\n\
             @ NS ns\n\
             ns A 127.0.0.1\n\
             operator NS ns1.operator\n\
             ns1.operator A 127.0.0.1\n",
        );
        for ds in &operator.ds {
            test.push_str(&format!("operator DS {ds}\n"));
        }
        let test = sign_zone(d, "test.", &test, false);

        let knot = Knot::start(
            d,
            &[(&test.apex, &test.file), (&operator.apex, &operator.file)],
        );

        let trust_anchor = test.ksk.clone();
        let anchor_file = d.join("test.anchor");
        fs::write(
            &anchor_file,
            format!("test. 300 IN DNSKEY {trust_anchor}\n"),
        )
        .expect("write trust anchor");
        let anchor_conf = d.join("anchor.conf");
        let (flags_proto_alg, key) = split_dnskey(&trust_anchor);
        fs::write(
            &anchor_conf,
            format!("trust-anchors {{ test. static-key {flags_proto_alg} \"{key}\"; }};\n"),
        )
        .expect("write anchor.conf");

        let unbound_conf = d.join("unbound.conf");
        let unbound_dir = d.to_path_buf();
        let knot_addr = knot.addr();
        let signaling = spec.clone();
        let (unbound, resolver) = start_daemon(
            "unbound",
            d,
            |port| {
                let conf = unbound_config(
                    &unbound_dir,
                    port,
                    &anchor_file,
                    knot_addr,
                    &signaling.signaling_apex,
                    signaling.signaling_server,
                );
                fs::write(&unbound_conf, conf).expect("write unbound.conf");
                let mut cmd = Command::new("unbound");
                cmd.arg("-d").arg("-c").arg(&unbound_conf);
                cmd
            },
            |addr| {
                // Any answer will do here; validation is checked below.
                let r = kdig_with(
                    addr,
                    "test.",
                    "SOA",
                    false,
                    &["+retry=0", "+timeout=1", "+tcp"],
                );
                if r.rcode.is_empty() {
                    Err(r.output)
                } else {
                    Ok(())
                }
            },
        );

        let chain = Chain {
            unbound,
            knot,
            resolver,
            anchor_conf,
            unbound_conf,
            trust_anchor,
            spec,
            dir,
        };
        // The part of the chain we own must validate, or nothing will.
        let check = chain.kdig("operator.test.", "SOA");
        if !(check.ad && check.rcode == "NOERROR") {
            panic!(
                "the local chain does not validate (operator.test. SOA via Unbound):\n{}\n{}",
                check.output,
                chain.logs()
            );
        }
        chain
    }

    /// The validating Unbound (UDP and TCP).
    pub fn resolver(&self) -> SocketAddr {
        self.resolver
    }

    /// The Knot instance serving `test.` and `operator.test.`.
    pub fn authoritative(&self) -> SocketAddr {
        self.knot.addr()
    }

    /// The spec this chain was built from (apex made fully qualified).
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The trust anchor: `test.`'s KSK as DNSKEY RDATA (`257 3 13 <base64>`).
    pub fn trust_anchor(&self) -> &str {
        &self.trust_anchor
    }

    /// The delv anchor file (`trust-anchors { test. static-key ...; };`).
    pub fn anchor_conf(&self) -> &Path {
        &self.anchor_conf
    }

    /// Unbound's configuration, e.g. for `unbound-host -C FILE -v -t CDS NAME`.
    pub fn unbound_conf(&self) -> &Path {
        &self.unbound_conf
    }

    /// The chain's scratch directory (zones, keys, configs, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `delv @resolver -a anchor.conf +root=test. NAME RTYPE`, classified.
    /// delv checks every signature of the answer and of the chain up to the
    /// anchor itself, so `Validated` does not rest on Unbound's AD flag.
    /// delv 9.18 does not set CD, so bogus data is already refused by
    /// Unbound (SERVFAIL, delv prints `;; resolution failed: failure`; the
    /// reason is in [`Chain::resolver_log`]).
    pub fn delv(&self, name: &str, rtype: &str) -> DelvResult {
        self.delv_with(name, rtype, &[])
    }

    /// [`Chain::delv`] with extra delv options, e.g. `+vtrace` or `+rtrace`
    /// to see why something does not validate.
    pub fn delv_with(&self, name: &str, rtype: &str, extra: &[&str]) -> DelvResult {
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "5", &QUERY_TIMEOUT_SECS.to_string(), "delv"])
            .arg(format!("@{}", self.resolver.ip()))
            .arg("-p")
            .arg(self.resolver.port().to_string())
            .arg("-a")
            .arg(&self.anchor_conf)
            .arg("+root=test.")
            .args(extra)
            .arg(name)
            .arg(rtype);
        let (code, stdout, stderr) = run(&mut cmd);
        let mut output = format!("{stdout}{stderr}");
        if code == 124 || code == 137 {
            output.push_str(&format!("\n[delv timed out after {QUERY_TIMEOUT_SECS} s]"));
        }
        DelvResult::classify(output)
    }

    /// `kdig +dnssec @resolver NAME RTYPE`: rcode, AD flag and answer.
    pub fn kdig(&self, name: &str, rtype: &str) -> KdigResult {
        kdig(self.resolver, name, rtype, true)
    }

    /// Asserts that delv fully validates a positive answer; returns its
    /// records (without RRSIGs). Panics with delv's output and the logs.
    #[track_caller]
    pub fn assert_validated(&self, name: &str, rtype: &str) -> Vec<String> {
        let result = self.delv(name, rtype);
        match &result {
            DelvResult::Validated(_) => result.records(),
            _ => self.fail("Validated", name, rtype, &result),
        }
    }

    /// Asserts that delv fully validates a negative answer (NXDOMAIN/NODATA).
    #[track_caller]
    pub fn assert_negative(&self, name: &str, rtype: &str) {
        let result = self.delv(name, rtype);
        if !matches!(result, DelvResult::NegativeValidated(_)) {
            self.fail("NegativeValidated", name, rtype, &result);
        }
    }

    /// Asserts that delv does not validate (bogus, SERVFAIL, insecure...);
    /// returns delv's output.
    #[track_caller]
    pub fn assert_failed(&self, name: &str, rtype: &str) -> String {
        let result = self.delv(name, rtype);
        match result {
            DelvResult::Failed(output) => output,
            _ => self.fail("Failed", name, rtype, &result),
        }
    }

    #[track_caller]
    fn fail(&self, want: &str, name: &str, rtype: &str, got: &DelvResult) -> ! {
        panic!(
            "delv {name} {rtype}: want {want}, got {}:\n{}\n{}",
            got.verdict(),
            got.output(),
            self.logs()
        )
    }

    /// Unbound's whole log so far (`val-log-level: 2`: one line per
    /// validation failure, e.g. `validation failure <NAME TYPE IN>: signature
    /// crypto failed from 127.0.0.1`).
    pub fn resolver_log(&self) -> String {
        fs::read_to_string(&self.unbound.log).unwrap_or_default()
    }

    /// The tails of Unbound's and Knot's logs, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "{}\n{}",
            self.unbound.log_tail(),
            self.knot.daemon.log_tail()
        )
    }
}

fn unbound_config(
    dir: &Path,
    port: u16,
    anchor: &Path,
    knot: SocketAddr,
    apex: &str,
    signaling: SocketAddr,
) -> String {
    let d = dir.display();
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
    trust-anchor-file: "{anchor}"
    trust-anchor-signaling: no
    root-key-sentinel: no
    # test. is a special-use name Unbound answers locally by default.
    local-zone: "test." nodefault
    qname-minimisation: no
    aggressive-nsec: no
    prefetch: no
    serve-expired: no
    # Fail fast and retry soon: daemons come and go in tests.
    infra-host-ttl: 5
    val-bogus-ttl: 5
    minimal-responses: no

remote-control:
    control-enable: no

stub-zone:
    name: "test."
    stub-addr: {knot_ip}@{knot_port}

stub-zone:
    name: "operator.test."
    stub-addr: {knot_ip}@{knot_port}

stub-zone:
    name: "{apex}"
    stub-addr: {sig_ip}@{sig_port}
"#,
        anchor = anchor.display(),
        knot_ip = knot.ip(),
        knot_port = knot.port(),
        sig_ip = signaling.ip(),
        sig_port = signaling.port(),
    )
}

// ---------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------

/// A zone signed by [`sign_zone`].
#[derive(Debug, Clone)]
pub struct SignedZone {
    /// The apex, fully qualified.
    pub apex: String,
    /// The signed zone file.
    pub file: PathBuf,
    /// The key directory (BIND `K*.key`/`K*.private` files).
    pub keys: PathBuf,
    /// DS RDATA (SHA-256) of the KSK/CSK, e.g. `"3613 13 2 0686..."`.
    pub ds: Vec<String>,
    /// The KSK/CSK as DNSKEY RDATA: `257 3 13 <base64>`.
    pub ksk: String,
}

/// Generates ECDSAP256SHA256 keys for `apex` in `dir/keys-<apex>` (a KSK and
/// a ZSK, or one CSK when `csk`), then signs `body` (zone-file text, relative
/// names allowed; `$ORIGIN` is set to `apex`) with `dnssec-signzone -S`
/// (NSEC, default validity: one hour ago to 30 days from now). The DNSKEYs
/// are added by the signer. Call it once per apex and `dir` (keys already in
/// the key directory would be used too). Panics on failure.
pub fn sign_zone(dir: &Path, apex: &str, body: &str, csk: bool) -> SignedZone {
    let apex = fqdn(apex);
    let stem = apex.trim_end_matches('.');
    let stem = if stem.is_empty() { "root" } else { stem };
    let keys = dir.join(format!("keys-{stem}"));
    fs::create_dir_all(&keys).expect("create key directory");
    let ksk = keygen(&keys, &["-f", "KSK", "-n", "ZONE", &apex]);
    if !csk {
        keygen(&keys, &["-n", "ZONE", &apex]);
    }
    let unsigned = dir.join(format!("{stem}.zone"));
    fs::write(&unsigned, format!("$ORIGIN {apex}\n{body}")).expect("write zone");
    let signed = dir.join(format!("{stem}.signed"));
    let mut cmd = Command::new("dnssec-signzone");
    cmd.arg("-S").arg("-K").arg(&keys);
    if csk {
        cmd.arg("-z");
    }
    cmd.arg("-d")
        .arg(&keys)
        .arg("-o")
        .arg(&apex)
        .arg("-f")
        .arg(&signed)
        .arg(&unsigned);
    let (code, stdout, stderr) = run(&mut cmd);
    assert!(
        code == 0,
        "dnssec-signzone {apex} failed ({code}):\n{stdout}{stderr}\nzone:\n{body}"
    );
    let key_file = keys.join(format!("{ksk}.key"));
    SignedZone {
        ds: vec![dsfromkey(&key_file)],
        ksk: dnskey_rdata(&key_file),
        apex,
        file: signed,
        keys,
    }
}

/// `dnssec-keygen -q -a ECDSAP256SHA256 -K dir ARGS...`; returns the key's
/// stem (`Kname+013+tag`).
pub fn keygen(dir: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = run(Command::new("dnssec-keygen")
        .args(["-q", "-a", "ECDSAP256SHA256", "-K"])
        .arg(dir)
        .args(args));
    assert!(code == 0, "dnssec-keygen {args:?} failed: {stdout}{stderr}");
    stdout.trim().to_string()
}

/// The SHA-256 DS RDATA (`tag alg 2 HEX`) of a `.key` file, by
/// `dnssec-dsfromkey -2`.
pub fn dsfromkey(key_file: &Path) -> String {
    let (code, stdout, stderr) = run(Command::new("dnssec-dsfromkey").arg("-2").arg(key_file));
    assert!(
        code == 0,
        "dnssec-dsfromkey {}: {stdout}{stderr}",
        key_file.display()
    );
    ds_rdata(stdout.trim())
}

/// The DNSKEY RDATA (`flags 3 alg base64`, key in one piece) of a `.key` file.
pub fn dnskey_rdata(key_file: &Path) -> String {
    let text = fs::read_to_string(key_file).expect("read .key file");
    let line = text
        .lines()
        .find(|l| !l.starts_with(';') && l.contains("DNSKEY"))
        .unwrap_or_else(|| panic!("no DNSKEY in {}", key_file.display()));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields
        .iter()
        .position(|f| *f == "DNSKEY")
        .expect("found above");
    format!(
        "{} {} {} {}",
        fields[at + 1],
        fields[at + 2],
        fields[at + 3],
        fields[at + 4..].concat()
    )
}

/// Normalises a DS line or RDATA to `tag alg digest-type HEX` (digest in
/// one piece, upper-case).
pub fn ds_rdata(line: &str) -> String {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let rdata = match fields.iter().position(|f| f.eq_ignore_ascii_case("DS")) {
        Some(at) => &fields[at + 1..],
        None => &fields[..],
    };
    assert!(rdata.len() >= 4, "not a DS record: {line:?}");
    format!(
        "{} {} {} {}",
        rdata[0],
        rdata[1],
        rdata[2],
        rdata[3..].concat().to_ascii_uppercase()
    )
}

pub fn split_dnskey(rdata: &str) -> (String, String) {
    let fields: Vec<&str> = rdata.split_whitespace().collect();
    (fields[..3].join(" "), fields[3..].concat())
}

pub fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_ascii_lowercase()
    } else {
        format!("{}.", name.to_ascii_lowercase())
    }
}

// ---------------------------------------------------------------------------
// Knot
// ---------------------------------------------------------------------------

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

template:
  - id: default
    storage: "{r}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none

zone:
"#
    );
    for (apex, file) in zones {
        conf.push_str(&format!(
            "  - domain: \"{apex}\"\n    file: \"{}\"\n",
            file.display()
        ));
    }
    conf
}

// ---------------------------------------------------------------------------
// Daemons, ports, probes
// ---------------------------------------------------------------------------

/// A foreground daemon, killed (with a watchdog for abrupt test exits) on drop.
pub struct Daemon {
    name: String,
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Daemon {
        let out = fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        // If this process dies without dropping us, the watchdog's stdin
        // (whose only writer is this process) closes and it kills the daemon.
        let watchdog = Command::new("sh")
            .args([
                "-c",
                "read _; kill -9 \"$1\" 2>/dev/null",
                "signalbox-watchdog",
            ])
            .arg(child.id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Daemon {
            name: name.to_string(),
            child,
            watchdog,
            log,
        }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(80);
        format!(
            "--- {} log ({}), last {} lines ---\n{}",
            self.name,
            self.log.display(),
            lines.len() - from,
            lines[from..].join("\n")
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a daemon on a fresh port: `command(port)` writes its config and
/// returns the command; `ready(addr)` is polled until Ok. Retries with
/// another port when the port turned out to be taken; panics with the log
/// on any other failure or after [`START_TIMEOUT`].
pub fn start_daemon(
    name: &str,
    dir: &Path,
    mut command: impl FnMut(u16) -> Command,
    mut ready: impl FnMut(SocketAddr) -> Result<(), String>,
) -> (Daemon, SocketAddr) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let port = free_port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log = dir.join(format!("{name}-{port}.log"));
        let mut daemon = Daemon::spawn(name, command(port), log);
        let started = Instant::now();
        let failure = loop {
            if let Some(status) = daemon.exited() {
                break format!("{name} exited with {status}");
            }
            let last = match ready(addr) {
                Ok(()) => return (daemon, addr),
                Err(e) => e,
            };
            if started.elapsed() > START_TIMEOUT {
                break format!(
                    "{name} did not answer on {addr} within {START_TIMEOUT:?}; last probe: {last}"
                );
            }
            thread::sleep(Duration::from_millis(50));
        };
        let tail = daemon.log_tail();
        drop(daemon);
        let port_taken = tail.contains("in use") || tail.contains("can't bind");
        if port_taken && attempts < 4 {
            continue;
        }
        panic!("{failure}\n{tail}");
    }
}

/// A port on 127.0.0.1 that is free for UDP and TCP right now, never handed
/// out before by this process. Taken from 20000-32767, below Linux's
/// default ephemeral range, so client sockets (dig, delv, Unbound's
/// outgoing queries, tests binding port 0) do not grab it before the daemon
/// binds it. Start points differ per process (pid) and per call (counter).
pub fn free_port() -> u16 {
    static USED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20000;
    const SPAN: u32 = 12768;
    let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
    let used = used.get_or_insert_with(HashSet::new);
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    for i in 0..SPAN {
        let port = (LOW + (seed.wrapping_add(n.wrapping_mul(97)).wrapping_add(i)) % SPAN) as u16;
        if used.contains(&port) {
            continue;
        }
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port));
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        if udp.is_ok() && tcp.is_ok() {
            used.insert(port);
            return port;
        }
    }
    panic!("no free port in {LOW}-{}", LOW + SPAN - 1);
}

/// One `kdig` SOA query: Ok if the server answers NOERROR with the AA flag.
fn probe_authoritative(addr: SocketAddr, name: &str) -> Result<(), String> {
    let r = kdig_with(
        addr,
        name,
        "SOA",
        false,
        &["+retry=0", "+timeout=1", "+norecurse", "+tcp"],
    );
    if r.rcode == "NOERROR" && r.aa {
        Ok(())
    } else {
        Err(r.output)
    }
}

/// `kdig @addr NAME RTYPE` (with `+dnssec` when `dnssec`).
pub fn kdig(addr: SocketAddr, name: &str, rtype: &str, dnssec: bool) -> KdigResult {
    kdig_with(addr, name, rtype, dnssec, &["+retry=1", "+timeout=5"])
}

/// `kdig @addr NAME RTYPE OPTIONS...` (e.g. `+dnssec`, `+tcp`, `+norecurse`),
/// with a 5 s timeout and one retry.
pub fn kdig_with_options(
    addr: SocketAddr,
    name: &str,
    rtype: &str,
    options: &[&str],
) -> KdigResult {
    let mut all = vec!["+retry=1", "+timeout=5"];
    all.extend_from_slice(options);
    kdig_with(addr, name, rtype, false, &all)
}

fn kdig_with(
    addr: SocketAddr,
    name: &str,
    rtype: &str,
    dnssec: bool,
    extra: &[&str],
) -> KdigResult {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", &QUERY_TIMEOUT_SECS.to_string(), "kdig"])
        .arg(format!("@{}", addr.ip()))
        .arg("-p")
        .arg(addr.port().to_string())
        .args(extra);
    if dnssec {
        cmd.arg("+dnssec");
    }
    cmd.arg(name).arg(rtype);
    let (_, stdout, stderr) = run(&mut cmd);
    let mut result = KdigResult {
        rcode: String::new(),
        ad: false,
        aa: false,
        answer: Vec::new(),
        output: format!("{stdout}{stderr}"),
    };
    let mut in_answer = false;
    for line in stdout.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            result.rcode = rest.split(';').next().unwrap_or("").trim().to_string();
        } else if let Some(flags) = line.strip_prefix(";; Flags:") {
            let flags = flags.split(';').next().unwrap_or("");
            result.ad = flags.split_whitespace().any(|f| f == "ad");
            result.aa = flags.split_whitespace().any(|f| f == "aa");
        } else if line.starts_with(";; ANSWER SECTION") {
            in_answer = true;
        } else if in_answer {
            if line.trim().is_empty() || line.starts_with(";;") {
                in_answer = false;
            } else {
                result
                    .answer
                    .push(line.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
    }
    result
}

/// Runs a command: (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------
// The corrupting proxy
// ---------------------------------------------------------------------------

/// A UDP+TCP DNS forwarder that damages one RRset: in responses to queries
/// whose QNAME equals `victim` (case-insensitively) and whose QTYPE is
/// `rtype`, the last RDATA byte of the first answer record of type `rtype`
/// (not its RRSIG) is inverted. Everything else passes unchanged. Each query
/// is forwarded on a fresh upstream socket/connection. Stops on drop.
pub struct CorruptingProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    corrupted: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl CorruptingProxy {
    /// Listens on a fresh 127.0.0.1 port (UDP and TCP) and forwards to
    /// `upstream`. `rtype` is the record type number ([`CDS`], [`CDNSKEY`]...).
    pub fn start(upstream: SocketAddr, victim: &str, rtype: u16) -> Self {
        let (udp, tcp) = (0..20)
            .find_map(|_| {
                let port = free_port();
                let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).ok()?;
                let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).ok()?;
                Some((udp, tcp))
            })
            .expect("a port for the proxy");
        let addr = udp.local_addr().expect("proxy address");
        let victim = Arc::new(fqdn(victim));
        let stop = Arc::new(AtomicBool::new(false));
        let corrupted = Arc::new(AtomicUsize::new(0));

        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set timeout");
        let udp_thread = {
            let (stop, victim, corrupted) = (stop.clone(), victim.clone(), corrupted.clone());
            thread::spawn(move || {
                let mut buf = vec![0u8; 65535];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, client)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    let query = buf[..len].to_vec();
                    let Ok(reply_socket) = udp.try_clone() else {
                        continue;
                    };
                    let (victim, corrupted) = (victim.clone(), corrupted.clone());
                    thread::spawn(move || {
                        if let Ok(mut answer) = forward_udp(upstream, &query) {
                            if corrupt(&mut answer, &victim, rtype) {
                                corrupted.fetch_add(1, Ordering::Relaxed);
                            }
                            let _ = reply_socket.send_to(&answer, client);
                        }
                    });
                }
            })
        };

        tcp.set_nonblocking(true).expect("nonblocking listener");
        let tcp_thread = {
            let (stop, victim, corrupted) = (stop.clone(), victim.clone(), corrupted.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        Ok((stream, _)) => {
                            let (victim, corrupted) = (victim.clone(), corrupted.clone());
                            thread::spawn(move || {
                                let _ = serve_tcp(stream, upstream, &victim, rtype, &corrupted);
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(20));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };

        CorruptingProxy {
            addr,
            stop,
            corrupted,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    /// Where the proxy listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many responses it has damaged so far.
    pub fn corrupted(&self) -> usize {
        self.corrupted.load(Ordering::Relaxed)
    }
}

impl Drop for CorruptingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for CorruptingProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorruptingProxy")
            .field("addr", &self.addr)
            .field("corrupted", &self.corrupted())
            .finish()
    }
}

fn forward_udp(upstream: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.connect(upstream)?;
    socket.set_read_timeout(Some(Duration::from_secs(3)))?;
    socket.send(query)?;
    let mut buf = vec![0u8; 65535];
    let len = socket.recv(&mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

fn serve_tcp(
    mut client: TcpStream,
    upstream: SocketAddr,
    victim: &str,
    rtype: u16,
    corrupted: &AtomicUsize,
) -> io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    loop {
        let Some(query) = read_tcp_message(&mut client)? else {
            return Ok(());
        };
        let mut server = TcpStream::connect_timeout(&upstream, Duration::from_secs(3))?;
        server.set_read_timeout(Some(Duration::from_secs(5)))?;
        write_tcp_message(&mut server, &query)?;
        let Some(mut answer) = read_tcp_message(&mut server)? else {
            return Ok(());
        };
        if corrupt(&mut answer, victim, rtype) {
            corrupted.fetch_add(1, Ordering::Relaxed);
        }
        write_tcp_message(&mut client, &answer)?;
    }
}

fn read_tcp_message(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut msg)?;
    Ok(Some(msg))
}

fn write_tcp_message(stream: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    stream.write_all(&out)
}

/// Damages `msg` in place if it answers `victim`/`rtype`; true if it did.
fn corrupt(msg: &mut [u8], victim: &str, rtype: u16) -> bool {
    let u16_at = |m: &[u8], at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]))
    };
    let (Some(qdcount), Some(ancount)) = (u16_at(msg, 4), u16_at(msg, 6)) else {
        return false;
    };
    if qdcount != 1 {
        return false;
    }
    let Some((qname, mut pos)) = read_name(msg, 12) else {
        return false;
    };
    if qname != victim || u16_at(msg, pos) != Some(rtype) {
        return false;
    }
    pos += 4;
    for _ in 0..ancount {
        let Some(end) = skip_name(msg, pos) else {
            return false;
        };
        let (Some(rr_type), Some(rdlen)) = (u16_at(msg, end), u16_at(msg, end + 8)) else {
            return false;
        };
        let rdata = end + 10;
        let rdend = rdata + rdlen as usize;
        if rdend > msg.len() {
            return false;
        }
        if rr_type == rtype && rdlen > 0 {
            msg[rdend - 1] ^= 0xff;
            return true;
        }
        pos = rdend;
    }
    false
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
        let label = msg.get(pos + 1..pos + 1 + len)?;
        for &b in label {
            name.push(b.to_ascii_lowercase() as char);
        }
        name.push('.');
        pos += 1 + len;
    }
    None
}

fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)? as usize;
        if len == 0 {
            return Some(pos + 1);
        }
        if len & 0xc0 == 0xc0 {
            return Some(pos + 2);
        }
        pos += 1 + len;
    }
}
