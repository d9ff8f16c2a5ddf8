//! A configurable world of parent and child zones for DSYNC discovery,
//! generalized NOTIFY (RFC 9859), consistency-gate and parent-observer tests.
//!
//! [`ParentWorld::start`] builds, in its own temporary directory and on its
//! own 127.0.0.1 high ports:
//!
//! ```text
//!   test.  --NS+DS-->  parent.test.  --NS+DS-->  child.parent.test.   (any zones, any depth)
//!   \_________________ one Knot (`auth`), pre-signed files ________________/
//!            \_____ validating Unbound (`resolver`): one stub-zone per zone -> Knot _____/
//! ```
//!
//! * Every [`ZoneSpec`] becomes one zone. The harness writes its SOA, apex NS
//!   (from [`ZoneSpec::ns`], default `ns.<apex>`), and for every zone whose
//!   nearest enclosing zone is also in the world, the delegation in that
//!   enclosing zone: NS, DS (when the child is signed) and glue (for NS names
//!   at or below the cut). The caller's body follows (relative names are
//!   relative to the apex; start each record with its owner).
//! * Addresses of NS names: whatever A/AAAA records the bodies hold win. An
//!   NS name inside the world without an address in the zone that owns it
//!   gets the address written as glue in some other body, else
//!   `A 127.0.0.1`. Glue is copied from the owning zone unless the parent's
//!   body already has addresses for that name (so glue and authoritative
//!   addresses can be made to differ on purpose). NS addresses play no part
//!   in resolution: Unbound reaches every zone through a `stub-zone`.
//! * Signed zones get an ECDSAP256SHA256 KSK + ZSK (`dnssec-keygen`, once, in
//!   `keys-<apex>/`) and are signed with `dnssec-signzone -S -O full` (NSEC,
//!   one hour ago to 30 days ahead). Keys are kept for the world's life, so
//!   the DS above stays valid across [`ParentWorld::set_zone`].
//! * DSYNC (type 66): callers write it in RFC 3597 generic syntax,
//!   `*._dsync TYPE66 \# 26 003b01...` ([`dsync_rdata`] makes the text).
//!   BIND 9.18.49's `dnssec-signzone` knows DSYNC and prints it by mnemonic
//!   (`DSYNC CDS NOTIFY 5300 rr-endpoint.example.`, also `RRSIG DSYNC ...` and
//!   `DSYNC` in NSEC bitmaps); Knot 3.2 does not know that mnemonic and
//!   refuses such a file. The harness therefore rewrites the signed file:
//!   DSYNC RDATA back to `TYPE66 \# ...`, `DSYNC` in RRSIG type-covered and
//!   NSEC bitmaps to `TYPE66`. The bytes are unchanged, so the signatures
//!   hold. Only DSYNC is rewritten: other types BIND knows and Knot 3.2 does
//!   not would need the same treatment. BIND checks generic RDATA of types it
//!   knows, so malformed DSYNC wire data cannot be served through this world.
//!   Unsigned zones go through `named-compilezone -s full` and the same
//!   rewrite, so every served file has one record per line with absolute
//!   names ([`ParentWorld::records`] reads them).
//! * One Knot ([`Knot`]) serves every zone (UDP and TCP,
//!   [`ParentWorld::auth`]). Knot answers from the deepest zone it has, so
//!   NS queries at a child apex (and anything below it) get the child's
//!   answer, never the parent's referral; only DS comes from the parent.
//!   The parent side of a delegation (NS, glue) is in the parent's file:
//!   [`ParentWorld::records`]. Both sides carry the same NS set
//!   ([`ZoneSpec::ns`]) unless a body adds more.
//! * One validating Unbound ([`ParentWorld::resolver`]): trust anchor = the
//!   KSK of every signed top zone (a zone with no enclosing zone in the
//!   world), `do-ip6: no`, `aggressive-nsec: no`, `cache-max-ttl: 2`,
//!   `cache-max-negative-ttl: 2`, `val-bogus-ttl: 1` (answers it gives show
//!   TTLs of at most 2 s), and `unbound-control` on a Unix socket in the
//!   world's directory. [`ParentWorld::set_zone`] flushes the changed zones
//!   (`flush_zone`, `flush_bogus`, `flush_negative`), so a change is visible
//!   at once; the low TTL caps bound staleness for anything else.
//!
//! [`NotifyReceiver`] is a NOTIFY target written in Rust (UDP and TCP on one
//! port, any 127.x.y.z address) that records every message and answers per
//! [`ReceiverMode`].
//!
//! As everywhere in the harness, every daemon is a
//! [`Daemon`](super::process::Daemon), killed when its owner is dropped;
//! [`ParentWorld`] and [`NotifyReceiver`] are independent, so tests may run
//! in parallel threads.

