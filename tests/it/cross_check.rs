//! Cross-checks against tools we did not write: `dnssec-keygen` makes the
//! keys, `dnssec-dsfromkey` computes their DS, `ldns-read-zone` and dnspython
//! parse our presentation output and recompute every digest.

use std::{
    fs,
    io::Write,
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use crate::common::*;
use signalbox::{
    dnssec::{self, DigestType},
    keys::dir::KeyDirectory,
};

/// `dnssec-keygen` in `dir`; returns the key's base name.
fn keygen(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("dnssec-keygen")
        .arg("-q")
        .arg("-K")
        .arg(dir)
        .args(args)
        .output()
        .expect("dnssec-keygen runs");
    assert!(
        out.status.success(),
        "dnssec-keygen {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Normalises a DS line to `TAG ALG TYPE HEX` (upper-case, no spaces in the digest).
fn ds_rdata(line: &str) -> String {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields.iter().position(|f| *f == "DS").expect("a DS line");
    let digest: String = fields[at + 4..].concat().to_ascii_uppercase();
    format!(
        "{} {} {} {digest}",
        fields[at + 1],
        fields[at + 2],
        fields[at + 3]
    )
}

fn compare_with_dsfromkey(dir: &Path) -> usize {
    let mut scanned = KeyDirectory::new(dir);
    let report = scanned.scan(Instant::now());
    assert!(report.issues.is_empty(), "{:#?}", report.issues);
    let mut compared = 0;
    for (_, keys) in report.zones.iter() {
        for key in keys {
            for (digest, flag) in [
                (DigestType::Sha256, "SHA-256"),
                (DigestType::Sha384, "SHA-384"),
            ] {
                let out = Command::new("dnssec-dsfromkey")
                    .args(["-a", flag])
                    .arg(key.files.key_path())
                    .output()
                    .expect("dnssec-dsfromkey runs");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let theirs = ds_rdata(&String::from_utf8_lossy(&out.stdout));
                let ours = dnssec::ds(&key.zone, &key.dnskey, digest).to_string();
                assert_eq!(ours, theirs, "{} {flag}", key.files.key_path().display());
                compared += 1;
            }
        }
    }
    compared
}

#[test]
fn ds_digests_match_dnssec_dsfromkey_for_every_algorithm() {
    if !tools(&["dnssec-keygen", "dnssec-dsfromkey"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    for (alg, extra) in [
        ("RSASHA256", &["-b", "2048"][..]),
        ("ECDSAP256SHA256", &[][..]),
        ("ECDSAP384SHA384", &[][..]),
        ("ED25519", &[][..]),
    ] {
        let mut args = vec!["-a", alg, "-f", "KSK"];
        args.extend_from_slice(extra);
        args.push("dsfromkey.test");
        keygen(tmp.path(), &args);
        let mut zsk = vec!["-a", alg];
        zsk.extend_from_slice(extra);
        zsk.push("dsfromkey.test");
        keygen(tmp.path(), &zsk);
    }
    assert_eq!(compare_with_dsfromkey(tmp.path()), 16);
}

#[test]
fn ds_digests_match_the_committed_dsfromkey_output() {
    // Offline twin of the test above: fixtures made by make-fixtures.sh.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keygen");
    let expected = fs::read_to_string(dir.join("dsfromkey.txt")).expect("fixture");
    let mut report = KeyDirectory::new(&dir);
    let report = report.scan(Instant::now());
    assert!(report.issues.is_empty(), "{:#?}", report.issues);
    let mut lines = 0;
    for (_, keys) in report.zones.iter() {
        for key in keys {
            for digest in [DigestType::Sha256, DigestType::Sha384] {
                let ours = dnssec::ds(&key.zone, &key.dnskey, digest).to_string();
                assert!(
                    expected
                        .lines()
                        .filter(|l| l.contains(" DS "))
                        .any(|l| ds_rdata(l) == ours),
                    "{ours} not in dsfromkey.txt"
                );
                lines += 1;
            }
        }
    }
    assert!(lines >= 14, "only {lines} digests compared");
}

/// A config exercising every record shape, keys made by dnssec-keygen.
fn varied_setup(root: &Path) {
    for d in ["auto", "always", "double", "delete", "set"] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    let past = ["-P", "20250101000000", "-A", "20250101000000"];
    // auto: KSK with SyncPublish in the past, plus a ZSK.
    let k = keygen(
        &root.join("auto"),
        &[
            &["-a", "ECDSAP256SHA256", "-f", "KSK", "-L", "600"][..],
            &past,
            &["auto.test"],
        ]
        .concat(),
    );
    let out = Command::new("dnssec-settime")
        .args([
            "-K",
            &root.join("auto").to_string_lossy(),
            "-P",
            "sync",
            "20250102000000",
            &k,
        ])
        .output()
        .expect("dnssec-settime runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    keygen(
        &root.join("auto"),
        &[&["-a", "ECDSAP256SHA256"][..], &past, &["auto.test"]].concat(),
    );
    // always: an Ed25519 KSK, two digests, CSYNC, an in-bailiwick NS.
    keygen(
        &root.join("always"),
        &[&["-a", "ED25519", "-f", "KSK"][..], &past, &["always.test"]].concat(),
    );
    // double-ds: two RSA KSKs.
    keygen(
        &root.join("double"),
        &[
            &["-a", "RSASHA256", "-b", "2048", "-f", "KSK"][..],
            &past,
            &["double.test"],
        ]
        .concat(),
    );
    keygen(
        &root.join("double"),
        &[
            &["-a", "RSASHA256", "-b", "2048", "-f", "KSK"][..],
            &past,
            &["double.test"],
        ]
        .concat(),
    );
    // delete.
    keygen(
        &root.join("delete"),
        &[
            &["-a", "ECDSAP384SHA384", "-f", "KSK"][..],
            &past,
            &["delete.test"],
        ]
        .concat(),
    );
    // A zone set with three children.
    for child in ["a.set.test", "b.set.test", "c.set.test"] {
        keygen(
            &root.join("set"),
            &[&["-a", "ECDSAP256SHA256", "-f", "KSK"][..], &past, &[child]].concat(),
        );
    }
    let config = r#"version = 1
[[zone]]
name = "auto.test."
keys = "auto"
nameservers = ["ns1.operator.test.", "ns2.other.test."]

[[zone]]
name = "always.test."
keys = "always"
nameservers = ["ns1.operator.test.", "ns1.always.test."]
cds = "always"
digests = ["sha256", "sha384"]
csync = true
foreign_keys = ["257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA=="]

[[zone]]
name = "double.test."
keys = "double"
nameservers = ["ns1.operator.test."]
cds = "double-ds"
signal_ttl = "5m"

[[zone]]
name = "delete.test."
keys = "delete"
nameservers = ["ns1.operator.test."]
cds = "delete"
confirm_delete = true

[[zones]]
keys = "set"
nameservers = ["ns1.operator.test.", "ns2.other.test."]
cds = "rollover"
"#;
    fs::write(root.join("signalbox.toml"), config).expect("write config");
}

#[test]
fn presentation_output_is_read_by_ldns_and_dnspython() {
    if !tools(&[
        "dnssec-keygen",
        "dnssec-settime",
        "ldns-read-zone",
        "/usr/bin/python3",
    ]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    varied_setup(tmp.path());
    let (code, stdout, stderr) = output(
        signalbox()
            .args(["signals", "-c"])
            .arg(tmp.path().join("signalbox.toml"))
            .args(["--soa-serial", "2026112301"]),
    );
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    let ours = records(&stdout);
    assert!(ours.len() >= 30, "{stdout}");
    assert!(
        ours.iter()
            .any(|l| l.contains(" CSYNC 2026112301 3 A NS AAAA")),
        "{stdout}"
    );
    assert!(
        ours.iter()
            .any(|l| l.starts_with("delete.test. 3600 IN CDS 0 0 0 00"))
    );
    assert!(
        ours.iter()
            .any(|l| l.starts_with("double.test. 300 IN CDNSKEY 257 3 8 "))
    );

    // ldns-read-zone parses every line and prints the same records back.
    let file = tmp.path().join("signals.txt");
    fs::write(&file, &stdout).expect("write");
    let (code, ldns_out, ldns_err) = output(Command::new("ldns-read-zone").arg(&file));
    assert_eq!(code, 0, "ldns-read-zone: {ldns_err}");
    let ldns_records: Vec<&str> = ldns_out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(ldns_records.len(), ours.len(), "{ldns_out}");

    // dnspython recomputes every digest and compares _dsboot with the apex.
    let mut child = Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/check_signals.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdout.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3 finishes");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{summary}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Guard against a vacuous pass: these counts depend on the setup above.
    assert!(summary.contains("\"delete\": 2"), "{summary}");
    assert!(summary.contains("\"csync\": 1"), "{summary}");
    let number = |key: &str| -> usize {
        let at = summary.find(&format!("\"{key}\": ")).expect("key") + key.len() + 4;
        summary[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .expect("digits")
            .parse()
            .expect("number")
    };
    assert!(number("cdnskey") >= 15, "{summary}");
    assert!(number("dsboot") >= 10, "{summary}");
}
