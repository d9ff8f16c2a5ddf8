//! BIND key files: `K<zone>+<alg>+<tag>.key`, `.private` and `.state`
//! (SPEC §6.1-6.4), and how their three views of one key are combined.
//!
//! BIND rewrites a key's files one after another, each by writing a temporary
//! file and renaming it over the old one (`dnssec-settime`: `.key`, then
//! `.state`, then `.private`). Between two renames the files disagree; such a
//! key is *in flux* and [`assemble`] says so instead of guessing.

pub mod filename;
pub mod keyfile;
pub mod private;
pub mod state;
pub mod timestamp;

use std::fmt;

pub use filename::{FileKind, KeyFileName};
pub use keyfile::{PublicKeyFile, PublicKeyFileError};
pub use private::{PrivateKeyFile, PrivateKeyFileError, PrivateMaterial};
pub use state::{StateFile, StateFileError};
pub use timestamp::TimestampError;

use super::{Key, KeyFiles, PrivatePart, TimingEvent};
use crate::{dns::name::display, dnssec};

/// A syntax error in one key file, at `line` (0: the file as a whole); `E`
/// says what is wrong in that file's terms (`keyfile::PublicKeyFileError`,
/// `private::PrivateKeyFileError`, `state::StateFileError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError<E> {
    /// 1-based line number, 0 for the whole file.
    pub line: usize,
    /// What is wrong.
    pub kind: E,
}

impl<E> ParseError<E> {
    fn new(line: usize, kind: impl Into<E>) -> Self {
        ParseError {
            line,
            kind: kind.into(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for ParseError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            self.kind.fmt(f)
        } else {
            write!(f, "line {}: {}", self.line, self.kind)
        }
    }
}

impl<E: std::error::Error> std::error::Error for ParseError<E> {}

/// Why a key's files could not be combined into a [`Key`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    /// The files disagree: expected while BIND rewrites them one by one.
    #[error("files disagree: {0}")]
    InFlux(String),
    /// The key can never be used (e.g. an algorithm we do not know).
    #[error("{0}")]
    Unusable(String),
}

/// Combines the three files of one key, checking that they describe the same
/// key: algorithm, tag and flags, and every timing event two files both carry.
pub fn assemble(
    name: &KeyFileName,
    public: &PublicKeyFile,
    private: PrivatePart,
    state: Option<&StateFile>,
    files: KeyFiles,
) -> Result<Key, AssembleError> {
    let dnskey = &public.dnskey;
    let algorithm = dnssec::Algorithm::from_number(dnskey.algorithm).ok_or_else(|| {
        AssembleError::Unusable(format!(
            "DNSKEY algorithm {} is not one signalbox supports (5, 7, 8, 10, 13, 14, 15, 16)",
            dnskey.algorithm
        ))
    })?;
    let tag = dnssec::key_tag(dnskey);
    let flux = |why: String| Err(AssembleError::InFlux(why));
    if name.algorithm != dnskey.algorithm || name.tag != tag {
        return flux(format!(
            "file name says algorithm {} tag {}, the DNSKEY has algorithm {} tag {tag}",
            name.algorithm, name.tag, dnskey.algorithm
        ));
    }
    let owner_text = display(&public.owner);
    if !owner_text.contains('\\') && owner_text != name.zone_text {
        return Err(AssembleError::Unusable(format!(
            "file name says zone {}, the DNSKEY owner is {owner_text}",
            name.zone_text
        )));
    }
    if let PrivatePart::Present(file) = &private {
        if file.algorithm != dnskey.algorithm {
            return flux(format!(
                ".private has algorithm {}, .key has {}",
                file.algorithm, dnskey.algorithm
            ));
        }
    }
    if let Some(state) = state {
        if state.algorithm.is_some_and(|a| a != dnskey.algorithm) {
            return flux(format!(
                ".state has algorithm {:?}, .key has {}",
                state.algorithm, dnskey.algorithm
            ));
        }
        if let (Some(length), Some(bits)) = (state.length, algorithm.key_bits(&dnskey.public_key)) {
            if length != bits {
                return flux(format!(
                    ".state has Length {length}, the DNSKEY is {bits} bits"
                ));
            }
        }
        if state.state.ksk.is_some_and(|ksk| ksk != dnskey.is_sep()) {
            return flux(format!(
                ".state says KSK: {}, the DNSKEY flags are {}",
                if dnskey.is_sep() { "no" } else { "yes" },
                dnskey.flags
            ));
        }
    }

    // Timing: compare the events each pair of files both carry.
    let private_timing = match &private {
        PrivatePart::Present(file) if file.format >= (1, 3) => Some(&file.timing),
        _ => None,
    };
    let key_timing = public.has_metadata.then_some(&public.timing);
    let sources = [
        (".key", key_timing),
        (".private", private_timing),
        (".state", state.map(|s| &s.timing)),
    ];
    for (i, (a_name, a)) in sources.iter().enumerate() {
        for (b_name, b) in sources.iter().skip(i + 1) {
            let (Some(a), Some(b)) = (a, b) else { continue };
            for event in TimingEvent::IN_KEY_FILE {
                if a.get(event) != b.get(event) {
                    return flux(format!(
                        "{event} is {} in {a_name} but {} in {b_name}",
                        show(a.get(event)),
                        show(b.get(event))
                    ));
                }
            }
        }
    }

    // Merge: the `.state` file is authoritative, then `.private`, then `.key`.
    let mut timing = public.timing.clone();
    for source in [private_timing, state.map(|s| &s.timing)]
        .into_iter()
        .flatten()
    {
        for (event, when) in source.iter() {
            timing.set(event, Some(when));
        }
    }
    Ok(Key {
        zone: public.owner.clone(),
        dnskey: dnskey.clone(),
        tag,
        algorithm,
        ttl: public.ttl,
        timing,
        state: state.map(|s| s.state.clone()),
        private,
        files,
    })
}

fn show(when: Option<jiff::Timestamp>) -> String {
    when.map_or_else(|| "unset".to_string(), timestamp::format)
}
