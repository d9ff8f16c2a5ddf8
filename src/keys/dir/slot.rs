//! What a key directory knows about one key (one stem): its files, its
//! last good view, how long its files have disagreed (BIND rewrites them one
//! at a time), the problems found and whether it holds its zone. A file that
//! cannot be read at all holds the zone even with a good view (issue 13:
//! partial reads are not deletions).

use std::{
    num::NonZeroU32,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use hickory_proto::rr::Name;

use super::{Effect, IssueReport, KeyIssue, Severity, listing::Stamp, zone_of};
use crate::keys::{
    Key, KeyFiles,
    bind::{self, AssembleError, FileKind, KeyFileName, filename::OddNames},
};

/// What is known about one key (one stem): its files as the last listing
/// saw them, its last good view and its problems. Kept small: a directory
/// holds one per key, a million at a million children, in a hash table;
/// what most child keys lack (a `.private` or `.state` file, a file named
/// otherwise than BIND spells it from the stem, problems) is boxed apart.
/// Its files' names are not kept: they are spelled from the stem the slot
/// is found by ([`bind::filename::spelled`]).
#[derive(Debug, Default)]
pub(super) struct Slot {
    /// The `.key` file, as last seen.
    key_file: Option<Seen>,
    /// The `.private` and `.state` files, and names spelled otherwise.
    rare: Option<Box<RareFiles>>,
    pub(super) good: Option<Arc<Key>>,
    /// Flux, problems and holds; `None` for a key without any.
    pub(super) trouble: Option<Box<Trouble>>,
    /// `good` came from the key cache, not from reading the files in this
    /// run: it is no "last good view" to fall back on when the files,
    /// changed since, do not read (the zone is held instead, as on a cold
    /// start).
    pub(super) restored: bool,
}

/// A key file as a listing saw it: its stamp, and which listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seen {
    pub(super) stamp: Stamp,
    /// The listing ([`super::KeyDirectory`]'s generation) that last saw it.
    pub(super) listing: NonZeroU32,
}

/// What a child's key usually lacks.
#[derive(Debug, Default)]
struct RareFiles {
    /// The `.private` and `.state` files, as last seen.
    others: [Option<Seen>; 2],
    /// The names of files not named as BIND spells them from the stem.
    names: OddNames,
    /// Other spellings of files the key has (names that differ in case
    /// only): not read while the file taken first is there, and taken in
    /// its place when it is gone, so that a key is not dropped while a file
    /// of it is still there.
    spares: Vec<Spare>,
}

/// Another spelling of one of a key's files.
#[derive(Debug)]
struct Spare {
    kind: FileKind,
    name: Box<str>,
    seen: Seen,
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

    /// The key's file of `kind`, as last seen.
    pub(super) fn seen(&self, kind: FileKind) -> Option<&Seen> {
        match kind {
            FileKind::Key => self.key_file.as_ref(),
            other => self.rare.as_deref()?.others[other as usize - 1].as_ref(),
        }
    }

    fn seen_mut(&mut self, kind: FileKind) -> Option<&mut Seen> {
        match kind {
            FileKind::Key => self.key_file.as_mut(),
            other => self.rare.as_deref_mut()?.others[other as usize - 1].as_mut(),
        }
    }

    /// True when the key has a file of `kind`.
    pub(super) fn has_file(&self, kind: FileKind) -> bool {
        self.seen(kind).is_some()
    }

    /// True when the key has any file.
    pub(super) fn has_files(&self) -> bool {
        FileKind::ALL.into_iter().any(|kind| self.has_file(kind))
    }

    /// The name of the key's file of `kind`, if it has one.
    pub(super) fn file_name(&self, stem: &str, kind: FileKind) -> Option<String> {
        self.has_file(kind).then(|| match self.rare.as_deref() {
            Some(rare) => rare.names.name(stem, kind),
            None => bind::filename::spelled(stem, kind),
        })
    }

    /// True when `file` is the key's file of `kind` (its name as listed);
    /// false for another spelling of it (names that differ in case only),
    /// which is not taken while this one is there.
    pub(super) fn names(&self, stem: &str, kind: FileKind, file: &str) -> bool {
        match self.rare.as_deref() {
            Some(rare) => rare.names.is(stem, kind, file),
            None => bind::filename::is_spelled(file, stem, kind),
        }
    }

    /// Takes `file` as the key's file of `kind`, seen as `seen`.
    pub(super) fn put_file(&mut self, stem: &str, kind: FileKind, file: &str, seen: Seen) {
        let plain = kind == FileKind::Key && bind::filename::is_spelled(file, stem, kind);
        if plain && self.rare.is_none() {
            // Most child keys: nothing boxed.
            self.key_file = Some(seen);
            return;
        }
        let rare = self.rare.get_or_insert_with(Box::default);
        rare.names.set(stem, kind, file);
        match kind {
            FileKind::Key => self.key_file = Some(seen),
            other => rare.others[other as usize - 1] = Some(seen),
        }
        self.tidy_files();
    }

