//! Proves the local chain-of-trust harness (`common::chain`) before
//! signalbox serves signaling zones: a stand-in signaling zone, signed by
//! `dnssec-signzone` and served by Knot, must validate through the chain,
//! prove its negative answers, and fail once a proxy corrupts its CDS.

use std::{fs, net::SocketAddr, time::Instant};

use crate::common::{
    chain::{self, Chain, ChainSpec, DelvResult},
    kdig,
    knot::Knot,
    proxy::{self, CorruptingProxy},
    signzone::{self, SignedZone},
};

const APEX: &str = "_signal.ns1.operator.test.";
const DSBOOT: &str = "_dsboot.example.com._signal.ns1.operator.test.";

/// A stand-in for signalbox: `_signal.ns1.operator.test.` signed with a CSK,
/// holding CDS + CDNSKEY of a freshly made `example.com.` KSK at
/// `_dsboot.example.com`, served by Knot on its own port.
struct StandIn {
    zone: SignedZone,
    /// The child key's CDS and CDNSKEY RDATA, as published.
    cds: String,
    cdnskey: String,
    // Knot before the directory: daemons stop before their files go.
    server: Knot,
    _dir: tempfile::TempDir,
}

impl StandIn {
    fn start() -> StandIn {
        let dir = tempfile::Builder::new()
            .prefix("signalbox-standin-")
            .tempdir()
            .expect("temporary directory");
        let d = dir.path();
        let child_keys = d.join("child");
        fs::create_dir_all(&child_keys).expect("create child key directory");
        let child = signzone::keygen(&child_keys, &["-f", "KSK", "-n", "ZONE", "example.com."]);
        let child_key = child_keys.join(format!("{child}.key"));
        let cds = signzone::dsfromkey(&child_key);
        let cdnskey = signzone::dnskey_rdata(&child_key);
        let body = format!(
            "$TTL 300\n\
             @ SOA ns1.operator.test. hostmaster.operator.test. 1 3600 600 86400 300\n\
             @ NS ns1.operator.test.\n\
             _dsboot.example.com CDS {cds}\n\
             _dsboot.example.com CDNSKEY {cdnskey}\n"
        );
        let zone = signzone::sign_zone(d, APEX, &body, true);
        let server = Knot::start(d, &[(APEX, &zone.file)]);
        StandIn {
            zone,
            cds,
            cdnskey,
            server,
            _dir: dir,
        }
    }

    fn spec(&self, server: SocketAddr) -> ChainSpec {
        ChainSpec {
            signaling_apex: APEX.to_string(),
            signaling_ds: self.zone.ds.clone(),
            signaling_server: server,
        }
    }
}

/// The RDATA of `rtype` records in an answer (owner, TTL, class dropped).
fn rdata(records: &[String], rtype: &str) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| {
            let fields: Vec<&str> = r.split(' ').collect();
            // owner TTL IN TYPE RDATA...
            let class = fields.iter().position(|f| *f == "IN")?;
            (fields.get(class + 1) == Some(&rtype)).then(|| fields[class + 2..].concat())
        })
        .collect()
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect()
}

fn ready() -> bool {
    crate::common::tools(chain::TOOLS)
}

#[test]
fn stand_in_signals_validate_through_the_chain() {
    if !ready() {
        return;
    }
    let started = Instant::now();
    let stand_in = StandIn::start();
    eprintln!("stand-in up after {:?}", started.elapsed());
    let chain = Chain::start(&stand_in.spec(stand_in.server.addr()));
    eprintln!("chain up after {:?}", started.elapsed());

    // Positive answers validate, and carry what the stand-in published.
    let cds = chain.assert_validated(DSBOOT, "CDS");
    assert_eq!(rdata(&cds, "CDS"), [squash(&stand_in.cds)], "{cds:?}");
    let cdnskey = chain.assert_validated(DSBOOT, "CDNSKEY");
    assert_eq!(
        rdata(&cdnskey, "CDNSKEY"),
        [squash(&stand_in.cdnskey)],
        "{cdnskey:?}"
    );
    chain.assert_validated(APEX, "SOA");

    // NXDOMAIN and NODATA are proven (NSEC), not just reported.
    chain.assert_negative(&format!("nope.{APEX}"), "A");
    chain.assert_negative(DSBOOT, "TXT");

    // A second opinion: Unbound itself sets AD.
    let k = chain.kdig(DSBOOT, "CDS");
    assert!(k.ad && k.rcode == "NOERROR", "{}", k.output);
    assert!(
        k.answer.iter().any(|r| r.contains(" RRSIG CDS ")),
        "{}",
        k.output
    );
    let k = chain.kdig(&format!("nope.{APEX}"), "A");
    assert!(k.ad && k.rcode == "NXDOMAIN", "{}", k.output);

    // Outside the signaling zone the chain itself validates too.
    chain.assert_validated("ns1.operator.test.", "A");
    eprintln!("all checks after {:?}", started.elapsed());
}

