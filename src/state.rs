//! signalbox's own state directory: per served zone its serial high-water
//! mark (`zones/<apex>.toml`), saved signed zone and IXFR journal, and the
//! parent agent's ledgers (docs/ARCHITECTURE.md, "State on disk"). Every
//! file is written atomically: a temporary file in the same directory, fsync,
//! rename over the old file, fsync of the directory, so a crash leaves either
//! the old or the new file, never half of one.
//!
//! Files holding secrets that signalbox only reads (TSIG key files, BIND
//! `.private` files) are checked with [`readable_by_others`].

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use hickory_proto::rr::Name;

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// File system error.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file exists but does not parse.
    #[error("state file {path}: {}", .source.message())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        source: toml::de::Error,
    },
    /// A binary state file (saved zone, journal) fails its checksum or does
    /// not parse: written by something else, or damaged on disk.
    #[error("state file {path} is damaged ({what})")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The state cannot be written as TOML.
    #[error("state file {path}: {source}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// What the TOML writer said.
        source: toml::ser::Error,
    },
}

/// What signalbox remembers about one served zone: the serial high-water
/// mark, written (and fsynced) before a version with that serial is served,
/// so a restart never serves a lower or reused serial (RFC 1982 §3.1,
/// RFC 1995 §2: a secondary ignores a serial that is not newer).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneState {
    /// The last serial served.
    pub serial: u32,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Opens (creating if needed) the state directory.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let zones = path.join("zones");
        let keys = path.join("keys");
        for dir in [&zones, &keys] {
            fs::create_dir_all(dir).map_err(|source| StateError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        }
        // Temporary files of writes a crash interrupted: the real files are
        // intact (rename is atomic), these are just litter.
        for dir in [path, zones.as_path(), keys.as_path()] {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.contains(".tmp") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(StateDir {
            path: path.to_path_buf(),
        })
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn zone_file(&self, apex: &Name) -> PathBuf {
        let mut name = crate::dns::name::display(apex);
        name = name.replace('/', "%2F");
        self.path.join("zones").join(format!("{name}toml"))
    }

    /// Where a zone's IXFR journal is saved.
    pub fn journal_path(&self, apex: &Name) -> PathBuf {
        self.zone_file(apex).with_extension("journal")
    }

    /// Where the changes since a zone's saved image are logged
    /// (`zone::changes`).
    pub fn changes_path(&self, apex: &Name) -> PathBuf {
        self.zone_file(apex).with_extension("changes")
    }

    /// Where the key cache of the key directory `dir` is saved
    /// (`keys::dir::cache`): named by a hash of the path, which the file
    /// repeats inside.
    pub fn key_cache_path(&self, dir: &Path) -> PathBuf {
        let digest =
            ring::digest::digest(&ring::digest::SHA256, dir.as_os_str().as_encoded_bytes());
        let name: String = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.path.join("keys").join(format!("{name}.cache"))
    }

    /// Where a zone's signed data is saved.
    pub fn zone_store_path(&self, apex: &Name) -> PathBuf {
        self.zone_file(apex).with_extension("zone")
    }

    /// The saved state of a zone, if any.
    pub fn load_zone(&self, apex: &Name) -> Result<Option<ZoneState>, StateError> {
        let path = self.zone_file(apex);
        match fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .map_err(|source| StateError::Corrupt { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// Saves a zone's state atomically.
    pub fn save_zone(&self, apex: &Name, state: &ZoneState) -> Result<(), StateError> {
        let path = self.zone_file(apex);
        let text = toml::to_string(state).map_err(|source| StateError::Encode {
            path: path.clone(),
            source,
        })?;
        write_atomically(&path, text.as_bytes())
    }
}

/// Writes `data` to `path` so that readers (and a crash) see the old or the
/// new content, never a mix. A failed write (a full disk) removes its
/// temporary file, so retries do not fill the directory further.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<(), StateError> {
    write_atomically_with(path, |file| file.write_all(data))
}

/// [`write_atomically`] for data written as it is made: `write` fills the
/// temporary file, which replaces `path` only once it succeeded.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> Result<(), StateError> {
    let io_err = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let written = fs::File::create(&tmp)
        .and_then(|mut file| {
            write(&mut file)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse_name;

    #[test]
    fn zone_state_round_trip() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = StateDir::open(&tmp.path().join("state")).expect("open");
        let apex = parse_name("_signal.ns1.example.net.").expect("valid");
        assert_eq!(dir.load_zone(&apex).expect("load"), None);
        dir.save_zone(&apex, &ZoneState { serial: 7 })
            .expect("save");
        assert_eq!(
            dir.load_zone(&apex).expect("load"),
            Some(ZoneState { serial: 7 })
        );
        let leftovers: Vec<_> = fs::read_dir(tmp.path().join("state/zones"))
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
        fs::write(dir.zone_file(&apex), "serial = \"x\"").expect("write");
        assert!(matches!(
            dir.load_zone(&apex),
            Err(StateError::Corrupt { .. })
        ));
    }
}

/// The lines of a small text state file that are neither empty nor `#`
/// comments, with their numbers: none when the file does not exist yet,
/// none (and a warning) when it cannot be read, so the caller starts empty.
pub fn text_lines(path: &Path) -> Vec<(usize, String)> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "state file unreadable; starting empty");
            return Vec::new();
        }
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

/// True when every user of the machine may read the file at `path` (mode
/// `o+r`): a TSIG secret or a DNSSEC private key there is not private. BIND's
/// `dnssec-keygen` and `tsig-keygen` write such files `0600`. `false` when the
/// file cannot be stat'ed (reading it reports that).
pub fn readable_by_others(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| mode_readable_by_others(&meta))
}

/// [`readable_by_others`] for metadata already at hand (an open file's).
pub fn mode_readable_by_others(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o004 != 0
}

#[cfg(test)]
mod permission_tests {
    use std::os::unix::fs::PermissionsExt;

    use super::readable_by_others;

    #[test]
    fn world_readable_files_are_told_apart() {
        let tmp = tempfile::tempdir().expect("tmp");
        let file = tmp.path().join("k.private");
        std::fs::write(&file, "secret").expect("write");
        for (mode, exposed) in [(0o644, true), (0o640, false), (0o600, false), (0o604, true)] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod");
            assert_eq!(readable_by_others(&file), exposed, "{mode:o}");
        }
        assert!(!readable_by_others(&tmp.path().join("missing")));
    }
}
