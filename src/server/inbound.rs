//! NOTIFY from the signers signalbox follows (RFC 1996 §3.7, §4.7): a
//! followed zone's primary says "new serial"; signalbox answers NOERROR and
//! checks the primary's SOA soon instead of at the next poll.
//!
//! Who may NOTIFY about a followed zone:
//! - with `follow.notify_key`, only a NOTIFY signed with that TSIG key
//!   (RFC 8945; verified before it gets here, so a bad signature was
//!   already answered NOTAUTH, RFC 8945 §5.2), from any address; an
//!   unsigned one, or one signed with another key, is REFUSED, as BIND
//!   answers a NOTIFY its `allow-notify` does not allow;
//! - without it, the configured primary's address, or a NOTIFY signed with
//!   the zone's `follow.tsig` key (RFC 1996 §3.10 asks only for the
//!   address; signers rarely sign their NOTIFYs).
//!
//! An accepted NOTIFY only marks its zone pending (the follower's bounded
//! set, which coalesces a burst into one SOA check and rate-limits the
//! checks, see `follow::pending` and `follow::schedule`): a NOTIFY never
//! changes data by itself, so the worst a forged one can do is cost one
//! SOA query a second. When the set is full the NOTIFY gets no answer and
//! its primary retransmits (RFC 1996 §3.6). Anyone can send NOTIFYs, so
//! what is logged about them goes through a [`LogLimit`]: a few events per
//! ten seconds, the rest counted and reported with the next one.

use std::{collections::HashMap, fmt, net::IpAddr};

use hickory_proto::rr::Name;

use crate::{
    dns::{
        name::{canonical_wire, display},
        wire::unix_now,
    },
    log_limit::LogLimit,
};

/// Who may NOTIFY about one followed zone.
#[derive(Debug, Clone)]
pub struct FollowAcl {
    /// The zone.
    pub zone: Name,
    /// The primary's address.
    pub primary: IpAddr,
    /// `follow.tsig`: a NOTIFY signed with it is accepted from anywhere.
    pub key: Option<Name>,
    /// `follow.notify_key`: when set, the only way in.
    pub notify_key: Option<Name>,
}

impl FollowAcl {
    /// Whether a NOTIFY from `peer`, signed with `key` (verified) if at
    /// all, may trigger a check.
    fn admits(&self, peer: IpAddr, key: Option<&Name>) -> bool {
        match &self.notify_key {
            Some(required) => key == Some(required),
            None => peer == self.primary || (self.key.is_some() && key == self.key.as_ref()),
        }
    }
}

/// Where an accepted NOTIFY's zone goes: true when its SOA check is queued
/// (or already was), false when there is no room (the follower's set).
pub type Deliver = Box<dyn Fn(&Name) -> bool + Send + Sync>;

/// What to do with a NOTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer NOERROR: the zone will be checked.
    Accepted,
    /// Answer REFUSED.
    Refused,
    /// No room for one more pending zone: no answer (the primary retries).
    Dropped,
}

/// The followed zones and where accepted NOTIFYs go.
pub struct FollowInbox {
    zones: HashMap<Box<[u8]>, FollowAcl>,
    deliver: Deliver,
    accepted: LogLimit,
    refused: LogLimit,
    dropped: LogLimit,
}

impl fmt::Debug for FollowInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FollowInbox")
            .field("zones", &self.zones.len())
            .finish_non_exhaustive()
    }
}

impl FollowInbox {
    /// An inbox for `zones`, handing accepted ones to `deliver`.
    pub fn new(zones: Vec<FollowAcl>, deliver: Deliver) -> Self {
        FollowInbox {
            zones: zones
                .into_iter()
                .map(|acl| (canonical_wire(&acl.zone).into_boxed_slice(), acl))
                .collect(),
            deliver,
            accepted: LogLimit::default(),
            refused: LogLimit::default(),
            dropped: LogLimit::default(),
        }
    }

