//! Reading one key's three BIND files (`.key`, `.private`, `.state`) and
//! sorting what they hold into the parts a key is assembled from, and the
//! problems to report: unreadable or malformed files, a `.private` that
//! cannot be read (the key is still used for CDS, as BIND's format v1.3),
//! `.state` tags this version does not know. A file that cannot be read for
//! a reason other than "not found" (EIO, ESTALE; permission denied on a
//! `.key` or `.state`) marks the key unreadable: its zone is held, see
//! `keys::dir`.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
};

use hickory_proto::rr::Name;

use super::{Effect, KeyIssue, Severity};
use crate::keys::{
    KeyFiles, PrivatePart,
    bind::{self, FileKind, PrivateKeyFile, PublicKeyFile, StateFile},
};

/// A parsed file.
#[derive(Debug, Clone)]
pub(super) enum Content {
    Key(PublicKeyFile),
    Private(Arc<PrivateKeyFile>),
    State(StateFile),
    PermissionDenied,
    /// An I/O error other than "not found" or "permission denied".
    Unreadable(String),
    Bad {
        line: usize,
        message: String,
    },
}

/// Where a key's problems are reported: its zone, tag and files.
pub(super) struct IssueReport<'a> {
    /// The key's zone, if its file name names one.
    pub(super) zone: Option<Name>,
    /// The key's tag.
    pub(super) tag: u16,
    /// The key's files.
    pub(super) files: &'a KeyFiles,
}

impl IssueReport<'_> {
    /// A problem with the key's file of `kind`.
    pub(super) fn issue(
        &self,
        kind: FileKind,
        line: usize,
        message: String,
        severity: Severity,
    ) -> KeyIssue {
        let name = match kind {
            FileKind::Key => Some(&self.files.key),
            FileKind::Private => self.files.private.as_ref(),
            FileKind::State => self.files.state.as_ref(),
        };
        KeyIssue {
            zone: self.zone.clone(),
            tag: Some(self.tag),
            file: name.map(|f| self.files.dir.join(&**f)).unwrap_or_default(),
            line,
            message,
            severity,
            effect: Effect::None,
        }
    }
}

/// What one key's files hold, and what is wrong with them.
pub(super) struct Parts {
    /// The `.key` file, if it could be read.
    pub(super) public: Option<PublicKeyFile>,
    /// The `.private` file.
    pub(super) private: PrivatePart,
    /// The `.state` file, if there is one and it could be read.
    pub(super) state: Option<StateFile>,
    /// Problems found.
    pub(super) problems: Vec<KeyIssue>,
    /// A file could not be read at all (not a parse error): the key's zone
    /// is held.
    pub(super) unreadable: bool,
}

impl Parts {
    /// Sorts the three files' contents (`.key`, `.private`, `.state`).
    pub(super) fn of(contents: [Option<Content>; 3], report: &IssueReport<'_>) -> Self {
        let [key_content, private_content, state_content] = contents;
        let mut parts = Parts {
            public: None,
            private: PrivatePart::Absent,
            state: None,
            problems: Vec::new(),
            unreadable: false,
        };
        match key_content {
            Some(Content::Key(public)) => parts.public = Some(public),
            other => parts.failed(report, FileKind::Key, other),
        }
        parts.private = match private_content {
            None => PrivatePart::Absent,
            Some(Content::Private(p)) => PrivatePart::Present(p),
            Some(Content::PermissionDenied) => {
                parts.problems.push(report.issue(
                    FileKind::Private,
                    0,
                    "permission denied: using the .key and .state files only (counts as private-key format v1.3)"
                        .to_string(),
                    Severity::Warning,
                ));
                PrivatePart::Unreadable
            }
            other => {
                parts.failed(report, FileKind::Private, other);
                PrivatePart::Unreadable
            }
        };
        match state_content {
            None => {}
            Some(Content::State(s)) => parts.state = Some(s),
            other => parts.failed(report, FileKind::State, other),
        }
        if let Some(state) = &parts.state {
            if !state.unknown_tags.is_empty() {
                let message = format!("unknown tags skipped: {}", state.unknown_tags.join(", "));
                parts
                    .problems
                    .push(report.issue(FileKind::State, 0, message, Severity::Warning));
            }
        }
        parts
    }

