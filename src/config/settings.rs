//! Validation of the per-zone settings shared by `[[zone]]`, `[[zones]]` and
//! `[[signaling_zone]]`.

use toml::Spanned;

use super::{CdsMode, PartialSettings, checker::Checker, load::RawZone};
use crate::{
    dns::{Csync, Dnskey},
    dnssec::{Algorithm, DigestType},
};

impl Checker<'_> {
    pub(super) fn settings(&mut self, raw: &RawZone, key: &str) -> PartialSettings {
        let cds = raw.cds.as_ref().map(|c| *c.get_ref());
        if let Some(mode) = &raw.cds {
            if *mode.get_ref() == CdsMode::Delete && raw.confirm_delete != Some(true) {
                self.error(
                    mode.span(),
                    format!("{key}.cds"),
                    "\"delete\" asks the parent to remove every DS and turn DNSSEC off for the zone: \
                     add `confirm_delete = true` to the same table if that is what you want"
                        .into(),
                );
            }
        }
        let digests = raw.digests.as_ref().map(|list| {
            let mut out = Vec::new();
            if list.is_empty() {
                self.error(
                    0..0,
                    format!("{key}.digests"),
                    "empty: list at least one of \"sha256\", \"sha384\"".into(),
                );
            }
            for (i, d) in list.iter().enumerate() {
                let digest = match d.get_ref().to_ascii_lowercase().as_str() {
                    "sha256" | "sha-256" => Some(DigestType::Sha256),
                    "sha384" | "sha-384" => Some(DigestType::Sha384),
                    "sha1" | "sha-1" => {
                        self.error(
                            d.span(),
                            format!("{key}.digests[{i}]"),
                            "SHA-1 DS digests must not be generated (RFC 9905): use \"sha256\""
                                .into(),
                        );
                        None
                    }
                    other => {
                        self.error(
                            d.span(),
                            format!("{key}.digests[{i}]"),
                            format!("unknown digest {other:?}: use \"sha256\" or \"sha384\""),
                        );
                        None
                    }
                };
                if let Some(digest) = digest {
                    if !out.contains(&digest) {
                        out.push(digest);
                    }
                }
            }
            out
        });
        let signal_ttl = raw.signal_ttl.as_ref().and_then(|ttl| {
            let secs = ttl.get_ref().0.as_secs();
            match u32::try_from(secs) {
                Ok(secs) if secs <= i32::MAX as u32 => Some(secs),
                _ => {
                    self.error(
                        ttl.span(),
                        format!("{key}.signal_ttl"),
                        "TTL above 2^31-1 seconds (RFC 2181 §8)".into(),
                    );
                    None
                }
            }
        });
        let csync_flags = raw.csync_flags.as_ref().map(|flags| {
            let mut value = 0u16;
            for (i, f) in flags.iter().enumerate() {
                match f.get_ref().as_str() {
                    "immediate" => value |= Csync::FLAG_IMMEDIATE,
                    "soaminimum" => value |= Csync::FLAG_SOAMINIMUM,
                    other => self.error(
                        f.span(),
                        format!("{key}.csync_flags[{i}]"),
                        format!("unknown CSYNC flag {other:?}: use \"immediate\" and/or \"soaminimum\" (RFC 7477 §2.1.1)"),
                    ),
                }
            }
            value
        });
        let foreign_keys = raw.foreign_keys.as_ref().map(|keys| {
            let mut out = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                if let Some(key_rdata) = self.foreign_key(k, &format!("{key}.foreign_keys[{i}]")) {
                    out.push(key_rdata);
                }
            }
            out
        });
        PartialSettings {
            nameservers: raw
                .nameservers
                .as_ref()
                .map(|list| self.names(list, &format!("{key}.nameservers"))),
            cds,
            digests,
            cdnskey: raw.cdnskey,
            signal_ttl,
            csync: raw.csync,
            keep_signals: raw.keep_signals,
            csync_flags,
            foreign_keys,
        }
    }

    fn foreign_key(&mut self, value: &Spanned<String>, key: &str) -> Option<Dnskey> {
        let dnskey = match Dnskey::from_text(value.get_ref()) {
            Ok(k) => k,
            Err(e) => {
                self.error(
                    value.span(),
                    key.to_string(),
                    format!("{e} (expected DNSKEY RDATA like \"257 3 13 <base64>\")"),
                );
                return None;
            }
        };
        let problem = if dnskey.protocol != 3 {
            Some(format!("protocol {} (must be 3)", dnskey.protocol))
        } else if !dnskey.is_zone_key() || !dnskey.is_sep() || dnskey.is_revoked() {
            Some(format!(
                "flags {}: only a KSK (flags 257: Zone Key + SEP, not revoked) belongs in the DS set",
                dnskey.flags
            ))
        } else {
            Algorithm::from_number(dnskey.algorithm)
                .is_none()
                .then(|| format!("algorithm {} is not supported", dnskey.algorithm))
        };
        match problem {
            Some(why) => {
                self.error(value.span(), key.to_string(), why);
                None
            }
            None => Some(dnskey),
        }
    }
}
