//! Config parsing and validation tests.

use std::path::Path;

use super::*;
use crate::dns::name::display;

fn parse_ok(text: &str) -> Config {
    match parse(Path::new("/etc/signalbox/test.toml"), text) {
        Ok(config) => config,
        Err(e) => panic!("config rejected:\n{e}"),
    }
}

fn parse_err(text: &str) -> Vec<ConfigError> {
    match parse(Path::new("/etc/signalbox/test.toml"), text) {
        Ok(_) => panic!("config accepted:\n{text}"),
        Err(e) => e.0,
    }
}

const EXAMPLE: &str = r#"version = 1

[[zone]]
name = "example.com."
keys = "keys/example.com"
nameservers = ["ns1.example.net.", "ns2.example.org."]
cds = "auto"
digests = ["sha256"]
cdnskey = true

[[zones]]
keys = "keys/children"
nameservers = ["ns1.example.net."]
cds = "always"
signal_ttl = "1h"

[[signaling_zone]]
apex = "_signal.ns1.example.net."
keys = "keys/_signal.ns1.example.net"
nameservers = ["ns1.example.net."]
"#;

#[test]
fn parses_the_contract_example() {
    let config = parse_ok(EXAMPLE);
    assert_eq!(config.zones.len(), 1);
    let zone = &config.zones[0];
    assert_eq!(display(&zone.name), "example.com.");
    assert_eq!(
        zone.keys.as_deref(),
        Some(Path::new("/etc/signalbox/keys/example.com"))
    );
    assert_eq!(zone.origin.line, 3);
    let settings = zone.settings.resolve();
    assert_eq!(settings.cds, CdsMode::Auto);
    assert_eq!(settings.nameservers.len(), 2);
    let set = &config.zone_sets[0];
    assert_eq!(set.keys, Path::new("/etc/signalbox/keys/children"));
    assert_eq!(set.settings.signal_ttl, Some(3600));
    assert_eq!(set.settings.cds, Some(CdsMode::Always));
    let sz = &config.signaling_zones[0];
    assert_eq!(display(&sz.ns_host()), "ns1.example.net.");
    assert_eq!(config.key_directories().len(), 3);
}

#[test]
fn defaults() {
    let config = parse_ok("version = 1\n[[zone]]\nname = \"a.example\"\nkeys = \"k\"\n");
    let s = config.zones[0].settings.resolve();
    assert_eq!(s.cds, CdsMode::Auto);
    assert_eq!(s.digests, vec![DigestType::Sha256]);
    assert!(s.cdnskey);
    assert!(!s.csync);
    assert_eq!(s.csync_flags, 3);
    assert_eq!(s.signal_ttl, None);
    assert!(s.foreign_keys.is_empty());
}

#[test]
fn zone_overrides_set_field_by_field() {
    let config = parse_ok(
        "version = 1\n[[zones]]\nkeys = \"k\"\ncds = \"always\"\ndigests = [\"sha384\"]\nnameservers = [\"ns1.example.\"]\n\
         [[zone]]\nname = \"special.example.\"\ncds = \"rollover\"\n",
    );
    let merged = config.zones[0]
        .settings
        .over(&config.zone_sets[0].settings)
        .resolve();
    assert_eq!(merged.cds, CdsMode::Rollover);
    assert_eq!(merged.digests, vec![DigestType::Sha384]);
    assert_eq!(merged.nameservers.len(), 1);
    assert_eq!(config.zones[0].keys, None);
}

