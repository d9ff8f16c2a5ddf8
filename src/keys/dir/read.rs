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
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustix::fs::{Mode, OFlags};

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
        KeyIssue {
            zone: self.zone.clone(),
            tag: Some(self.tag),
            file: self.files.path(kind).unwrap_or_default(),
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

/// One key to read: its stem and its files' names (`.key`, `.private`,
/// `.state`) in the directory.
pub(super) type ReadJob = (Box<str>, [Option<Box<str>>; 3]);

/// Reads the key files of one directory for a scan: the directory is
/// opened once, and its files relative to that descriptor (no path to build
/// and walk per file); `.private` files readable by every user are counted,
/// to be warned about once per scan ([`Self::finish`]).
pub(super) struct KeyFileReader {
    dir: Arc<Path>,
    fd: Option<OwnedFd>,
    exposed: ExposedPrivateFiles,
}

impl KeyFileReader {
    /// A reader of `dir`. Not opened (gone, or no directory any more): each
    /// file is opened by its path instead, and fails with its own error.
    /// Opened as a directory only (a FIFO put in its place would block).
    pub(super) fn open(dir: Arc<Path>) -> Self {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        KeyFileReader {
            fd: rustix::fs::open(&*dir, flags, Mode::empty()).ok(),
            dir,
            exposed: ExposedPrivateFiles::default(),
        }
    }

    /// Reads and parses the files of every job, on many threads when there
    /// are many (`cores::map_blocking`: files not in the page cache wait for
    /// the disk).
    pub(super) fn read(&mut self, jobs: &[ReadJob]) -> Vec<[Option<Content>; 3]> {
        let kinds = [FileKind::Key, FileKind::Private, FileKind::State];
        let (dir, fd) = (&*self.dir, self.fd.as_ref());
        let read = |(_, files): &ReadJob| {
            let mut exposed = None;
            let contents: [Option<Content>; 3] = std::array::from_fn(|i| {
                let file = files[i].as_deref()?;
                let (content, readable) = read_content(fd, dir, file, kinds[i]);
                if readable {
                    exposed = Some(dir.join(file));
                }
                Some(content)
            });
            (contents, exposed)
        };
        // A read that panicked reads as an error: the key keeps its last good
        // view (or its zone is held), never another key's files.
        let failed = |(_, files): &ReadJob| {
            let contents = std::array::from_fn(|i| {
                files[i].as_ref().map(|_| Content::Bad {
                    line: 0,
                    message: "reading failed (internal error)".into(),
                })
            });
            (contents, None)
        };
        let read = crate::cores::map_blocking(jobs, 256, read, failed);
        read.into_iter()
            .map(|(contents, readable)| {
                self.exposed.note(readable);
                contents
            })
            .collect()
    }

    /// Ends the scan's reading: the one warning about exposed `.private`
    /// files, if any.
    pub(super) fn finish(self) {
        self.exposed.warn();
    }
}

/// `.private` files a scan found readable by every user: one warning per
/// scan (not per file: a directory may hold a million keys).
#[derive(Debug, Default)]
struct ExposedPrivateFiles {
    count: usize,
    example: Option<PathBuf>,
}

impl ExposedPrivateFiles {
    fn note(&mut self, file: Option<PathBuf>) {
        if let Some(file) = file {
            self.count += 1;
            self.example.get_or_insert(file);
        }
    }

    /// Warns once, when there were any.
    fn warn(self) {
        if let Some(example) = self.example {
            tracing::warn!(
                files = self.count,
                example = %example.display(),
                "private key files are readable by every user of this machine: chmod 600 (or 640 for a group signalbox is in)"
            );
        }
    }
}

/// Reads and parses the file `name` of `dir` (opened relative to `dir_fd`
/// when there is one); also, for a `.private` file, whether every user may
/// read it (from the open file's metadata: no second look-up by name).
fn read_content(
    dir_fd: Option<&OwnedFd>,
    dir: &Path,
    name: &str,
    kind: FileKind,
) -> (Content, bool) {
    let read = open_in(dir_fd, dir, name).and_then(|file| {
        let exposed = kind == FileKind::Private
            && file
                .metadata()
                .is_ok_and(|meta| crate::state::mode_readable_by_others(&meta));
        Ok((read_text(file)?, exposed))
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

/// Opens `name` for reading, relative to `dir_fd` (symlinks followed, as a
/// key file may be one), or by its path in `dir` without one.
fn open_in(dir_fd: Option<&OwnedFd>, dir: &Path, name: &str) -> io::Result<fs::File> {
    let Some(dir_fd) = dir_fd else {
        return fs::File::open(dir.join(name));
    };
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    loop {
        match rustix::fs::openat(dir_fd, name, flags, Mode::empty()) {
            Ok(fd) => return Ok(fs::File::from(fd)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The whole file as UTF-8 text, read until end of file with plain
/// `read`s: std's `read_to_string` on a `File` first asks for its size
/// and position (a `statx` and an `lseek`), two more system calls for a
/// file of a few hundred octets, a million times over on a cold start.
fn read_text(file: fs::File) -> io::Result<String> {
    let mut text = Vec::with_capacity(1024);
    // `Take` reads through `File::read` alone (no size hint asked).
    io::Read::read_to_end(&mut io::Read::take(file, u64::MAX), &mut text)?;
    String::from_utf8(text).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// A file that does not parse, as the issue that reports it will say.
fn bad<E: std::fmt::Display>(e: bind::ParseError<E>) -> Content {
    Content::Bad {
        line: e.line,
        message: e.kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::PermissionsExt, path::Path};

    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keygen");
    const STEM: &str = "Kfixture.test.+013+01567";

    fn copy_fixture(dir: &Path, ext: &str, mode: u32) -> Arc<str> {
        let name = format!("{STEM}.{ext}");
        let to = dir.join(&name);
        fs::copy(Path::new(FIXTURES).join(&name), &to).expect("copy fixture");
        fs::set_permissions(&to, fs::Permissions::from_mode(mode)).expect("chmod");
        name.into()
    }

    fn job(files: [Option<&Arc<str>>; 3]) -> ReadJob {
        (STEM.into(), files.map(|f| f.map(|f| Box::from(&**f))))
    }

    /// Files are read relative to the directory (through a symlink too,
    /// as a key file may be one), a `.private` readable by every user is
    /// counted once per scan, and a file that is gone, or is not text,
    /// reads as the errors the key directory sorts them into.
    #[test]
    fn key_files_are_read_relative_to_their_directory() {
        let tmp = tempfile::tempdir().expect("tmp");
        let key = copy_fixture(tmp.path(), "key", 0o644);
        let private = copy_fixture(tmp.path(), "private", 0o644);
        let linked: Arc<str> = "Klinked.test.+013+01567.key".into();
        std::os::unix::fs::symlink(&*key, tmp.path().join(&*linked)).expect("symlink");
        let gone: Arc<str> = "Kgone.test.+013+00001.key".into();
        let binary: Arc<str> = "Kbinary.test.+013+00002.state".into();
        fs::write(tmp.path().join(&*binary), [0xff, 0xfe, 0x00]).expect("write");

        let dir: Arc<Path> = Arc::from(tmp.path());
        let mut reader = KeyFileReader::open(Arc::clone(&dir));
        let jobs = [
            job([Some(&key), Some(&private), None]),
            job([Some(&linked), None, None]),
            job([Some(&gone), None, Some(&binary)]),
        ];
        let read = reader.read(&jobs);
        assert!(matches!(read[0][0], Some(Content::Key(_))), "{:?}", read[0]);
        assert!(
            matches!(read[0][1], Some(Content::Private(_))),
            "{:?}",
            read[0]
        );
        assert!(read[0][2].is_none());
        assert!(matches!(read[1][0], Some(Content::Key(_))), "{:?}", read[1]);
        assert!(
            matches!(&read[2][0], Some(Content::Bad { message, .. }) if message.contains("No such file")),
            "{:?}",
            read[2]
        );
        assert!(
            matches!(&read[2][2], Some(Content::Unreadable(m)) if m.contains("UTF-8")),
            "{:?}",
            read[2]
        );
        assert_eq!(reader.exposed.count, 1);
        assert_eq!(
            reader.exposed.example.as_deref(),
            Some(tmp.path().join(&*private).as_path())
        );

        // Private again: nothing exposed. A directory gone, or a file where
        // the directory was: each file is opened by its path, and fails.
        fs::set_permissions(
            tmp.path().join(&*private),
            fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
        let mut reader = KeyFileReader::open(dir);
        let read = reader.read(&jobs[..1]);
        assert!(matches!(read[0][1], Some(Content::Private(_))));
        assert_eq!(reader.exposed.count, 0);
        let read = KeyFileReader::open(Arc::from(tmp.path().join("gone"))).read(&jobs[..1]);
        assert!(
            matches!(&read[0][0], Some(Content::Bad { .. })),
            "{:?}",
            read[0]
        );
        let read = KeyFileReader::open(Arc::from(tmp.path().join(&*key))).read(&jobs[..1]);
        assert!(
            matches!(&read[0][0], Some(Content::Unreadable(m)) if m.contains("Not a directory")),
            "{:?}",
            read[0]
        );
    }
}
