//! RFC 9567 error reporting, both ways, against real peers: with `[report]
//! agent`, signalbox is the monitoring agent. A report is sent to it as a
//! parent's scanner (a reporting resolver) would, by dnspython: a TXT query
//! for `_er.<qtype>.<qname>.<info-code>._er.<agent>` to signalbox's address.
//! It must be answered positively (RFC 9567 §6.3: a TXT record, AA), tied
//! to the child it concerns, listed by `explain --json` under
//! `error_reports`, counted by `status --json`, and run the operator's
//! hook as an `error-report` event; the signalling zone's answers carry
//! the Report-Channel option naming the agent, as dnspython reads it. (The
//! option in outgoing NOTIFYs is
//! `notify::a_notify_names_the_report_channel_as_dnspython_reads_it`.)

use std::{fs, net::SocketAddr, os::unix::fs::PermissionsExt, process::Command, time::Duration};

use serde_json::Value;

use crate::{
    common::{serve::Serve, *},
    notify::{CHILD, SIGNAL, Side, ready, wait_until, world},
};

const AGENT: &str = "agent.operator.test.";

/// Sends one error report to `server` with dnspython; returns its answer as
/// `RCODE AA TTL "TEXT"`.
fn report(server: SocketAddr, qname: &str) -> String {
    dnspython(
        r#"
import sys, dns.message, dns.query, dns.flags, dns.rcode
q = dns.message.make_query(sys.argv[1], "TXT")
r = dns.query.udp(q, sys.argv[2], port=int(sys.argv[3]), timeout=2)
aa = "AA" if r.flags & dns.flags.AA else "no-AA"
txt = [(rr.ttl, rd.to_text()) for rr in r.answer for rd in rr]
print(dns.rcode.to_text(r.rcode()), aa, " ".join(f"{t} {s}" for t, s in txt))
"#,
        server,
        qname,
    )
}

/// Runs a dnspython `script` with `qname`, the server's address and port
/// as its arguments; what it prints.
fn dnspython(script: &str, server: SocketAddr, qname: &str) -> String {
    let (code, stdout, stderr) = output(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(qname)
            .arg(server.ip().to_string())
            .arg(server.port().to_string()),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    stdout.trim().to_string()
}

fn json(side: &Side, args: &[&str]) -> Value {
    let (code, stdout, stderr) = side.run(args);
    assert_eq!(code, 0, "{args:?}: {stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn signalbox_answers_error_reports_and_keeps_them_per_child() {
    if !ready() {
        return;
    }
    let world = world("", "");
    let side = Side::new(&world, &[CHILD], "always", "");
    let events = side.root().join("events.log");
    let hook = side.root().join("hook.sh");
    fs::write(
        &hook,
        format!(
            "#!/bin/sh\nprintf '%s %s %s %s %s\\n' \"$SIGNALBOX_EVENT\" \"$SIGNALBOX_ZONE\" \"$SIGNALBOX_QNAME\" \"$SIGNALBOX_QTYPE\" \"$SIGNALBOX_EDE\" >> '{}'\n",
            events.display()
        ),
    )
    .expect("hook");
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).expect("chmod");
    let text = fs::read_to_string(&side.config).expect("config");
    fs::write(
        &side.config,
        format!("{text}\n[report]\nagent = \"{AGENT}\"\n\n[hooks]\nexec = \"hook.sh\"\n"),
    )
    .expect("config");
    let addr = SocketAddr::new([127, 0, 0, 2].into(), world.auth().port());
    let daemon = Serve::start(&side.config, addr, SIGNAL);

    // A parent's scanner reports that the child's CDS failed (EDE 6,
    // DNSSEC Bogus), and one about the child's _dsboot signal (EDE 9,
    // DNSKEY Missing).
    let answer = report(addr, &format!("_er.59.{CHILD}6._er.{AGENT}"));
    assert_eq!(
        answer,
        "NOERROR AA 3600 \"report received\"",
        "{}",
        daemon.log_text()
    );
    let signal = format!("_dsboot.{CHILD}{SIGNAL}");
    let answer = report(addr, &format!("_er.60.{signal}9._er.{AGENT}"));
    assert!(answer.starts_with("NOERROR AA 3600"), "{answer}");
    // Not a report (a name a QNAME-minimising resolver asks on its way
    // down): an empty positive answer, nothing recorded.
    assert_eq!(report(addr, &format!("_er.{AGENT}")), "NOERROR AA", "");

    let mut explained = Value::Null;
    let listed = wait_until(Duration::from_secs(10), || {
        explained = json(&side, &["explain", CHILD, "--json"]);
        explained["error_reports"]
            .as_array()
            .is_some_and(|r| r.len() == 2)
    });
    assert!(listed, "{explained:#}\n{}", daemon.log_text());
    let reports = &explained["error_reports"];
    assert_eq!(reports[0]["qname"], CHILD);
    assert_eq!(reports[0]["qtype"], "CDS");
    assert_eq!(reports[0]["ede"], 6);
    assert_eq!(reports[0]["source"], "127.0.0.1");
    assert_eq!(reports[1]["qname"], signal.as_str());
    assert_eq!(reports[1]["qtype"], "CDNSKEY");
    assert_eq!(reports[1]["ede"], 9);
    let status = json(&side, &["status", "--json"]);
    assert_eq!(status["error_reports"]["total"], 2, "{status:#}");
    assert_eq!(status["error_reports"]["by_code"]["6"], 1, "{status:#}");
    let heard = wait_until(Duration::from_secs(10), || {
        fs::read_to_string(&events).is_ok_and(|t| {
            t.contains(&format!("error-report {CHILD} {CHILD} CDS 6"))
                && t.contains(&format!("error-report {CHILD} {signal} CDNSKEY 9"))
        })
    });
    assert!(heard, "{:?}", fs::read_to_string(&events));
    // Kept in the state directory for the next start.
    let log = fs::read_to_string(side.root().join("state/error-reports.log")).expect("log");
    assert_eq!(log.lines().count(), 2, "{log}");

    // RFC 9567 §6.1: the signalling zone's EDNS answers name the agent, so
    // a resolver that fails to validate a signal can report it.
    assert_eq!(
        report_channel(addr, &signal),
        AGENT,
        "{}",
        daemon.log_text()
    );
}

/// The Report-Channel option (code 18) in the answer to an EDNS query for
/// `qname` CDS, as dnspython reads it ("none" without one).
fn report_channel(server: SocketAddr, qname: &str) -> String {
    dnspython(
        r#"
import sys, dns.message, dns.query, dns.name
q = dns.message.make_query(sys.argv[1], "CDS", use_edns=0, want_dnssec=True)
r = dns.query.udp(q, sys.argv[2], port=int(sys.argv[3]), timeout=2)
opts = [o for o in r.options if o.otype == 18]
print(dns.name.from_wire(opts[0].to_wire(), 0)[0].to_text() if opts else "none")
"#,
        server,
        qname,
    )
}
