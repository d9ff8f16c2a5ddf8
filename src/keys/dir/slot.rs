//! What a key directory knows about one key (one stem): its files, its
//! last good view, how long its files have disagreed (BIND rewrites them one
//! at a time), the problems found and whether it holds its zone. A file that
//! cannot be read at all holds the zone even with a good view (issue 13:
//! partial reads are not deletions).

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use hickory_proto::rr::Name;

use super::{Effect, IssueReport, KeyIssue, Severity, zone_of};
use crate::keys::{
    Key, KeyFiles,
    bind::{self, AssembleError, FileKind, KeyFileName},
};

/// What is known about one key (one stem).
#[derive(Debug, Default)]
pub(super) struct Slot {
    /// The key's files present, by kind (`.key`, `.private`, `.state`).
    pub(super) files: [Option<Box<str>>; 3],
    pub(super) good: Option<Arc<Key>>,
    pub(super) flux_since: Option<Instant>,
    /// Problems found the last time the key was read.
    pub(super) issues: Vec<KeyIssue>,
    /// No good view and a problem, or a file that cannot be read: the zone
    /// is held (boxed: rare, and a slot per key adds up at a million
    /// children).
    pub(super) held: Option<Box<SlotHold>>,
    /// `good` came from the key cache, not from reading the files in this
    /// run: it is no "last good view" to fall back on when the files,
    /// changed since, do not read (the zone is held instead, as on a cold
    /// start).
    pub(super) restored: bool,
}

/// Why a key holds its zone.
#[derive(Debug)]
pub(super) struct SlotHold {
    pub(super) zone: Name,
    pub(super) why: String,
    /// A file of the key cannot be read (not a parse error or flux).
    pub(super) unreadable: bool,
}

impl Slot {
    /// The parsed name of the key's file of `kind`.
    pub(super) fn file_name(&self, kind: FileKind) -> Option<KeyFileName> {
        self.files[kind as usize]
            .as_deref()
            .and_then(bind::filename::parse)
    }

    /// The key's files.
    pub(super) fn key_files(&self, dir: &Arc<Path>) -> KeyFiles {
        KeyFiles {
            dir: dir.clone(),
            key: self.files[FileKind::Key as usize]
                .clone()
                .unwrap_or_default(),
            private: self.files[FileKind::Private as usize].clone(),
            state: self.files[FileKind::State as usize].clone(),
        }
    }

    /// A `.private` or `.state` file without its `.key`: no key, a warning.
    pub(super) fn leftovers(&mut self, dir: &Path) {
        self.good = None;
        self.flux_since = None;
        if let Some(kind) = [FileKind::Private, FileKind::State]
            .into_iter()
            .find(|k| self.files[*k as usize].is_some())
        {
            let name = self.file_name(kind);
            self.issues.push(KeyIssue {
                zone: name.as_ref().and_then(zone_of),
                tag: name.as_ref().map(|n| n.tag),
                file: self.files[kind as usize]
                    .as_deref()
                    .map(|f| dir.join(f))
                    .unwrap_or_default(),
                line: 0,
                message: "no matching .key file: ignored".to_string(),
                severity: Severity::Warning,
                effect: Effect::None,
            });
        }
    }

    /// Takes the assembled key as the good view, or judges why it could not
    /// be assembled: files that disagree are in flux (BIND mid-rewrite)
    /// until the grace period is over, then an error.
    pub(super) fn take(
        &mut self,
        assembled: Option<Result<Key, AssembleError>>,
        at: Instant,
        grace: Duration,
        report: &IssueReport<'_>,
    ) -> Option<KeyIssue> {
        match assembled {
            Some(Ok(key)) => {
                self.flux_since = None;
                if self.good.as_deref() != Some(&key) {
                    self.good = Some(Arc::new(key));
                }
                None
            }
            Some(Err(AssembleError::InFlux(why))) => {
                let since = *self.flux_since.get_or_insert(at);
                let lasted = at.saturating_duration_since(since);
                Some(if lasted > grace {
                    report.issue(
                        FileKind::Key,
                        0,
                        format!("key files disagree for {}s: {why}", lasted.as_secs()),
                        Severity::Error,
                    )
                } else {
                    report.issue(
                        FileKind::Key,
                        0,
                        format!("key files disagree (being rewritten?), re-reading: {why}"),
                        Severity::InFlux,
                    )
                })
            }
            Some(Err(AssembleError::Unusable(why))) => {
                self.flux_since = None;
                Some(report.issue(FileKind::Key, 0, why.to_string(), Severity::Error))
            }
            None => {
                self.flux_since = None;
                None
            }
        }
    }

    /// Records `problems` with what each means for the key (its last good
    /// view is used, or its zone is held), and the hold itself. A file that
    /// cannot be read at all (`unreadable`) holds the zone even when the key
    /// has a good view: the view is kept, so the key is not dropped.
    pub(super) fn record(
        &mut self,
        problems: Vec<KeyIssue>,
        zone: Option<Name>,
        tag: u16,
        unreadable: bool,
    ) {
        let blocking = problems.iter().any(|p| p.severity != Severity::Warning);
        for mut problem in problems {
            if problem.severity != Severity::Warning {
                problem.effect = match (self.good.is_some(), unreadable) {
                    (false, _) => Effect::Held,
                    (true, true) => Effect::HeldWithLastGood,
                    (true, false) => Effect::UsingLastGood,
                };
            }
            self.issues.push(problem);
        }
        if blocking && (self.good.is_none() || unreadable) {
            if let Some(zone) = zone {
                let why = if unreadable {
                    format!("a file of key {tag} cannot be read")
                } else {
                    format!("key {tag} cannot be read")
                };
                self.held = Some(Box::new(SlotHold {
                    zone,
                    why,
                    unreadable,
                }));
            }
        }
    }
}
