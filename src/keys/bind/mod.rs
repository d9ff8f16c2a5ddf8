//! BIND key files: `K<zone>+<alg>+<tag>.key`, `.private` and `.state`
//! (lib/dns/dst_api.c, lib/dns/dst_parse.c), and how their three views of one
//! key are combined.
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
pub use private::{PrivateKeyFile, PrivateKeyFileError};
pub use state::{StateFile, StateFileError};
pub use timestamp::TimestampError;

use super::{Key, KeyFiles, PrivatePart, Timing, TimingEvent};
use crate::{
    dns::{Dnskey, name::display},
    dnssec,
};

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
    InFlux(Disagreement),
    /// The key can never be used.
    #[error(transparent)]
    Unusable(#[from] Unusable),
}

/// How two of a key's files disagree (one is newer than the other).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Disagreement {
    /// The file name and the DNSKEY name different keys.
    #[error(
        "file name says algorithm {name_algorithm} tag {name_tag}, the DNSKEY has algorithm {algorithm} tag {tag}"
    )]
    FileName {
        /// Algorithm in the file name.
        name_algorithm: u8,
        /// Key tag in the file name.
        name_tag: u16,
        /// The DNSKEY's algorithm.
        algorithm: u8,
        /// The DNSKEY's key tag (RFC 4034 Appendix B).
        tag: u16,
    },
    /// `.private` and `.key` name different algorithms.
    #[error(".private has algorithm {private}, .key has {key}")]
    PrivateAlgorithm {
        /// Algorithm in `.private`.
        private: u8,
        /// Algorithm of the DNSKEY.
        key: u8,
    },
    /// `.state` and `.key` name different algorithms.
    #[error(".state has algorithm {state:?}, .key has {key}")]
    StateAlgorithm {
        /// `Algorithm:` in `.state`.
        state: Option<u8>,
        /// Algorithm of the DNSKEY.
        key: u8,
    },
    /// `.state` has another key size.
    #[error(".state has Length {length}, the DNSKEY is {bits} bits")]
    StateLength {
        /// `Length:` in `.state`.
        length: u32,
        /// Bits of the DNSKEY's public key.
        bits: u32,
    },
    /// `.state` says KSK where the DNSKEY flags say otherwise.
    #[error(".state says KSK: {}, the DNSKEY flags are {flags}", yes_no(!sep))]
    StateKsk {
        /// Whether the DNSKEY has the SEP flag.
        sep: bool,
        /// The DNSKEY flags.
        flags: u16,
    },
    /// Two files carry different times for one event.
    #[error("{event} is {} in {a_file} but {} in {b_file}", show(*a), show(*b))]
    Timing {
        /// The event.
        event: TimingEvent,
        /// The first file (`.key`, `.private`).
        a_file: &'static str,
        /// Its time.
        a: Option<jiff::Timestamp>,
        /// The second file (`.private`, `.state`).
        b_file: &'static str,
        /// Its time.
        b: Option<jiff::Timestamp>,
    },
}