fn one_error(text: &str) -> ConfigError {
    let errors = parse_err(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.into_iter().next().expect("one")
}

#[test]
fn unknown_key_names_line_and_path() {
    let e =
        one_error("version = 1\n[[zone]]\nname = \"a.example.\"\nkeys = \"k\"\ncdss = \"auto\"\n");
    assert_eq!(e.line, 5, "{e}");
    assert!(e.key.starts_with("zone[0]"), "{e}");
    assert!(e.message.contains("cdss"), "{e}");
    assert!(
        e.to_string().starts_with("/etc/signalbox/test.toml:5:"),
        "{e}"
    );
}

#[test]
fn bad_mode_names_line_and_path() {
    let e = one_error(
        "version = 1\n[[zone]]\nname = \"a.example.\"\nkeys = \"k\"\ncds = \"sometimes\"\n",
    );
    assert_eq!((e.line, e.key.as_str()), (5, "zone[0].cds"), "{e}");
    assert!(e.message.contains("sometimes"), "{e}");
}

#[test]
fn bad_duration() {
    let e = one_error(
        "version = 1\n[[zone]]\nname = \"a.example.\"\nkeys = \"k\"\nsignal_ttl = 3600\n",
    );
    assert_eq!((e.line, e.key.as_str()), (5, "zone[0].signal_ttl"), "{e}");
    assert!(e.message.contains("\"3600s\""), "{e}");
    let e = one_error(
        "version = 1\n[[zone]]\nname = \"a.example.\"\nkeys = \"k\"\nsignal_ttl = \"1y\"\n",
    );
    assert_eq!(e.line, 5, "{e}");
}

#[test]
fn delete_needs_confirmation() {
    let e =
        one_error("version = 1\n[[zone]]\nname = \"a.example.\"\nkeys = \"k\"\ncds = \"delete\"\n");
    assert_eq!((e.line, e.key.as_str()), (5, "zone[0].cds"), "{e}");
    assert!(e.message.contains("confirm_delete = true"), "{e}");
    parse_ok(
        "version = 1\n[[zone]]\nname = \"a.example.\"\nkeys = \"k\"\ncds = \"delete\"\nconfirm_delete = true\n",
    );
    let e = one_error(
        "version = 1\n[[zones]]\nkeys = \"k\"\ncds = \"delete\"\nconfirm_delete = false\n",
    );
    assert_eq!(e.key, "zones[0].cds");
}

#[test]
fn version_is_required_and_checked() {
    let e = one_error("[[zone]]\nname = \"a.example.\"\nkeys = \"k\"\n");
    assert_eq!(e.key, "version");
    let e = one_error("version = 2\n");
    assert_eq!((e.line, e.key.as_str()), (1, "version"));
}

#[test]
fn syntax_error_has_a_line() {
    let e = one_error("version = 1\n[[zone]\nname = \"a\"\n");
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn many_validation_errors_at_once() {
    let errors = parse_err(
        "version = 1\n\
         [[zone]]\nname = \"a..example\"\nkeys = \"k\"\ndigests = [\"sha1\", \"md5\"]\n\
         foreign_keys = [\"256 3 13 AAAA\", \"257 3 13 !!\"]\ncsync_flags = [\"later\"]\n\
         [[zone]]\nname = \"b.example\"\nkeys = \"k\"\nnameservers = [\"ok.example.\", \"bad..name\"]\n\
         [[zone]]\nname = \"B.example.\"\nkeys = \"k\"\n",
    );
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "zone[0].name",
            "zone[0].digests[0]",
            "zone[0].digests[1]",
            "zone[0].csync_flags[0]",
            "zone[0].foreign_keys[0]",
            "zone[0].foreign_keys[1]",
            "zone[1].nameservers[1]",
            "zone[2].name",
        ],
        "{errors:#?}"
    );
    assert!(errors[1].message.contains("RFC 9905"));
    assert!(
        errors[7]
            .message
            .contains("already configured in zone[1] (line 8)"),
        "{}",
        errors[7]
    );
    assert_eq!(errors[6].line, 11);
}

#[test]
fn sets_need_keys_and_no_name() {
    let errors = parse_err(
        "version = 1\n[[zones]]\nname = \"x.example.\"\nkeys = \"k\"\n[[zones]]\nkeys = \"./k\"\n",
    );
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["zones[0].name", "zones[1].keys"], "{errors:#?}");
    let e = one_error("version = 1\n[[zone]]\nname = \"x.example.\"\n");
    assert_eq!(e.key, "zone[0].keys");
}

#[test]
fn signaling_zone_apex_must_be_signal() {
    let e = one_error(
        "version = 1\n[[signaling_zone]]\napex = \"ns1.example.net.\"\nkeys = \"k\"\nnameservers = [\"ns1.example.net.\"]\n",
    );
    assert_eq!((e.key.as_str(), e.line), ("signaling_zone[0].apex", 3));
    let e = one_error(
        "version = 1\n[[signaling_zone]]\napex = \"_signal.ns1.example.net.\"\nkeys = \"k\"\n",
    );
    assert!(e.message.contains("nameservers"), "{e}");
}

