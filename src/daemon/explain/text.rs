//! `explain`'s text form: the same [`Explanation`] as the JSON, a line
//! or a few per part, for an operator at a terminal.

use std::fmt::Write;

use super::Explanation;
use crate::check::Severity;

impl Explanation {
    /// The text `explain` prints.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}: {}", self.zone, self.state);
        if let Some(why) = &self.held {
            let _ = writeln!(out, "  HELD: {why}");
        }
        let _ = writeln!(
            out,
            "  from {}{}",
            self.source,
            self.key_directory
                .as_ref()
                .map_or_else(String::new, |d| format!(", keys in {}", d.display()))
        );
        out.push_str("keys:\n");
        for key in &self.keys {
            let timing: Vec<String> = key.timing.iter().map(|(e, t)| format!("{e} {t}")).collect();
            let _ = writeln!(
                out,
                "  {} {} alg {}: {}{}{}; {}",
                key.role,
                key.tag,
                key.algorithm,
                key.phase,
                key.ds_state
                    .map_or_else(String::new, |s| format!(", DSState {s}")),
                if key.in_signals { ", in the CDS" } else { "" },
                if timing.is_empty() {
                    "no timing".to_string()
                } else {
                    timing.join(", ")
                }
            );
        }
        out.push_str("signals wanted now:\n");
        for line in self
            .signals
            .cds
            .iter()
            .chain(&self.signals.cdnskey)
            .chain(&self.signals.csync)
        {
            let _ = writeln!(out, "  {line}");
        }
        for d in &self.decisions {
            let key = d.key_tag.map_or_else(String::new, |t| format!("key {t} "));
            let _ = writeln!(out, "  ; {key}{}: {}", d.verdict, d.why);
        }
        out.push_str("published:\n");
        for p in &self.published {
            let what = match (p.present, p.current) {
                (Some(true), Some(true)) => "published, current",
                (Some(true), _) => "published, differs from what is wanted (pending)",
                (Some(false), Some(true)) => "nothing, as wanted",
                (Some(false), _) => "not yet published (pending)",
                (None, _) => {
                    "published by the zone's own signer, which signalbox does not read \
                     (`signalbox parent` compares it)"
                }
            };
            let _ = writeln!(
                out,
                "  {} {}{} in {} ({}{}): {what}",
                p.kind,
                p.owner,
                p.rtype
                    .as_ref()
                    .map_or_else(String::new, |t| format!(" {t}")),
                p.zone,
                p.by,
                p.serial
                    .map_or_else(String::new, |s| format!(", serial {s}"))
            );
        }
        let _ = writeln!(
            out,
            "parent ({}{}): DS {}{}",
            self.parent.source,
            self.parent
                .observed_at
                .as_ref()
                .map_or_else(String::new, |t| format!(", observed {t}")),
            if self.parent.ds.is_empty() {
                "none".to_string()
            } else {
                self.parent.ds.join(" ")
            },
            self.parent
                .ns
                .as_ref()
                .map_or_else(String::new, |ns| format!(", NS {}", ns.join(" ")))
        );
        for n in &self.notify {
            let mut line = format!("NOTIFY({}):", n.qtype);
            match &n.owed_since {
                Some(since) => {
                    let _ = write!(line, " owed since {since}");
                }
                None => line.push_str(" nothing owed"),
            }
            if n.waiting_for_agreement {
                line.push_str(", waiting for the nameservers to agree");
            }
            if n.waiting_for_acceptance {
                line.push_str(", waiting: the parent would refuse");
            }
            if n.held {
                line.push_str(", HELD after max_wait");
            }
            if let Some(last) = &n.last_sent {
                let _ = write!(
                    line,
                    "; last {} to {} at {}",
                    last.result, last.target, last.time
                );
            }
            let _ = writeln!(out, "{line}");
        }
        if let Some(c) = &self.parent_check {
            let _ = writeln!(
                out,
                "parent check before NOTIFY({}) at {} (profile {}): {}",
                c.before, c.time, c.verdict.profile, c.verdict.summary
            );
            for f in c
                .verdict
                .findings
                .iter()
                .filter(|f| f.severity != Severity::Note)
            {
                let label = f.severity.as_str();
                let _ = writeln!(out, "  {label}: {} ({})", f.message, f.rule);
            }
        }
        match &self.next_event {
            Some(next) => {
                let _ = writeln!(out, "next: {}", next.summary);
            }
            None => out.push_str("next: no timing event ahead\n"),
        }
        for r in &self.error_reports {
            let _ = writeln!(
                out,
                "error report {}: {} {} extended error {} from {}",
                r.time, r.qname, r.qtype, r.ede, r.source
            );
        }
        out
    }
}