use std::{
    fmt::Write as _,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use tempfile::TempDir;

use super::{
    fqdn, is_at_or_below,
    kdig::{self, KdigResult, soa_serial},
    knot::Knot,
    process::run,
    signzone,
    unbound::{Unbound, UnboundSpec},
};

mod notify;
mod zonefile;

pub use notify::{NotifyReceiver, Received, ReceiverMode, notify_message};
pub use zonefile::dsync_rdata;
use zonefile::{write_zone, zone_text};

/// The tools a test using [`ParentWorld`] needs; pass to `common::tools`.
pub const TOOLS: &[&str] = &[
    "knotd",
    "knotc",
    "kdig",
    "unbound",
    "unbound-control",
    "dnssec-keygen",
    "dnssec-signzone",
    "dnssec-dsfromkey",
    "named-compilezone",
    "timeout",
];

/// DNS type numbers used with this module: CDS (RFC 7344).
pub const CDS: u16 = 59;
/// See [`CDS`]: CSYNC (RFC 7477).
pub const CSYNC: u16 = 62;
/// DNS opcode NOTIFY.
pub const OPCODE_NOTIFY: u8 = 4;

/// How long a reloaded zone may take to be served.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(15);
/// TTL of everything the harness writes (and the default `$TTL` of bodies).
const TTL: u32 = 300;

// ---------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------

/// One zone of a [`WorldSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSpec {
    /// The apex, e.g. `parent.test.` (a missing final dot is added).
    pub apex: String,
    /// Zone-file text without SOA, apex NS and DNSKEY (the harness adds
    /// them, and delegations to zones of the world). `$ORIGIN` is the apex,
    /// `$TTL` 300. Start every record with its owner. DSYNC as
    /// `TYPE66 \# ...` ([`dsync_rdata`]).
    pub body: String,
    /// Sign the zone (and put its DS in the enclosing zone).
    pub signed: bool,
    /// The zone's NS names (apex NS and the delegation above), relative to
    /// the apex unless they end in a dot. Empty means `ns.<apex>`.
    pub ns: Vec<String>,
}

impl ZoneSpec {
    /// A signed zone with the default NS name `ns.<apex>`.
    pub fn signed(apex: &str, body: &str) -> ZoneSpec {
        ZoneSpec {
            apex: apex.to_string(),
            body: body.to_string(),
            signed: true,
            ns: Vec::new(),
        }
    }

    /// An unsigned zone with the default NS name `ns.<apex>`.
    pub fn unsigned(apex: &str, body: &str) -> ZoneSpec {
        ZoneSpec {
            signed: false,
            ..ZoneSpec::signed(apex, body)
        }
    }

    /// The same zone with these NS names.
    pub fn with_ns(mut self, ns: &[&str]) -> ZoneSpec {
        self.ns = ns.iter().map(|n| n.to_string()).collect();
        self
    }
}

/// The zones of a [`ParentWorld`], any order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorldSpec {
    pub zones: Vec<ZoneSpec>,
    /// Zones served outside the world (by signalbox), reached through an
    /// Unbound `stub-zone` at this address on Knot's port: `(apex, ip)`.
    pub stubs_elsewhere: Vec<(String, std::net::IpAddr)>,
}

/// One zone as the world keeps it.
#[derive(Debug)]
struct Zone {
    apex: String,
    body: String,
    signed: bool,
    /// Fully qualified, lower-case.
    ns: Vec<String>,
    /// Index of the nearest enclosing zone in the world.
    parent: Option<usize>,
    /// Key directory (signed zones).
    keys: PathBuf,
    /// KSK as DNSKEY RDATA (signed zones), and its SHA-256 DS RDATA.
    ksk: String,
    ds: Vec<String>,
    serial: u32,
    /// The zone text last signed/served (before signing).
    text: String,
    /// The file Knot serves.
    file: PathBuf,
}

/// A running world of zones; everything stops when it is dropped.
pub struct ParentWorld {
    // Fields drop in order: the daemons go before their directory.
    unbound: Unbound,
    knot: Knot,
    zones: Vec<Zone>,
    anchor_conf: PathBuf,
    dir: TempDir,
}