#[test]
fn foreign_keys_are_parsed() {
    let config = parse_ok(
        "version = 1\n[[zone]]\nname = \"a.example.\"\nkeys = \"k\"\n\
         foreign_keys = [\"257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=\"]\n",
    );
    let keys = config.zones[0].settings.foreign_keys.clone().expect("set");
    assert_eq!(crate::dnssec::key_tag(&keys[0]), 3613);
}

/// `follow.notify_key` (issue 13 item 7): parsed, and it must name a key
/// of `tsig_keys`, reported at `zone[N].follow.notify_key`.
#[test]
fn follow_notify_key_is_parsed_and_must_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("n.key"),
        "key \"notify-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\";\n};\n",
    )
    .expect("write key");
    let config_path = dir.path().join("t.toml");
    let text = |key: &str| {
        format!(
            "version = 1\ntsig_keys = [\"n.key\"]\n[[zone]]\nname = \"a.example.\"\n\
             follow = {{ primary = \"127.0.0.1:53\", notify_key = \"{key}\" }}\n"
        )
    };
    let config = parse(&config_path, &text("notify-key")).expect("accepted");
    let follow = config.zones[0].follow.as_ref().expect("follow");
    assert_eq!(
        follow.notify_key.as_ref().map(display).as_deref(),
        Some("notify-key.")
    );
    assert_eq!(follow.tsig, None);
    let errors = parse(&config_path, &text("missing-key")).expect_err("no such key");
    let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["zone[0].follow.notify_key"], "{errors}");
    assert!(errors.0[0].message.contains("missing-key"), "{errors}");
    assert_eq!(errors.0[0].line, 3);
    // Without it, nothing is required.
    let config = parse_ok(
        "version = 1\n[[zone]]\nname = \"a.example.\"\nfollow = { primary = \"127.0.0.1:53\" }\n",
    );
    assert_eq!(
        config.zones[0].follow.as_ref().expect("follow").notify_key,
        None
    );
}

#[test]
fn tcp_limits_have_defaults_and_are_parsed() {
    let base = "version = 1\n[[zone]]\nname = \"a.example.\"\nkeys = \"k\"\n[server]\n";
    let server = parse_ok(base).server;
    assert_eq!(server.tcp_max_connections_per_source, 25);
    assert_eq!(server.tcp_io_timeout, std::time::Duration::from_secs(2));
    assert_eq!(server.tcp_max_queries, 1000);
    assert_eq!(server.tcp_max_lifetime, std::time::Duration::from_secs(120));
    let server = parse_ok(&format!(
        "{base}tcp_max_connections = 500\ntcp_max_connections_per_source = 50\n\
         tcp_io_timeout = \"500ms\"\ntcp_max_queries = 0\ntcp_max_lifetime = \"10m\"\n"
    ))
    .server;
    assert_eq!(server.tcp_max_connections_per_source, 50);
    assert_eq!(server.tcp_io_timeout, std::time::Duration::from_millis(500));
    assert_eq!(server.tcp_max_queries, 0);
    assert_eq!(server.tcp_max_lifetime, std::time::Duration::from_secs(600));
    // A cap below the per-source default lowers it.
    let server = parse_ok(&format!("{base}tcp_max_connections = 2\n")).server;
    assert_eq!(server.tcp_max_connections_per_source, 2);
}

#[test]
fn tcp_limits_are_validated_with_their_line() {
    let base = "version = 1\n[[zone]]\nname = \"a.example.\"\nkeys = \"k\"\n[server]\n";
    for (line, key, needle) in [
        (
            "tcp_max_connections = 10\ntcp_max_connections_per_source = 11",
            "server.tcp_max_connections_per_source",
            "must not exceed server.tcp_max_connections (10)",
        ),
        (
            "tcp_max_connections_per_source = 0",
            "server.tcp_max_connections_per_source",
            "1..=65535",
        ),
        (
            "tcp_io_timeout = \"10ms\"",
            "server.tcp_io_timeout",
            "at least",
        ),
        ("tcp_max_queries = -1", "server.tcp_max_queries", "0..="),
        (
            "tcp_max_lifetime = \"0s\"",
            "server.tcp_max_lifetime",
            "at least 1s",
        ),
    ] {
        let e = one_error(&format!("{base}{line}\n"));
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains(needle), "{e}");
        assert_eq!(e.line, 6 + line.matches('\n').count(), "{e}");
    }
}

