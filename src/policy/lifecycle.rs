//! Where a key stands at time `t`: the facts every CDS mode is built on.
//!
//! Stated for BIND-format keys, as BIND's lib/dns/dnssec.c reads their timing
//! (README "CDS modes", docs/INTEROP.md "Key directories and the `auto` rule"):
//! - *published*: Publish at or before `t` (a key with neither Publish nor
//!   Activate counts as published and active; a key with only Activate is
//!   published from then);
//! - *active*: Activate at or before `t`;
//! - *retired*: Inactive, Revoke (or the REVOKE flag) or Delete reached;
//! - *DS at parent*: seen at the parent (observer), else `DSPublish` reached
//!   and `DSDelete` not, else `DSState: omnipresent`;
//! - *DS withdrawn*: `DSDelete` reached or `DSState: unretentive`: the key is
//!   on its way out, whatever else its metadata says;
//! - a KSK/CSK is *ready* when published, active, not retired, its DS not at
//!   the parent and not withdrawn; *in service* when its DS is at the parent
//!   (and not being withdrawn).

use jiff::Timestamp;

use super::ParentView;
use crate::{
    dnssec::{self, DigestType},
    keys::{Key, KeyState, TimingEvent},
};

/// The facts about one key at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    /// DNSKEY in the zone.
    pub published: bool,
    /// Signing.
    pub activated: bool,
    /// Inactive reached.
    pub inactive: bool,
    /// Revoked (time reached or REVOKE flag).
    pub revoked: bool,
    /// Delete reached: the DNSKEY is gone.
    pub deleted: bool,
    /// DS known to be at the parent.
    pub ds_at_parent: bool,
    /// DS removed from the parent, or being removed.
    pub ds_withdrawn: bool,
    /// KSK or CSK.
    pub signs_keys: bool,
}

impl Lifecycle {
    /// Works out the facts for `key` at `now`.
    pub fn of(key: &Key, now: Timestamp, parent: Option<&ParentView>) -> Self {
        let timing = &key.timing;
        let publish = timing.get(TimingEvent::Publish);
        let activate = timing.get(TimingEvent::Activate);
        let deleted = timing.reached(TimingEvent::Delete, now);
        let published = !deleted
            && match (publish, activate) {
                (None, None) => true,
                (Some(p), _) => p <= now,
                (None, Some(a)) => a <= now,
            };
        let activated = match (publish, activate) {
            (None, None) => true,
            (_, Some(a)) => a <= now,
            (Some(_), None) => false,
        };
        let ds_at_parent = match parent {
            Some(view) => view.has_ds_for(key),
            None => {
                if timing.reached(TimingEvent::DsDelete, now) {
                    false
                } else {
                    timing.reached(TimingEvent::DsPublish, now)
                        || key.state.as_ref().and_then(|s| s.ds) == Some(KeyState::Omnipresent)
                }
            }
        };
        let ds_withdrawn = timing.reached(TimingEvent::DsDelete, now)
            || key.state.as_ref().and_then(|s| s.ds) == Some(KeyState::Unretentive);
        Lifecycle {
            ds_withdrawn,
            published,
            activated,
            inactive: timing.reached(TimingEvent::Inactive, now),
            revoked: key.dnskey.is_revoked() || timing.reached(TimingEvent::Revoke, now),
            deleted,
            ds_at_parent,
            signs_keys: key.role().signs_keys(),
        }
    }

    /// Inactive, revoked, deleted or DS withdrawn: neither ready nor in service.
    pub fn retired(&self) -> bool {
        self.inactive || self.revoked || self.deleted || self.ds_withdrawn
    }

    /// A KSK/CSK waiting for its DS to be submitted.
    pub fn ready(&self) -> bool {
        self.signs_keys && self.published && self.activated && !self.retired() && !self.ds_at_parent
    }

    /// A KSK/CSK whose DS is at the parent and that still signs.
    pub fn in_service(&self) -> bool {
        self.signs_keys && self.published && self.activated && !self.retired() && self.ds_at_parent
    }

    /// One word for the key's phase, for reason lines.
    pub fn phase(&self) -> &'static str {
        if self.deleted {
            "deleted"
        } else if self.revoked {
            "revoked"
        } else if self.inactive {
            "inactive"
        } else if self.ds_withdrawn {
            "DS withdrawn"
        } else if !self.published {
            "not yet published"
        } else if !self.activated {
            "published, not active"
        } else if !self.signs_keys {
            "active"
        } else if self.ds_at_parent {
            "active, DS at parent"
        } else {
            "ready, DS not at parent"
        }
    }
}

/// The first timing event of any of `keys` strictly after `now`: when the
/// policy's answer may change without any file changing.
pub fn next_event(keys: &[std::sync::Arc<Key>], now: Timestamp) -> Option<Timestamp> {
    keys.iter()
        .flat_map(|k| k.timing.iter().map(|(_, t)| t))
        .filter(|t| *t > now)
        .min()
}

impl ParentView {
    /// True when the parent's DS set holds a DS matching `key`.
    pub fn has_ds_for(&self, key: &Key) -> bool {
        self.ds.iter().any(|ds| {
            let digest = match ds.digest_type {
                2 => DigestType::Sha256,
                4 => DigestType::Sha384,
                _ => return false,
            };
            ds.key_tag == key.tag
                && ds.algorithm == key.dnskey.algorithm
                && dnssec::ds(&key.zone, &key.dnskey, digest) == *ds
        })
    }
}
