//! DNSSEC keys as signalbox sees them, independent of where they were read.
//!
//! A [`Key`] is one DNSKEY with the metadata its source recorded: BIND's
//! timing events (`.key` comments, `.private` v1.3 tags, `.state` times) and,
//! for keys managed by `dnssec-policy`, the key states of the `.state` file.
//! [`bind`] reads BIND's files; [`dir`] scans key directories.

pub mod bind;
mod by_zone;
pub mod dir;

pub use by_zone::KeysByZone;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use hickory_proto::rr::Name;
use jiff::Timestamp;

use crate::{
    dns::Dnskey,
    dnssec::{
        Algorithm,
        signer::{SignerError, SigningKey},
    },
};

/// One timing event of a key's life, with the tag each BIND file uses for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimingEvent {
    /// Key generated.
    Created,
    /// DNSKEY published in the zone.
    Publish,
    /// Key starts signing.
    Activate,
    /// REVOKE bit set (RFC 5011).
    Revoke,
    /// Key stops signing.
    Inactive,
    /// DNSKEY removed from the zone.
    Delete,
    /// DS seen at the parent (`rndc dnssec -checkds published`, or checkds).
    DsPublish,
    /// DS seen gone from the parent.
    DsDelete,
    /// CDS/CDNSKEY to be published from this time (legacy timing).
    SyncPublish,
    /// CDS/CDNSKEY to be removed from this time (legacy timing).
    SyncDelete,
}

impl TimingEvent {
    /// Every event, in the order BIND writes them.
    pub const ALL: [TimingEvent; 10] = [
        TimingEvent::Created,
        TimingEvent::Publish,
        TimingEvent::Activate,
        TimingEvent::Revoke,
        TimingEvent::Inactive,
        TimingEvent::Delete,
        TimingEvent::DsPublish,
        TimingEvent::DsDelete,
        TimingEvent::SyncPublish,
        TimingEvent::SyncDelete,
    ];

    /// The events a `.key` file carries as `; Tag:` comments.
    pub const IN_KEY_FILE: [TimingEvent; 8] = [
        TimingEvent::Created,
        TimingEvent::Publish,
        TimingEvent::Activate,
        TimingEvent::Revoke,
        TimingEvent::Inactive,
        TimingEvent::Delete,
        TimingEvent::SyncPublish,
        TimingEvent::SyncDelete,
    ];

    /// Tag name in `.key` comments and `.private` files.
    pub fn key_file_tag(self) -> &'static str {
        match self {
            TimingEvent::Created => "Created",
            TimingEvent::Publish => "Publish",
            TimingEvent::Activate => "Activate",
            TimingEvent::Revoke => "Revoke",
            TimingEvent::Inactive => "Inactive",
            TimingEvent::Delete => "Delete",
            TimingEvent::DsPublish => "DSPublish",
            TimingEvent::DsDelete => "DSDelete",
            TimingEvent::SyncPublish => "SyncPublish",
            TimingEvent::SyncDelete => "SyncDelete",
        }
    }
}

impl fmt::Display for TimingEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key_file_tag())
    }
}

/// The timing metadata of a key; `None` = not set. Whole seconds since
/// 1970 in 32 bits, as BIND keeps them (`isc_stdtime_t`, lib/dns/dst_api.c
/// `dst_key_settime`): a time a file gives after 2106-02-07 reads as that
/// date, one before 1970 as 1970. 40 octets a key, not 80: with the rest
/// of a `Key` that fits jemalloc's 256-octet class, not the 320 one, which
/// at a million children is 64 MB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    values: [u32; 10],
}

/// "Not set" in [`Timing`].
const UNSET: u32 = u32::MAX;

impl Default for Timing {
    fn default() -> Self {
        Timing {
            values: [UNSET; 10],
        }
    }
}

impl Timing {
    fn index(event: TimingEvent) -> usize {
        TimingEvent::ALL
            .iter()
            .position(|e| *e == event)
            .unwrap_or_default()
    }

    /// The time of `event`, if set.
    pub fn get(&self, event: TimingEvent) -> Option<Timestamp> {
        Timestamp::from_second(self.seconds(event)?).ok()
    }

    /// The stored form of `seconds` since 1970: clamped to what 32 bits
    /// hold (below [`UNSET`]).
    fn encode(seconds: i64) -> u32 {
        seconds.clamp(0, i64::from(UNSET - 1)) as u32
    }

    /// Sets (or clears) the time of `event` (to the second; see the type's
    /// doc for the range).
    pub fn set(&mut self, event: TimingEvent, when: Option<Timestamp>) {
        self.values[Self::index(event)] = when.map_or(UNSET, |t| Self::encode(t.as_second()));
    }

