//! Self-tests of the real-signer harness (`common::signer`) and the
//! interop investigation for sidecar mode, as executable assertions.
//!
//! What Knot 3.2.6 and BIND 9.18.49 (Debian 12) do, as asserted below:
//!
//! | UPDATE (TSIG) | Knot auto-signing | BIND dynamic | BIND inline |
//! |---|---|---|---|
//! | CDS+CDNSKEY at a non-apex name | NOERROR, served, signed (ZSK), TTL as sent | NOERROR, served, signed (KSK), TTL capped at max-zone-ttl | same as dynamic |
//! | ... after re-sign / KSK rollover / SIGKILL restart | kept (*) | kept; re-signed by the new KSK | kept; re-signed by the new KSK |
//! | CDS at the apex | NOERROR, dropped ("no changes to the zone were made") | kept next to its own, signed | REFUSED ("bad CDS RRset") |
//! | CSYNC at the apex | kept, signed | kept, signed | kept, signed |
//! | no key / wrong key | NOTAUTH / BADSIG | REFUSED / NOTAUTH(BADSIG) | |
//!
//! (*) Knot loses UPDATEs on restart when its zone file is never flushed
//! (`zonefile-sync: -1`) and `zonefile-load: difference-no-serial`
//! re-applies the unchanged file as a difference; the harness default
//! (`zonefile-sync: 0`) keeps them.
//!
//! NOTIFY to the also-notify target: Knot (over TCP) on every serial
//! change, at once: `zone-sign`, `zone-ksk-submitted` (CDS gone), the new
//! KSK becoming ready (CDS appear, 2 s after `zone-key-rollover` with
//! dnskey-ttl 2). BIND (over UDP) on every serial change, `rndc sign` and
//! key-manager events included, spaced by notify-delay (5 s): 0-5 s after
//! the change.

use std::{fs, time::Duration};

use crate::common::signer::{Answer, TsigKey};

mod bind;
mod knot;

const CHILD: &str = "example.com.";
const SIGNAL: &str = "_signal.ns1.example.net.";
const DSBOOT: &str = "_dsboot.example.com._signal.ns1.example.net.";
const SIGNAL2: &str = "_signal.ns2.example.net.";
const DSBOOT2: &str = "_dsboot.example.com._signal.ns2.example.net.";

/// A CDS and CDNSKEY of some other zone's key (kept constant: only the
/// signers' handling matters here).
const FOREIGN_CDS: &str =
    "1690 13 2 C0221B938B5F5A3276719A4B0A037B2ABD32685510467B2A65F8CEC10D09908B";
const FOREIGN_CDNSKEY: &str = "257 3 13 6i6AlyxncrN8wXZCowRzo8O/WxFZnvpyAM8V31krvQhN7NW93CjQpaEvDHGxMvJQ+jkqiPdeTMCO67RBg2H+LA==";

fn body() -> String {
    "$TTL 2\n\
     @ SOA ns1.example.net. hostmaster.example.net. 1 3600 600 86400 2\n\
     @ NS ns1.example.net.\n"
        .to_string()
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temporary directory")
}

/// `update add` lines for CDS + CDNSKEY at `owner` with `ttl`.
fn add_cds(zone: &str, owner: &str, ttl: u32, cds: &str, cdnskey: &str) -> String {
    format!(
        "zone {zone}\nupdate add {owner} {ttl} CDS {cds}\nupdate add {owner} {ttl} CDNSKEY {cdnskey}\n"
    )
}

/// Asserts `name` serves exactly our CDS/CDNSKEY, each with an RRSIG.
#[track_caller]
fn assert_signed_cds(a: &Answer, b: &Answer, what: &str, log: &dyn Fn() -> String) {
    assert_eq!(
        a.rdata("CDS"),
        vec![FOREIGN_CDS.to_string()],
        "{what}: CDS not served\n{}\n{}",
        a.output,
        log()
    );
    assert_eq!(
        b.rdata("CDNSKEY"),
        vec![FOREIGN_CDNSKEY.to_string()],
        "{what}: CDNSKEY not served\n{}\n{}",
        b.output,
        log()
    );
    assert!(
        !a.rrsig_tags("CDS").is_empty() && !b.rrsig_tags("CDNSKEY").is_empty(),
        "{what}: served unsigned\n{}\n{}\n{}",
        a.output,
        b.output,
        log()
    );
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------
// TSIG keys (no daemons)
// ---------------------------------------------------------------------------

#[test]
fn tsig_keys_are_random_and_in_tsig_keygen_format() {
    let a = TsigKey::generate("sidecar.");
    let b = TsigKey::generate("sidecar");
    assert_eq!(a.name, "sidecar", "the final dot is dropped");
    assert_ne!(a.secret, b.secret, "fresh random secrets");
    let raw = data_encoding::BASE64
        .decode(a.secret.as_bytes())
        .expect("base64 secret");
    assert_eq!(raw.len(), 32, "32-byte secret");
    assert_eq!(
        a.keyfile_text(),
        format!(
            "key \"sidecar\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
            a.secret
        )
    );
    assert_eq!(a.spec(), format!("hmac-sha256:sidecar:{}", a.secret));
    if crate::common::have("named-checkconf") {
        let dir = tempdir("signalbox-tsig-");
        let key = dir.path().join("sidecar.key");
        a.write_keyfile(&key);
        let conf = dir.path().join("named.conf");
        fs::write(&conf, format!("include \"{}\";\n", key.display())).expect("write");
        let (code, out, err) =
            crate::common::output(std::process::Command::new("named-checkconf").arg(&conf));
        assert_eq!(code, 0, "named-checkconf rejects the key file: {out}{err}");
    }
}
