//! [`KnotSigner`]: `knotd` in the foreground signing zones itself
//! (automatic DNSSEC signing with an ECDSAP256SHA256 policy), publishing
//! CDS/CDNSKEY (RFC 7344 section 4) per [`CdsPublish`], taking UPDATEs and
//! sending NOTIFY; `knotc` through its control socket, `keymgr` on its KASP
//! database.

use std::{
    fmt, fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use super::{START_TIMEOUT, TsigKey, probe_signed, run_tool, soa_serial, wait_until};
use crate::common::{
    fqdn,
    knot::server_config,
    process::{Daemon, launch, restart_on_same_port, start_on_free_port, tail},
};

/// Knot's `cds-cdnskey-publish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CdsPublish {
    /// Only while a KSK is `ready` (Knot's default).
    Rollover,
    /// Always, for every active/ready KSK.
    Always,
    /// Never.
    None,
}

impl CdsPublish {
    fn knot(self) -> &'static str {
        match self {
            CdsPublish::Rollover => "rollover",
            CdsPublish::Always => "always",
            CdsPublish::None => "none",
        }
    }
}

/// One zone for [`KnotSigner::start`].
#[derive(Debug, Clone)]
pub struct KnotZone {
    /// The apex (a final dot is added when missing).
    pub apex: String,
    /// Zone-file text; `$ORIGIN <apex>` is put in front, so relative names
    /// work. Needs a SOA and NS; no DNSSEC records (Knot signs).
    pub body: String,
    /// `cds-cdnskey-publish` of the zone's policy.
    pub cds_publish: CdsPublish,
    /// Where Knot sends NOTIFY after every serial change (`notify:`).
    pub notify: Option<SocketAddr>,
    /// The key Knot signs its NOTIFYs with (the remote's `key:`).
    pub notify_key: Option<TsigKey>,
    /// The key allowed to UPDATE the zone (hmac-sha256). Without one, no
    /// UPDATE is allowed.
    pub update_key: Option<TsigKey>,
    /// When set, AXFR/IXFR need this key (a TSIG-signed transfer request is
    /// refused by Knot's address-only rule). None: transfers from
    /// 127.0.0.0/8 without TSIG. Plain queries are always open.
    pub transfer_key: Option<TsigKey>,
    /// More zone options, YAML lines without indentation (e.g.
    /// `"zonefile-sync: -1"`). An option named here replaces the harness
    /// default of the same name (`zonefile-sync: 0`,
    /// `zonefile-load: difference-no-serial`, `journal-content: all`).
    pub extra: String,
}

impl KnotZone {
    /// A zone with `cds-cdnskey-publish: rollover`, no NOTIFY, no UPDATE.
    pub fn new(apex: &str, body: &str) -> KnotZone {
        KnotZone {
            apex: fqdn(apex),
            body: body.to_string(),
            cds_publish: CdsPublish::Rollover,
            notify: None,
            notify_key: None,
            update_key: None,
            transfer_key: None,
            extra: String::new(),
        }
    }

    /// Sets `cds-cdnskey-publish`.
    pub fn cds(mut self, cds: CdsPublish) -> KnotZone {
        self.cds_publish = cds;
        self
    }

    /// Sets the NOTIFY target.
    pub fn notify(mut self, to: SocketAddr) -> KnotZone {
        self.notify = Some(to);
        self
    }

    /// Signs the NOTIFYs with `key`.
    pub fn notify_key(mut self, key: &TsigKey) -> KnotZone {
        self.notify_key = Some(key.clone());
        self
    }

    /// Allows UPDATE with `key`.
    pub fn update_key(mut self, key: &TsigKey) -> KnotZone {
        self.update_key = Some(key.clone());
        self
    }

    /// Requires `key` for transfers.
    pub fn transfer_key(mut self, key: &TsigKey) -> KnotZone {
        self.transfer_key = Some(key.clone());
        self
    }

