//! `[report]`: DNS error reporting (RFC 9567, issue 16). With `agent` set,
//! every generalized NOTIFY signalbox sends to a parent carries the
//! Report-Channel EDNS option (RFC 9567 §6.1, option code 18) naming the
//! agent domain, so a parent that refuses or cannot use what it was told
//! can report it back to the child's operator (RFC 9567 §6.2).
//!
//! ```toml
//! [report]
//! agent = "agent.example.net."   # a domain the operator's monitoring agent answers
//! ```

use hickory_proto::rr::Name;
use serde::Deserialize;
use toml::Spanned;

use super::checker::Checker;

/// `[report]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReport {
    agent: Option<Spanned<String>>,
}

/// `[report]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportConfig {
    /// The monitoring agent domain announced in NOTIFYs; `None`: none.
    pub agent: Option<Name>,
}

/// Octets a report query adds to the agent domain at least: `_er`, a
/// QTYPE, a one-label QNAME, an info code and `_er` again (RFC 9567 §6.2).
const REPORT_OVERHEAD: usize = 4 + 2 + 2 + 2 + 4;

impl Checker<'_> {
    pub(super) fn report(&mut self, raw: &RawReport) -> ReportConfig {
        let agent = raw.agent.as_ref().and_then(|value| {
            let name = self.name(value, "report.agent")?;
            let problem = if name.is_root() {
                Some("the root cannot be an agent domain".to_string())
            } else if crate::dns::name::wire_len(&name) + REPORT_OVERHEAD > 255 {
                Some("too long: report queries under it would not fit in 255 octets".to_string())
            } else {
                None
            };
            match problem {
                Some(message) => {
                    self.error(value.span(), "report.agent".into(), message);
                    None
                }
                None => Some(name),
            }
        });
        ReportConfig { agent }
    }
}
