//! The harness shared by the integration tests: BIND-style key files,
//! tool checks, the signalbox binary, and the worlds of real DNS servers in
//! the submodules.
//!
//! * [`process`]: ports, commands and foreground daemons (one spawn, one
//!   watchdog, one kill-on-drop for every server a test starts).
//! * [`kdig`], [`signzone`]: the stub client and offline signing.
//! * [`knot`], [`unbound`]: an authoritative Knot and a validating Unbound.
//! * [`chain`]: a chain of trust down to a signaling zone (RFC 9615);
//!   [`proxy`]: a forwarder that damages one RRset on the way.
//! * [`parent`]: parent and child zones with DSYNC, and a NOTIFY receiver.
//! * [`signer`]: Knot and BIND as live signers beside signalbox.
//! * [`serve`]: `signalbox serve`; [`secondary`]: Knot and NSD transferring
//!   from it.

pub mod chain;
pub mod kdig;
pub mod knot;
pub mod parent;
pub mod process;
pub mod proxy;
pub mod secondary;
pub mod serve;
pub mod signer;
pub mod signzone;
pub mod unbound;
pub mod wire;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use signalbox::{
    dns::{Dnskey, parse_name},
    dnssec,
};

/// A DNSKEY with made-up key material (fine for everything but signing).
pub fn dnskey(flags: u16, algorithm: u8, seed: u8) -> Dnskey {
    let len = match algorithm {
        14 => 96,
        15 => 32,
        _ => 64,
    };
    Dnskey {
        flags,
        protocol: 3,
        algorithm,
        public_key: (0..len as u8)
            .map(|i| i.wrapping_mul(31).wrapping_add(seed))
            .collect(),
    }
}

/// The stem `K<zone>+<alg>+<tag>` of a key's files.
pub fn stem(zone: &str, key: &Dnskey) -> String {
    let zone = parse_name(zone).expect("valid zone");
    format!(
        "K{}+{:03}+{:05}",
        signalbox::dns::name::display(&zone),
        key.algorithm,
        dnssec::key_tag(key)
    )
}

/// Writes a BIND-style `.key` file with the given `; Tag: time` comments.
pub fn write_key(dir: &Path, zone: &str, key: &Dnskey, comments: &[(&str, &str)]) -> PathBuf {
    let mut text = format!(
        "; This is a {}-signing key, keyid {}, for {zone}\n",
        if key.is_sep() { "key" } else { "zone" },
        dnssec::key_tag(key)
    );
    for (tag, time) in comments {
        text.push_str(&format!("; {tag}: {time} (ignored ctime)\n"));
    }
    text.push_str(&format!("{zone} 3600 IN DNSKEY {key}\n"));
    let path = dir.join(format!("{}.key", stem(zone, key)));
    fs::write(&path, text).expect("write .key");
    path
}

/// Writes a `.private` file (v1.3, algorithm 13) with the given timing tags.
pub fn write_private(dir: &Path, zone: &str, key: &Dnskey, tags: &[(&str, &str)]) -> PathBuf {
    let mut text = format!(
        "Private-key-format: v1.3\nAlgorithm: {} (ECDSAP256SHA256)\nPrivateKey: GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=\n",
        key.algorithm
    );
    for (tag, time) in tags {
        text.push_str(&format!("{tag}: {time}\n"));
    }
    let path = dir.join(format!("{}.private", stem(zone, key)));
    fs::write(&path, text).expect("write .private");
    path
}

/// Writes a `.state` file with the given lines after the comment line.
pub fn write_state(dir: &Path, zone: &str, key: &Dnskey, lines: &[&str]) -> PathBuf {
    let mut text = format!(
        "; This is the state of key {}, for {zone}\n",
        dnssec::key_tag(key)
    );
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let path = dir.join(format!("{}.state", stem(zone, key)));
    fs::write(&path, text).expect("write .state");
    path
}

/// True when `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null 2>&1"))
        .status()
        .is_ok_and(|s| s.success())
}

/// Skips (returns false and says so) unless all tools exist. The test
/// script installs them; set SIGNALBOX_REQUIRE_TOOLS=1 to make a missing
/// tool a failure instead (CI does).
pub fn tools(list: &[&str]) -> bool {
    let missing: Vec<&&str> = list.iter().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("SIGNALBOX_REQUIRE_TOOLS").is_some() {
        panic!("required tools missing: {missing:?} (scripts/test installs them)");
    }
    eprintln!("skipping: tools missing: {missing:?} (run scripts/test to install them)");
    false
}

/// The signalbox binary under test.
pub fn signalbox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_signalbox"))
}

/// Runs a command, returning (exit code, stdout, stderr).
pub fn output(cmd: &mut Command) -> (i32, String, String) {
    process::run(cmd)
}

/// The non-comment lines of `signals` output.
pub fn records(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// `name` lower-case and fully qualified (a final dot added if missing).
pub fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_ascii_lowercase()
    } else {
        format!("{}.", name.to_ascii_lowercase())
    }
}

/// True when `name` is `apex` or below it (both fully qualified, lower-case).
pub fn is_at_or_below(name: &str, apex: &str) -> bool {
    apex == "." || name == apex || name.ends_with(&format!(".{apex}"))
}