    /// Records why the file of `kind` gave no usable content; a file that
    /// could not be read at all makes the key unreadable.
    fn failed(&mut self, report: &IssueReport<'_>, kind: FileKind, content: Option<Content>) {
        let (line, message, unreadable) = match content {
            Some(Content::Bad { line, message }) => (line, message, false),
            Some(Content::Unreadable(message)) => (0, message, true),
            Some(Content::PermissionDenied) => (0, "permission denied".to_string(), true),
            _ => (0, "unexpected content".to_string(), false),
        };
        self.unreadable |= unreadable;
        self.problems
            .push(report.issue(kind, line, message, Severity::Error));
    }
}

/// Reads and parses the files of every job, on many threads when there are
/// many (`cores::map_blocking`: files not in the page cache wait for the disk).
pub(super) fn read_all(jobs: &[(Box<str>, [Option<PathBuf>; 3])]) -> Vec<[Option<Content>; 3]> {
    let kinds = [FileKind::Key, FileKind::Private, FileKind::State];
    let read = |(_, paths): &(Box<str>, [Option<PathBuf>; 3])| {
        let mut exposed = None;
        let contents: [Option<Content>; 3] = std::array::from_fn(|i| {
            let (content, readable) = read_content(paths[i].as_ref()?, kinds[i]);
            if readable && kinds[i] == FileKind::Private {
                exposed = paths[i].clone();
            }
            Some(content)
        });
        (contents, exposed)
    };
    // A read that panicked reads as an error: the key keeps its last good
    // view (or its zone is held), never another key's files.
    let failed = |(_, paths): &(Box<str>, [Option<PathBuf>; 3])| {
        let contents = std::array::from_fn(|i| {
            paths[i].as_ref().map(|_| Content::Bad {
                line: 0,
                message: "reading failed (internal error)".into(),
            })
        });
        (contents, None)
    };
    let read = crate::cores::map_blocking(jobs, 256, read, failed);
    warn_exposed_private_files(read.iter().filter_map(|(_, exposed)| exposed.as_ref()));
    read.into_iter().map(|(contents, _)| contents).collect()
}

/// Reads and parses one file; also whether every user may read it (from
/// the open file's metadata: no second look-up by path).
fn read_content(path: &Path, kind: FileKind) -> (Content, bool) {
    let read = fs::File::open(path).and_then(|mut file| {
        let exposed = file
            .metadata()
            .is_ok_and(|meta| crate::state::mode_readable_by_others(&meta));
        let mut text = String::new();
        io::Read::read_to_string(&mut file, &mut text)?;
        Ok((text, exposed))
    });
    let (text, exposed) = match read {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return (Content::PermissionDenied, false);
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return (Content::Unreadable(format!("cannot read: {e}")), false);
        }
        Err(e) => {
            let bad = Content::Bad {
                line: 0,
                message: format!("cannot read: {e}"),
            };
            return (bad, false);
        }
    };
    let content = match kind {
        FileKind::Key => bind::keyfile::parse(&text).map_or_else(bad, Content::Key),
        FileKind::Private => {
            bind::private::parse(&text).map_or_else(bad, |f| Content::Private(Arc::new(f)))
        }
        FileKind::State => bind::state::parse(&text).map_or_else(bad, Content::State),
    };
    (content, exposed)
}

/// A file that does not parse, as the issue that reports it will say.
fn bad<E: std::fmt::Display>(e: bind::ParseError<E>) -> Content {
    Content::Bad {
        line: e.line,
        message: e.kind.to_string(),
    }
}

/// One warning per scan (not per file: a directory may hold a million keys)
/// when `.private` files being read are readable by every user.
fn warn_exposed_private_files<'a>(mut exposed: impl Iterator<Item = &'a PathBuf>) {
    if let Some(example) = exposed.next() {
        tracing::warn!(
            files = 1 + exposed.count(),
            example = %example.display(),
            "private key files are readable by every user of this machine: chmod 600 (or 640 for a group signalbox is in)"
        );
    }
}