impl ParentWorld {
    /// Makes keys, writes and signs every zone, starts Knot and a validating
    /// Unbound, and waits until every zone's SOA answers through Unbound
    /// (with AD exactly when the zone is signed below a signed chain).
    /// Panics with the daemons' logs on any failure.
    pub fn start(spec: &WorldSpec) -> ParentWorld {
        assert!(!spec.zones.is_empty(), "a world needs at least one zone");
        let dir = tempfile::Builder::new()
            .prefix("signalbox-parent-")
            .tempdir()
            .expect("temporary directory");
        let d = dir.path().to_path_buf();

        let mut zones: Vec<Zone> = Vec::new();
        for z in &spec.zones {
            let apex = fqdn(&z.apex);
            assert!(
                zones.iter().all(|o| o.apex != apex),
                "zone {apex} is listed twice"
            );
            let ns = if z.ns.is_empty() {
                vec![format!("ns.{apex}")]
            } else {
                z.ns.iter().map(|n| absolute(n, &apex)).collect()
            };
            let stem = file_stem(&apex);
            zones.push(Zone {
                body: z.body.clone(),
                signed: z.signed,
                ns,
                parent: None,
                keys: d.join(format!("keys-{stem}")),
                ksk: String::new(),
                ds: Vec::new(),
                serial: 1,
                text: String::new(),
                file: d.join(format!("{stem}.served")),
                apex,
            });
        }
        for i in 0..zones.len() {
            zones[i].parent = enclosing(&zones, &zones[i].apex, false);
        }
        // Keys first: every DS is known before anything is signed.
        for z in zones.iter_mut().filter(|z| z.signed) {
            fs::create_dir_all(&z.keys).expect("create key directory");
            let ksk = signzone::keygen(&z.keys, &["-f", "KSK", "-n", "ZONE", &z.apex]);
            signzone::keygen(&z.keys, &["-n", "ZONE", &z.apex]);
            let key_file = z.keys.join(format!("{ksk}.key"));
            z.ksk = signzone::dnskey_rdata(&key_file);
            z.ds = vec![signzone::dsfromkey(&key_file)];
        }
        for i in 0..zones.len() {
            let text = zone_text(&zones, i);
            write_zone(&d, &zones[i], &text);
            zones[i].text = text;
        }

        let served: Vec<(&str, &Path)> = zones
            .iter()
            .map(|z| (z.apex.as_str(), z.file.as_path()))
            .collect();
        let knot = Knot::start(&d, &served);

        // Trust anchors: the KSK of every signed top zone.
        let tops: Vec<&Zone> = zones.iter().filter(|z| z.parent.is_none()).collect();
        let mut anchors = String::new();
        let mut delv_anchors = String::from("trust-anchors {\n");
        for z in tops.iter().filter(|z| z.signed) {
            let _ = writeln!(anchors, "{} {TTL} IN DNSKEY {}", z.apex, z.ksk);
            let (flags_proto_alg, key) = signzone::split_dnskey(&z.ksk);
            let _ = writeln!(
                delv_anchors,
                "    {} static-key {flags_proto_alg} \"{key}\";",
                z.apex
            );
        }
        delv_anchors.push_str("};\n");
        let anchor_file = d.join("anchors.keys");
        fs::write(&anchor_file, &anchors).expect("write trust anchors");
        let anchor_conf = d.join("anchor.conf");
        fs::write(&anchor_conf, delv_anchors).expect("write anchor.conf");

        let apexes: Vec<String> = zones.iter().map(|z| z.apex.clone()).collect();
        let unbound =
            Unbound::start(
                &d,
                &UnboundSpec {
                    anchor: (!anchors.is_empty()).then_some(anchor_file.as_path()),
                    stubs: apexes
                        .iter()
                        .map(|a| (a.clone(), knot.addr()))
                        .chain(spec.stubs_elsewhere.iter().map(|(apex, ip)| {
                            (fqdn(apex), SocketAddr::new(*ip, knot.addr().port()))
                        }))
                        .collect(),
                    changing_zones: true,
                },
                &apexes[0],
            );

        let world = ParentWorld {
            unbound,
            knot,
            zones,
            anchor_conf,
            dir,
        };
        for (i, z) in world.zones.iter().enumerate() {
            let secure = world.secure(i);
            let r = world.query(&z.apex, "SOA");
            if r.rcode != "NOERROR" || r.ad != secure {
                panic!(
                    "{} SOA through Unbound: want NOERROR with AD {secure}, got {} AD {}:\n{}\n{}",
                    z.apex,
                    r.rcode,
                    r.ad,
                    r.output,
                    world.logs()
                );
            }
        }
        world
    }

