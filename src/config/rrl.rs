//! `[server.rrl]`: response rate limiting (RRL) for UDP answers, checked
//! with file:line errors like the rest of `[server]`.
//!
//! The options and defaults follow NSD (`rrl-ratelimit: 200`, `rrl-slip: 2`,
//! `rrl-ipv4-prefix-length: 24`, `rrl-ipv6-prefix-length: 56`,
//! `rrl-whitelist`) and Knot's `mod-rrl` (`rate-limit`, `slip`, `whitelist`;
//! prefix lengths 1-32 and 1-128). The limiter itself is `server::rrl`.

use serde::Deserialize;
use toml::Spanned;

use super::{AclEntry, checker::Checker, zone_options::parse_prefix};

/// The `[server.rrl]` table as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRrl {
    enabled: Option<bool>,
    rate: Option<Spanned<i64>>,
    slip: Option<Spanned<i64>>,
    ipv4_prefix: Option<Spanned<i64>>,
    ipv6_prefix: Option<Spanned<i64>>,
    exempt: Option<Vec<Spanned<String>>>,
}

/// Most answers per second a prefix may be allowed: the limiter keeps time
/// in microseconds, one answer's worth of it at least.
pub const RRL_RATE_MAX: u32 = 1_000_000;

/// `[server.rrl]`: response rate limiting of UDP answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrlConfig {
    /// Off: no check at all on the query path.
    pub enabled: bool,
    /// Answers per second per (source prefix, answer class); also the burst.
    pub rate: u32,
    /// Every `slip`-th limited answer is sent as a TC=1 reply with no
    /// records (0: never, 1: always).
    pub slip: u32,
    /// IPv4 sources are counted per prefix of this length.
    pub ipv4_prefix: u8,
    /// IPv6 sources are counted per prefix of this length.
    pub ipv6_prefix: u8,
    /// Sources never limited (address prefixes).
    pub exempt: Vec<AclEntry>,
}

impl Default for RrlConfig {
    fn default() -> Self {
        RrlConfig {
            enabled: true,
            rate: 200,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: Vec::new(),
        }
    }
}

impl Checker<'_> {
    /// `[server.rrl]`, or the defaults when absent.
    pub(super) fn rrl(&mut self, raw: Option<&RawRrl>) -> RrlConfig {
        let d = RrlConfig::default();
        let Some(raw) = raw else {
            return d;
        };
        let rate = self.int_in(
            &raw.rate,
            "server.rrl.rate",
            1..=i64::from(RRL_RATE_MAX),
            i64::from(d.rate),
        ) as u32;
        let slip = self.int_in(&raw.slip, "server.rrl.slip", 0..=100, i64::from(d.slip)) as u32;
        let ipv4_prefix = self.int_in(
            &raw.ipv4_prefix,
            "server.rrl.ipv4_prefix",
            1..=32,
            i64::from(d.ipv4_prefix),
        ) as u8;
        let ipv6_prefix = self.int_in(
            &raw.ipv6_prefix,
            "server.rrl.ipv6_prefix",
            1..=128,
            i64::from(d.ipv6_prefix),
        ) as u8;
        let exempt = raw
            .exempt
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, entry)| match parse_prefix(entry.get_ref().trim()) {
                Ok(prefix) => Some(prefix),
                Err(why) => {
                    self.error(
                        entry.span(),
                        format!("server.rrl.exempt[{i}]"),
                        format!("{why} (only address prefixes are exempt)"),
                    );
                    None
                }
            })
            .collect();
        RrlConfig {
            enabled: raw.enabled.unwrap_or(d.enabled),
            rate,
            slip,
            ipv4_prefix,
            ipv6_prefix,
            exempt,
        }
    }
}
