//! `.key` files: one DNSKEY line plus `; Tag: YYYYMMDDHHMMSS (ctime)` comments
//! (lib/dns/dst_api.c `write_public_key`).
//!
//! ```text
//! ; This is a key-signing key, keyid 55648, for example.net.
//! ; Created: 20250101000000 (Wed Jan  1 00:00:00 2025)
//! ; Publish: 20250101000000 (Wed Jan  1 00:00:00 2025)
//! example.net. 3600 IN DNSKEY 257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edb krSq...
//! ```
//! The TTL and class are optional; the base64 key may be split by spaces.

use hickory_proto::rr::Name;

use super::{
    ParseError,
    timestamp::{self, TimestampError},
};
use crate::{
    dns::{Dnskey, NameError, RdataError, parse_name},
    keys::{Timing, TimingEvent},
};

/// What is wrong in a `.key` file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyFileError {
    /// A timing comment whose value is not a BIND timestamp.
    #[error("{tag}: {source}")]
    Timestamp {
        /// The tag (`Publish`, `SyncPublish`...).
        tag: String,
        /// Why the value was refused.
        source: TimestampError,
    },
    /// A master-file directive (`$TTL`, `$INCLUDE`...).
    #[error("unexpected directive {line:?} in a key file")]
    Directive {
        /// The line.
        line: String,
    },
    /// More than one record.
    #[error("a second record (the first is on line {first}); a .key file holds one DNSKEY")]
    SecondRecord {
        /// The line of the first record.
        first: usize,
    },
    /// Only comments.
    #[error("no DNSKEY record in the file")]
    NoRecord,
    /// A record line with nothing but parentheses.
    #[error("empty record line")]
    EmptyRecord,
    /// The owner is not a domain name.
    #[error(transparent)]
    Owner(#[from] NameError),
    /// A TTL beyond 32 bits.
    #[error("TTL {token:?} out of range")]
    Ttl {
        /// The TTL as written.
        token: String,
    },
    /// A KEY record (RFC 2535), which is never a zone key.
    #[error("a KEY record, not a DNSKEY: not a zone key")]
    KeyRecord,
    /// Another record type.
    #[error("record type {rtype:?} where DNSKEY was expected")]
    WrongType {
        /// The type as written.
        rtype: String,
    },
    /// Owner and TTL/class but no type.
    #[error("no record type (expected DNSKEY)")]
    NoType,
    /// The DNSKEY RDATA does not parse.
    #[error(transparent)]
    Rdata(#[from] RdataError),
    /// A DNSKEY protocol other than 3 (RFC 4034 §2.1.2).
    #[error("protocol {protocol} (must be 3)")]
    Protocol {
        /// The protocol field.
        protocol: u8,
    },
    /// No Zone Key flag (RFC 4034 §2.1.1): not for signing zones.
    #[error("flags {flags} lack the Zone Key bit: not a zone key")]
    NotZoneKey {
        /// The flags field.
        flags: u16,
    },
}

/// The content of a `.key` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyFile {
    /// DNSKEY owner, lower case.
    pub owner: Name,
    /// TTL written on the DNSKEY line.
    pub ttl: Option<u32>,
    /// The DNSKEY RDATA.
    pub dnskey: Dnskey,
    /// Timing from the comments.
    pub timing: Timing,
    /// True when the file carries BIND's metadata comments at all (`Created`
    /// is always written by BIND's tools); hand-made files may have none.
    pub has_metadata: bool,
}

/// Parses the text of a `.key` file.
pub fn parse(text: &str) -> Result<PublicKeyFile, ParseError<PublicKeyFileError>> {
    let mut timing = Timing::default();
    let mut has_metadata = false;
    let mut record: Option<(usize, &str)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix(';') {
            if let Some((tag, value)) = comment.trim().split_once(':') {
                let event = TimingEvent::IN_KEY_FILE
                    .into_iter()
                    .find(|e| e.key_file_tag() == tag.trim());
                if let Some(event) = event {
                    let when = timestamp::parse_value(value).map_err(|source| {
                        ParseError::new(
                            line_no,
                            PublicKeyFileError::Timestamp {
                                tag: tag.to_string(),
                                source,
                            },
                        )
                    })?;
                    timing.set(event, Some(when));
                    has_metadata = true;
                }
            }
            continue;
        }
        if line.starts_with('$') {
            return Err(ParseError::new(
                line_no,
                PublicKeyFileError::Directive {
                    line: line.to_string(),
                },
            ));
        }
        if let Some((first, _)) = record {
            return Err(ParseError::new(
                line_no,
                PublicKeyFileError::SecondRecord { first },
            ));
        }
        record = Some((line_no, raw));
    }
    let (line_no, raw) = record.ok_or_else(|| ParseError::new(0, PublicKeyFileError::NoRecord))?;
    let (owner, ttl, dnskey) = parse_record(raw).map_err(|why| ParseError::new(line_no, why))?;
    Ok(PublicKeyFile {
        owner,
        ttl,
        dnskey,
        timing,
        has_metadata,
    })
}

