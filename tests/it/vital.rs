//! Nothing dies silently, nothing floods the log (issue 13 item 9), against
//! a real `signalbox serve`: events anyone can trigger (refused transfers,
//! failed TSIG checks) are logged a few times per window with a count of
//! the rest, not once per packet.

use std::{fs, net::SocketAddr, path::Path, process::Command};

use crate::common::{process::free_port, serve::*, signzone, *};

const APEX: &str = "_signal.ns1.operator.test.";

/// A served signalling zone with one child; transfers allowed to nobody.
fn start(root: &Path) -> Serve {
    let children = root.join("children");
    let signal = root.join("signal");
    fs::create_dir_all(&children).expect("mkdir");
    fs::create_dir_all(&signal).expect("mkdir");
    signzone::keygen(&children, &["-f", "KSK", "example.com"]);
    signzone::keygen(&signal, &["-f", "KSK", APEX.trim_end_matches('.')]);
    let port = free_port();
    let cfg = operator_config(root, port, "", "", "");
    Serve::start(&cfg, SocketAddr::from(([127, 0, 0, 1], port)), APEX)
}

#[test]
fn refused_transfers_and_bad_tsig_are_logged_a_few_times_not_per_packet() {
    if !tools(&["dnssec-keygen", "kdig"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let server = start(tmp.path());
    let port = server.addr.port().to_string();
    for i in 0..40 {
        let mut kdig = Command::new("kdig");
        kdig.args(["@127.0.0.1", "-p", &port, "+tcp", "+retry=0", "+timeout=2"]);
        if i % 2 == 1 {
            // A key signalbox does not know: BADKEY.
            kdig.args(["-y", "hmac-sha256:stranger:c2VjcmV0c2VjcmV0c2VjcmV0"]);
        }
        let out = kdig.args([APEX, "AXFR"]).output().expect("kdig");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("REFUSED") || text.contains("BADKEY") || text.contains("NOTAUTH"),
            "{text}"
        );
    }
    // The log is written by its own thread: give it a moment.
    let started = std::time::Instant::now();
    let mut log = server.log_text();
    while !(log.contains("transfer refused") && log.contains("TSIG verification failed"))
        && started.elapsed() < std::time::Duration::from_secs(3)
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
        log = server.log_text();
    }
    let refused = log.matches("transfer refused").count();
    let tsig = log.matches("TSIG verification failed").count();
    assert!(
        (1..=10).contains(&refused),
        "{refused} 'transfer refused' lines for 20 refusals:\n{log}"
    );
    assert!(
        (1..=10).contains(&tsig),
        "{tsig} 'TSIG verification failed' lines for 20 bad keys:\n{log}"
    );
}
