//! Offline DNSSEC signing with BIND's tools (`dnssec-keygen`,
//! `dnssec-signzone`, `dnssec-dsfromkey`) and the presentation-format
//! helpers around them: DNSKEY and DS RDATA (RFC 4034 sections 2.2 and 5.3).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use super::{fqdn, process::run};

/// A zone signed by [`sign_zone`].
#[derive(Debug, Clone)]
pub struct SignedZone {
    /// The apex, fully qualified.
    pub apex: String,
    /// The signed zone file.
    pub file: PathBuf,
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

/// Splits DNSKEY RDATA into `flags protocol algorithm` and the key in one
/// piece (the two halves of a `trust-anchors` entry).
pub fn split_dnskey(rdata: &str) -> (String, String) {
    let fields: Vec<&str> = rdata.split_whitespace().collect();
    (fields[..3].join(" "), fields[3..].concat())
}
