//! `.private` files (lib/dns/dst_parse.c): a version line, the algorithm,
//! the key fields in base64, and (format v1.3 and later) timing tags.
//!
//! ```text
//! Private-key-format: v1.3
//! Algorithm: 13 (ECDSAP256SHA256)
//! PrivateKey: GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=
//! Created: 20250101000000
//! ```
//! Unknown tags are skipped (a newer minor version may add some); a major
//! version above 1 is rejected, as BIND does.

use std::fmt;

use data_encoding::BASE64;

use super::{
    ParseError,
    timestamp::{self, TimestampError},
};
use crate::{
    dnssec::Algorithm,
    dnssec::PrivateMaterial,
    keys::{Timing, TimingEvent},
};

/// What is wrong in a `.private` file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivateKeyFileError {
    /// A line that is not `Tag: value`.
    #[error("expected `Tag: value` (the line is not shown: it may hold key material)")]
    NotTagValue,
    /// The first line is not `Private-key-format:`.
    #[error("the file must start with `Private-key-format: v1.x`")]
    NoFormatLine,
    /// The `Private-key-format:` value.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// `Algorithm:` without a number.
    #[error("Algorithm: {value:?} is not a number")]
    AlgorithmNotANumber {
        /// The value.
        value: String,
    },
    /// A key field that is not base64.
    #[error("{tag}: not base64: {source}")]
    NotBase64 {
        /// The field (`PrivateKey`, `Modulus`...).
        tag: String,
        /// Where decoding stopped.
        source: data_encoding::DecodeError,
    },
    /// Nothing in the file.
    #[error("empty .private file")]
    Empty,
    /// No `Algorithm:` line.
    #[error("no Algorithm: line (truncated file?)")]
    NoAlgorithm,
    /// A timing tag whose value is not a BIND timestamp.
    #[error("{tag}: {source}")]
    Timestamp {
        /// The tag (`Publish`, `SyncPublish`...).
        tag: &'static str,
        /// Why the value was refused.
        source: TimestampError,
    },
    /// The key fields do not make a key of the algorithm.
    #[error(transparent)]
    Material(#[from] MaterialError),
}

/// Why a `Private-key-format:` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// No leading `v`.
    #[error("format {value:?} does not start with 'v'")]
    NoV {
        /// The value.
        value: String,
    },
    /// No dot between the versions.
    #[error("format {value:?} is not vMAJOR.MINOR")]
    NotMajorMinor {
        /// The value.
        value: String,
    },
    /// The major version is not a number.
    #[error("format {value:?}: bad major version")]
    BadMajor {
        /// The value.
        value: String,
    },
    /// The minor version is not a number.
    #[error("format {value:?}: bad minor version")]
    BadMinor {
        /// The value.
        value: String,
    },
    /// A major version other than 1 (BIND refuses those too).
    #[error("private key format v{major}.{minor} is not supported (only v1.x, as BIND)")]
    Unsupported {
        /// The major version.
        major: u8,
        /// The minor version.
        minor: u8,
    },
}

/// Why the key fields of a `.private` file are not a usable key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaterialError {
    /// An algorithm number signalbox does not know.
    #[error("unsupported algorithm {algorithm}")]
    UnsupportedAlgorithm {
        /// The number from `Algorithm:`.
        algorithm: u8,
    },
    /// RSA fields absent or empty.
    #[error("RSA fields missing: {} (truncated file?)", missing.join(", "))]
    RsaFieldsMissing {
        /// The fields, in file order.
        missing: Vec<&'static str>,
    },
    /// No `PrivateKey:` for an ECDSA or EdDSA key.
    #[error("no PrivateKey: field for {algorithm} (truncated file?)")]
    NoPrivateKey {
        /// The key's algorithm.
        algorithm: Algorithm,
    },
    /// A `PrivateKey:` of the wrong size.
    #[error("PrivateKey: {octets} octets, {algorithm} needs {needs} (truncated file?)")]
    PrivateKeyLength {
        /// Octets found.
        octets: usize,
        /// The key's algorithm.
        algorithm: Algorithm,
        /// Octets the algorithm needs.
        needs: usize,
    },
}

/// Timing tags a `.private` file may carry (format v1.3+).
const TIMING_TAGS: [(&str, TimingEvent); 10] = [
    ("Created", TimingEvent::Created),
    ("Publish", TimingEvent::Publish),
    ("Activate", TimingEvent::Activate),
    ("Revoke", TimingEvent::Revoke),
    ("Inactive", TimingEvent::Inactive),
    ("Delete", TimingEvent::Delete),
    ("DSPublish", TimingEvent::DsPublish),
    ("DSDelete", TimingEvent::DsDelete),
    ("SyncPublish", TimingEvent::SyncPublish),
    ("SyncDelete", TimingEvent::SyncDelete),
];

const RSA_FIELDS: [&str; 8] = [
    "Modulus",
    "PublicExponent",
    "PrivateExponent",
    "Prime1",
    "Prime2",
    "Exponent1",
    "Exponent2",
    "Coefficient",
];

