//! The problems a key directory scan reports: what is wrong with which
//! file (and line), how serious it is, and what it means for the key: its
//! last good view is still used, or its zone is held (with or without a
//! last good view of the key).

use std::path::PathBuf;

use hickory_proto::rr::Name;

/// What a problem means for the key it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The last good view of the key is still used.
    UsingLastGood,
    /// No good view exists: the key's zone is held.
    Held,
    /// The file (or the key directory) cannot be read at all: the zone is
    /// held and the last good view kept, so no key is dropped by a read
    /// that failed.
    HeldWithLastGood,
    /// Nothing is lost (a warning).
    None,
}

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Files disagree, probably mid-rewrite; re-read soon.
    InFlux,
    /// A real problem that needs an operator.
    Error,
    /// Worth knowing; nothing is lost.
    Warning,
}

/// One problem found in a key directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIssue {
    /// The zone the file belongs to, if it can be told.
    pub zone: Option<Name>,
    /// The key tag, if known from the file name.
    pub tag: Option<u16>,
    /// The file concerned (or the directory).
    pub file: PathBuf,
    /// Line in the file, 0 for the whole file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
    /// How serious it is.
    pub severity: Severity,
    /// What it means for the key.
    pub effect: Effect,
}

impl std::fmt::Display for KeyIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        write!(f, ": {}", self.message)?;
        match self.effect {
            Effect::UsingLastGood => f.write_str(" (keeping the last good view of this key)"),
            Effect::Held => f.write_str(" (no good view of this key: zone held)"),
            Effect::HeldWithLastGood => {
                f.write_str(" (zone held with its last good keys until this reads again)")
            }
            Effect::None => Ok(()),
        }
    }
}
