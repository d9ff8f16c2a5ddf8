//! Listing a key directory: one `readdir` (POSIX `readdir(3)`) and one
//! `stat` per BIND key file, giving each file's stamp (size, mtime, ctime,
//! inode).
//!
//! Only "not found" means a file is gone. Every other failure (the
//! directory cannot be opened or is not a directory any more, `readdir`
//! fails part-way, a `stat` fails with EIO, ESTALE, ELOOP...) makes the
//! listing fail as a whole: a partial listing is not a deletion
//! (docs/ARCHITECTURE.md, "Rules of the house"), so the caller keeps what
//! it knew and holds the directory's zones. The directory's identity
//! (device and inode) is taken before and after a listing; a directory
//! replaced while it was read (a remount, a rename) fails the listing too.

use std::{
    fs, io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use crate::{
    dns::wire,
    keys::bind::{self, KeyFileName},
};

/// Why a key directory could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The directory cannot be looked up or opened (gone, unmounted,
    /// permission denied).
    #[error("{0}")]
    Open(io::Error),
    /// The path names something that is not a directory.
    #[error("not a directory")]
    NotADirectory,
    /// `readdir` failed after returning some entries.
    #[error("reading the directory failed part-way: {0}")]
    Entry(io::Error),
    /// A key file's `stat` failed for a reason other than "not found".
    #[error("cannot stat {}: {source}", file.display())]
    Stat {
        /// The file.
        file: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The path named another directory after the listing than before.
    #[error("the directory was replaced while it was read")]
    Replaced,
}

impl ListError {
    /// What kind of failure this is, without the file it concerns: a hold
    /// is logged again only when this changes, not once per file or scan.
    pub(super) fn cause(&self) -> (u8, Option<io::ErrorKind>) {
        match self {
            ListError::Open(e) => (0, Some(e.kind())),
            ListError::NotADirectory => (1, None),
            ListError::Entry(e) => (2, Some(e.kind())),
            ListError::Stat { source, .. } => (3, Some(source.kind())),
            ListError::Replaced => (4, None),
        }
    }
}

/// What identifies a file between two looks at it: size, inode and the
/// two times in nanoseconds (32 octets: one per key file, a million of
/// them). A time beyond what 64-bit nanoseconds hold (past 2262) is
/// clamped; the ctime of a rewritten file is the kernel's "now", so a change
/// is still seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    len: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
}

/// The seconds a count of nanoseconds holds (about 292 years either side
/// of 1970), so that clamped times survive the key cache's encoding as
/// seconds and nanoseconds unchanged.
const MAX_SECS: i64 = i64::MAX / 1_000_000_000 - 1;

/// Seconds and nanoseconds as one count of nanoseconds, the seconds clamped
/// to [`MAX_SECS`] either way.
fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.clamp(-MAX_SECS, MAX_SECS) * 1_000_000_000 + nsec.clamp(0, 999_999_999)
}

impl Stamp {
    /// A stamp no file has (its times are beyond what [`nanos`] gives): a
    /// file given it reads as changed at the next look.
    pub(super) const FORGOTTEN: Stamp = Stamp {
        len: u64::MAX,
        mtime_ns: i64::MIN,
        ctime_ns: i64::MIN,
        ino: 0,
    };

