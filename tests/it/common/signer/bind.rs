//! [`BindSigner`]: `named -g` signing zones under a `dnssec-policy` with
//! short timings ([`BindPolicy`]), dynamic (`update-policy`) or
//! inline-signing, publishing CDS/CDNSKEY (RFC 7344 section 4) and sending
//! NOTIFY; `rndc` on its own port and key.

use std::{
    fmt, fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
};

use super::{START_TIMEOUT, TsigKey, probe_signed, run_tool, soa_serial};
use crate::common::{
    fqdn,
    process::{Daemon, free_port, launch, port_taken, restart_on_same_port, tail},
};

/// The timings of a BIND `dnssec-policy` (seconds). CDS/CDNSKEY of a new
/// KSK appear at SyncPublish = creation + max-zone-ttl + zone-propagation-
/// delay + publish-safety (4 s with [`BindPolicy::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindPolicy {
    pub dnskey_ttl: u32,
    /// Also caps the TTL of every record added by UPDATE (BIND 9.18 logs
    /// "reducing TTL to the configured max-zone-ttl").
    pub max_zone_ttl: u32,
    pub zone_propagation_delay: u32,
    pub parent_propagation_delay: u32,
    pub parent_ds_ttl: u32,
    pub publish_safety: u32,
    pub retire_safety: u32,
}

impl Default for BindPolicy {
    fn default() -> Self {
        BindPolicy {
            dnskey_ttl: 2,
            max_zone_ttl: 2,
            zone_propagation_delay: 1,
            parent_propagation_delay: 1,
            parent_ds_ttl: 2,
            publish_safety: 1,
            retire_safety: 1,
        }
    }
}

impl BindPolicy {
    fn name(&self) -> String {
        format!(
            "sb-{}-{}-{}-{}-{}-{}-{}",
            self.dnskey_ttl,
            self.max_zone_ttl,
            self.zone_propagation_delay,
            self.parent_propagation_delay,
            self.parent_ds_ttl,
            self.publish_safety,
            self.retire_safety
        )
    }

    fn config(&self) -> String {
        format!(
            "dnssec-policy \"{}\" {{\n\
             \tkeys {{\n\
             \t\tksk key-directory lifetime unlimited algorithm ecdsap256sha256;\n\
             \t\tzsk key-directory lifetime unlimited algorithm ecdsap256sha256;\n\
             \t}};\n\
             \tdnskey-ttl {};\n\tmax-zone-ttl {};\n\tzone-propagation-delay {};\n\
             \tparent-propagation-delay {};\n\tparent-ds-ttl {};\n\
             \tpublish-safety {};\n\tretire-safety {};\n}};\n",
            self.name(),
            self.dnskey_ttl,
            self.max_zone_ttl,
            self.zone_propagation_delay,
            self.parent_propagation_delay,
            self.parent_ds_ttl,
            self.publish_safety,
            self.retire_safety
        )
    }
}

/// One zone for [`BindSigner::start`].
#[derive(Debug, Clone)]
pub struct BindZone {
    /// The apex (a final dot is added when missing).
    pub apex: String,
    /// Zone-file text; `$ORIGIN <apex>` is put in front. SOA and NS needed.
    pub body: String,
    /// `inline-signing yes` (UPDATEs go to the raw zone) instead of a
    /// dynamic zone signed in place.
    pub inline: bool,
    /// `also-notify` target (`notify explicit`); none: `notify no`.
    pub notify: Option<SocketAddr>,
    /// `update-policy { grant KEY zonesub ANY; }`. Without a key a dynamic
    /// zone gets `update-policy local` (dnssec-policy needs a dynamic or an
    /// inline-signing zone) and an inline one no update permission.
    pub update_key: Option<TsigKey>,
    /// When set, `allow-transfer { key K; }`; None: `allow-transfer {
    /// 127.0.0.0/8; }` (signed requests with any key named knows pass too).
    pub transfer_key: Option<TsigKey>,
    /// The zone's dnssec-policy timings.
    pub policy: BindPolicy,
}

impl BindZone {
    /// A dynamic zone (signed in place), fast policy, no NOTIFY, no key.
    pub fn new(apex: &str, body: &str) -> BindZone {
        BindZone {
            apex: fqdn(apex),
            body: body.to_string(),
            inline: false,
            notify: None,
            update_key: None,
            transfer_key: None,
            policy: BindPolicy::default(),
        }
    }

    /// Makes it an inline-signing zone.
    pub fn inline(mut self) -> BindZone {
        self.inline = true;
        self
    }

    /// Sets the also-notify target.
    pub fn notify(mut self, to: SocketAddr) -> BindZone {
        self.notify = Some(to);
        self
    }

    /// Allows UPDATE with `key`.
    pub fn update_key(mut self, key: &TsigKey) -> BindZone {
        self.update_key = Some(key.clone());
        self
    }

    /// Requires `key` for transfers.
    pub fn transfer_key(mut self, key: &TsigKey) -> BindZone {
        self.transfer_key = Some(key.clone());
        self
    }

    /// Sets the policy timings.
    pub fn policy(mut self, policy: BindPolicy) -> BindZone {
        self.policy = policy;
        self
    }
}