/// The content of a `.private` file.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyFile {
    /// `Private-key-format: vMAJOR.MINOR`.
    pub format: (u8, u8),
    /// The algorithm number.
    pub algorithm: u8,
    /// The key material.
    pub material: PrivateMaterial,
    /// Timing tags (only read for format v1.3 and later, as BIND does).
    pub timing: Timing,
}

impl fmt::Debug for PrivateKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKeyFile")
            .field("format", &self.format)
            .field("algorithm", &self.algorithm)
            .field("material", &self.material)
            .field("timing", &self.timing)
            .finish()
    }
}

/// Parses the text of a `.private` file.
pub fn parse(text: &str) -> Result<PrivateKeyFile, ParseError<PrivateKeyFileError>> {
    let mut format = None;
    let mut algorithm: Option<(usize, u8)> = None;
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    let mut hsm = false;
    let mut external = false;
    let mut timing_lines: Vec<(usize, TimingEvent, &str)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let Some((tag, value)) = line.split_once(':') else {
            return Err(ParseError::new(line_no, PrivateKeyFileError::NotTagValue));
        };
        let (tag, value) = (tag.trim(), value.trim());
        if format.is_none() {
            if tag != "Private-key-format" {
                return Err(ParseError::new(line_no, PrivateKeyFileError::NoFormatLine));
            }
            format = Some(parse_format(value).map_err(|why| ParseError::new(line_no, why))?);
            continue;
        }
        match tag {
            "Algorithm" => {
                let number = value.split_whitespace().next().unwrap_or("");
                let number = number.parse::<u8>().map_err(|_| {
                    ParseError::new(
                        line_no,
                        PrivateKeyFileError::AlgorithmNotANumber {
                            value: value.to_string(),
                        },
                    )
                })?;
                algorithm = Some((line_no, number));
            }
            "Engine" | "Label" => hsm = true,
            "External" => external = true,
            _ => {
                if let Some((_, event)) = TIMING_TAGS.iter().find(|(t, _)| *t == tag) {
                    timing_lines.push((line_no, *event, value));
                } else if tag == "PrivateKey" || RSA_FIELDS.contains(&tag) {
                    let bytes =
                        BASE64
                            .decode(value.replace(' ', "").as_bytes())
                            .map_err(|source| {
                                ParseError::new(
                                    line_no,
                                    PrivateKeyFileError::NotBase64 {
                                        tag: tag.to_string(),
                                        source,
                                    },
                                )
                            })?;
                    fields.push((tag.to_string(), bytes));
                }
                // Anything else (Predecessor, MaxTTL, tags of newer
                // versions...) is metadata we do not need: skipped.
            }
        }
    }
    let format = format.ok_or_else(|| ParseError::new(0, PrivateKeyFileError::Empty))?;
    let (alg_line, algorithm) =
        algorithm.ok_or_else(|| ParseError::new(0, PrivateKeyFileError::NoAlgorithm))?;
    let mut timing = Timing::default();
    if format >= (1, 3) {
        for (line_no, event, value) in timing_lines {
            let when = timestamp::parse_value(value).map_err(|source| {
                ParseError::new(
                    line_no,
                    PrivateKeyFileError::Timestamp {
                        tag: event.key_file_tag(),
                        source,
                    },
                )
            })?;
            timing.set(event, Some(when));
        }
    }
    let material = if hsm {
        PrivateMaterial::Hsm
    } else if external {
        PrivateMaterial::External
    } else {
        check_fields(algorithm, &mut fields).map_err(|why| ParseError::new(alg_line, why))?;
        PrivateMaterial::Fields(fields)
    };
    Ok(PrivateKeyFile {
        format,
        algorithm,
        material,
        timing,
    })
}

fn parse_format(value: &str) -> Result<(u8, u8), FormatError> {
    let text = || value.to_string();
    let version = value
        .strip_prefix('v')
        .ok_or_else(|| FormatError::NoV { value: text() })?;
    let (major, minor) = version
        .split_once('.')
        .ok_or_else(|| FormatError::NotMajorMinor { value: text() })?;
    let major: u8 = major
        .parse()
        .map_err(|_| FormatError::BadMajor { value: text() })?;
    let minor: u8 = minor
        .parse()
        .map_err(|_| FormatError::BadMinor { value: text() })?;
    if major != 1 {
        return Err(FormatError::Unsupported { major, minor });
    }
    Ok((major, minor))
}