    /// The seconds since 1970 of `event`, if set (the key cache's form).
    pub(crate) fn seconds(&self, event: TimingEvent) -> Option<i64> {
        let value = self.values[Self::index(event)];
        (value != UNSET).then_some(i64::from(value))
    }

    /// Sets `event` to `seconds` since 1970 (the key cache's form).
    pub(crate) fn set_seconds(&mut self, event: TimingEvent, seconds: i64) {
        self.values[Self::index(event)] = Self::encode(seconds);
    }

    /// True when `event` is set and at or before `now`.
    pub fn reached(&self, event: TimingEvent, now: Timestamp) -> bool {
        self.get(event).is_some_and(|t| t <= now)
    }

    /// True when no event at all is set.
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(|v| *v == UNSET)
    }

    /// The events that are set, with their times.
    pub fn iter(&self) -> impl Iterator<Item = (TimingEvent, Timestamp)> + '_ {
        TimingEvent::ALL
            .into_iter()
            .filter_map(|e| self.get(e).map(|t| (e, t)))
    }
}

/// A `dnssec-policy` key state (BIND lib/dns/keymgr.c, after the
/// "Flexible and Consistent DNSSEC Key Management" paper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Not (yet, or any more) anywhere.
    Hidden,
    /// Being introduced: some caches may have it.
    Rumoured,
    /// Everywhere.
    Omnipresent,
    /// Being withdrawn.
    Unretentive,
}

/// A key state BIND does not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key state {text:?} (expected hidden, rumoured, omnipresent, unretentive or NA)")]
pub struct UnknownKeyState {
    /// What the file says, trimmed and lower-cased.
    pub text: String,
}

impl KeyState {
    /// Parses BIND's spelling; `NA` (not applicable) is `Ok(None)`.
    pub fn parse(text: &str) -> Result<Option<Self>, UnknownKeyState> {
        match text.trim().to_ascii_lowercase().as_str() {
            "hidden" => Ok(Some(KeyState::Hidden)),
            "rumoured" | "rumored" => Ok(Some(KeyState::Rumoured)),
            "omnipresent" => Ok(Some(KeyState::Omnipresent)),
            "unretentive" => Ok(Some(KeyState::Unretentive)),
            "na" => Ok(None),
            other => Err(UnknownKeyState { text: other.into() }),
        }
    }

    /// BIND's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Hidden => "hidden",
            KeyState::Rumoured => "rumoured",
            KeyState::Omnipresent => "omnipresent",
            KeyState::Unretentive => "unretentive",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a `dnssec-policy` `.state` file says about a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KaspState {
    /// `KSK: yes|no`.
    pub ksk: Option<bool>,
    /// `ZSK: yes|no`.
    pub zsk: Option<bool>,
    /// `DNSKEYState`.
    pub dnskey: Option<KeyState>,
    /// `KRRSIGState`.
    pub krrsig: Option<KeyState>,
    /// `ZRRSIGState`.
    pub zrrsig: Option<KeyState>,
    /// `DSState`: drives CDS/CDNSKEY under BIND's rule.
    pub ds: Option<KeyState>,
    /// `GoalState`.
    pub goal: Option<KeyState>,
}

/// The part a key plays in the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Key-signing key (SEP): its DS belongs at the parent.
    Ksk,
    /// Zone-signing key.
    Zsk,
    /// Combined signing key: KSK and ZSK at once.
    Csk,
}

impl Role {
    /// True for roles whose DS belongs at the parent (KSK, CSK).
    pub fn signs_keys(self) -> bool {
        matches!(self, Role::Ksk | Role::Csk)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Ksk => "KSK",
            Role::Zsk => "ZSK",
            Role::Csk => "CSK",
        })
    }
}

/// The private half, as far as signalbox needs it.
#[derive(Clone, PartialEq, Eq)]
pub enum PrivatePart {
    /// No `.private` file: a public-only key (normal for child zones).
    Absent,
    /// A `.private` file exists but could not be read (permissions).
    Unreadable,
    /// A parsed `.private` file.
    Present(Arc<bind::PrivateKeyFile>),
    /// A `.private` file of this format exists and was read before, but its
    /// key material is not in memory: a view restored from the key cache
    /// (`dir::cache`), which never holds private keys. Only keys of zones
    /// signalbox does not sign are restored so; this one cannot sign.
    NotLoaded {
        /// `Private-key-format` of the file when it was read.
        format: (u8, u8),
    },
}