    /// Adds zone options (see [`KnotZone::extra`]).
    pub fn extra(mut self, yaml: &str) -> KnotZone {
        self.extra.push_str(yaml.trim_end());
        self.extra.push('\n');
        self
    }
}

/// A Knot key as `keymgr ZONE list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnotKey {
    /// Knot's key ID (hex).
    pub id: String,
    pub tag: u16,
    /// KSK (or CSK) rather than ZSK.
    pub ksk: bool,
    /// Timers (UNIX seconds) that are set: `publish`, `ready`, `active`,
    /// `retire`, `remove`, ...
    pub timers: Vec<(String, u64)>,
}

impl KnotKey {
    /// A timer's value if set.
    pub fn timer(&self, name: &str) -> Option<u64> {
        self.timers.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// `knotd` signing zones on its own port; stops when dropped.
pub struct KnotSigner {
    daemon: Option<Daemon>,
    addr: SocketAddr,
    run: PathBuf,
    conf: PathBuf,
    log: PathBuf,
    zones: Vec<KnotZone>,
}

impl KnotSigner {
    /// Writes the config and zone files in `dir/knot-signer-<port>/` and
    /// starts `knotd`; returns once every zone is served signed. Policy:
    /// ECDSAP256SHA256 KSK+ZSK, `dnskey-ttl 2`, `zone-max-ttl 2`,
    /// `propagation-delay 0`, unlimited key lifetimes, KSK submission
    /// confirmed only by [`KnotSigner::ksk_submitted`]. Panics with the log
    /// on failure.
    pub fn start(dir: &Path, zones: &[KnotZone]) -> KnotSigner {
        let zones: Vec<KnotZone> = zones
            .iter()
            .cloned()
            .map(|mut z| {
                z.apex = fqdn(&z.apex);
                z
            })
            .collect();
        let apexes: Vec<String> = zones.iter().map(|z| z.apex.clone()).collect();
        let (daemon, addr) = start_on_free_port(
            "knotd",
            START_TIMEOUT,
            |port| {
                let run = dir.join(format!("knot-signer-{port}"));
                fs::create_dir_all(&run).expect("create knot run directory");
                for z in &zones {
                    fs::write(
                        zone_file(&run, &z.apex),
                        format!("$ORIGIN {}\n{}\n", z.apex, z.body),
                    )
                    .expect("write zone file");
                }
                let conf = run.join("knot.conf");
                fs::write(&conf, knot_config(&run, port, &zones)).expect("write knot.conf");
                (knotd_command(&conf), run.join("knotd.log"))
            },
            |addr| probe_signed(addr, &apexes),
        );
        let run = dir.join(format!("knot-signer-{}", addr.port()));
        KnotSigner {
            daemon: Some(daemon),
            addr,
            conf: run.join("knot.conf"),
            log: run.join("knotd.log"),
            run,
            zones,
        }
    }

    /// Where Knot answers (UDP and TCP): queries, AXFR/IXFR, UPDATE.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The zone file Knot loads (and flushes to, with `zonefile-sync: 0`).
    pub fn zone_file(&self, apex: &str) -> PathBuf {
        zone_file(&self.run, &fqdn(apex))
    }

    /// The control socket, for `knotc -s`.
    pub fn socket(&self) -> PathBuf {
        self.run.join("knot.sock")
    }

    /// `knotc -c CONF -s SOCKET ARGS...`: (exit code, output).
    pub fn knotc(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec![
            "-c".to_string(),
            self.conf.display().to_string(),
            "-s".to_string(),
            self.socket().display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        run_tool("knotc", &all)
    }

    /// `knotc ARGS...`, panicking unless it succeeds; returns the output.
    #[track_caller]
    pub fn knotc_ok(&self, args: &[&str]) -> String {
        let (code, out) = self.knotc(args);
        assert!(
            code == 0,
            "knotc {args:?} failed ({code}): {out}\n{}",
            self.log_tail()
        );
        out
    }

    /// `keymgr -c CONF ARGS...` (e.g. `["example.com.", "list"]`).
    pub fn keymgr(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec!["-c".to_string(), self.conf.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        run_tool("keymgr", &all)
    }

    /// The zone's keys (`keymgr ZONE list`).
    pub fn keys(&self, apex: &str) -> Vec<KnotKey> {
        let apex = fqdn(apex);
        let (code, out) = self.keymgr(&[&apex, "list"]);
        assert!(code == 0, "keymgr {apex} list failed ({code}): {out}");
        out.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 3 {
                    return None;
                }
                Some(KnotKey {
                    id: f[0].to_string(),
                    tag: f[1].parse().ok()?,
                    ksk: f[2] == "KSK" || f[2] == "CSK",
                    timers: f[3..]
                        .iter()
                        .filter_map(|kv| {
                            let (k, v) = kv.split_once('=')?;
                            Some((k.to_string(), v.parse().ok()?))
                        })
                        .collect(),
                })
            })
            .collect()
    }

    /// Starts a KSK rollover (`knotc zone-key-rollover ZONE ksk`) and returns
    /// the new KSK's tag once keymgr lists it. Knot 3.2 publishes its DNSKEY
    /// at once; it becomes `ready` and gets CDS/CDNSKEY (with
    /// `cds-cdnskey-publish: rollover`) after dnskey-ttl + propagation-delay
    /// (~2 s here), and stays so until [`KnotSigner::ksk_submitted`].
    pub fn new_ksk(&self, apex: &str) -> u16 {
        let apex = fqdn(apex);
        let before: Vec<u16> = self
            .keys(&apex)
            .iter()
            .filter(|k| k.ksk)
            .map(|k| k.tag)
            .collect();
        self.knotc_ok(&["zone-key-rollover", &apex, "ksk"]);
        wait_until(Duration::from_secs(10), || {
            self.keys(&apex)
                .iter()
                .find(|k| k.ksk && !before.contains(&k.tag))
                .map(|k| k.tag)
        })
        .unwrap_or_else(|| {
            panic!(
                "no new KSK for {apex} within 10 s after zone-key-rollover\n{}",
                self.log_tail()
            )
        })
    }

    /// `knotc zone-ksk-submitted ZONE`: (exit code, output).
    pub fn ksk_submitted(&self, apex: &str) -> (i32, String) {
        self.knotc(&["zone-ksk-submitted", &fqdn(apex)])
    }

    /// `knotc zone-sign ZONE` (re-signs everything, bumps the serial).
    pub fn sign(&self, apex: &str) {
        self.knotc_ok(&["zone-sign", &fqdn(apex)]);
    }

    /// The served SOA serial.
    pub fn serial(&self, apex: &str) -> u32 {
        soa_serial(self.addr, apex)
    }

    /// Knot's whole log (all runs).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 80 lines of the log.
    pub fn log_tail(&self) -> String {
        tail("knotd", &self.log, 80)
    }

    /// Kills Knot (SIGKILL: nothing is flushed) and starts it again on the same port with the same
    /// files; returns once every zone is served signed again.
    pub fn restart(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
        let apexes: Vec<String> = self.zones.iter().map(|z| z.apex.clone()).collect();
        let addr = self.addr;
        self.daemon = Some(restart_on_same_port("knotd", || {
            launch(
                "knotd",
                knotd_command(&self.conf),
                &self.log,
                START_TIMEOUT,
                || probe_signed(addr, &apexes),
            )
        }));
    }
}

impl fmt::Debug for KnotSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnotSigner")
            .field("addr", &self.addr)
            .field("run", &self.run)
            .finish()
    }
}