#[test]
fn rrl_has_nsd_like_defaults_and_is_parsed() {
    let base = "version = 1\n[[zone]]\nname = \"a.example.\"\nkeys = \"k\"\n[server]\n";
    let rrl = parse_ok(base).server.rrl;
    assert_eq!(rrl, crate::config::RrlConfig::default());
    assert!(rrl.enabled);
    assert_eq!((rrl.rate, rrl.slip), (200, 2));
    assert_eq!((rrl.ipv4_prefix, rrl.ipv6_prefix), (24, 56));
    let rrl = parse_ok(&format!(
        "{base}[server.rrl]\nenabled = false\nrate = 50\nslip = 0\nipv4_prefix = 32\n\
         ipv6_prefix = 64\nexempt = [\"192.0.2.0/24\", \"2001:db8::1\"]\n"
    ))
    .server
    .rrl;
    assert!(!rrl.enabled);
    assert_eq!(
        (rrl.rate, rrl.slip, rrl.ipv4_prefix, rrl.ipv6_prefix),
        (50, 0, 32, 64)
    );
    assert_eq!(
        rrl.exempt,
        vec![
            AclEntry::Prefix("192.0.2.0".parse().expect("v4"), 24),
            AclEntry::Prefix("2001:db8::1".parse().expect("v6"), 128),
        ]
    );
}

#[test]
fn rrl_is_validated_with_its_line() {
    let base =
        "version = 1\n[[zone]]\nname = \"a.example.\"\nkeys = \"k\"\n[server]\n[server.rrl]\n";
    for (line, key, needle) in [
        ("rate = 0", "server.rrl.rate", "1..=1000000"),
        ("slip = -1", "server.rrl.slip", "0..=100"),
        ("slip = 101", "server.rrl.slip", "0..=100"),
        ("ipv4_prefix = 33", "server.rrl.ipv4_prefix", "1..=32"),
        ("ipv6_prefix = 0", "server.rrl.ipv6_prefix", "1..=128"),
        (
            "exempt = [\"10.0.0.0/8\", \"key:k.example.\"]",
            "server.rrl.exempt[1]",
            "only address prefixes",
        ),
        (
            "exempt = [\"10.0.0.0/40\"]",
            "server.rrl.exempt[0]",
            "prefix length must be 0..=32",
        ),
    ] {
        let e = one_error(&format!("{base}{line}\n"));
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains(needle), "{e}");
        assert_eq!(e.line, 7, "{e}");
    }
}

#[test]
fn hooks_need_an_executable_program_named_with_its_line() {
    let config = parse_ok(EXAMPLE);
    assert_eq!(config.hooks.exec, None);
    assert_eq!(config.hooks.timeout, std::time::Duration::from_secs(30));
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("on-event");
    std::fs::write(&script, "#!/bin/sh\n").expect("write");
    let text = |exec: &Path, timeout: &str| {
        format!(
            "{EXAMPLE}\n[hooks]\nexec = \"{}\"\ntimeout = \"{timeout}\"\n",
            exec.display()
        )
    };
    let errors = parse_err(&text(&script, "10s"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "hooks.exec");
    assert_eq!((errors[0].line, errors[0].column), (23, 8), "{errors:?}");
    assert!(errors[0].message.contains("not executable"), "{errors:?}");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = parse_ok(&text(&script, "10s"));
    assert_eq!(config.hooks.exec.as_deref(), Some(script.as_path()));
    assert_eq!(config.hooks.timeout, std::time::Duration::from_secs(10));
    let errors = parse_err(&text(&dir.path().join("missing"), "0s"));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().any(|e| e.key == "hooks.timeout"));
    assert!(
        errors
            .iter()
            .any(|e| e.key == "hooks.exec" && e.message.contains("No such file")),
        "{errors:?}"
    );
}

