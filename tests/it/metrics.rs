//! `/metrics` (issue 14) against a real `signalbox serve`: the text passes
//! `promtool check metrics` (Debian's `prometheus` package, not ours), and
//! its values agree with what signalbox serves: the SOA serial asked over
//! DNS, the names and brake of `status --json`, the earliest RRSIG
//! expiration of the answers, and a key change counted as a round and as
//! a key-change-to-served latency.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::common::{
    process::free_port,
    serve::{Serve, serial},
    signalbox, signzone, *,
};

const APEX: &str = "_signal.ns1.operator.test.";

/// `GET /metrics`: status line and body.
pub(crate) fn scrape(addr: SocketAddr) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to /metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: signalbox\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The value of the sample `series` (name and labels as written).
/// `signalbox_children{state}`: `bootstrapping` children, no other state,
/// and `status --json` agrees.
fn assert_children(body: &str, status: &serde_json::Value, bootstrapping: usize) {
    let states = [
        "bootstrapping",
        "rolling",
        "in_sync",
        "insecure",
        "deleting",
        "held",
        "error",
    ];
    for state in states {
        let want = if state == "bootstrapping" {
            bootstrapping
        } else {
            0
        };
        let series = format!("signalbox_children{{state=\"{state}\"}}");
        assert_eq!(sample(body, &series), Some(want as f64), "{series}: {body}");
        assert_eq!(
            status["children"][state].as_u64(),
            Some(want as u64),
            "status --json children.{state}: {status}"
        );
    }
}

