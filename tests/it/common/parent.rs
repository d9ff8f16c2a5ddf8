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
    io::{self, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use tempfile::TempDir;

use super::{
    fqdn, is_at_or_below,
    kdig::{self, KdigResult},
    knot::Knot,
    process::{self, run},
    signzone,
    unbound::{Unbound, UnboundSpec},
};

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
        let unbound = Unbound::start(
            &d,
            &UnboundSpec {
                anchor: (!anchors.is_empty()).then_some(anchor_file.as_path()),
                stubs: apexes.iter().map(|a| (a.clone(), knot.addr())).collect(),
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

/// The A/AAAA records of a body: (owner, type, address). Understands
/// `$ORIGIN`, blank owners, optional TTL and class; ignores comments.
fn addresses(body: &str, apex: &str) -> Vec<(String, String, String)> {
    let mut origin = apex.to_string();
    let mut owner = apex.to_string();
    let mut found = Vec::new();
    for line in body.lines() {
        let text = line.split(';').next().unwrap_or("");
        let mut fields = text.split_whitespace().peekable();
        let Some(&first) = fields.peek() else {
            continue;
        };
        if first.eq_ignore_ascii_case("$ORIGIN") {
            fields.next();
            if let Some(o) = fields.next() {
                origin = absolute(o, &origin);
            }
            continue;
        }
        if first.starts_with('$') {
            continue;
        }
        if !text.starts_with([' ', '\t']) {
            owner = absolute(first, &origin);
            fields.next();
        }
        let mut rtype = None;
        for f in fields.by_ref() {
            let upper = f.to_ascii_uppercase();
            // TTLs (`300`, `1h`) start with a digit, types never do.
            if f.starts_with(|c: char| c.is_ascii_digit()) || upper == "IN" {
                continue;
            }
            rtype = Some(upper);
            break;
        }
        if let (Some(t), Some(addr)) = (rtype, fields.next()) {
            if t == "A" || t == "AAAA" {
                found.push((owner.clone(), t, addr.to_string()));
            }
        }
    }
    found
}

/// The whole text of zone `i` before signing.
fn zone_text(zones: &[Zone], i: usize) -> String {
    let z = &zones[i];
    let explicit = |zone: &Zone, name: &str| -> Vec<(String, String)> {
        addresses(&zone.body, &zone.apex)
            .into_iter()
            .filter(|(owner, _, _)| owner == name)
            .map(|(_, t, a)| (t, a))
            .collect()
    };
    // The addresses of an NS name: from the zone that owns it, else from
    // any body (glue written by the caller), else 127.0.0.1.
    let addresses_of = |name: &str| -> Vec<(String, String)> {
        if let Some(o) = enclosing(zones, name, true) {
            let own = explicit(&zones[o], name);
            if !own.is_empty() {
                return own;
            }
        }
        zones
            .iter()
            .map(|other| explicit(other, name))
            .find(|a| !a.is_empty())
            .unwrap_or_else(|| vec![("A".to_string(), "127.0.0.1".to_string())])
    };

    let mut generated: Vec<String> = Vec::new();
    let mut add = |line: String| {
        if !generated.contains(&line) {
            generated.push(line);
        }
    };
    let mname = &z.ns[0];
    add(format!(
        "{} {TTL} IN SOA {mname} hostmaster.{} {} 3600 600 86400 {TTL}",
        z.apex, z.apex, z.serial
    ));
    for n in &z.ns {
        add(format!("{} {TTL} IN NS {n}", z.apex));
    }
    // Addresses for every NS name (of any zone) this zone owns.
    for other in zones {
        for n in &other.ns {
            if enclosing(zones, n, true) == Some(i) && explicit(z, n).is_empty() {
                for (t, a) in addresses_of(n) {
                    add(format!("{n} {TTL} IN {t} {a}"));
                }
            }
        }
    }
    // Delegations to the zones directly below.
    for child in zones.iter().filter(|c| c.parent == Some(i)) {
        for n in &child.ns {
            add(format!("{} {TTL} IN NS {n}", child.apex));
        }
        for ds in &child.ds {
            add(format!("{} {TTL} IN DS {ds}", child.apex));
        }
        for n in &child.ns {
            if is_at_or_below(n, &child.apex) && explicit(z, n).is_empty() {
                for (t, a) in addresses_of(n) {
                    add(format!("{n} {TTL} IN {t} {a}"));
                }
            }
        }
    }
    let mut text = format!("$ORIGIN {}\n$TTL {TTL}\n", z.apex);
    for line in generated {
        text.push_str(&line);
        text.push('\n');
    }
    let _ = write!(text, "; body\n$ORIGIN {}\n$TTL {TTL}\n{}", z.apex, z.body);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Writes (and signs) `text` for `zone`, ending with the file Knot serves.
fn write_zone(dir: &Path, zone: &Zone, text: &str) {
    let stem = file_stem(&zone.apex);
    let unsigned = dir.join(format!("{stem}.zone"));
    fs::write(&unsigned, text).expect("write zone");
    let served = if zone.signed {
        let signed = dir.join(format!("{stem}.signed"));
        let (code, stdout, stderr) = run(Command::new("dnssec-signzone")
            .args(["-S", "-O", "full", "-K"])
            .arg(&zone.keys)
            .arg("-d")
            .arg(&zone.keys)
            .arg("-o")
            .arg(&zone.apex)
            .arg("-f")
            .arg(&signed)
            .arg(&unsigned));
        assert!(
            code == 0,
            "dnssec-signzone {} failed ({code}):\n{stdout}{stderr}\nzone:\n{text}",
            zone.apex
        );
        let full = fs::read_to_string(&signed).expect("read signed zone");
        for_knot(&full)
    } else {
        // Same shape as signed files (one record per line, absolute names),
        // so ParentWorld::records reads both; no checks beyond parsing.
        let full = dir.join(format!("{stem}.full"));
        let (code, stdout, stderr) = run(Command::new("named-compilezone")
            .args([
                "-q", "-s", "full", "-i", "none", "-k", "ignore", "-n", "ignore",
            ])
            .args(["-M", "ignore", "-S", "ignore", "-o"])
            .arg(&full)
            .arg(&zone.apex)
            .arg(&unsigned));
        assert!(
            code == 0,
            "named-compilezone {} failed ({code}):\n{stdout}{stderr}\nzone:\n{text}",
            zone.apex
        );
        for_knot(&fs::read_to_string(&full).expect("read compiled zone"))
    };
    // Knot may read the file at any time: replace it in one step.
    let tmp = zone.file.with_extension("tmp");
    fs::write(&tmp, served).expect("write served zone");
    fs::rename(&tmp, &zone.file).expect("replace served zone");
}

/// Rewrites `dnssec-signzone -O full` output (one record per line) so Knot
/// 3.2 can read it: DSYNC records to RFC 3597 syntax, `DSYNC` in RRSIG
/// type-covered fields and NSEC bitmaps to `TYPE66`. Comments are dropped;
/// other lines are kept as they are.
pub fn for_knot(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    for line in full.lines() {
        if line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let rewritten = match fields.as_slice() {
            [owner, ttl, class, "DSYNC", rdata @ ..] => {
                let rdata = dsync_from_presentation(rdata)
                    .unwrap_or_else(|e| panic!("cannot rewrite {line:?}: {e}"));
                Some(format!("{owner} {ttl} {class} TYPE66 {rdata}"))
            }
            [owner, ttl, class, "RRSIG", "DSYNC", rest @ ..] => Some(format!(
                "{owner} {ttl} {class} RRSIG TYPE66 {}",
                rest.join(" ")
            )),
            [owner, ttl, class, "NSEC", next, types @ ..] if types.contains(&"DSYNC") => {
                let types: Vec<&str> = types
                    .iter()
                    .map(|t| if *t == "DSYNC" { "TYPE66" } else { t })
                    .collect();
                Some(format!(
                    "{owner} {ttl} {class} NSEC {next} {}",
                    types.join(" ")
                ))
            }
            _ => None,
        };
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// `CDS NOTIFY 5300 target.` (as BIND prints DSYNC) to `\# len hex`.
fn dsync_from_presentation(rdata: &[&str]) -> Result<String, String> {
    let [rrtype, scheme, port, target] = rdata else {
        return Err(format!("want 4 fields, got {rdata:?}"));
    };
    let rrtype = type_number(rrtype).ok_or_else(|| format!("unknown type {rrtype}"))?;
    let scheme = if scheme.eq_ignore_ascii_case("NOTIFY") {
        1
    } else {
        scheme
            .parse::<u8>()
            .map_err(|e| format!("scheme {scheme}: {e}"))?
    };
    let port = port
        .parse::<u16>()
        .map_err(|e| format!("port {port}: {e}"))?;
    Ok(generic(&dsync_wire(rrtype, scheme, port, target)?))
}

/// RDATA in RFC 3597 generic syntax: `\# len hex`.
pub fn generic(rdata: &[u8]) -> String {
    let mut text = format!("\\# {} ", rdata.len());
    for b in rdata {
        let _ = write!(text, "{b:02x}");
    }
    if rdata.is_empty() {
        text.pop();
    }
    text
}

/// DSYNC RDATA (RFC 9859) in RFC 3597 generic syntax, for zone bodies:
/// `dsync_rdata(CDS, 1, 5300, "rr-endpoint.example.")` is
/// `\# 26 003b0114b40b72722d656e64706f696e74076578616d706c6500`. The target
/// is taken as absolute (final dot optional), case kept, `\.` and `\DDD`
/// escapes understood.
pub fn dsync_rdata(rrtype: u16, scheme: u8, port: u16, target: &str) -> String {
    generic(&dsync_wire(rrtype, scheme, port, target).unwrap_or_else(|e| panic!("{e}")))
}

fn dsync_wire(rrtype: u16, scheme: u8, port: u16, target: &str) -> Result<Vec<u8>, String> {
    let mut wire = Vec::new();
    wire.extend_from_slice(&rrtype.to_be_bytes());
    wire.push(scheme);
    wire.extend_from_slice(&port.to_be_bytes());
    wire.extend_from_slice(&name_wire(target)?);
    Ok(wire)
}

/// A presentation-format name (absolute; escapes allowed) in wire form.
pub fn name_wire(name: &str) -> Result<Vec<u8>, String> {
    let mut wire = Vec::new();
    let mut label: Vec<u8> = Vec::new();
    let mut bytes = name.bytes().peekable();
    let mut any = false;
    let flush = |label: &mut Vec<u8>, wire: &mut Vec<u8>| -> Result<(), String> {
        if label.is_empty() {
            return Err(format!("empty label in {name:?}"));
        }
        if label.len() > 63 {
            return Err(format!("label longer than 63 octets in {name:?}"));
        }
        wire.push(label.len() as u8);
        wire.append(label);
        Ok(())
    };
    if name == "." {
        return Ok(vec![0]);
    }
    while let Some(b) = bytes.next() {
        any = true;
        match b {
            b'.' => flush(&mut label, &mut wire)?,
            b'\\' => {
                let first = bytes
                    .next()
                    .ok_or_else(|| format!("dangling escape in {name:?}"))?;
                if first.is_ascii_digit() {
                    let d2 = bytes.next().filter(u8::is_ascii_digit);
                    let d3 = bytes.next().filter(u8::is_ascii_digit);
                    let (Some(d2), Some(d3)) = (d2, d3) else {
                        return Err(format!("bad \\DDD escape in {name:?}"));
                    };
                    let v =
                        (first - b'0') as u32 * 100 + (d2 - b'0') as u32 * 10 + (d3 - b'0') as u32;
                    label.push(u8::try_from(v).map_err(|_| format!("\\{v} in {name:?}"))?);
                } else {
                    label.push(first);
                }
            }
            _ => label.push(b),
        }
    }
    if !any {
        return Err("empty name".to_string());
    }
    if !label.is_empty() {
        flush(&mut label, &mut wire)?;
    }
    wire.push(0);
    if wire.len() > 255 {
        return Err(format!("name longer than 255 octets: {name:?}"));
    }
    Ok(wire)
}

/// A type mnemonic (as BIND 9.18 prints them) or `TYPEnnn` to its number.
pub fn type_number(mnemonic: &str) -> Option<u16> {
    const TYPES: &[(&str, u16)] = &[
        ("A", 1),
        ("NS", 2),
        ("MD", 3),
        ("MF", 4),
        ("CNAME", 5),
        ("SOA", 6),
        ("MB", 7),
        ("MG", 8),
        ("MR", 9),
        ("NULL", 10),
        ("WKS", 11),
        ("PTR", 12),
        ("HINFO", 13),
        ("MINFO", 14),
        ("MX", 15),
        ("TXT", 16),
        ("RP", 17),
        ("AFSDB", 18),
        ("X25", 19),
        ("ISDN", 20),
        ("RT", 21),
        ("NSAP", 22),
        ("NSAP-PTR", 23),
        ("SIG", 24),
        ("KEY", 25),
        ("PX", 26),
        ("GPOS", 27),
        ("AAAA", 28),
        ("LOC", 29),
        ("NXT", 30),
        ("EID", 31),
        ("NIMLOC", 32),
        ("SRV", 33),
        ("ATMA", 34),
        ("NAPTR", 35),
        ("KX", 36),
        ("CERT", 37),
        ("A6", 38),
        ("DNAME", 39),
        ("SINK", 40),
        ("OPT", 41),
        ("APL", 42),
        ("DS", 43),
        ("SSHFP", 44),
        ("IPSECKEY", 45),
        ("RRSIG", 46),
        ("NSEC", 47),
        ("DNSKEY", 48),
        ("DHCID", 49),
        ("NSEC3", 50),
        ("NSEC3PARAM", 51),
        ("TLSA", 52),
        ("SMIMEA", 53),
        ("HIP", 55),
        ("NINFO", 56),
        ("RKEY", 57),
        ("TALINK", 58),
        ("CDS", 59),
        ("CDNSKEY", 60),
        ("OPENPGPKEY", 61),
        ("CSYNC", 62),
        ("ZONEMD", 63),
        ("SVCB", 64),
        ("HTTPS", 65),
        ("DSYNC", 66),
        ("SPF", 99),
        ("UINFO", 100),
        ("UID", 101),
        ("GID", 102),
        ("UNSPEC", 103),
        ("NID", 104),
        ("L32", 105),
        ("L64", 106),
        ("LP", 107),
        ("EUI48", 108),
        ("EUI64", 109),
        ("TKEY", 249),
        ("TSIG", 250),
        ("IXFR", 251),
        ("AXFR", 252),
        ("MAILB", 253),
        ("MAILA", 254),
        ("ANY", 255),
        ("URI", 256),
        ("CAA", 257),
        ("AVC", 258),
        ("DOA", 259),
        ("AMTRELAY", 260),
        ("RESINFO", 261),
        ("WALLET", 262),
        ("TA", 32768),
        ("DLV", 32769),
    ];
    let upper = mnemonic.to_ascii_uppercase();
    if let Some(Ok(n)) = upper.strip_prefix("TYPE").map(str::parse) {
        return Some(n);
    }
    TYPES.iter().find(|(m, _)| *m == upper).map(|(_, n)| *n)
}

/// The serial of the first SOA among kdig answer lines.
fn soa_serial(answer: &[String]) -> Option<u32> {
    answer.iter().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == "SOA")?;
        fields.get(at + 3)?.parse().ok()
    })
}

/// The records of one section (`"ANSWER"`, `"AUTHORITY"`, `"ADDITIONAL"`)
/// of kdig's output, whitespace-normalised.
pub fn section(kdig_output: &str, name: &str) -> Vec<String> {
    let header = format!(";; {name} SECTION");
    let mut inside = false;
    let mut records = Vec::new();
    for line in kdig_output.lines() {
        if line.starts_with(&header) {
            inside = true;
        } else if inside {
            if line.trim().is_empty() || line.starts_with(";;") {
                inside = false;
            } else {
                records.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
    }
    records
}

/// The owner of the SOA record in kdig's authority section (lower-case).
pub fn soa_owner(kdig_output: &str) -> Option<String> {
    section(kdig_output, "AUTHORITY").iter().find_map(|r| {
        let fields: Vec<&str> = r.split(' ').collect();
        (fields.get(3) == Some(&"SOA")).then(|| fields[0].to_ascii_lowercase())
    })
}

// ---------------------------------------------------------------------------
// NOTIFY receiver
// ---------------------------------------------------------------------------

/// How a [`NotifyReceiver`] answers. Every message is recorded whatever the
/// mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverMode {
    /// NOERROR over UDP and TCP.
    Answer,
    /// REFUSED over UDP and TCP.
    Refuse,
    /// Never answers (TCP connections are accepted, read and left open).
    Silent,
    /// Ignores UDP, answers NOERROR over TCP.
    TcpOnly,
}

/// One message a [`NotifyReceiver`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `"udp"` or `"tcp"`.
    pub transport: &'static str,
    pub from: SocketAddr,
    pub id: u16,
    pub opcode: u8,
    pub qr: bool,
    pub aa: bool,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    /// The first question's name, lower-case with a final dot; empty when
    /// there is none or it does not parse.
    pub qname: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The whole message as received (no TCP length prefix).
    pub raw: Vec<u8>,
}

impl Received {
    fn parse(transport: &'static str, from: SocketAddr, raw: &[u8]) -> Received {
        let u16_at = |at: usize| -> u16 {
            match (raw.get(at), raw.get(at + 1)) {
                (Some(a), Some(b)) => u16::from_be_bytes([*a, *b]),
                _ => 0,
            }
        };
        let flags = u16_at(2);
        let mut r = Received {
            transport,
            from,
            id: u16_at(0),
            opcode: ((flags >> 11) & 0xf) as u8,
            qr: flags & 0x8000 != 0,
            aa: flags & 0x0400 != 0,
            qdcount: u16_at(4),
            ancount: u16_at(6),
            nscount: u16_at(8),
            arcount: u16_at(10),
            qname: String::new(),
            qtype: 0,
            qclass: 0,
            raw: raw.to_vec(),
        };
        if let Some((name, end)) = read_name(raw, 12).filter(|_| r.qdcount > 0) {
            if end + 4 <= raw.len() {
                r.qname = name;
                r.qtype = u16_at(end);
                r.qclass = u16_at(end + 2);
            }
        }
        r
    }
}

/// Reads a (possibly compressed) name at `pos`: (lower-case FQDN, position
/// after the name in the message).
fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(pos)? as usize;
        if len == 0 {
            if name.is_empty() {
                name.push('.');
            }
            return Some((name, end.unwrap_or(pos + 1)));
        }
        if len & 0xc0 == 0xc0 {
            end.get_or_insert(pos + 2);
            pos = ((len & 0x3f) << 8) | *msg.get(pos + 1)? as usize;
            continue;
        }
        for &b in msg.get(pos + 1..pos + 1 + len)? {
            match b {
                b'.' | b'\\' => {
                    name.push('\\');
                    name.push(b as char);
                }
                0x21..=0x7e => name.push(b.to_ascii_lowercase() as char),
                _ => {
                    let _ = write!(name, "\\{b:03}");
                }
            }
        }
        name.push('.');
        pos += 1 + len;
    }
    None
}

/// The response to `query`: same ID and opcode, QR and AA set, the question
/// echoed (only when there is exactly one that parses; otherwise none, and
/// FORMERR), RCODE `rcode`. None for messages shorter than a header.
pub fn notify_reply(query: &[u8], rcode: u8) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let opcode = (query[2] >> 3) & 0xf;
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    let question_end = (qdcount == 1)
        .then(|| read_name(query, 12))
        .flatten()
        .map(|(_, end)| end + 4)
        .filter(|&end| end <= query.len());
    let (rcode, question) = match question_end {
        Some(end) => (rcode, &query[12..end]),
        None => (1, &query[12..12]),
    };
    let mut reply = Vec::with_capacity(12 + question.len());
    reply.extend_from_slice(&query[..2]);
    reply.push(0x80 | (opcode << 3) | 0x04);
    reply.push(rcode & 0xf);
    reply.extend_from_slice(&u16::from(!question.is_empty()).to_be_bytes());
    reply.extend_from_slice(&[0; 6]);
    reply.extend_from_slice(question);
    Some(reply)
}