#[test]
fn a_report_agent_is_a_domain_named_in_every_notify() {
    let config = parse_ok(EXAMPLE);
    assert_eq!(config.report.agent, None);
    assert_eq!(config.notify.report_channel, None);
    let config = parse_ok(&format!(
        "{EXAMPLE}\n[report]\nagent = \"agent.example.net\"\n"
    ));
    let agent = crate::dns::parse_name("agent.example.net.").expect("valid");
    assert_eq!(config.report.agent.as_ref(), Some(&agent));
    assert_eq!(config.notify.report_channel.as_ref(), Some(&agent));
    let errors = parse_err(&format!("{EXAMPLE}\n[report]\nagent = \".\"\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "report.agent");
    assert_eq!((errors[0].line, errors[0].column), (23, 9), "{errors:?}");
    assert!(errors[0].message.contains("root"), "{errors:?}");
    let errors = parse_err(&format!("{EXAMPLE}\n[report]\nagent = \"a..b\"\n"));
    assert_eq!(errors[0].key, "report.agent", "{errors:?}");
    let errors = parse_err(&format!("{EXAMPLE}\n[report]\nagents = \"x.\"\n"));
    assert!(!errors.is_empty(), "unknown keys are refused");
}

#[test]
fn the_parent_gate_checks_under_a_named_profile() {
    let config = parse_ok(EXAMPLE);
    assert_eq!(config.notify.gate, Gate::Consistent);
    assert_eq!(config.notify.profile.name, "generic");
    let config = parse_ok(&format!(
        "{EXAMPLE}\n[notify]\ngate = \"parent\"\nprofile = \"SE\"\n"
    ));
    assert_eq!(config.notify.gate, Gate::Parent);
    assert_eq!(config.notify.profile.name, "se");
    let errors = parse_err(&format!("{EXAMPLE}\n[notify]\nprofile = \"nl\"\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "notify.profile");
    assert_eq!((errors[0].line, errors[0].column), (23, 11), "{errors:?}");
    assert!(
        errors[0].message.contains("generic, ch, se, cz"),
        "{errors:?}"
    );
}

#[test]
fn foreign_from_names_the_other_providers_of_one_zone() {
    let with = |zone_lines: &str, rest: &str| {
        EXAMPLE.replace(
            "cdnskey = true\n",
            &format!("cdnskey = true\n{zone_lines}\n"),
        ) + rest
    };
    let resolver = "\n[resolver]\nservers = [\"127.0.0.1:53\"]\n";
    let config = parse_ok(&with(
        "foreign_from = [\"ns1.other.example\"]\nforeign_refresh = \"10m\"",
        resolver,
    ));
    let from = config.zones[0].foreign_from.as_ref().expect("foreign_from");
    assert_eq!(
        from.hosts,
        [crate::dns::parse_name("ns1.other.example.").expect("valid")]
    );
    assert_eq!(from.refresh, std::time::Duration::from_secs(600));

    let errors = parse_err(&with("foreign_from = [\"ns1.other.example.\"]", ""));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "zone[0].foreign_from");
    assert_eq!((errors[0].line, errors[0].column), (10, 16), "{errors:?}");
    assert!(
        errors[0].message.contains("[resolver] servers"),
        "{errors:?}"
    );

    let errors = parse_err(&with("foreign_from = []", resolver));
    assert!(errors[0].message.contains("empty"), "{errors:?}");
    let errors = parse_err(&with("foreign_refresh = \"1h\"", resolver));
    assert!(
        errors[0].message.contains("without foreign_from"),
        "{errors:?}"
    );
    let errors = parse_err(&with("foreign_from = [\"a..b\"]", resolver));
    assert_eq!(errors[0].key, "zone[0].foreign_from[0]", "{errors:?}");
    let in_set = EXAMPLE.replace(
        "signal_ttl = \"1h\"\n",
        "signal_ttl = \"1h\"\nforeign_from = [\"ns1.other.example.\"]\n",
    ) + resolver;
    let errors = parse_err(&in_set);
    assert_eq!(errors[0].key, "zones[0].foreign_from", "{errors:?}");
    assert!(
        errors[0].message.contains("only in a [[zone]]"),
        "{errors:?}"
    );
}
