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
//! A [`CorruptingProxy`](super::proxy::CorruptingProxy) between Unbound and
//! a signaling server flips a byte of one record type's RDATA: the negative
//! control that proves a "validated" verdict means something. Why Knot
//! serves `test.`/`operator.test.`: see [`knot`](super::knot).
//!
//! Every daemon is a [`Daemon`](super::process::Daemon): a foreground child
//! of the test process, killed when its owner is dropped. `Chain`, `Knot` and
//! `CorruptingProxy` are independent, so tests running in parallel threads
//! can each start their own.

use std::{fs, net::SocketAddr, path::PathBuf, process::Command};

use tempfile::TempDir;

use super::{
    fqdn,
    kdig::{self, KdigResult, QUERY_TIMEOUT_SECS},
    knot::Knot,
    process,
    signzone::{ds_rdata, sign_zone, split_dnskey},
    unbound::{Unbound, UnboundSpec},
};

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
/// A running chain of trust; everything stops when it is dropped.
pub struct Chain {
    // Fields drop in order: the daemons go before their directory.
    unbound: Unbound,
    knot: Knot,
    anchor_conf: PathBuf,
    _dir: TempDir,
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

        let unbound = Unbound::start(
            d,
            &UnboundSpec {
                anchor: Some(&anchor_file),
                stubs: vec![
                    ("test.".to_string(), knot.addr()),
                    ("operator.test.".to_string(), knot.addr()),
                    (spec.signaling_apex.clone(), spec.signaling_server),
                ],
                changing_zones: false,
            },
            "test.",
        );

        let chain = Chain {
            unbound,
            knot,
            anchor_conf,
            _dir: dir,
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
            .arg(format!("@{}", self.unbound.addr().ip()))
            .arg("-p")
            .arg(self.unbound.addr().port().to_string())
            .arg("-a")
            .arg(&self.anchor_conf)
            .arg("+root=test.")
            .args(extra)
            .arg(name)
            .arg(rtype);
        let (code, stdout, stderr) = process::run(&mut cmd);
        let mut output = format!("{stdout}{stderr}");
        if code == 124 || code == 137 {
            output.push_str(&format!("\n[delv timed out after {QUERY_TIMEOUT_SECS} s]"));
        }
        DelvResult::classify(output)
    }

    /// `kdig +dnssec @resolver NAME RTYPE`: rcode, AD flag and answer.
    pub fn kdig(&self, name: &str, rtype: &str) -> KdigResult {
        kdig::kdig(self.unbound.addr(), name, rtype, true)
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
        self.unbound.log_text()
    }

    /// The tails of Unbound's and Knot's logs, for failure messages.
    pub fn logs(&self) -> String {
        format!("{}\n{}", self.unbound.log_tail(), self.knot.log_tail())
    }
}