impl PrivatePart {
    /// The private-key format version; a missing or unreadable `.private`
    /// counts as v1.3 for BIND's "v1.2 never publishes" rule.
    pub fn format(&self) -> (u8, u8) {
        match self {
            PrivatePart::Present(file) => file.format,
            PrivatePart::NotLoaded { format } => *format,
            _ => (1, 3),
        }
    }
}

impl fmt::Debug for PrivatePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivatePart::Absent => f.write_str("Absent"),
            PrivatePart::Unreadable => f.write_str("Unreadable"),
            PrivatePart::Present(file) => {
                write!(f, "Present(v{}.{})", file.format.0, file.format.1)
            }
            PrivatePart::NotLoaded { format } => {
                write!(f, "NotLoaded(v{}.{})", format.0, format.1)
            }
        }
    }
}

/// Where a key was read from: its directory and its files' names. The
/// names are known by the key's stem (`kexample.net.+013+55648`, shared
/// with the key directory's slot for it), as a directory may hold a million
/// keys: a file named as BIND spells it from the stem costs a bit, and only
/// one named otherwise (capitals in its zone part) is kept apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    /// The key directory.
    pub dir: Arc<Path>,
    /// The stem the names are spelled from ([`bind::KeyFileName::stem`]).
    stem: Arc<str>,
    /// Which of the three files exist, a bit per [`bind::FileKind`].
    present: u8,
    /// The names not spelled from the stem, by kind.
    odd: Option<Box<bind::filename::OddNames>>,
}

impl Default for KeyFiles {
    fn default() -> Self {
        KeyFiles::new(Arc::from(Path::new("")), Arc::default(), [None, None, None])
    }
}

impl KeyFiles {
    /// A key's files: its directory, its stem and the names of its `.key`,
    /// `.private` and `.state` files (in [`bind::FileKind`] order), where
    /// they exist.
    pub fn new(dir: Arc<Path>, stem: Arc<str>, names: [Option<&str>; 3]) -> Self {
        let mut present = 0;
        let mut odd = bind::filename::OddNames::default();
        for (i, kind) in bind::FileKind::ALL.into_iter().enumerate() {
            if let Some(name) = names[i] {
                present |= 1 << i;
                odd.set(&stem, kind, name);
            }
        }
        KeyFiles {
            dir,
            stem,
            present,
            odd: (!odd.is_empty()).then(|| Box::new(odd)),
        }
    }

    /// The stem the key's files share.
    pub fn stem(&self) -> &Arc<str> {
        &self.stem
    }

    /// True when the key has a file of `kind`.
    pub fn has(&self, kind: bind::FileKind) -> bool {
        self.present & (1 << kind as u8) != 0
    }

    /// The name of the key's file of `kind`, if it has one.
    pub fn name(&self, kind: bind::FileKind) -> Option<String> {
        if !self.has(kind) {
            return None;
        }
        Some(match self.odd.as_deref() {
            Some(odd) => odd.name(&self.stem, kind),
            None => bind::filename::spelled(&self.stem, kind),
        })
    }

    /// The three files' names in [`bind::FileKind`] order (`.key`,
    /// `.private`, `.state`).
    pub fn by_kind(&self) -> [Option<String>; 3] {
        bind::FileKind::ALL.map(|kind| self.name(kind))
    }

    /// The path of the key's file of `kind`, if it has one.
    pub fn path(&self, kind: bind::FileKind) -> Option<PathBuf> {
        self.name(kind).map(|f| self.dir.join(f))
    }

    /// The `.key` file's path.
    pub fn key_path(&self) -> PathBuf {
        self.path(bind::FileKind::Key).unwrap_or_default()
    }

    /// The `.private` file's path, if any.
    pub fn private_path(&self) -> Option<PathBuf> {
        self.path(bind::FileKind::Private)
    }
}

/// One DNSSEC key of one zone with everything its files say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The zone (DNSKEY owner), lower case.
    pub zone: Name,
    /// The DNSKEY RDATA exactly as in the `.key` file.
    pub dnskey: Dnskey,
    /// Key tag of the DNSKEY.
    pub tag: u16,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// TTL on the DNSKEY line, if any.
    pub ttl: Option<u32>,
    /// Timing metadata merged from all files (they agree, or the key is in flux).
    pub timing: Timing,
    /// `dnssec-policy` state, when a `.state` file exists.
    pub state: Option<KaspState>,
    /// The private half.
    pub private: PrivatePart,
    /// The files read.
    pub files: KeyFiles,
}