    /// Takes a NOTIFY for lower-case wire name `qname` from `peer`, signed
    /// with `key` (verified) if at all.
    pub fn accept(&self, qname: &[u8], peer: IpAddr, key: Option<&Name>) -> Verdict {
        let now = unix_now();
        // Names are rendered only for an event that is logged.
        let signed = || key.map(display);
        let Some(acl) = self.zones.get(qname) else {
            if let Some(suppressed) = self.refused.pass(now) {
                tracing::info!(%peer, key = signed(), suppressed, refused = self.refused.total(), "NOTIFY for a zone signalbox does not follow: refused");
            }
            return Verdict::Refused;
        };
        let zone = || display(&acl.zone);
        if !acl.admits(peer, key) {
            if let Some(suppressed) = self.refused.pass(now) {
                let why = match &acl.notify_key {
                    Some(_) => "NOTIFY not signed with the zone's notify_key: refused",
                    None => {
                        "NOTIFY neither from the primary nor signed with the zone's key: refused"
                    }
                };
                tracing::warn!(zone = zone(), %peer, key = signed(), primary = %acl.primary, suppressed, refused = self.refused.total(), "{why}");
            }
            return Verdict::Refused;
        }
        if !(self.deliver)(&acl.zone) {
            if let Some(suppressed) = self.dropped.pass(now) {
                tracing::warn!(zone = zone(), %peer, suppressed, dropped = self.dropped.total(), "NOTIFY dropped: too many zones wait for their SOA check (the primary retries; the SOA poll finds it)");
            }
            return Verdict::Dropped;
        }
        if let Some(suppressed) = self.accepted.pass(now) {
            tracing::info!(zone = zone(), %peer, key = signed(), suppressed, "NOTIFY from the primary: reading the apex");
        }
        Verdict::Accepted
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    };

    use super::*;
    use crate::dns::parse_name;

    fn name(s: &str) -> Name {
        parse_name(s).expect("valid")
    }

    const PRIMARY: &str = "192.0.2.1";

    fn inbox(notify_key: Option<&str>, room: Arc<AtomicBool>) -> (FollowInbox, Arc<AtomicUsize>) {
        let delivered = Arc::new(AtomicUsize::new(0));
        let count = delivered.clone();
        let acl = FollowAcl {
            zone: name("child.example."),
            primary: PRIMARY.parse().expect("valid"),
            key: Some(name("follow-key.")),
            notify_key: notify_key.map(name),
        };
        let deliver: Deliver = Box::new(move |_| {
            count.fetch_add(1, Ordering::Relaxed);
            room.load(Ordering::Relaxed)
        });
        (FollowInbox::new(vec![acl], deliver), delivered)
    }

    fn wire(s: &str) -> Vec<u8> {
        canonical_wire(&name(s))
    }

    #[test]
    fn address_or_follow_key_without_notify_key() {
        let (inbox, delivered) = inbox(None, Arc::new(AtomicBool::new(true)));
        let zone = wire("child.example.");
        let primary = PRIMARY.parse().expect("valid");
        let other = "192.0.2.9".parse().expect("valid");
        assert_eq!(inbox.accept(&zone, primary, None), Verdict::Accepted);
        let follow_key = name("follow-key.");
        assert_eq!(
            inbox.accept(&zone, other, Some(&follow_key)),
            Verdict::Accepted
        );
        assert_eq!(inbox.accept(&zone, other, None), Verdict::Refused);
        let another = name("another.");
        assert_eq!(inbox.accept(&zone, other, Some(&another)), Verdict::Refused);
        assert_eq!(
            inbox.accept(&wire("other.example."), primary, None),
            Verdict::Refused
        );
        assert_eq!(delivered.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn notify_key_is_required_even_from_the_primary() {
        let (inbox, delivered) = inbox(Some("notify-key."), Arc::new(AtomicBool::new(true)));
        let zone = wire("child.example.");
        let primary = PRIMARY.parse().expect("valid");
        assert_eq!(inbox.accept(&zone, primary, None), Verdict::Refused);
        let follow_key = name("follow-key.");
        assert_eq!(
            inbox.accept(&zone, primary, Some(&follow_key)),
            Verdict::Refused
        );
        let notify_key = name("notify-key.");
        let elsewhere = "198.51.100.7".parse().expect("valid");
        assert_eq!(
            inbox.accept(&zone, elsewhere, Some(&notify_key)),
            Verdict::Accepted
        );
        assert_eq!(delivered.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn no_room_means_no_answer() {
        let (inbox, _) = inbox(None, Arc::new(AtomicBool::new(false)));
        let primary = PRIMARY.parse().expect("valid");
        assert_eq!(
            inbox.accept(&wire("child.example."), primary, None),
            Verdict::Dropped
        );
    }
}