    /// True when zone `i` is signed and every zone above it is too (so its
    /// data validates as secure).
    fn secure(&self, i: usize) -> bool {
        let mut at = Some(i);
        while let Some(j) = at {
            if !self.zones[j].signed {
                return false;
            }
            at = self.zones[j].parent;
        }
        true
    }

    fn index(&self, apex: &str) -> usize {
        let apex = fqdn(apex);
        self.zones
            .iter()
            .position(|z| z.apex == apex)
            .unwrap_or_else(|| panic!("{apex} is not a zone of this world"))
    }

    /// The validating Unbound (UDP and TCP).
    pub fn resolver(&self) -> SocketAddr {
        self.unbound.addr()
    }

    /// The Knot serving every zone (UDP and TCP).
    pub fn auth(&self) -> SocketAddr {
        self.knot.addr()
    }

    /// Replaces one zone's body, re-signs it with its keys (serial + 1) and
    /// every other zone whose generated part changed with it (glue), reloads
    /// them in Knot (`knotc zone-reload`), waits until Knot serves the new
    /// serials and flushes them from Unbound's cache. Panics with the logs
    /// on failure.
    pub fn set_zone(&mut self, apex: &str, body: &str) {
        let i = self.index(apex);
        self.zones[i].body = body.to_string();
        let d = self.dir.path().to_path_buf();
        let mut changed = Vec::new();
        for j in 0..self.zones.len() {
            if j != i && zone_text(&self.zones, j) == self.zones[j].text {
                continue;
            }
            self.zones[j].serial += 1;
            let text = zone_text(&self.zones, j);
            write_zone(&d, &self.zones[j], &text);
            self.zones[j].text = text;
            changed.push(j);
        }
        for &j in &changed {
            self.reload(j);
        }
        for &j in &changed {
            self.flush(&self.zones[j].apex);
        }
    }