pub(crate) fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn promtool_accepts(body: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_pass_promtool_and_agree_with_what_is_served() {
    if !tools(&["promtool", "dnssec-keygen"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let port = free_port();
    let metrics_port = free_port();
    let config = crate::serve::write_config(root, port);
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!("{text}\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"),
    )
    .expect("config");
    crate::serve::signal_key(root);
    crate::serve::many_children(&root.join("children"), 3);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], metrics_port));
    let server = Serve::start(&config, addr, APEX);

    let (status, body) = scrape(metrics_addr);
    assert!(status.contains(" 200 "), "{status}");
    promtool_accepts(&body);
    let zone = format!("{{zone=\"{APEX}\"}}");
    let served = serial(addr, APEX).expect("serial");
    assert_eq!(
        sample(&body, &format!("signalbox_zone_serial{zone}")),
        Some(f64::from(served)),
        "{body}"
    );
    let (_, json, _) = output(signalbox().args(["status", "--json", "-c"]).arg(&config));
    let json: serde_json::Value = serde_json::from_str(&json).expect("status --json");
    assert_eq!(
        sample(&body, &format!("signalbox_zone_names{zone}")),
        json["zones"][0]["names"].as_f64(),
        "{body}"
    );
    assert_eq!(
        sample(&body, "signalbox_safety_brake_holding"),
        Some(0.0),
        "{body}"
    );
    // Three children whose new KSKs have no DS at the parent (no observer:
    // the key metadata says so): bootstrapping, and the states sum up.
    assert_children(&body, &json, 3);
    assert_eq!(
        sample(
            &body,
            &format!(
                "signalbox_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0),
        "{body}"
    );
    // No RRSIG served at the apex (dig reads them) expires before the
    // reported earliest expiry.
    let earliest = sample(
        &body,
        &format!("signalbox_zone_signatures_earliest_expiry_timestamp_seconds{zone}"),
    )
    .expect("earliest expiry");
    let earliest_text = jiff::Timestamp::from_second(earliest as i64)
        .expect("timestamp")
        .strftime("%Y%m%d%H%M%S")
        .to_string();
    let (_, dig, _) = output(Command::new("dig").args([
        "@127.0.0.1",
        "-p",
        &port.to_string(),
        "+dnssec",
        "+norec",
        "+noall",
        "+answer",
        APEX,
        "DNSKEY",
    ]));
    let expirations: Vec<&str> = dig
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(3) == Some(&"RRSIG")).then(|| fields.get(8).copied())?
        })
        .collect();
    assert!(!expirations.is_empty(), "no RRSIG from dig:\n{dig}");
    assert!(
        expirations.iter().all(|&e| e >= earliest_text.as_str()),
        "an RRSIG expires before the reported earliest expiry {earliest_text}: {expirations:?}"
    );
    let now = jiff::Timestamp::now().as_second() as f64;
    assert!(
        earliest > now + 86_400.0 && earliest < now + 15.0 * 86_400.0,
        "earliest expiry {earliest} not within 1..15 days"
    );
    dist_files_use_only_these_metrics(&body);
    // No parent agent in this config: the NOTIFY series are there, at 0.
    for series in [
        "signalbox_notify_sent_total{type=\"cds\",result=\"failed\"}",
        "signalbox_notify_pending",
        "signalbox_gate_waiting",
    ] {
        assert_eq!(sample(&body, series), Some(0.0), "{series}: {body}");
    }
    // RRL is on by default (the test config exempts 127.0.0.1): counted,
    // nothing limited.
    assert_eq!(
        sample(&body, "signalbox_rrl_limited_total{action=\"dropped\"}"),
        Some(0.0),
        "{body}"
    );
    let rounds = sample(&body, "signalbox_rounds_total").expect("rounds");
    assert!(rounds >= 1.0, "{body}");

    // Answers counted by transport and RCODE: a NXDOMAIN over UDP and a
    // query over TCP (dig +tcp) show up in the next scrape.
    let udp_nx = "signalbox_queries_total{transport=\"udp\",rcode=\"NXDOMAIN\"}";
    let tcp_ok = "signalbox_queries_total{transport=\"tcp\",rcode=\"NOERROR\"}";
    let (nx_before, tcp_before) = (sample(&body, udp_nx), sample(&body, tcp_ok));
    assert!(nx_before.is_some() && tcp_before.is_some(), "{body}");
    let (code, out, err) = output(Command::new("dig").args([
        "@127.0.0.1",
        "-p",
        &port.to_string(),
        "+norec",
        &format!("nope.{APEX}"),
        "A",
    ]));
    assert!(code == 0 && out.contains("NXDOMAIN"), "{out}{err}");
    let (code, out, err) = output(Command::new("dig").args([
        "@127.0.0.1",
        "-p",
        &port.to_string(),
        "+norec",
        "+tcp",
        APEX,
        "SOA",
    ]));
    assert!(code == 0 && out.contains("NOERROR"), "{out}{err}");
    let (_, counted) = scrape(metrics_addr);
    assert_eq!(
        sample(&counted, udp_nx),
        nx_before.map(|n| n + 1.0),
        "{counted}"
    );
    assert_eq!(
        sample(&counted, tcp_ok),
        tcp_before.map(|n| n + 1.0),
        "{counted}"
    );
    assert!(
        sample(&counted, "signalbox_tcp_connections").is_some(),
        "{counted}"
    );
    assert!(
        sample(
            &counted,
            "signalbox_transfers_total{type=\"axfr\",result=\"complete\"}"
        )
        .is_some(),
        "{counted}"
    );

    // A key change: a round, a new serial, a latency observed.
    signzone::keygen(&root.join("children"), &["-f", "KSK", "new.example"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while serial(addr, APEX) == Some(served) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let changed = serial(addr, APEX).expect("serial");
    assert_ne!(changed, served, "no new serial after a key change");
    let (_, body) = scrape(metrics_addr);
    promtool_accepts(&body);
    assert_eq!(
        sample(&body, &format!("signalbox_zone_serial{zone}")),
        Some(f64::from(changed)),
        "{body}"
    );
    assert!(sample(&body, "signalbox_rounds_total").expect("rounds") > rounds);
    let latencies =
        sample(&body, "signalbox_key_change_to_served_seconds_count").expect("latency count");
    assert!(latencies >= 1.0, "{body}");
    let (_, json, _) = output(signalbox().args(["status", "--json", "-c"]).arg(&config));
    let json: serde_json::Value = serde_json::from_str(&json).expect("status --json");
    assert_children(&body, &json, 4);
    let (status, _) = {
        let mut stream = TcpStream::connect(metrics_addr).expect("connect");
        stream
            .write_all(b"GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("send");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read");
        (text.lines().next().unwrap_or_default().to_string(), ())
    };
    assert!(status.contains(" 404 "), "{status}");
    drop(server);
}

/// The alert rules pass `promtool check rules`, and every `signalbox_*`
/// metric the rules and the Grafana dashboard in `dist/` use is one the
/// scrape `body` has.
fn dist_files_use_only_these_metrics(body: &str) {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist");
    let rules = dist.join("prometheus/signalbox.rules.yml");
    let (code, out, err) = output(
        Command::new("promtool")
            .args(["check", "rules"])
            .arg(&rules),
    );
    assert_eq!(code, 0, "promtool check rules: {out}{err}");
    let families: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for file in [rules, dist.join("grafana/signalbox.json")] {
        let text = std::fs::read_to_string(&file).expect("dist file");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("signalbox_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                families.contains(&family) || families.contains(&name.as_str()),
                "{} uses {name}, which /metrics does not have",
                file.display()
            );
        }
    }
}
