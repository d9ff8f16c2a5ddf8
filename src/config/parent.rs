//! `[resolver]`, `[notify]` and `[parent]`: talking to the parent (RFC 9859
//! generalized NOTIFY, the consistency gate of RFC 9975 and the parent's-eye
//! check of `crate::check`, the parent observer).

use std::{net::SocketAddr, time::Duration};

use serde::Deserialize;
use toml::Spanned;

use super::{checker::Checker, duration::ConfigDuration};
use crate::check::profile::{self, Profile};

/// `[resolver]`: the validating resolver used for DSYNC discovery and NS
/// addresses (never for the consistency gate, which asks servers directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Resolver addresses, tried in order.
    pub servers: Vec<SocketAddr>,
    /// Refuse DSYNC and NS answers without the AD flag.
    pub require_ad: bool,
    /// Wait for one UDP answer (doubled on each retry).
    pub timeout: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            servers: Vec::new(),
            require_ad: true,
            timeout: Duration::from_secs(2),
        }
    }
}

/// When a NOTIFY may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gate {
    /// Once every nameserver serves the new RRsets (RFC 9975; RFC 9859 §4.2).
    /// The parent's-eye check then runs too, and its verdict is kept for
    /// `explain` and logged, but does not hold the NOTIFY.
    Consistent,
    /// As `Consistent`, and a NOTIFY(CDS) also waits while the parent's-eye
    /// check (`signalbox check`, under `[notify] profile`) says the parent
    /// would refuse.
    Parent,
    /// As soon as our own copy changed.
    Immediate,
}

impl Gate {
    /// The nameservers are asked before a NOTIFY (and the parent's-eye
    /// check runs).
    pub fn asks_servers(self) -> bool {
        self != Gate::Immediate
    }
}

/// What to do when the gate is still closed at `max_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// Keep the NOTIFY and report (a scan bound to fail helps no one).
    Hold,
    /// Send anyway.
    Send,
}

/// `[notify]`: generalized NOTIFY to the parent's DSYNC targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Send NOTIFYs at all (needs `[resolver]`).
    pub enabled: bool,
    /// The consistency gate.
    pub gate: Gate,
    /// The parent whose rules the parent's-eye check applies before a
    /// NOTIFY ([`crate::check::profile`]).
    pub profile: &'static Profile,
    /// How long the gate may stay closed.
    pub max_wait: Duration,
    /// What happens then.
    pub on_timeout: OnTimeout,
    /// Port at which nameserver addresses are asked (53; tests use another).
    pub nameserver_port: u16,
    /// NOTIFYs per second per target; 0 = unlimited.
    pub rate_limit: u32,
    /// Wait for a UDP answer before retransmitting (doubled each time).
    pub udp_timeout: Duration,
    /// UDP tries before TCP.
    pub udp_tries: u32,
    /// The monitoring agent named in every NOTIFY (Report-Channel, RFC
    /// 9567 §6.1): `[report] agent`, copied here when the config is loaded.
    pub report_channel: Option<hickory_proto::rr::Name>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            enabled: true,
            gate: Gate::Consistent,
            profile: profile::GENERIC,
            max_wait: Duration::from_secs(600),
            on_timeout: OnTimeout::Hold,
            nameserver_port: 53,
            rate_limit: 50,
            udp_timeout: Duration::from_secs(3),
            udp_tries: 3,
            report_channel: None,
        }
    }
}

/// `[parent]`: the parent observer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentConfig {
    /// How often each child's DS and NS are read at the parent.
    pub poll_interval: Duration,
    /// After a NOTIFY, look again this soon (then back to `poll_interval`).
    pub after_notify: Duration,
}

impl Default for ParentConfig {
    fn default() -> Self {
        ParentConfig {
            poll_interval: Duration::from_secs(3600),
            after_notify: Duration::from_secs(60),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResolver {
    servers: Option<Vec<Spanned<String>>>,
    require_ad: Option<bool>,
    timeout: Option<Spanned<ConfigDuration>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    enabled: Option<bool>,
    gate: Option<Gate>,
    profile: Option<Spanned<String>>,
    max_wait: Option<Spanned<ConfigDuration>>,
    on_timeout: Option<OnTimeout>,
    nameserver_port: Option<Spanned<i64>>,
    rate_limit: Option<Spanned<i64>>,
    udp_timeout: Option<Spanned<ConfigDuration>>,
    udp_tries: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParent {
    poll_interval: Option<Spanned<ConfigDuration>>,
    after_notify: Option<Spanned<ConfigDuration>>,
}

impl Checker<'_> {
    pub(super) fn resolver(&mut self, raw: &RawResolver) -> ResolverConfig {
        let d = ResolverConfig::default();
        let servers = raw
            .servers
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, s)| {
                self.address(s, &format!("resolver.servers[{i}]"), "\"127.0.0.1:53\"")
            })
            .collect();
        ResolverConfig {
            servers,
            require_ad: raw.require_ad.unwrap_or(d.require_ad),
            timeout: self.duration_at_least(
                &raw.timeout,
                "resolver.timeout",
                d.timeout,
                Duration::from_millis(10),
            ),
        }
    }

    pub(super) fn notify(&mut self, raw: &RawNotify) -> NotifyConfig {
        let d = NotifyConfig::default();
        let nameserver_port = self.int_in(
            &raw.nameserver_port,
            "notify.nameserver_port",
            1..=65_535,
            i64::from(d.nameserver_port),
        ) as u16;
        let rate_limit = self.int_in(
            &raw.rate_limit,
            "notify.rate_limit",
            0..=1_000_000,
            i64::from(d.rate_limit),
        ) as u32;
        let udp_tries = self.int_in(
            &raw.udp_tries,
            "notify.udp_tries",
            1..=10,
            i64::from(d.udp_tries),
        ) as u32;
        let profile = match &raw.profile {
            None => d.profile,
            Some(name) => profile::find(name.get_ref()).unwrap_or_else(|| {
                self.error(
                    name.span(),
                    "notify.profile".into(),
                    format!(
                        "\"{}\" is not a parent profile; one of {}",
                        name.get_ref(),
                        profile::names().join(", ")
                    ),
                );
                d.profile
            }),
        };
        NotifyConfig {
            enabled: raw.enabled.unwrap_or(d.enabled),
            gate: raw.gate.unwrap_or(d.gate),
            profile,
            max_wait: self.duration_at_least(
                &raw.max_wait,
                "notify.max_wait",
                d.max_wait,
                Duration::ZERO,
            ),
            on_timeout: raw.on_timeout.unwrap_or(d.on_timeout),
            nameserver_port,
            rate_limit,
            udp_timeout: self.duration_at_least(
                &raw.udp_timeout,
                "notify.udp_timeout",
                d.udp_timeout,
                Duration::from_millis(10),
            ),
            udp_tries,
            report_channel: None,
        }
    }

    pub(super) fn parent(&mut self, raw: &RawParent) -> ParentConfig {
        let d = ParentConfig::default();
        ParentConfig {
            poll_interval: self.duration_at_least(
                &raw.poll_interval,
                "parent.poll_interval",
                d.poll_interval,
                Duration::from_millis(100),
            ),
            after_notify: self.duration_at_least(
                &raw.after_notify,
                "parent.after_notify",
                d.after_notify,
                Duration::from_millis(100),
            ),
        }
    }
}