impl Key {
    /// KSK, ZSK or CSK: from `.state` (`KSK:`/`ZSK:`) when present, else
    /// from the SEP flag, as BIND does (lib/dns/dnssec.c dns_dnsseckey_create).
    pub fn role(&self) -> Role {
        let ksk = self
            .state
            .as_ref()
            .and_then(|s| s.ksk)
            .unwrap_or(self.dnskey.is_sep());
        let zsk = self
            .state
            .as_ref()
            .and_then(|s| s.zsk)
            .unwrap_or(!self.dnskey.is_sep());
        match (ksk, zsk) {
            (true, true) => Role::Csk,
            (true, false) => Role::Ksk,
            _ => Role::Zsk,
        }
    }

    /// True for private-key format v1.2 or older, which BIND never gives
    /// CDS/CDNSKEY ("smart signing started with key format 1.3").
    pub fn is_legacy_format(&self) -> bool {
        let (major, minor) = self.private.format();
        major == 1 && minor <= 2
    }

    /// `zone/alg/tag`, how BIND names a key in logs.
    pub fn id(&self) -> String {
        crate::dnssec::signer::key_id(&self.zone, self.algorithm, self.tag)
    }

    /// The key able to sign, from its `.private` file.
    pub fn signing_key(&self) -> Result<SigningKey, SignerError> {
        let no_key = |why: &str| SignerError::NoPrivateKey {
            key: self.id(),
            why: why.to_string(),
        };
        match &self.private {
            PrivatePart::Present(file) => SigningKey::new(&self.zone, &self.dnskey, &file.material),
            PrivatePart::Absent => Err(no_key("no .private file")),
            PrivatePart::Unreadable => Err(no_key(".private file unreadable")),
            PrivatePart::NotLoaded { .. } => Err(no_key(
                ".private file not loaded (the key was restored from the key cache)",
            )),
        }
    }
}

/// The RFC 8080 test key (`dnssec::rfc8080`) as a BIND CSK of `zone` with a
/// v1.3 `.private` file, for the tests of the modules that sign zones.
#[cfg(test)]
pub(crate) fn rfc8080_csk(zone: &str) -> Arc<Key> {
    let dnskey = crate::dnssec::rfc8080::dnskey();
    let private = bind::PrivateKeyFile {
        format: (1, 3),
        algorithm: dnskey.algorithm,
        material: crate::dnssec::rfc8080::material(),
        timing: Timing::default(),
    };
    Arc::new(Key {
        zone: crate::dns::parse_name(zone).expect("a valid zone name"),
        tag: crate::dnssec::key_tag(&dnskey),
        algorithm: Algorithm::Ed25519,
        dnskey,
        ttl: None,
        timing: Timing::default(),
        state: None,
        private: PrivatePart::Present(Arc::new(private)),
        files: KeyFiles::default(),
    })
}

#[cfg(test)]
mod signing_tests {
    use super::*;

    #[test]
    fn a_key_without_a_readable_private_file_cannot_sign() {
        let key = rfc8080_csk("example.com.");
        assert!(key.signing_key().is_ok());
        for private in [PrivatePart::Absent, PrivatePart::Unreadable] {
            let key = Key {
                private,
                ..(*key).clone()
            };
            assert!(matches!(
                key.signing_key(),
                Err(SignerError::NoPrivateKey { .. })
            ));
        }
    }
}
#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn a_key_fits_the_256_octet_allocation_class() {
        // `Arc<Key>`: 16 octets of counts, then the key. Over 240 octets it
        // lands in jemalloc's 320-octet class: 64 MB more at 1M children.
        assert!(
            std::mem::size_of::<Key>() <= 240,
            "{}",
            std::mem::size_of::<Key>()
        );
    }

    #[test]
    fn timing_keeps_32_bit_seconds_as_bind_does() {
        let at = |s: &str| s.parse::<Timestamp>().expect("a time");
        let mut timing = Timing::default();
        assert!(timing.is_empty());
        timing.set(TimingEvent::Publish, Some(at("2026-12-07T10:00:00Z")));
        timing.set(TimingEvent::Delete, Some(at("2200-01-01T00:00:00Z")));
        timing.set(TimingEvent::Created, Some(at("1960-01-01T00:00:00Z")));
        assert_eq!(
            timing.get(TimingEvent::Publish),
            Some(at("2026-12-07T10:00:00Z"))
        );
        // The last second 32 bits hold below "not set", and 1970.
        assert_eq!(
            timing.get(TimingEvent::Delete),
            Some(at("2106-02-07T06:28:14Z"))
        );
        assert_eq!(
            timing.get(TimingEvent::Created),
            Some(at("1970-01-01T00:00:00Z"))
        );
        assert_eq!(timing.get(TimingEvent::Activate), None);
        assert_eq!(timing.seconds(TimingEvent::Delete), Some(4_294_967_294));
        timing.set(TimingEvent::Delete, None);
        assert_eq!(timing.iter().count(), 2);
    }
}