/// Checks that the fields an algorithm needs are present with sane sizes (a
/// truncated file must not pass as a key), and left-pads ECDSA scalars: BIND
/// writes them as big numbers, so a scalar with leading zero octets is shorter
/// (one key in 256 has a 31-octet P-256 `PrivateKey:`).
fn check_fields(algorithm: u8, fields: &mut [(String, Vec<u8>)]) -> Result<(), MaterialError> {
    let alg = Algorithm::from_number(algorithm)
        .ok_or(MaterialError::UnsupportedAlgorithm { algorithm })?;
    let private_key = fields
        .iter_mut()
        .find(|(n, _)| n == "PrivateKey")
        .map(|(_, v)| v);
    let (len, big_number) = match alg {
        Algorithm::EcdsaP256Sha256 => (32, true),
        Algorithm::EcdsaP384Sha384 => (48, true),
        Algorithm::Ed25519 => (32, false),
        Algorithm::Ed448 => (57, false),
        _ => {
            let missing: Vec<&'static str> = RSA_FIELDS
                .iter()
                .copied()
                .filter(|f| {
                    fields
                        .iter()
                        .find(|(n, _)| n == f)
                        .is_none_or(|(_, v)| v.is_empty())
                })
                .collect();
            return if missing.is_empty() {
                Ok(())
            } else {
                Err(MaterialError::RsaFieldsMissing { missing })
            };
        }
    };
    match private_key {
        None => Err(MaterialError::NoPrivateKey { algorithm: alg }),
        Some(v) if v.len() == len => Ok(()),
        Some(v) if big_number && !v.is_empty() && v.len() < len => {
            let mut padded = vec![0u8; len - v.len()];
            padded.extend_from_slice(v);
            *v = padded;
            Ok(())
        }
        Some(v) => Err(MaterialError::PrivateKeyLength {
            octets: v.len(),
            algorithm: alg,
            needs: len,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256: &str = "\
Private-key-format: v1.3
Algorithm: 13 (ECDSAP256SHA256)
PrivateKey: GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=
Created: 20250101000000
Publish: 20250101000000
Activate: 20250101000000
SyncPublish: 20250102000000
Lifetime: 0
SomeFutureTag: whatever
";

    #[test]
    fn parses_v13() {
        let file = parse(P256).expect("valid");
        assert_eq!(file.format, (1, 3));
        assert_eq!(file.algorithm, 13);
        assert_eq!(file.material.field("PrivateKey").map(<[u8]>::len), Some(32));
        assert!(file.timing.get(TimingEvent::SyncPublish).is_some());
        assert!(
            !format!("{file:?}").contains("GU6S"),
            "debug output leaks the key"
        );
    }

    #[test]
    fn v12_has_no_metadata() {
        let file = parse(&P256.replace("v1.3", "v1.2")).expect("valid");
        assert_eq!(file.format, (1, 2));
        assert!(file.timing.is_empty());
    }

    #[test]
    fn rejects_truncated_and_unknown() {
        // Cut inside the key: bad base64 on line 3.
        let err = parse(&P256[..70]).expect_err("truncated key");
        assert_eq!(err.line, 3, "{err}");
        assert!(matches!(err.kind, PrivateKeyFileError::NotBase64 { .. }));
        // Cut after the algorithm line: the key is missing.
        let cut = P256.find("PrivateKey").expect("present");
        let err = parse(&P256[..cut]).expect_err("truncated file");
        assert_eq!(
            err.to_string(),
            "line 2: no PrivateKey: field for 13 (ECDSAP256SHA256) (truncated file?)"
        );
        let err = parse(&P256.replace("v1.3", "v2.0")).expect_err("v2");
        assert_eq!(err.line, 1);
        assert_eq!(
            err.kind,
            PrivateKeyFileError::Format(FormatError::Unsupported { major: 2, minor: 0 })
        );
        let err = parse(&P256.replace("Algorithm: 13", "Algorithm: 99")).expect_err("alg 99");
        assert_eq!(err.to_string(), "line 2: unsupported algorithm 99");
        let err = parse(&P256.replace("Publish: 2025", "Publish: x025")).expect_err("bad time");
        assert_eq!(err.line, 5);
        assert!(matches!(
            err.kind,
            PrivateKeyFileError::Timestamp { tag: "Publish", .. }
        ));
        assert!(parse("Algorithm: 13\n").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn a_mangled_line_is_refused_without_showing_it() {
        let text = "Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=\n";
        let error = parse(text).expect_err("no colon");
        assert_eq!(error.line, 3);
        assert!(!error.to_string().contains("ODIy"), "{error}");
        assert!(!format!("{error:?}").contains("ODIy"), "{error:?}");
    }

    #[test]
    fn short_ecdsa_scalars_are_padded() {
        // 31 octets: BIND drops the scalar's leading zero octet.
        let short = P256.replace(
            "GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=",
            &BASE64.encode(&[7u8; 31]),
        );
        let file = parse(&short).expect("valid");
        let key = file.material.field("PrivateKey").expect("key");
        assert_eq!(key.len(), 32);
        assert_eq!((key[0], key[1]), (0, 7));
        // Ed25519 seeds are fixed-size: a short one is truncated.
        let ed = short.replace("Algorithm: 13 (ECDSAP256SHA256)", "Algorithm: 15 (ED25519)");
        assert!(matches!(
            parse(&ed).map_err(|e| e.kind),
            Err(PrivateKeyFileError::Material(
                MaterialError::PrivateKeyLength {
                    octets: 31,
                    needs: 32,
                    ..
                }
            ))
        ));
    }

    #[test]
    fn hsm_and_external() {
        let hsm = "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\nEngine: pkcs11\nLabel: pkcs11:object=x\n";
        assert_eq!(parse(hsm).expect("valid").material, PrivateMaterial::Hsm);
        let ext = "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\nExternal:\n";
        assert_eq!(
            parse(ext).expect("valid").material,
            PrivateMaterial::External
        );
    }
}
