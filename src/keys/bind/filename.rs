//! BIND key file names: `K<zone>+<alg>+<tag>.{key,private,state}`
//! (lib/dns/dst_api.c `buildfilename`), e.g. `Kexample.net.+013+55648.key`;
//! the root zone's keys are `K.+008+20326.key`.

/// Which of a key's three files this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// `.key`: the DNSKEY and timing comments.
    Key,
    /// `.private`: private key and timing tags.
    Private,
    /// `.state`: `dnssec-policy` key states.
    State,
}

impl FileKind {
    /// The three kinds, in the order a key's files are listed.
    pub const ALL: [FileKind; 3] = [FileKind::Key, FileKind::Private, FileKind::State];

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            FileKind::Key => "key",
            FileKind::Private => "private",
            FileKind::State => "state",
        }
    }
}

/// A parsed key file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyFileName {
    /// `K<zone>+<alg>+<tag>`, lower-cased: the three files of a key share it.
    pub stem: String,
    /// The zone part as written in the file name (BIND filename text, with
    /// the trailing dot), lower-cased.
    pub zone_text: String,
    /// Algorithm number from the name.
    pub algorithm: u8,
    /// Key tag from the name.
    pub tag: u16,
    /// Which file.
    pub kind: FileKind,
}

/// The name BIND gives the file of `kind` of the key with `stem` (a
/// [`KeyFileName::stem`]): `K`, the stem's zone, algorithm and tag, the
/// extension. A file whose zone part has capitals is named otherwise.
pub fn spelled(stem: &str, kind: FileKind) -> String {
    let rest = stem.strip_prefix('k').unwrap_or(stem);
    let ext = kind.extension();
    let mut name = String::with_capacity(2 + rest.len() + ext.len());
    name.push('K');
    name.push_str(rest);
    name.push('.');
    name.push_str(ext);
    name
}

/// True when `file` is the name [`spelled`] gives, without building it.
pub fn is_spelled(file: &str, stem: &str, kind: FileKind) -> bool {
    let rest = stem.strip_prefix('k').unwrap_or(stem);
    file.strip_prefix('K')
        .and_then(|f| f.strip_prefix(rest))
        .and_then(|f| f.strip_prefix('.'))
        == Some(kind.extension())
}

/// The names, by kind, of a key's files that are not [`spelled`] from its
/// stem (capitals in the zone part): all a key's file names cost beyond
/// the stem. Kept by a key's `KeyFiles` and by the key directory's slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OddNames([Option<Box<str>>; 3]);

impl OddNames {
    /// Notes `file` as the name of the file of `kind` (kept only when it
    /// is not spelled from `stem`).
    pub fn set(&mut self, stem: &str, kind: FileKind, file: &str) {
        self.0[kind as usize] = (!is_spelled(file, stem, kind)).then(|| file.into());
    }

    /// Forgets the name of the file of `kind`.
    pub fn clear(&mut self, kind: FileKind) {
        self.0[kind as usize] = None;
    }

    /// The name of the file of `kind` (one the key has).
    pub fn name(&self, stem: &str, kind: FileKind) -> String {
        self.0[kind as usize]
            .as_deref()
            .map_or_else(|| spelled(stem, kind), str::to_string)
    }

    /// True when `file` is the name of the file of `kind`.
    pub fn is(&self, stem: &str, kind: FileKind, file: &str) -> bool {
        match self.0[kind as usize].as_deref() {
            Some(name) => name == file,
            None => is_spelled(file, stem, kind),
        }
    }

    /// True when every name is spelled from the stem.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// Parses a directory entry name; `None` for anything that is not exactly a
/// key file (including BIND's temporary files, which carry a random suffix).
pub fn parse(file_name: &str) -> Option<KeyFileName> {
    let (stem, ext) = file_name.rsplit_once('.')?;
    let kind = match ext {
        "key" => FileKind::Key,
        "private" => FileKind::Private,
        "state" => FileKind::State,
        _ => return None,
    };
    let rest = stem.strip_prefix('K')?;
    let (rest, tag) = rest.rsplit_once('+')?;
    let (zone, alg) = rest.rsplit_once('+')?;
    if alg.len() != 3 || tag.len() != 5 || !zone.ends_with('.') {
        return None;
    }
    if !alg.bytes().all(|b| b.is_ascii_digit()) || !tag.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(KeyFileName {
        stem: stem.to_ascii_lowercase(),
        zone_text: zone.to_ascii_lowercase(),
        algorithm: alg.parse().ok()?,
        tag: tag.parse().ok()?,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bind_names() {
        let name = parse("Kexample.net.+013+55648.key").expect("key file");
        assert_eq!(name.zone_text, "example.net.");
        assert_eq!(
            (name.algorithm, name.tag, name.kind),
            (13, 55648, FileKind::Key)
        );
        assert_eq!(name.stem, "kexample.net.+013+55648");
        assert_eq!(
            spelled(&name.stem, FileKind::Key),
            "Kexample.net.+013+55648.key"
        );
        assert!(is_spelled(
            "Kexample.net.+013+55648.key",
            &name.stem,
            FileKind::Key
        ));
        assert!(!is_spelled(
            "Kexample.net.+013+55648.private",
            &name.stem,
            FileKind::Key
        ));
        assert!(!is_spelled(
            "KExample.net.+013+55648.key",
            &name.stem,
            FileKind::Key
        ));
        let root = parse("K.+008+20326.private").expect("root key");
        assert_eq!(root.zone_text, ".");
        assert_eq!(root.kind, FileKind::Private);
        assert_eq!(spelled(&root.stem, FileKind::State), "K.+008+20326.state");
        let capitals = parse("KExample.NET.+013+55648.key").expect("key file");
        assert_eq!(capitals.stem, "kexample.net.+013+55648");
        assert_eq!(
            parse("Kexample.net.+013+01234.state").map(|n| n.tag),
            Some(1234)
        );
    }

    #[test]
    fn ignores_other_files() {
        for other in [
            "Kexample.net.+013+55648.key.tmp",
            "Kexample.net.+013+55648.keyXyz12",
            "example.net.zone",
            "Kexample.net+013+55648.key",
            "Kexample.net.+13+55648.key",
            "Kexample.net.+013+5564.key",
            ".Kexample.net.+013+55648.key",
            "dsset-example.net.",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }
}