/// A key as `rndc dnssec -status` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindKey {
    pub tag: u16,
    /// `KSK`, `ZSK` or `CSK`.
    pub role: String,
}

/// `named -g` signing zones under dnssec-policy; stops when dropped.
pub struct BindSigner {
    daemon: Option<Daemon>,
    addr: SocketAddr,
    control: SocketAddr,
    run: PathBuf,
    conf: PathBuf,
    rndc_conf: PathBuf,
    log: PathBuf,
    zones: Vec<BindZone>,
}

impl BindSigner {
    /// Writes named.conf, rndc.conf and the zone files in
    /// `dir/named-<port>/` and starts `named -g`; returns once every zone
    /// is served with its DNSKEY RRset and rndc answers. Panics with the log
    /// on failure.
    pub fn start(dir: &Path, zones: &[BindZone]) -> BindSigner {
        let zones: Vec<BindZone> = zones
            .iter()
            .cloned()
            .map(|mut z| {
                z.apex = fqdn(&z.apex);
                z
            })
            .collect();
        let rndc_key = TsigKey::generate("signalbox-rndc");
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port();
            let control_port = free_port();
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let control = SocketAddr::from((Ipv4Addr::LOCALHOST, control_port));
            let run = dir.join(format!("named-{port}"));
            fs::create_dir_all(&run).expect("create named directory");
            for z in &zones {
                fs::create_dir_all(keys_dir(&run, &z.apex)).expect("create key directory");
                fs::write(
                    bind_zone_file(&run, &z.apex),
                    format!("$ORIGIN {}\n{}\n", z.apex, z.body),
                )
                .expect("write zone file");
            }
            let conf = run.join("named.conf");
            fs::write(&conf, named_config(&run, addr, control, &rndc_key, &zones))
                .expect("write named.conf");
            let rndc_conf = run.join("rndc.conf");
            fs::write(
                &rndc_conf,
                format!(
                    "{}options {{\n\tdefault-key \"{}\";\n\tdefault-server 127.0.0.1;\n\
                     \tdefault-port {control_port};\n}};\n",
                    rndc_key.keyfile_text(),
                    rndc_key.name
                ),
            )
            .expect("write rndc.conf");
            let log = run.join("named.log");
            let mut signer = BindSigner {
                daemon: None,
                addr,
                control,
                run,
                conf,
                rndc_conf,
                log,
                zones: zones.clone(),
            };
            match signer.launch() {
                Ok(daemon) => {
                    signer.daemon = Some(daemon);
                    return signer;
                }
                Err(e) if port_taken(&e) && attempts < 4 => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn launch(&self) -> Result<Daemon, String> {
        let apexes: Vec<String> = self.zones.iter().map(|z| z.apex.clone()).collect();
        let mut cmd = Command::new("named");
        cmd.arg("-g").arg("-n").arg("1").arg("-c").arg(&self.conf);
        let addr = self.addr;
        let rndc_conf = self.rndc_conf.clone();
        launch("named", cmd, &self.log, START_TIMEOUT, || {
            probe_signed(addr, &apexes)?;
            let (code, out) = run_tool(
                "rndc",
                &[
                    "-c".to_string(),
                    rndc_conf.display().to_string(),
                    "status".to_string(),
                ],
            );
            if code == 0 { Ok(()) } else { Err(out) }
        })
    }

    /// Where named answers (UDP and TCP): queries, AXFR/IXFR, UPDATE.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The zone's key directory (`K<zone>+013+<tag>.{key,private,state}`).
    pub fn keys_dir(&self, apex: &str) -> PathBuf {
        keys_dir(&self.run, &fqdn(apex))
    }

    /// `rndc -c RNDC_CONF ARGS...`: (exit code, output).
    pub fn rndc(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec!["-c".to_string(), self.rndc_conf.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        run_tool("rndc", &all)
    }

    /// `rndc ARGS...`, panicking unless it succeeds; returns the output.
    #[track_caller]
    pub fn rndc_ok(&self, args: &[&str]) -> String {
        let (code, out) = self.rndc(args);
        assert!(
            code == 0,
            "rndc {args:?} failed ({code}): {out}\n{}",
            self.log_tail()
        );
        out
    }

    /// The zone's keys (`rndc dnssec -status ZONE`).
    pub fn keys(&self, apex: &str) -> Vec<BindKey> {
        let out = self.rndc_ok(&["dnssec", "-status", apex.trim_end_matches('.')]);
        out.lines()
            .filter_map(|l| {
                // "key: 11801 (ECDSAP256SHA256), KSK"
                let rest = l.strip_prefix("key: ")?;
                let tag = rest.split_whitespace().next()?.parse().ok()?;
                let role = rest.rsplit(", ").next()?.trim().to_string();
                Some(BindKey { tag, role })
            })
            .collect()
    }

    /// The tags of the zone's KSKs (and CSKs).
    pub fn ksks(&self, apex: &str) -> Vec<u16> {
        self.keys(apex)
            .into_iter()
            .filter(|k| k.role != "ZSK")
            .map(|k| k.tag)
            .collect()
    }

    /// `rndc dnssec -checkds -key TAG published|withdrawn ZONE`.
    pub fn checkds(&self, apex: &str, tag: u16, published: bool) {
        let what = if published { "published" } else { "withdrawn" };
        self.rndc_ok(&[
            "dnssec",
            "-checkds",
            "-key",
            &tag.to_string(),
            what,
            apex.trim_end_matches('.'),
        ]);
    }

    /// `rndc dnssec -rollover -key TAG ZONE`: a successor KSK is created at
    /// once; its CDS/CDNSKEY replace the old key's after the policy's
    /// SyncPublish delay (~4 s with [`BindPolicy::default`]).
    pub fn rollover(&self, apex: &str, tag: u16) {
        self.rndc_ok(&[
            "dnssec",
            "-rollover",
            "-key",
            &tag.to_string(),
            apex.trim_end_matches('.'),
        ]);
    }

    /// The served SOA serial.
    pub fn serial(&self, apex: &str) -> u32 {
        soa_serial(self.addr, apex)
    }

    /// named's whole log (all runs).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 80 lines of the log.
    pub fn log_tail(&self) -> String {
        tail("named", &self.log, 80)
    }

    /// Kills named (SIGKILL: nothing is flushed) and starts it again on the same ports with the
    /// same files; returns once every zone is served signed again.
    pub fn restart(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
        self.daemon = Some(restart_on_same_port("named", || self.launch()));
    }
}

impl fmt::Debug for BindSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindSigner")
            .field("addr", &self.addr)
            .field("control", &self.control)
            .field("run", &self.run)
            .finish()
    }
}

fn keys_dir(run: &Path, apex: &str) -> PathBuf {
    let stem = apex.trim_end_matches('.');
    run.join(format!(
        "keys-{}",
        if stem.is_empty() { "root" } else { stem }
    ))
}

fn bind_zone_file(run: &Path, apex: &str) -> PathBuf {
    let stem = apex.trim_end_matches('.');
    run.join(format!(
        "{}.db",
        if stem.is_empty() { "root" } else { stem }
    ))
}

fn named_config(
    run: &Path,
    addr: SocketAddr,
    control: SocketAddr,
    rndc_key: &TsigKey,
    zones: &[BindZone],
) -> String {
    let r = run.display();
    let mut conf = rndc_key.keyfile_text();
    let mut keys: Vec<&TsigKey> = Vec::new();
    for z in zones {
        for k in z.update_key.iter().chain(z.transfer_key.iter()) {
            if !keys.iter().any(|have| have.name == k.name) {
                keys.push(k);
                conf.push_str(&k.keyfile_text());
            }
        }
    }
    conf.push_str(&format!(
        "controls {{\n\tinet {} port {} allow {{ 127.0.0.1; }} keys {{ \"{}\"; }};\n}};\n",
        control.ip(),
        control.port(),
        rndc_key.name
    ));
    conf.push_str(&format!(
        "options {{\n\
         \tdirectory \"{r}\";\n\
         \tpid-file \"{r}/named.pid\";\n\
         \tsession-keyfile \"{r}/session.key\";\n\
         \tmanaged-keys-directory \"{r}\";\n\
         \tdump-file \"{r}/named_dump.db\";\n\
         \tstatistics-file \"{r}/named.stats\";\n\
         \tlisten-on port {} {{ {}; }};\n\
         \tlisten-on-v6 {{ none; }};\n\
         \trecursion no;\n\
         \tdnssec-validation no;\n\
         \tallow-query {{ any; }};\n\
         \tallow-transfer {{ 127.0.0.0/8; }};\n\
         }};\n",
        addr.port(),
        addr.ip()
    ));
    let mut policies: Vec<BindPolicy> = Vec::new();
    for z in zones {
        if !policies.contains(&z.policy) {
            policies.push(z.policy);
            conf.push_str(&z.policy.config());
        }
    }
    for z in zones {
        let name = z.apex.trim_end_matches('.');
        conf.push_str(&format!(
            "zone \"{name}\" {{\n\ttype primary;\n\tfile \"{}\";\n\tkey-directory \"{}\";\n\
             \tdnssec-policy \"{}\";\n\tinline-signing {};\n",
            bind_zone_file(run, &z.apex).display(),
            keys_dir(run, &z.apex).display(),
            z.policy.name(),
            if z.inline { "yes" } else { "no" }
        ));
        match (&z.update_key, z.inline) {
            (Some(k), _) => conf.push_str(&format!(
                "\tupdate-policy {{ grant \"{}\" zonesub ANY; }};\n",
                k.name
            )),
            (None, false) => conf.push_str("\tupdate-policy local;\n"),
            (None, true) => {}
        }
        if let Some(k) = &z.transfer_key {
            conf.push_str(&format!("\tallow-transfer {{ key \"{}\"; }};\n", k.name));
        }
        match z.notify {
            Some(a) => conf.push_str(&format!(
                "\tnotify explicit;\n\talso-notify {{ {} port {}; }};\n",
                a.ip(),
                a.port()
            )),
            None => conf.push_str("\tnotify no;\n"),
        }
        conf.push_str("};\n");
    }
    conf
}