    fn of(meta: &fs::Metadata) -> Self {
        Stamp {
            len: meta.len(),
            mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }

    /// The stamp of a `stat` result.
    fn of_stat(st: &rustix::fs::Stat) -> Self {
        Stamp {
            len: st.st_size as u64,
            mtime_ns: nanos(st.st_mtime, st.st_mtime_nsec as i64),
            ctime_ns: nanos(st.st_ctime, st.st_ctime_nsec as i64),
            ino: st.st_ino,
        }
    }

    /// Octets of [`Self::encode_into`].
    pub(super) const ENCODED_LEN: usize = 48;

    /// Appends the stamp's fixed-size encoding (the key cache's: size,
    /// mtime and ctime as seconds and nanoseconds each, inode).
    pub(super) fn encode_into(&self, out: &mut Vec<u8>) {
        let split = |ns: i64| {
            (
                ns.div_euclid(1_000_000_000) as u64,
                ns.rem_euclid(1_000_000_000) as u64,
            )
        };
        let (mtime, mtime_nsec) = split(self.mtime_ns);
        let (ctime, ctime_nsec) = split(self.ctime_ns);
        for value in [self.len, mtime, mtime_nsec, ctime, ctime_nsec, self.ino] {
            wire::put_u64(out, value);
        }
    }

    /// Reads an encoding made by [`Self::encode_into`].
    pub(super) fn decode(data: &[u8]) -> Option<Self> {
        let at = |i: usize| wire::u64_at(data, i * 8);
        Some(Stamp {
            len: at(0)?,
            mtime_ns: nanos(at(1)? as i64, at(2)? as i64),
            ctime_ns: nanos(at(3)? as i64, at(4)? as i64),
            ino: at(5)?,
        })
    }
}

/// A directory's device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DirId(u64, u64);

impl DirId {
    /// Device and inode, as the key cache records them.
    pub(super) fn parts(self) -> (u64, u64) {
        (self.0, self.1)
    }
}

/// One key file found by a listing.
#[derive(Debug)]
pub(super) struct Listed {
    /// The entry's name.
    pub(super) file: String,
    /// The name parsed.
    pub(super) name: KeyFileName,
    /// Its stamp.
    pub(super) stamp: Stamp,
}

/// The identity of the directory at `path` (symlinks followed).
pub(super) fn identity(path: &Path) -> Result<DirId, ListError> {
    let meta = fs::metadata(path).map_err(ListError::Open)?;
    if !meta.is_dir() {
        return Err(ListError::NotADirectory);
    }
    Ok(DirId(meta.dev(), meta.ino()))
}

/// The key files of the directory at `path`, one `stat` each: the names
/// are read first (`readdir`), then stat'ed relative to the directory's
/// file descriptor on many threads (`cores::map_blocking`: a million
/// files on a warm start's first round, not all in the inode cache). An item is an error when `readdir` or a `stat` fails (not found
/// is a file that vanished: skipped). Names that are not key files, and
/// entries that are not regular files (after following a symlink), are
/// skipped.
pub(super) fn entries(path: &Path) -> Result<Entries, ListError> {
    let dir = fs::File::open(path).map_err(ListError::Open)?;
    let mut names = Vec::new();
    for entry in fs::read_dir(path).map_err(ListError::Open)? {
        match entry {
            Ok(entry) => {
                if let Ok(file) = entry.file_name().into_string() {
                    names.push(file);
                }
            }
            Err(e) => return Ok(vec![Err(ListError::Entry(e))]),
        }
    }
    let stat = |file: &String| -> Option<Result<Listed, ListError>> {
        let name = bind::filename::parse(file)?;
        // Follows a symlink, as a key file may be one.
        match rustix::fs::statat(&dir, file.as_str(), rustix::fs::AtFlags::empty()) {
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() => {
                Some(Ok(Listed {
                    file: file.clone(),
                    name,
                    stamp: Stamp::of_stat(&st),
                }))
            }
            Ok(_) | Err(rustix::io::Errno::NOENT) => None,
            Err(e) => Some(Err(ListError::Stat {
                file: path.join(file),
                source: e.into(),
            })),
        }
    };
    let failed = |file: &String| {
        Some(Err(ListError::Stat {
            file: path.join(file),
            source: io::Error::other("stat failed (internal error)"),
        }))
    };
    let listed = crate::cores::map_blocking(&names, 4096, stat, failed);
    Ok(listed.into_iter().flatten().collect())
}

/// What [`entries`] read: one item per key file, or the error that cut the
/// listing short.
pub(super) type Entries = Vec<Result<Listed, ListError>>;

/// The stamp of one file, `None` when it is not there (or not a regular
/// file); any other failure is an error.
pub(super) fn stat(path: &Path) -> Result<Option<Stamp>, ListError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some(Stamp::of(&meta))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ListError::Stat {
            file: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Times as far from 1970 as a file system allows (before 1677, after
    /// 2262) are clamped, and a clamped stamp reads back equal from the key
    /// cache's encoding: such a file is not read again on every warm start.
    #[test]
    fn stamps_survive_the_cache_encoding_even_when_clamped() {
        let cases = [
            (0, 0),
            (1_800_000_000, 123_456_789),
            (-1, 999_999_999),
            (i64::MIN, 5),
            (i64::MAX, 999_999_999),
            (MAX_SECS + 1, 0),
        ];
        for (secs, nsec) in cases {
            let mut raw = Vec::new();
            for value in [42, secs as u64, nsec as u64, secs as u64, nsec as u64, 7] {
                wire::put_u64(&mut raw, value);
            }
            let stamp = Stamp::decode(&raw).expect("48 octets");
            let mut encoded = Vec::new();
            stamp.encode_into(&mut encoded);
            assert_eq!(encoded.len(), Stamp::ENCODED_LEN);
            assert_eq!(Stamp::decode(&encoded), Some(stamp), "{secs} s {nsec} ns");
        }
        assert_ne!(nanos(1, 0), nanos(0, 999_999_999));
    }
}
