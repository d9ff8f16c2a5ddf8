//! NOTIFY from the signers signalbox follows (RFC 1996 §3.7, §4.7): a
//! followed zone's primary says "new serial"; signalbox answers NOERROR and
//! reads the apex at once instead of at the next SOA poll.
//!
//! A NOTIFY is accepted from the configured primary's address, or signed
//! with the zone's `follow` TSIG key (RFC 1996 §3.10 asks only for the
//! address; signers rarely sign their NOTIFYs). Anything else is REFUSED
//! and logged: a NOTIFY never changes data by itself (it only triggers a
//! read from the primary, over TSIG when configured), so the worst a forged
//! one could do is cost a query.

use std::{collections::HashMap, net::IpAddr};

use hickory_proto::rr::Name;
use tokio::sync::mpsc::UnboundedSender;

use crate::dns::name::{canonical_wire, display};

/// Who may NOTIFY about one followed zone.
#[derive(Debug, Clone)]
pub struct FollowAcl {
    /// The zone.
    pub zone: Name,
    /// The primary's address.
    pub primary: IpAddr,
    /// The TSIG key its NOTIFYs must be signed with.
    pub key: Option<Name>,
}

/// The followed zones and where accepted NOTIFYs go.
#[derive(Debug)]
pub struct FollowInbox {
    zones: HashMap<Box<[u8]>, FollowAcl>,
    tx: UnboundedSender<Name>,
}

impl FollowInbox {
    /// An inbox for `zones`, delivering to `tx`.
    pub fn new(zones: Vec<FollowAcl>, tx: UnboundedSender<Name>) -> Self {
        FollowInbox {
            zones: zones
                .into_iter()
                .map(|acl| (canonical_wire(&acl.zone).into_boxed_slice(), acl))
                .collect(),
            tx,
        }
    }

    /// Takes a NOTIFY for lower-case wire name `qname` from `peer`, signed
    /// with `key` (verified) if at all; true when accepted.
    pub fn accept(&self, qname: &[u8], peer: IpAddr, key: Option<&Name>) -> bool {
        let Some(acl) = self.zones.get(qname) else {
            tracing::info!(%peer, "NOTIFY for a zone signalbox does not follow: refused");
            return false;
        };
        let zone = display(&acl.zone);
        let signed = acl.key.is_some() && acl.key.as_ref() == key;
        if peer != acl.primary && !signed {
            tracing::warn!(zone, %peer, primary = %acl.primary, "NOTIFY neither from the primary nor signed with the zone's key: refused");
            return false;
        }
        tracing::info!(zone, %peer, "NOTIFY from the primary: reading the apex");
        let _ = self.tx.send(acl.zone.clone());
        true
    }
}