    fn reload(&self, i: usize) {
        let z = &self.zones[i];
        let socket = self
            .dir
            .path()
            .join(format!("knot-{}", self.knot.addr().port()))
            .join("knot.sock");
        let (code, stdout, stderr) = run(Command::new("timeout")
            .args(["-k", "5", "20", "knotc", "-b", "-s"])
            .arg(&socket)
            .arg("zone-reload")
            .arg(&z.apex));
        if code != 0 {
            panic!(
                "knotc zone-reload {} failed ({code}): {stdout}{stderr}\n{}",
                z.apex,
                self.logs()
            );
        }
        let started = Instant::now();
        loop {
            let r = kdig::kdig_with_options(self.auth(), &z.apex, "SOA", &["+norecurse"]);
            if soa_serial(&r.answer) == Some(z.serial) {
                return;
            }
            if started.elapsed() > RELOAD_TIMEOUT {
                panic!(
                    "Knot does not serve {} serial {} after {RELOAD_TIMEOUT:?}:\n{}\n{}",
                    z.apex,
                    z.serial,
                    r.output,
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Drops everything at or below `apex` from Unbound's caches (RRsets,
    /// messages, keys) plus every bogus and negative entry.
    pub fn flush(&self, apex: &str) {
        let apex = fqdn(apex);
        for args in [
            vec!["flush_zone", apex.as_str()],
            vec!["flush_bogus"],
            vec!["flush_negative"],
        ] {
            let (code, stdout, stderr) = run(Command::new("timeout")
                .args(["-k", "5", "20", "unbound-control", "-c"])
                .arg(self.unbound.conf())
                .args(&args));
            if code != 0 || !stdout.starts_with("ok") {
                panic!(
                    "unbound-control {args:?} failed ({code}): {stdout}{stderr}\n{}",
                    self.logs()
                );
            }
        }
    }

    /// `kdig +dnssec @resolver NAME RTYPE` (use `TYPE66` for DSYNC: kdig 3.2
    /// does not know the mnemonic). [`section`] reads other sections from
    /// the output.
    pub fn query(&self, name: &str, rtype: &str) -> KdigResult {
        kdig::kdig(self.unbound.addr(), name, rtype, true)
    }

    /// `kdig +dnssec +norecurse @auth NAME RTYPE`: what Knot itself serves.
    pub fn query_auth(&self, name: &str, rtype: &str) -> KdigResult {
        kdig::kdig_with_options(self.auth(), name, rtype, &["+dnssec", "+norecurse"])
    }

    /// The file Knot serves for `apex` (signed and rewritten for Knot, or
    /// the plain text for unsigned zones).
    pub fn zone_file(&self, apex: &str) -> PathBuf {
        self.zones[self.index(apex)].file.clone()
    }

    /// The RDATA of the `owner`/`rtype` records in the file Knot serves for
    /// zone `apex` (whitespace-normalised, digests and keys of DS, CDS,
    /// DNSKEY and CDNSKEY in one piece; `DSYNC` and `TYPE66` both work, DSYNC
    /// RDATA comes as `\# len hex`, hex in lower case, while kdig prints
    /// upper case). The way to see the parent side of
    /// a delegation (NS, glue): Knot serves parent and child, so queries at
    /// or below a child apex are answered from the child (except DS).
    pub fn records(&self, apex: &str, owner: &str, rtype: &str) -> Vec<String> {
        let owner = fqdn(owner);
        let rtype = match rtype.to_ascii_uppercase().as_str() {
            "DSYNC" => "TYPE66".to_string(),
            other => other.to_string(),
        };
        let file = self.zone_file(apex);
        let text =
            fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        text.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let rdata = &fields.get(4..)?;
                if !(fields[0].eq_ignore_ascii_case(&owner)
                    && fields[3].eq_ignore_ascii_case(&rtype))
                {
                    return None;
                }
                // BIND splits digests and keys into chunks: join them.
                Some(match rtype.as_str() {
                    "DS" | "CDS" | "DNSKEY" | "CDNSKEY" if rdata.len() > 4 => {
                        format!("{} {}", rdata[..3].join(" "), rdata[3..].concat())
                    }
                    _ => rdata.join(" "),
                })
            })
            .collect()
    }

    /// The SOA serial Knot serves for `apex` (1, then +1 per re-sign).
    pub fn serial(&self, apex: &str) -> u32 {
        self.zones[self.index(apex)].serial
    }

    /// DS RDATA (SHA-256 of the KSK, `tag 13 2 HEX`) of a signed zone; empty
    /// for unsigned zones.
    pub fn ds(&self, apex: &str) -> Vec<String> {
        self.zones[self.index(apex)].ds.clone()
    }

    /// The KSK of a signed zone as DNSKEY RDATA (`257 3 13 <base64>`);
    /// empty for unsigned zones.
    pub fn ksk(&self, apex: &str) -> String {
        self.zones[self.index(apex)].ksk.clone()
    }

    /// A delv anchor file (`trust-anchors { test. static-key ...; };`).
    pub fn anchor_conf(&self) -> &Path {
        &self.anchor_conf
    }

    /// The tails of Unbound's and Knot's logs, for failure messages.
    pub fn logs(&self) -> String {
        format!("{}\n{}", self.unbound.log_tail(), self.knot.log_tail())
    }
}

/// Index of the deepest zone whose apex is `name` or an ancestor of it
/// (a proper ancestor only, unless `or_self`).
fn enclosing(zones: &[Zone], name: &str, or_self: bool) -> Option<usize> {
    zones
        .iter()
        .enumerate()
        .filter(|(_, z)| (or_self || z.apex != name) && is_at_or_below(name, &z.apex))
        .max_by_key(|(_, z)| label_count(&z.apex))
        .map(|(i, _)| i)
}

fn label_count(name: &str) -> usize {
    name.trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .count()
}

fn file_stem(apex: &str) -> String {
    let stem = apex.trim_end_matches('.');
    if stem.is_empty() {
        "root".to_string()
    } else {
        stem.replace(['/', '\\', '*'], "_")
    }
}

/// `name` relative to `origin` made absolute (lower-case); `@` is `origin`.
fn absolute(name: &str, origin: &str) -> String {
    if name == "@" {
        origin.to_string()
    } else if name.ends_with('.') {
        name.to_ascii_lowercase()
    } else if origin == "." {
        format!("{}.", name.to_ascii_lowercase())
    } else {
        format!("{}.{origin}", name.to_ascii_lowercase())
    }
}
