//! `follow` and `publish`: signalbox beside a signer (Knot, BIND).
//!
//! ```toml
//! [[zone]]
//! name = "example.com."
//! follow = { primary = "127.0.0.1:53", tsig = "example-key", notify_key = "notify-key" }
//! publish = { update = "127.0.0.1:53", tsig = "example-key", types = ["CSYNC"] }
//!
//! [[signaling_zone]]
//! apex = "_signal.ns1.example.net."
//! publish = { update = "127.0.0.1:53", tsig = "example-key" }
//! ```

use std::{net::SocketAddr, time::Duration};

use hickory_proto::rr::{Name, RecordType};
use serde::Deserialize;
use toml::Spanned;

use super::{checker::Checker, duration::ConfigDuration};

/// `follow`: read a zone's apex from the signer that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowConfig {
    /// The primary (the signer).
    pub primary: SocketAddr,
    /// TSIG key (a name from `tsig_keys`) for queries and accepted NOTIFYs.
    pub tsig: Option<Name>,
    /// TSIG key (a name from `tsig_keys`) every NOTIFY about the zone must
    /// be signed with; unsigned ones are refused, whatever their source.
    pub notify_key: Option<Name>,
    /// How often the SOA is polled when no NOTIFY comes.
    pub refresh: Duration,
}

/// `publish`: write RRsets into a zone on a signer by UPDATE (RFC 2136).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishConfig {
    /// Where UPDATEs go.
    pub server: SocketAddr,
    /// TSIG key (a name from `tsig_keys`).
    pub tsig: Option<Name>,
    /// The apex RRsets signalbox owns there (a child zone's `publish`).
    pub types: Vec<RecordType>,
    /// The operator states the server keeps CDS/CDNSKEY sent by UPDATE
    /// (Knot 3.2 drops them; BIND inline-signing refuses them).
    pub cds_by_update: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFollow {
    primary: Spanned<String>,
    tsig: Option<Spanned<String>>,
    notify_key: Option<Spanned<String>>,
    refresh: Option<Spanned<ConfigDuration>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPublish {
    update: Spanned<String>,
    tsig: Option<Spanned<String>>,
    types: Option<Vec<Spanned<String>>>,
    cds_by_update: Option<bool>,
}

/// The example address of the `follow` and `publish` error messages.
const EXAMPLE_ADDRESS: &str = "\"127.0.0.1:53\"";

impl Checker<'_> {
    pub(super) fn follow(&mut self, raw: &RawFollow, key: &str) -> Option<FollowConfig> {
        let primary = self.address(&raw.primary, &format!("{key}.primary"), EXAMPLE_ADDRESS);
        let tsig = raw
            .tsig
            .as_ref()
            .and_then(|t| self.name(t, &format!("{key}.tsig")));
        let notify_key = raw
            .notify_key
            .as_ref()
            .and_then(|t| self.name(t, &format!("{key}.notify_key")));
        let refresh = match &raw.refresh {
            None => Duration::from_secs(60),
            Some(v) if v.get_ref().0 >= Duration::from_millis(100) => v.get_ref().0,
            Some(v) => {
                self.error(v.span(), format!("{key}.refresh"), "at least 100ms".into());
                Duration::from_secs(60)
            }
        };
        Some(FollowConfig {
            primary: primary?,
            tsig,
            notify_key,
            refresh,
        })
    }

    /// `apex_types`: whether `types` applies (a child zone) or not (a
    /// signalling zone, where signalbox writes the `_dsboot` RRsets).
    pub(super) fn publish(
        &mut self,
        raw: &RawPublish,
        key: &str,
        apex_types: bool,
    ) -> Option<PublishConfig> {
        let server = self.address(&raw.update, &format!("{key}.update"), EXAMPLE_ADDRESS);
        let tsig = raw
            .tsig
            .as_ref()
            .and_then(|t| self.name(t, &format!("{key}.tsig")));
        let cds_by_update = raw.cds_by_update.unwrap_or(false);
        let mut types = Vec::new();
        match (&raw.types, apex_types) {
            (Some(list), false) if !list.is_empty() => self.error(
                list[0].span(),
                format!("{key}.types"),
                "not used in a [[signaling_zone]]: signalbox writes the _dsboot RRsets there"
                    .into(),
            ),
            (Some(list), true) => {
                for (i, t) in list.iter().enumerate() {
                    let at = format!("{key}.types[{i}]");
                    match t.get_ref().to_ascii_uppercase().as_str() {
                        "CSYNC" => types.push(RecordType::CSYNC),
                        "CDS" | "CDNSKEY" if !cds_by_update => self.error(
                            t.span(),
                            at,
                            format!(
                                "{} by UPDATE is dropped by Knot 3.2 (NOERROR!) and refused by BIND \
                                 inline-signing zones: add `cds_by_update = true` to this table only if \
                                 this server keeps them (BIND dynamic zones do)",
                                t.get_ref()
                            ),
                        ),
                        "CDS" => types.push(RecordType::CDS),
                        "CDNSKEY" => types.push(RecordType::CDNSKEY),
                        other => self.error(
                            t.span(),
                            at,
                            format!("{other:?}: signalbox publishes CSYNC, CDS or CDNSKEY"),
                        ),
                    }
                }
            }
            (None, true) => types.push(RecordType::CSYNC),
            _ => {}
        }
        types.sort_by_key(|t| u16::from(*t));
        types.dedup();
        Some(PublishConfig {
            server: server?,
            tsig,
            types,
            cds_by_update,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn addresses_are_refused_with_an_example() {
        let text = "version = 1\n\
                    [server]\nlisten = [\"nowhere\"]\n\
                    [resolver]\nservers = [\"127.0.0.1\"]\n\
                    [[zone]]\nname = \"example.com.\"\nkeys = \"k\"\n\
                    follow = { primary = \"signer\" }\n";
        let errors = super::super::parse(Path::new("t.toml"), text).expect_err("bad addresses");
        let messages: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "t.toml:9:22: zone[0].follow.primary: \"signer\" is not an address:port \
                 (e.g. \"127.0.0.1:53\")",
                "t.toml:3:11: server.listen[0]: \"nowhere\" is not an address:port \
                 (e.g. \"127.0.0.1:5353\", \"[::1]:5353\")",
                "t.toml:5:12: resolver.servers[0]: \"127.0.0.1\" is not an address:port \
                 (e.g. \"127.0.0.1:53\")",
            ]
        );
    }
}
