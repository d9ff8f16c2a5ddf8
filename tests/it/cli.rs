//! The command line: exit codes, messages, held zones.

use std::{fs, path::Path};

use crate::common::*;

fn example_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml")
}

#[test]
fn shipped_example_prints_signals() {
    let (code, stdout, stderr) = output(signalbox().args(["signals", "-c"]).arg(example_config()));
    assert_eq!(code, 0, "{stderr}");
    let recs = records(&stdout);
    // example.com: auto, KSK 33273 with SyncPublish in the past.
    assert!(
        recs.iter()
            .any(|r| r.starts_with("example.com. 3600 IN CDS 33273 13 2 ")),
        "{stdout}"
    );
    assert!(recs.iter().any(|r| {
        r.starts_with("_dsboot.example.com._signal.ns1.example.net. 3600 IN CDNSKEY 257 3 13 ")
    }));
    // The zone set and the override with two digests.
    for child in ["alpha.example.", "beta.example.", "gamma.example."] {
        assert!(
            recs.iter()
                .any(|r| r.starts_with(&format!("{child} 3600 IN CDS "))),
            "{child}"
        );
    }
    assert!(
        recs.iter()
            .any(|r| r.starts_with("gamma.example. 3600 IN CDS ") && r.contains(" 13 4 "))
    );
    // Every record line has five or more fields: owner ttl IN TYPE rdata.
    assert!(recs.iter().all(|r| r.split(' ').nth(2) == Some("IN")));
    // Before the KSK's SyncPublish: no CDS for example.com in auto mode.
    let (code, stdout, _) = output(
        signalbox()
            .args(["signals", "-c"])
            .arg(example_config())
            .args(["--zone", "example.com", "--at", "20260101120000"]),
    );
    assert_eq!(code, 0);
    assert!(records(&stdout).is_empty(), "{stdout}");
    assert!(
        stdout.contains("SyncPublish 20260102000000 not reached yet"),
        "{stdout}"
    );
}

#[test]
fn check_config_ok_and_errors() {
    let (code, stdout, stderr) = output(
        signalbox()
            .args(["check-config", "-c"])
            .arg(example_config()),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("OK: 4 child zone(s)"), "{stdout}");
    assert!(stderr.contains("nothing publishes the apex"), "{stderr}");

    let tmp = tempfile::tempdir().expect("tmp");
    let bad = tmp.path().join("bad.toml");
    fs::write(
        &bad,
        "version = 1\n[[zone]]\nname = \"a.test.\"\nkeys = \"k\"\ncds = \"sometimes\"\n",
    )
    .expect("write");
    let (code, _, stderr) = output(signalbox().args(["check-config", "-c"]).arg(&bad));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bad.toml:5:7: zone[0].cds: unknown variant `sometimes`"),
        "{stderr}"
    );

    // Missing key directory: a config error for check-config.
    fs::write(
        &bad,
        "version = 1\n[[zone]]\nname = \"a.test.\"\nkeys = \"missing\"\n",
    )
    .expect("write");
    let (code, _, stderr) = output(signalbox().args(["check-config", "-c"]).arg(&bad));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("missing"), "{stderr}");

    // A nameserver too long for a signalling name.
    fs::create_dir(tmp.path().join("k")).expect("mkdir");
    let label = "a".repeat(63);
    fs::write(
        &bad,
        format!("version = 1\n[[zone]]\nname = \"a.test.\"\nkeys = \"k\"\nnameservers = [\"{label}.{label}.{label}.{}.\"]\n", "b".repeat(50)),
    )
    .expect("write");
    let (code, _, stderr) = output(signalbox().args(["check-config", "-c"]).arg(&bad));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unusable for bootstrapping"), "{stderr}");

    // Unreadable config file.
    let (code, _, stderr) = output(signalbox().args(["check-config", "-c", "/nonexistent/x.toml"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read config file"), "{stderr}");
}

#[test]
fn zone_in_two_sets_is_a_config_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    for d in ["one", "two"] {
        fs::create_dir(tmp.path().join(d)).expect("mkdir");
        write_key(
            &tmp.path().join(d),
            "both.test.",
            &dnskey(257, 13, d.len() as u8),
            &[],
        );
    }
    write_key(
        &tmp.path().join("one"),
        "only.test.",
        &dnskey(257, 13, 40),
        &[],
    );
    let config = tmp.path().join("c.toml");
    fs::write(
        &config,
        "version = 1\n[[zones]]\nkeys = \"one\"\n[[zones]]\nkeys = \"two\"\ncds = \"always\"\n",
    )
    .expect("write");
    let (code, _, stderr) = output(signalbox().args(["check-config", "-c"]).arg(&config));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("both.test. has keys in the directories of two [[zones]] sets"),
        "{stderr}"
    );
    let (code, stdout, _) = output(signalbox().args(["signals", "-c"]).arg(&config));
    assert_eq!(code, 2);
    assert!(stdout.contains("zone held"), "{stdout}");
    // A [[zone]] entry naming one set's directory settles it: that set's settings apply.
    fs::write(
        &config,
        "version = 1\n[[zones]]\nkeys = \"one\"\n[[zones]]\nkeys = \"two\"\ncds = \"always\"\n\
         [[zone]]\nname = \"both.test.\"\nkeys = \"two\"\n",
    )
    .expect("write");
    let (code, _, stderr) = output(signalbox().args(["check-config", "-c"]).arg(&config));
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = output(
        signalbox()
            .args(["signals", "-c"])
            .arg(&config)
            .args(["--zone", "both.test."]),
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("over zones[1]") && stdout.contains("cds always"),
        "{stdout}"
    );
    assert_eq!(records(&stdout).len(), 2, "{stdout}");
}