fn knotd_command(conf: &Path) -> Command {
    let mut cmd = Command::new("knotd");
    cmd.arg("-c").arg(conf);
    cmd
}

fn zone_file(run: &Path, apex: &str) -> PathBuf {
    let stem = apex.trim_end_matches('.');
    run.join(format!(
        "{}.zone",
        if stem.is_empty() { "root" } else { stem }
    ))
}

fn knot_config(run: &Path, port: u16, zones: &[KnotZone]) -> String {
    let _r = run.display();
    let mut conf = server_config(run, port);
    conf.push('\n');
    let mut keys: Vec<&TsigKey> = Vec::new();
    for z in zones {
        for k in z
            .update_key
            .iter()
            .chain(z.transfer_key.iter())
            .chain(z.notify_key.iter())
        {
            if !keys.iter().any(|have| have.name == k.name) {
                keys.push(k);
            }
        }
    }
    if !keys.is_empty() {
        conf.push_str("key:\n");
        for k in &keys {
            conf.push_str(&format!(
                "  - id: \"{}\"\n    algorithm: hmac-sha256\n    secret: \"{}\"\n",
                k.name, k.secret
            ));
        }
        conf.push('\n');
    }
    let mut remotes: Vec<SocketAddr> = zones.iter().filter_map(|z| z.notify).collect();
    remotes.sort();
    remotes.dedup();
    if !remotes.is_empty() {
        conf.push_str("remote:\n");
        for (i, a) in remotes.iter().enumerate() {
            conf.push_str(&format!(
                "  - id: notify-{i}\n    address: {}@{}\n",
                a.ip(),
                a.port()
            ));
            let key = zones
                .iter()
                .find(|z| z.notify == Some(*a))
                .and_then(|z| z.notify_key.as_ref());
            if let Some(k) = key {
                conf.push_str(&format!("    key: \"{}\"\n", k.name));
            }
        }
        conf.push('\n');
    }
    conf.push_str("acl:\n  - id: transfer\n    address: 127.0.0.0/8\n    action: transfer\n");
    for k in &keys {
        conf.push_str(&format!(
            "  - id: \"update-{0}\"\n    key: \"{0}\"\n    action: update\n\
             \x20 - id: \"transfer-{0}\"\n    key: \"{0}\"\n    action: transfer\n",
            k.name
        ));
    }
    conf.push_str("\nsubmission:\n  - id: manual\n    check-interval: 1d\n\npolicy:\n");
    let mut modes: Vec<CdsPublish> = Vec::new();
    for z in zones {
        if !modes.contains(&z.cds_publish) {
            modes.push(z.cds_publish);
        }
    }
    for m in &modes {
        conf.push_str(&format!(
            "  - id: cds-{m}\n    algorithm: ecdsap256sha256\n    dnskey-ttl: 2\n    \
             zone-max-ttl: 2\n    propagation-delay: 0\n    ksk-lifetime: 0\n    \
             zsk-lifetime: 0\n    ksk-submission: manual\n    cds-cdnskey-publish: {m}\n",
            m = m.knot()
        ));
    }
    conf.push_str("\nzone:\n");
    for z in zones {
        conf.push_str(&format!(
            "  - domain: \"{}\"\n    file: \"{}\"\n    dnssec-signing: on\n    \
             dnssec-policy: cds-{}\n",
            z.apex,
            zone_file(run, &z.apex).display(),
            z.cds_publish.knot()
        ));
        let mut acl = match &z.transfer_key {
            Some(k) => vec![format!("\"transfer-{}\"", k.name)],
            None => vec!["transfer".to_string()],
        };
        if let Some(k) = &z.update_key {
            acl.push(format!("\"update-{}\"", k.name));
        }
        conf.push_str(&format!("    acl: [{}]\n", acl.join(", ")));
        if let Some(a) = z.notify {
            let i = remotes.iter().position(|r| *r == a).expect("listed above");
            conf.push_str(&format!("    notify: notify-{i}\n"));
        }
        for (option, default) in [
            ("zonefile-sync", "0"),
            ("zonefile-load", "difference-no-serial"),
            ("journal-content", "all"),
        ] {
            let overridden = z
                .extra
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{option}:")));
            if !overridden {
                conf.push_str(&format!("    {option}: {default}\n"));
            }
        }
        for line in z.extra.lines().filter(|l| !l.trim().is_empty()) {
            conf.push_str(&format!("    {}\n", line.trim()));
        }
    }
    conf
}