fn parse_record(line: &str) -> Result<(Name, Option<u32>, Dnskey), PublicKeyFileError> {
    // Strip a trailing comment; base64 never contains ';'.
    let line = line.split(';').next().unwrap_or("");
    let mut tokens = line
        .split_whitespace()
        .filter(|t| *t != "(" && *t != ")")
        .peekable();
    let owner_text = tokens.next().ok_or(PublicKeyFileError::EmptyRecord)?;
    let owner = parse_name(owner_text)?;
    let mut ttl = None;
    let mut rtype = None;
    for _ in 0..3 {
        let Some(token) = tokens.next() else { break };
        if token.eq_ignore_ascii_case("IN") {
            continue;
        }
        if token.bytes().all(|b| b.is_ascii_digit()) {
            ttl = Some(token.parse::<u32>().map_err(|_| PublicKeyFileError::Ttl {
                token: token.to_string(),
            })?);
            continue;
        }
        rtype = Some(token);
        break;
    }
    match rtype {
        Some(t) if t.eq_ignore_ascii_case("DNSKEY") => {}
        Some(t) if t.eq_ignore_ascii_case("KEY") => return Err(PublicKeyFileError::KeyRecord),
        Some(t) => {
            return Err(PublicKeyFileError::WrongType {
                rtype: t.to_string(),
            });
        }
        None => return Err(PublicKeyFileError::NoType),
    }
    let rdata: Vec<&str> = tokens.collect();
    let dnskey = Dnskey::from_text(&rdata.join(" "))?;
    if dnskey.protocol != 3 {
        return Err(PublicKeyFileError::Protocol {
            protocol: dnskey.protocol,
        });
    }
    if !dnskey.is_zone_key() {
        return Err(PublicKeyFileError::NotZoneKey {
            flags: dnskey.flags,
        });
    }
    Ok((owner, ttl, dnskey))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::name::display;

    const KEY: &str = "\
; This is a key-signing key, keyid 55648, for example.net.
; Created: 20250101000000 (Wed Jan  1 00:00:00 2025)
; Publish: 20250101000000 (Wed Jan  1 00:00:00 2025)
; Activate: 20250101000000 (Wed Jan  1 00:00:00 2025)
; SyncPublish: 20250102010500 (Thu Jan  2 01:05:00 2025)
example.net. 3600 IN DNSKEY 257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edb krSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==
";

    #[test]
    fn parses_bind_key_file() {
        let file = parse(KEY).expect("valid");
        assert_eq!(display(&file.owner), "example.net.");
        assert_eq!(file.ttl, Some(3600));
        assert_eq!(file.dnskey.flags, 257);
        assert_eq!(file.dnskey.public_key.len(), 64);
        assert!(file.has_metadata);
        assert_eq!(
            file.timing.get(TimingEvent::SyncPublish),
            Some(timestamp::parse("20250102010500").expect("valid"))
        );
        assert_eq!(file.timing.get(TimingEvent::Inactive), None);
    }

    #[test]
    fn ttl_and_class_are_optional() {
        let file =
            parse("example.net. IN DNSKEY 256 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=")
                .expect("valid");
        assert_eq!(file.ttl, None);
        assert!(!file.has_metadata);
        let file =
            parse("example.net. 600 DNSKEY 256 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=")
                .expect("valid");
        assert_eq!(file.ttl, Some(600));
    }

    #[test]
    fn reports_line_and_reason() {
        let bad_time = KEY.replace("; Publish: 20250101000000", "; Publish: 2025010100000x");
        let err = parse(&bad_time).expect_err("garbage time");
        assert_eq!(err.line, 3);
        assert!(
            matches!(err.kind, PublicKeyFileError::Timestamp { ref tag, .. } if tag == "Publish")
        );
        let truncated = &KEY[..KEY.len() - 60];
        let err = parse(truncated).expect_err("truncated base64");
        assert_eq!(err.line, 6);
        assert!(matches!(err.kind, PublicKeyFileError::Rdata(_)));
        let err = parse("; nothing\n").expect_err("no record");
        assert_eq!((err.line, err.kind), (0, PublicKeyFileError::NoRecord));
        let err = parse("example.net. IN KEY 512 3 13 AAAA").expect_err("KEY");
        assert_eq!(
            err.to_string(),
            "line 1: a KEY record, not a DNSKEY: not a zone key"
        );
        let err = parse("example.net. IN DNSKEY 0 3 13 AAAA").expect_err("no zone bit");
        assert_eq!(err.kind, PublicKeyFileError::NotZoneKey { flags: 0 });
    }
}