    /// Marks the key's file of `kind` as seen by `listing`; returns true
    /// when its stamp changed (and takes the new one).
    pub(super) fn see_file(&mut self, kind: FileKind, stamp: Stamp, listing: NonZeroU32) -> bool {
        let Some(seen) = self.seen_mut(kind) else {
            return false;
        };
        seen.listing = listing;
        let changed = seen.stamp != stamp;
        seen.stamp = stamp;
        changed
    }

    /// Forgets the stamps of the key's files, so the next listing reads
    /// them again.
    pub(super) fn forget_stamps(&mut self) {
        for kind in FileKind::ALL {
            if let Some(seen) = self.seen_mut(kind) {
                seen.stamp = Stamp::FORGOTTEN;
            }
        }
    }

    /// Notes `file`, another spelling of the key's file of `kind`, as seen.
    pub(super) fn put_spare(&mut self, kind: FileKind, file: &str, seen: Seen) {
        let rare = self.rare.get_or_insert_with(Box::default);
        match rare.spares.iter_mut().find(|s| *s.name == *file) {
            Some(spare) => spare.seen = seen,
            None => rare.spares.push(Spare {
                kind,
                name: file.into(),
                seen,
            }),
        }
    }

    /// Forgets `file` as another spelling of one of the key's files.
    pub(super) fn drop_spare(&mut self, file: &str) {
        if let Some(rare) = self.rare.as_deref_mut() {
            rare.spares.retain(|s| *s.name != *file);
            self.tidy_files();
        }
    }

    /// Forgets the other spellings `listing` did not see.
    pub(super) fn drop_unseen_spares(&mut self, listing: NonZeroU32) {
        if let Some(rare) = self.rare.as_deref_mut() {
            rare.spares.retain(|s| s.seen.listing == listing);
            self.tidy_files();
        }
    }

    /// True when the key has other spellings of its files.
    pub(super) fn has_spares(&self) -> bool {
        self.rare.as_deref().is_some_and(|r| !r.spares.is_empty())
    }

    /// Forgets the key's file of `kind`: it is not there any more. Another
    /// spelling of it, if one was seen, takes its place.
    pub(super) fn drop_file(&mut self, stem: &str, kind: FileKind) {
        self.clear_file(kind);
        let spare = self.rare.as_deref_mut().and_then(|rare| {
            let at = rare.spares.iter().position(|s| s.kind == kind)?;
            Some(rare.spares.swap_remove(at))
        });
        match spare {
            Some(spare) => self.put_file(stem, kind, &spare.name, spare.seen),
            None => self.tidy_files(),
        }
    }

    fn clear_file(&mut self, kind: FileKind) {
        match kind {
            FileKind::Key => self.key_file = None,
            other => {
                if let Some(rare) = self.rare.as_deref_mut() {
                    rare.others[other as usize - 1] = None;
                }
            }
        }
        if let Some(rare) = self.rare.as_deref_mut() {
            rare.names.clear(kind);
        }
    }

    /// Drops an empty [`RareFiles`].
    fn tidy_files(&mut self) {
        let empty = self.rare.as_deref().is_some_and(|rare| {
            rare.others.iter().all(Option::is_none)
                && rare.names.is_empty()
                && rare.spares.is_empty()
        });
        if empty {
            self.rare = None;
        }
    }

    /// The names of the key's files (in [`FileKind`] order), to read them.
    pub(super) fn file_names(&self, stem: &str) -> [Option<Box<str>>; 3] {
        FileKind::ALL.map(|kind| self.file_name(stem, kind).map(String::into_boxed_str))
    }

    /// The parsed name of the key's file of `kind`.
    pub(super) fn parsed_name(&self, stem: &str, kind: FileKind) -> Option<KeyFileName> {
        bind::filename::parse(&self.file_name(stem, kind)?)
    }

    /// The key's files.
    pub(super) fn key_files(&self, stem: &Arc<str>, dir: &Arc<Path>) -> KeyFiles {
        let names = self.file_names(stem);
        KeyFiles::new(
            dir.clone(),
            Arc::clone(stem),
            [0, 1, 2].map(|i| names[i].as_deref()),
        )
    }

    /// A `.private` or `.state` file without its `.key`: no key, a warning.
    pub(super) fn leftovers(&mut self, stem: &str, dir: &Path) {
        self.good = None;
        self.end_flux();
        if let Some(kind) = [FileKind::Private, FileKind::State]
            .into_iter()
            .find(|k| self.has_file(*k))
        {
            let name = self.parsed_name(stem, kind);
            let file = self
                .file_name(stem, kind)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_stays_small() {
        // One per key in the directory's table, a million at a million
        // children: the `.key` file's stamp inline, the rest boxed apart.
        assert!(
            std::mem::size_of::<Slot>() <= 72,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }
}
