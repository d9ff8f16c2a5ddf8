//! `foreign_from` and `foreign_refresh` in a `[[zone]]` table: fetch the
//! other providers' KSKs of a multi-provider child (RFC 8901 §2.1.2) from
//! their nameservers instead of listing them in `foreign_keys`
//! ([`crate::providers`]).

use std::time::Duration;

use hickory_proto::rr::Name;

use toml::Spanned;

use super::{ResolverConfig, ZoneConfig, checker::Checker, load::RawZone};

/// `foreign_from` of one `[[zone]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignFrom {
    /// The other providers' nameservers.
    pub hosts: Vec<Name>,
    /// How often they are asked.
    pub refresh: Duration,
}

impl ForeignFrom {
    /// How often by default: an hour (RFC 8901 key changes take days).
    pub const REFRESH: Duration = Duration::from_secs(3600);
}

impl Checker<'_> {
    /// `foreign_from`/`foreign_refresh` of the `[[zone]]` at `key`.
    pub(super) fn foreign_from(&mut self, raw: &RawZone, key: &str) -> Option<ForeignFrom> {
        let refresh = self.duration_at_least(
            &raw.foreign_refresh,
            &format!("{key}.foreign_refresh"),
            ForeignFrom::REFRESH,
            Duration::from_secs(1),
        );
        let Some(list) = &raw.foreign_from else {
            if let Some(r) = &raw.foreign_refresh {
                self.error(
                    r.span(),
                    format!("{key}.foreign_refresh"),
                    "without foreign_from: there is nothing to fetch".into(),
                );
            }
            return None;
        };
        if list.get_ref().is_empty() {
            self.error(
                list.span(),
                format!("{key}.foreign_from"),
                "empty: name the other providers' nameservers, or leave foreign_from out".into(),
            );
            return None;
        }
        let hosts = self.names(list.get_ref(), &format!("{key}.foreign_from"));
        Some(ForeignFrom { hosts, refresh })
    }

    /// `foreign_from` needs `[resolver] servers` (the hosts' addresses).
    pub(super) fn foreign_from_resolvable(
        &mut self,
        raw_zones: &[Spanned<RawZone>],
        zones: &[ZoneConfig],
        resolver: &ResolverConfig,
    ) {
        if !resolver.servers.is_empty() {
            return;
        }
        for zone in zones.iter().filter(|z| z.foreign_from.is_some()) {
            let span = raw_zones
                .iter()
                .find_map(|raw| {
                    let raw_name = raw.get_ref().name.as_ref()?;
                    let same = crate::dns::parse_name(raw_name.get_ref()).ok()? == zone.name;
                    same.then(|| raw.get_ref().foreign_from.as_ref().map(Spanned::span))?
                })
                .unwrap_or(0..0);
            self.error(
                span,
                format!("{}.foreign_from", zone.origin.table),
                "needs [resolver] servers, to find the other providers' nameservers".into(),
            );
        }
    }
}