#[test]
fn held_zone_prints_readable_keys_warns_and_exits_1() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("keys");
    fs::create_dir(&dir).expect("mkdir");
    let good = dnskey(257, 13, 1);
    write_key(&dir, "held.test.", &good, &[]);
    let bad = dnskey(257, 13, 2);
    let bad_path = write_key(&dir, "held.test.", &bad, &[]);
    fs::write(&bad_path, "held.test. IN DNSKEY 257 3 13 @@@@\n").expect("corrupt");
    let config = tmp.path().join("c.toml");
    fs::write(&config, "version = 1\n[[zone]]\nname = \"held.test.\"\nkeys = \"keys\"\ncds = \"always\"\nnameservers = [\"ns.other.test.\"]\n").expect("write");
    let (code, stdout, stderr) = output(signalbox().args(["signals", "-c"]).arg(&config));
    assert_eq!(code, 1, "{stderr}");
    let name = bad_path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("; error: ") && l.contains(&name) && l.contains(":1: ")),
        "{stdout}"
    );
    assert!(stdout.contains("; warning: zone held"), "{stdout}");
    assert!(stderr.contains(&name), "{stderr}");
    // What the readable key gives is still printed.
    let recs = records(&stdout);
    assert_eq!(recs.len(), 4, "{stdout}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, _) = output(signalbox().args(["signals"]));
    assert_eq!(code, 2);
    let (code, _, stderr) = output(
        signalbox()
            .args(["signals", "-c"])
            .arg(example_config())
            .args(["--at", "tomorrow"]),
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("--at"), "{stderr}");
    let (code, _, stderr) = output(
        signalbox()
            .args(["signals", "-c"])
            .arg(example_config())
            .args(["--zone", "nope.example."]),
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("not a configured zone"), "{stderr}");
    let (code, stdout, _) = output(signalbox().args(["--help"]));
    assert_eq!(code, 0);
    assert!(stdout.contains("check-config"));
}

#[test]
fn keys_lists_a_directory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/example.com");
    let (code, stdout, stderr) = output(
        signalbox()
            .arg("keys")
            .arg(&dir)
            .args(["--at", "2026-06-01T00:00:00Z"]),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("example.com. key 33273 alg 13 (ECDSAP256SHA256) KSK flags 257 TTL 3600"),
        "{stdout}"
    );
    assert!(stdout.contains("SyncPublish 20260102000000"), "{stdout}");
    assert!(
        stdout.contains("DS:     example.com. IN DS 33273 13 2 "),
        "{stdout}"
    );
    assert!(
        stdout.contains("DS:     example.com. IN DS 33273 13 4 "),
        "{stdout}"
    );
    let (code, _, _) = output(signalbox().args(["keys", "/nonexistent"]));
    assert_eq!(code, 2);
}

#[test]
fn other_zones_keys_are_ignored_and_an_empty_directory_warns() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("keys");
    fs::create_dir(&dir).expect("mkdir");
    write_key(&dir, "mine.test.", &dnskey(257, 13, 1), &[]);
    write_key(&dir, "other.test.", &dnskey(257, 13, 2), &[]);
    fs::create_dir(tmp.path().join("empty")).expect("mkdir");
    let config = tmp.path().join("c.toml");
    fs::write(
        &config,
        "version = 1\n[[zone]]\nname = \"mine.test.\"\nkeys = \"keys\"\ncds = \"always\"\n\
         [[zone]]\nname = \"bare.test.\"\nkeys = \"empty\"\ncds = \"always\"\n",
    )
    .expect("write");
    let (code, stdout, stderr) = output(signalbox().args(["signals", "-c"]).arg(&config));
    assert_eq!(code, 0, "{stderr}");
    let recs = records(&stdout);
    assert_eq!(recs.len(), 2, "{stdout}");
    assert!(
        recs.iter().all(|r| r.starts_with("mine.test. ")),
        "{stdout}"
    );
    assert!(!stdout.contains("other.test"), "{stdout}");
    assert!(
        stdout.contains("; bare.test.: warning: no keys found"),
        "{stdout}"
    );
    assert!(stderr.contains("no keys found"), "{stderr}");
}

#[test]
fn check_config_warns_about_secrets_every_user_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let keys = tmp.path().join("keys");
    fs::create_dir(&keys).expect("mkdir");
    let key = write_key(&keys, "secret.test.", &dnskey(257, 13, 7), &[]);
    let private = key.with_extension("private");
    fs::write(
        &private,
        "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\n\
         PrivateKey: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=\n",
    )
    .expect("write");
    let tsig = tmp.path().join("t.key");
    fs::write(
        &tsig,
        "key \"t\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\";\n};\n",
    )
    .expect("write");
    let config = tmp.path().join("c.toml");
    fs::write(
        &config,
        "version = 1\ntsig_keys = [\"t.key\"]\n[[zones]]\nkeys = \"keys\"\ncds = \"always\"\n",
    )
    .expect("write");
    for (mode, exposed) in [(0o644, true), (0o600, false)] {
        for file in [&private, &tsig] {
            fs::set_permissions(file, fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let (code, stdout, stderr) = output(signalbox().args(["check-config", "-c"]).arg(&config));
        assert_eq!(code, 0, "{stdout}{stderr}");
        for file in [&private, &tsig] {
            let name = file
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let warned = stderr.lines().any(|l| {
                l.starts_with("warning: ") && l.contains(&format!("{name}: readable by every user"))
            });
            assert_eq!(warned, exposed, "mode {mode:o}, {name}:\n{stderr}");
        }
    }
}

/// A reader that stops early (`signalbox signals | head -1`) ends the
/// command quietly with status 0; it panicked on the broken pipe before.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    let mut child = signalbox()
        .args(["signals", "-c"])
        .arg(example_config())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Close our end before reading anything: every write fails with EPIPE.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panic"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