/// Why a key can never be used, whatever BIND writes next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// A DNSKEY algorithm signalbox does not support.
    #[error("DNSKEY algorithm {0} is not one signalbox supports (5, 7, 8, 10, 13, 14, 15, 16)")]
    Algorithm(u8),
    /// The file name's zone is not the DNSKEY owner.
    #[error("file name says zone {name_zone}, the DNSKEY owner is {owner}")]
    Owner {
        /// The zone in the file name.
        name_zone: String,
        /// The DNSKEY owner.
        owner: String,
    },
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
    let algorithm = dnssec::Algorithm::from_number(dnskey.algorithm)
        .ok_or(Unusable::Algorithm(dnskey.algorithm))?;
    let tag = dnssec::key_tag(dnskey);
    let flux = |why: Disagreement| Err(AssembleError::InFlux(why));
    if name.algorithm != dnskey.algorithm || name.tag != tag {
        return flux(Disagreement::FileName {
            name_algorithm: name.algorithm,
            name_tag: name.tag,
            algorithm: dnskey.algorithm,
            tag,
        });
    }
    let owner = display(&public.owner);
    if !owner.contains('\\') && owner != name.zone_text {
        return Err(Unusable::Owner {
            name_zone: name.zone_text.clone(),
            owner,
        }
        .into());
    }
    if let PrivatePart::Present(file) = &private {
        if file.algorithm != dnskey.algorithm {
            return flux(Disagreement::PrivateAlgorithm {
                private: file.algorithm,
                key: dnskey.algorithm,
            });
        }
    }
    if let Some(state) = state {
        state_agrees(state, dnskey, algorithm).map_err(AssembleError::InFlux)?;
    }
    let private_timing = match &private {
        PrivatePart::Present(file) if file.format >= (1, 3) => Some(&file.timing),
        _ => None,
    };
    let key_timing = public.has_metadata.then_some(&public.timing);
    timings_agree([
        (".key", key_timing),
        (".private", private_timing),
        (".state", state.map(|s| &s.timing)),
    ])
    .map_err(AssembleError::InFlux)?;

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

/// The `.state` file describes the `.key` file's DNSKEY: algorithm, key
/// length and KSK flag (BIND writes them all).
fn state_agrees(
    state: &StateFile,
    dnskey: &Dnskey,
    algorithm: dnssec::Algorithm,
) -> Result<(), Disagreement> {
    if state.algorithm.is_some_and(|a| a != dnskey.algorithm) {
        return Err(Disagreement::StateAlgorithm {
            state: state.algorithm,
            key: dnskey.algorithm,
        });
    }
    if let (Some(length), Some(bits)) = (state.length, algorithm.key_bits(&dnskey.public_key)) {
        if length != bits {
            return Err(Disagreement::StateLength { length, bits });
        }
    }
    if state.state.ksk.is_some_and(|ksk| ksk != dnskey.is_sep()) {
        return Err(Disagreement::StateKsk {
            sep: dnskey.is_sep(),
            flags: dnskey.flags,
        });
    }
    Ok(())
}

/// Every timing event two files both carry has the same time in both.
fn timings_agree(sources: [(&'static str, Option<&Timing>); 3]) -> Result<(), Disagreement> {
    for (i, (a_name, a)) in sources.iter().enumerate() {
        for (b_name, b) in sources.iter().skip(i + 1) {
            let (Some(a), Some(b)) = (a, b) else { continue };
            for event in TimingEvent::IN_KEY_FILE {
                if a.get(event) != b.get(event) {
                    return Err(Disagreement::Timing {
                        event,
                        a_file: a_name,
                        a: a.get(event),
                        b_file: b_name,
                        b: b.get(event),
                    });
                }
            }
        }
    }
    Ok(())
}

fn show(when: Option<jiff::Timestamp>) -> String {
    when.map_or_else(|| "unset".to_string(), timestamp::format)
}

/// How `.state` files write a flag.
fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disagreements_name_both_files() {
        let when = timestamp::parse("20250101000000").expect("valid");
        let why = AssembleError::InFlux(Disagreement::Timing {
            event: TimingEvent::Inactive,
            a_file: ".key",
            a: Some(when),
            b_file: ".state",
            b: None,
        });
        assert_eq!(
            why.to_string(),
            format!(
                "files disagree: {} is 20250101000000 in .key but unset in .state",
                TimingEvent::Inactive
            )
        );
        let ksk = Disagreement::StateKsk {
            sep: true,
            flags: 257,
        };
        assert_eq!(
            ksk.to_string(),
            ".state says KSK: no, the DNSKEY flags are 257"
        );
        assert_eq!(
            AssembleError::from(Unusable::Algorithm(3)).to_string(),
            "DNSKEY algorithm 3 is not one signalbox supports (5, 7, 8, 10, 13, 14, 15, 16)"
        );
    }
}
