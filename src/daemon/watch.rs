//! Watching key directories: inotify on each directory (never on files: BIND
//! renames files into place, which replaces their inode). An event names
//! the file it concerns, so a change among a million keys rescans that file
//! alone; an overflowed or failed watch asks for the whole directory.
//! Polling where inotify cannot be used, and for a directory held because it
//! cannot be read (`keys::dir`, issue 13): one that comes back may be a new
//! inode no watch sees, so it is polled until it reads, then watched anew.

use std::{collections::BTreeSet, path::PathBuf};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

use super::{
    Daemon,
    key_changes::{KeyChanges, Touched},
};
use crate::config::WatchMode;

/// The watches on a set of directories; dropping it stops them.
pub struct DirWatcher {
    _watcher: Option<RecommendedWatcher>,
    /// Directories that must be polled instead.
    pub polled: Vec<PathBuf>,
    /// Directories held because they cannot be read: polled until they read.
    held: BTreeSet<PathBuf>,
}

impl DirWatcher {
    /// True when some directory is to be polled.
    pub fn polls(&self) -> bool {
        !self.polled.is_empty() || !self.held.is_empty()
    }

    /// The directories to rescan at each poll.
    pub fn to_poll(&self) -> Vec<PathBuf> {
        let mut dirs = self.polled.clone();
        dirs.extend(
            self.held
                .iter()
                .filter(|d| !self.polled.contains(d))
                .cloned(),
        );
        dirs
    }

    /// Takes the directories held after a round; returns those that were
    /// held and read again: their watch must be renewed (the directory
    /// there may be a new inode).
    pub fn note_held(&mut self, held: BTreeSet<PathBuf>) -> Vec<PathBuf> {
        let read_again = self.held.difference(&held).cloned().collect();
        self.held = held;
        read_again
    }
}

impl Daemon {
    /// The key directories held because their last scan could not list them.
    pub(super) fn unreadable_key_dirs(&self) -> BTreeSet<PathBuf> {
        self.keys
            .reports()
            .filter(|(_, report)| report.hold.is_some())
            .map(|(path, _)| path.clone())
            .collect()
    }
}

/// Starts watching `dirs`; every event notes the directory and file it
/// concerns in `changes` (every directory, whole, when the watcher
/// overflowed or failed) and wakes the event loop through `wake`. Noted
/// when seen, not when the event loop gets to it: a change may cut into a
/// round that started before the loop looked (`key_changes.rs`).
pub fn watch(
    dirs: &[PathBuf],
    mode: WatchMode,
    changes: KeyChanges,
    wake: UnboundedSender<()>,
) -> DirWatcher {
    if mode == WatchMode::Poll {
        return DirWatcher {
            _watcher: None,
            polled: dirs.to_vec(),
            held: BTreeSet::new(),
        };
    }
    let all = dirs.to_vec();
    // Events carry absolute paths; the config's may be relative or go
    // through symlinks: match on the canonical form, report the config's.
    let handler_dirs: Vec<(PathBuf, PathBuf)> = all
        .iter()
        .map(|d| {
            (
                std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()),
                d.clone(),
            )
        })
        .collect();
    let send = move |touched: Touched| {
        changes.note(touched);
        let _ = wake.send(());
    };
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(event) => {
            // Our own scans open and read the directory: access events
            // would feed back into endless rescans.
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            if event.need_rescan() {
                for (_, dir) in &handler_dirs {
                    send((dir.clone(), None));
                }
            }
            for path in &event.paths {
                let parent = path.parent();
                for (canonical, dir) in &handler_dirs {
                    if path == canonical {
                        send((dir.clone(), None));
                    } else if parent == Some(canonical.as_path()) {
                        let file = path
                            .file_name()
                            .and_then(|f| f.to_str())
                            .map(str::to_string);
                        // A name that is not UTF-8 cannot be a key file; a
                        // missing one means "look at everything".
                        send((dir.clone(), file));
                    }
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "key directory watch error: rescanning everything");
            for (_, dir) in &handler_dirs {
                send((dir.clone(), None));
            }
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch key directories: polling them instead");
            return DirWatcher {
                _watcher: None,
                polled: all,
                held: BTreeSet::new(),
            };
        }
    };
    let mut polled = Vec::new();
    for dir in &all {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            let path = dir.display().to_string();
            if mode == WatchMode::Inotify {
                tracing::error!(dir = path, error = %e, "cannot watch key directory (watch.mode = \"inotify\"): changes are seen only by the periodic rescan");
            } else {
                tracing::warn!(dir = path, error = %e, "cannot watch key directory: polling it");
                polled.push(dir.clone());
            }
        }
    }
    DirWatcher {
        _watcher: Some(watcher),
        polled,
        held: BTreeSet::new(),
    }
}
