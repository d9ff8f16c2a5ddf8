//! `kdig` as the harness's stub client: one query, its rcode, AA and AD
//! flags (RFC 4035 section 3.2.3) and answer section, parsed from kdig's
//! text output.

use std::{net::SocketAddr, process::Command};

use super::process::run;

/// Upper bound for one `delv` or `kdig` run (killed after that).
pub const QUERY_TIMEOUT_SECS: u32 = 20;

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
/// One `kdig` SOA query: Ok if the server answers NOERROR with the AA flag.
pub fn probe_authoritative(addr: SocketAddr, name: &str) -> Result<(), String> {
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

/// The serial of the first SOA among kdig answer lines.
pub fn soa_serial(answer: &[String]) -> Option<u32> {
    answer.iter().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == "SOA")?;
        fields.get(at + 3)?.parse().ok()
    })
}

/// The records of one section (`"ANSWER"`, `"AUTHORITY"`, `"ADDITIONAL"`)
/// of kdig's output, whitespace-normalised.
pub fn section(kdig_output: &str, name: &str) -> Vec<String> {
    let header = format!(";; {name} SECTION");
    let mut inside = false;
    let mut records = Vec::new();
    for line in kdig_output.lines() {
        if line.starts_with(&header) {
            inside = true;
        } else if inside {
            if line.trim().is_empty() || line.starts_with(";;") {
                inside = false;
            } else {
                records.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
    }
    records
}

/// The owner of the SOA record in kdig's authority section (lower-case).
pub fn soa_owner(kdig_output: &str) -> Option<String> {
    section(kdig_output, "AUTHORITY").iter().find_map(|r| {
        let fields: Vec<&str> = r.split(' ').collect();
        (fields.get(3) == Some(&"SOA")).then(|| fields[0].to_ascii_lowercase())
    })
}