#[test]
fn corrupted_cds_fails_validation() {
    if !ready() {
        return;
    }
    let stand_in = StandIn::start();
    let proxy = CorruptingProxy::start(stand_in.server.addr(), DSBOOT, proxy::CDS);
    let chain = Chain::start(&stand_in.spec(proxy.addr()));

    let output = chain.assert_failed(DSBOOT, "CDS");
    assert!(
        proxy.corrupted() > 0,
        "the proxy never saw the CDS answer:\n{output}"
    );
    // It failed because the signature did not verify, not for want of an answer.
    assert!(
        chain.resolver_log().contains(&format!(
            "validation failure <{DSBOOT} CDS IN>: signature crypto failed"
        )),
        "delv:\n{output}\n{}",
        chain.logs()
    );
    // The resolver, too, refuses the damaged RRset.
    let k = chain.kdig(DSBOOT, "CDS");
    assert!(!k.ad && k.rcode == "SERVFAIL", "{}", k.output);

    // The proxy passes everything else untouched: same zone, same path.
    chain.assert_validated(DSBOOT, "CDNSKEY");
    chain.assert_negative(DSBOOT, "TXT");
}

#[test]
fn missing_ds_is_not_validated() {
    if !ready() {
        return;
    }
    // An insecure delegation: answers arrive but must not count as validated.
    let stand_in = StandIn::start();
    let mut spec = stand_in.spec(stand_in.server.addr());
    spec.signaling_ds.clear();
    let chain = Chain::start(&spec);
    let result = chain.delv(DSBOOT, "CDS");
    assert!(matches!(result, DelvResult::Failed(_)), "{result:?}");
    assert!(result.output().contains("unsigned answer"), "{result:?}");
}

#[test]
fn proxy_damages_only_the_victim_over_udp_and_tcp() {
    if !ready() {
        return;
    }
    let stand_in = StandIn::start();
    let upstream = stand_in.server.addr();
    let proxy = CorruptingProxy::start(upstream, &DSBOOT.to_uppercase(), proxy::CDS);
    for transport in ["+notcp", "+tcp"] {
        let ask = |server, rtype| {
            kdig::kdig_with_options(server, DSBOOT, rtype, &["+dnssec", "+norecurse", transport])
        };
        let (direct, proxied) = (ask(upstream, "CDS"), ask(proxy.addr(), "CDS"));
        assert_eq!(direct.rcode, "NOERROR", "{}", direct.output);
        let cds = |r: &kdig::KdigResult| rdata(&r.answer, "CDS");
        assert_eq!(cds(&direct), [squash(&stand_in.cds)], "{}", direct.output);
        assert_ne!(
            cds(&direct),
            cds(&proxied),
            "{transport}: {}",
            proxied.output
        );
        // Only the CDS RDATA changed, not its RRSIG.
        let rrsig = |r: &kdig::KdigResult| rdata(&r.answer, "RRSIG");
        assert_eq!(rrsig(&direct), rrsig(&proxied), "{transport}");
        // Other types pass untouched.
        let (direct, proxied) = (ask(upstream, "CDNSKEY"), ask(proxy.addr(), "CDNSKEY"));
        assert_eq!(direct.answer, proxied.answer, "{transport}");
    }
    assert_eq!(proxy.corrupted(), 2);
}
