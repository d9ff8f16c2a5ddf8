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

/// What is known about one key (one stem). Kept small: a directory holds
/// one per key, a million at a million children, in a hash table; what
/// only a key with problems has is boxed apart ([`Trouble`]).
#[derive(Debug, Default)]
pub(super) struct Slot {
    /// The key's files present, by kind (`.key`, `.private`, `.state`).
    /// The names are shared with the directory's stamps and the key's
    /// `KeyFiles` (one allocation per file, not three).
    pub(super) files: [Option<Arc<str>>; 3],
    pub(super) good: Option<Arc<Key>>,
    /// Flux, problems and holds; `None` for a key without any.
    pub(super) trouble: Option<Box<Trouble>>,
    /// `good` came from the key cache, not from reading the files in this
    /// run: it is no "last good view" to fall back on when the files,
    /// changed since, do not read (the zone is held instead, as on a cold
    /// start).
    pub(super) restored: bool,
}

/// What only a key with problems has.
#[derive(Debug, Default)]
pub(super) struct Trouble {
    /// Since when its files disagree (BIND mid-rewrite).
    flux_since: Option<Instant>,
    /// Problems found the last time the key was read.
    issues: Vec<KeyIssue>,
    /// No good view and a problem, or a file that cannot be read: the zone
    /// is held.
    held: Option<SlotHold>,
}

impl Trouble {
    fn is_empty(&self) -> bool {
        self.flux_since.is_none() && self.issues.is_empty() && self.held.is_none()
    }
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
    /// Problems found the last time the key was read.
    pub(super) fn issues(&self) -> &[KeyIssue] {
        self.trouble.as_deref().map_or(&[], |t| &t.issues)
    }

    /// Why the key holds its zone, if it does.
    pub(super) fn held(&self) -> Option<&SlotHold> {
        self.trouble.as_deref()?.held.as_ref()
    }

    /// True while its files disagree.
    pub(super) fn in_flux(&self) -> bool {
        self.trouble
            .as_deref()
            .is_some_and(|t| t.flux_since.is_some())
    }

    /// True when it has problems or is in flux.
    pub(super) fn troubled(&self) -> bool {
        self.trouble
            .as_deref()
            .is_some_and(|t| t.flux_since.is_some() || !t.issues.is_empty())
    }

    /// Forgets the last read's problems and hold, before a new read;
    /// returns the hold.
    pub(super) fn clear_problems(&mut self) -> Option<SlotHold> {
        let trouble = self.trouble.as_deref_mut()?;
        trouble.issues.clear();
        let held = trouble.held.take();
        self.tidy();
        held
    }

    fn trouble_mut(&mut self) -> &mut Trouble {
        self.trouble.get_or_insert_with(Box::default)
    }

    fn end_flux(&mut self) {
        if let Some(trouble) = self.trouble.as_deref_mut() {
            trouble.flux_since = None;
            self.tidy();
        }
    }

    /// Drops an empty [`Trouble`].
    fn tidy(&mut self) {
        if self.trouble.as_deref().is_some_and(Trouble::is_empty) {
            self.trouble = None;
        }
    }

    /// The parsed name of the key's file of `kind`.
    pub(super) fn file_name(&self, kind: FileKind) -> Option<KeyFileName> {
        self.files[kind as usize]
            .as_deref()
            .and_then(bind::filename::parse)
    }

    /// The key's files.
    pub(super) fn key_files(&self, dir: &Arc<Path>) -> KeyFiles {
        KeyFiles::new(
            dir.clone(),
            self.files[FileKind::Key as usize]
                .clone()
                .unwrap_or_default(),
            self.files[FileKind::Private as usize].clone(),
            self.files[FileKind::State as usize].clone(),
        )
    }

    /// A `.private` or `.state` file without its `.key`: no key, a warning.
    pub(super) fn leftovers(&mut self, dir: &Path) {
        self.good = None;
        self.end_flux();
        if let Some(kind) = [FileKind::Private, FileKind::State]
            .into_iter()
            .find(|k| self.files[*k as usize].is_some())
        {
            let name = self.file_name(kind);
            let file = self.files[kind as usize]
                .as_deref()
                .map(|f| dir.join(f))
                .unwrap_or_default();
            self.trouble_mut().issues.push(KeyIssue {
                zone: name.as_ref().and_then(zone_of),
                tag: name.as_ref().map(|n| n.tag),
                file,
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
                self.end_flux();
                if self.good.as_deref() != Some(&key) {
                    self.good = Some(Arc::new(key));
                }
                None
            }
            Some(Err(AssembleError::InFlux(why))) => {
                let since = *self.trouble_mut().flux_since.get_or_insert(at);
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
                self.end_flux();
                Some(report.issue(FileKind::Key, 0, why.to_string(), Severity::Error))
            }
            None => {
                self.end_flux();
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
        let has_good = self.good.is_some();
        for mut problem in problems {
            if problem.severity != Severity::Warning {
                problem.effect = match (has_good, unreadable) {
                    (false, _) => Effect::Held,
                    (true, true) => Effect::HeldWithLastGood,
                    (true, false) => Effect::UsingLastGood,
                };
            }
            self.trouble_mut().issues.push(problem);
        }
        if blocking && (self.good.is_none() || unreadable) {
            if let Some(zone) = zone {
                let why = if unreadable {
                    format!("a file of key {tag} cannot be read")
                } else {
                    format!("key {tag} cannot be read")
                };
                self.trouble_mut().held = Some(SlotHold {
                    zone,
                    why,
                    unreadable,
                });
            }
        }
    }
}
