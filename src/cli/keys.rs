//! `signalbox keys DIR`: the keys of a BIND key directory, as signalbox reads them.

use std::{path::Path, time::Instant};

use signalbox::{
    dns::name::display,
    dnssec::{self, DigestType},
    keys::{
        PrivatePart,
        bind::timestamp,
        dir::{DEFAULT_FLUX_GRACE, KeyDirectory, Severity},
    },
    policy::Lifecycle,
};

use super::{EXIT_CONFIG, EXIT_OK, EXIT_WARNINGS, time_arg};

pub fn run(dir: &Path, at: Option<&str>) -> u8 {
    let now = match time_arg(at) {
        Ok(now) => now,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    let mut directory = KeyDirectory::new(dir);
    let started = Instant::now();
    let mut report = directory.scan(started);
    while report.has_pending_flux() && started.elapsed() <= DEFAULT_FLUX_GRACE {
        std::thread::sleep(std::time::Duration::from_millis(200));
        report = directory.scan(Instant::now());
    }
    if let Some(error) = &report.directory_error {
        eprintln!("error: {}: {error}", dir.display());
        return EXIT_CONFIG;
    }
    let mut code = EXIT_OK;
    outln!("; keys in {} at {now}", dir.display());
    for (zone, keys) in report.zones.iter() {
        for key in keys {
            let life = Lifecycle::of(key, now, None);
            outln!();
            outln!(
                "{} key {} alg {} {} flags {}{}",
                display(zone),
                key.tag,
                key.algorithm,
                key.role(),
                key.dnskey.flags,
                key.ttl.map_or_else(String::new, |t| format!(" TTL {t}"))
            );
            let private = match &key.private {
                PrivatePart::Absent => "no .private".to_string(),
                PrivatePart::Unreadable => ".private unreadable".to_string(),
                PrivatePart::Present(p) => format!(".private v{}.{}", p.format.0, p.format.1),
                PrivatePart::NotLoaded { format } => {
                    format!(".private v{}.{} (not loaded)", format.0, format.1)
                }
            };
            let state = if key.files.has(signalbox::keys::bind::FileKind::State) {
                ", .state"
            } else {
                ""
            };
            outln!(
                "  files:  {} ({private}{state})",
                key.files.key_path().display()
            );
            let timing: Vec<String> = key
                .timing
                .iter()
                .map(|(event, when)| format!("{event} {}", timestamp::format(when)))
                .collect();
            if !timing.is_empty() {
                outln!("  timing: {}", timing.join(", "));
            }
            if let Some(s) = &key.state {
                let states: Vec<String> = [
                    ("DNSKEYState", s.dnskey),
                    ("KRRSIGState", s.krrsig),
                    ("ZRRSIGState", s.zrrsig),
                    ("DSState", s.ds),
                    ("GoalState", s.goal),
                ]
                .into_iter()
                .filter_map(|(name, v)| v.map(|v| format!("{name} {v}")))
                .collect();
                outln!("  state:  {}", states.join(", "));
            }
            outln!("  now:    {}", life.phase());
            for digest in [DigestType::Sha256, DigestType::Sha384] {
                outln!(
                    "  DS:     {} IN DS {}",
                    display(zone),
                    dnssec::ds(zone, &key.dnskey, digest)
                );
            }
        }
    }
    for issue in &report.issues {
        let label = match issue.severity {
            Severity::Warning => "warning",
            _ => {
                code = EXIT_WARNINGS;
                "error"
            }
        };
        outln!("; {label}: {issue}");
        eprintln!("{label}: {issue}");
    }
    code
}