/// A NOTIFY message (RFC 1996, RFC 9859 §4.2): opcode NOTIFY, AA set, one
/// question `qname`/`qtype`/IN, nothing else. For tests that send by hand.
pub fn notify_message(id: u16, qname: &str, qtype: u16) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.extend_from_slice(&id.to_be_bytes());
    msg.push((OPCODE_NOTIFY << 3) | 0x04);
    msg.push(0);
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    msg.extend_from_slice(&name_wire(qname).unwrap_or_else(|e| panic!("{e}")));
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&1u16.to_be_bytes());
    msg
}

struct Shared {
    mode: Mutex<ReceiverMode>,
    received: Mutex<Vec<Received>>,
    arrived: Condvar,
    stop: AtomicBool,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn mode(&self) -> ReceiverMode {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, r: Received) {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r);
        self.arrived.notify_all();
    }
}

/// A NOTIFY target for tests: UDP and TCP on one port of a loopback address,
/// every message recorded, answers per [`ReceiverMode`] (changeable while
/// running). Threads stop on drop.
pub struct NotifyReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl NotifyReceiver {
    /// Listens on a fresh high port of `ip` (any 127.x.y.z works on Linux
    /// without configuration), UDP and TCP.
    pub fn start(ip: Ipv4Addr, mode: ReceiverMode) -> NotifyReceiver {
        let (udp, tcp) = (0..50)
            .find_map(|_| {
                let port = process::free_port();
                let udp = UdpSocket::bind((ip, port)).ok()?;
                let tcp = TcpListener::bind((ip, port)).ok()?;
                Some((udp, tcp))
            })
            .unwrap_or_else(|| panic!("no free port on {ip} for a NOTIFY receiver"));
        let addr = udp.local_addr().expect("receiver address");
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            received: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            stop: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });

        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set timeout");
        let udp_thread = {
            let shared = shared.clone();
            thread::spawn(move || {
                let mut buf = vec![0u8; 65535];
                while !shared.stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    let msg = &buf[..len];
                    shared.record(Received::parse("udp", from, msg));
                    let rcode = match shared.mode() {
                        ReceiverMode::Answer => 0,
                        ReceiverMode::Refuse => 5,
                        ReceiverMode::Silent | ReceiverMode::TcpOnly => continue,
                    };
                    if let Some(reply) = notify_reply(msg, rcode) {
                        let _ = udp.send_to(&reply, from);
                    }
                }
            })
        };

        tcp.set_nonblocking(true).expect("nonblocking listener");
        let tcp_thread = {
            let shared = shared.clone();
            thread::spawn(move || {
                while !shared.stop.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        Ok((stream, from)) => {
                            let conn = shared.clone();
                            let handle = thread::spawn(move || {
                                let _ = serve_connection(stream, from, &conn);
                            });
                            shared
                                .connections
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(handle);
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };

        NotifyReceiver {
            addr,
            shared,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes how later messages are answered.
    pub fn set_mode(&self, mode: ReceiverMode) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until at least `count` messages arrived or `within` passed;
    /// returns everything received by then.
    pub fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        let mut received = self
            .shared
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while received.len() < count {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            received = self
                .shared
                .arrived
                .wait_timeout(received, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        received.clone()
    }
}

impl Drop for NotifyReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let connections: Vec<JoinHandle<()>> = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for t in connections {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for NotifyReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyReceiver")
            .field("addr", &self.addr)
            .field("mode", &self.shared.mode())
            .finish()
    }
}

/// Reads length-prefixed messages until the peer closes or the receiver
/// stops, answering each per the mode at its arrival.
fn serve_connection(mut stream: TcpStream, from: SocketAddr, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    while !shared.stop.load(Ordering::Relaxed) {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        }
        while buf.len() >= 2 {
            let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
            if buf.len() < 2 + len {
                break;
            }
            let msg: Vec<u8> = buf.drain(..2 + len).skip(2).collect();
            shared.record(Received::parse("tcp", from, &msg));
            let rcode = match shared.mode() {
                ReceiverMode::Answer | ReceiverMode::TcpOnly => 0,
                ReceiverMode::Refuse => 5,
                ReceiverMode::Silent => continue,
            };
            if let Some(reply) = notify_reply(&msg, rcode) {
                let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&reply);
                stream.write_all(&out)?;
            }
        }
    }
    Ok(())
}
