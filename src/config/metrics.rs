//! `[metrics]`: where the Prometheus endpoint listens (issue 14). Absent or
//! without `listen`, no endpoint runs.
//!
//! ```toml
//! [metrics]
//! listen = "127.0.0.1:9153"   # GET /metrics, Prometheus text format 0.0.4
//! ```

use std::net::SocketAddr;

use serde::Deserialize;
use toml::Spanned;

use super::checker::Checker;

/// `[metrics]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    listen: Option<Spanned<String>>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where `/metrics` is served; `None`: nowhere.
    pub listen: Option<SocketAddr>,
}

impl Checker<'_> {
    pub(super) fn metrics(&mut self, raw: &RawMetrics) -> MetricsConfig {
        MetricsConfig {
            listen: raw.listen.as_ref().and_then(|addr| {
                self.address(addr, "metrics.listen", "\"127.0.0.1:9153\", \"[::1]:9153\"")
            }),
        }
    }
}
