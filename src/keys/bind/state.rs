//! `.state` files, written by `dnssec-policy` (lib/dns/dst_api.c
//! `write_key_state`): `Tag: value` lines after a comment line.
//!
//! BIND 9.18's writer and reader disagree on some tag names (lib/dns/dst_api.c):
//! `PublishCDS`/`SyncPublish`, `DeleteCDS`/`SyncDelete`, `SigPublish`/
//! `ZRRSIGPublish`, `SigRemoved`/`ZRRSIGDelete`, `DSDelCount`/`DSRemCount`.
//! Both spellings are read. Unknown tags are skipped, as BIND does.

use super::{
    ParseError,
    timestamp::{self, TimestampError},
};
use crate::keys::{KaspState, KeyState, Timing, TimingEvent, UnknownKeyState};

/// What is wrong in a `.state` file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateFileError {
    /// A line that is not `Tag: value`.
    #[error("expected `Tag: value`, found {line:?}")]
    NotTagValue {
        /// The line.
        line: String,
    },
    /// A timing tag whose value is not a BIND timestamp.
    #[error("{tag}: {source}")]
    Timestamp {
        /// The tag (`Published`, `PublishCDS`...).
        tag: String,
        /// Why the value was refused.
        source: TimestampError,
    },
    /// `Algorithm:` or `Length:` without a number.
    #[error("{tag}: {value:?} is not a number")]
    NotANumber {
        /// The tag.
        tag: String,
        /// The value.
        value: String,
    },
    /// `KSK:` or `ZSK:` with neither `yes` nor `no`.
    #[error("{tag}: {value:?} is neither yes nor no")]
    NotYesNo {
        /// The tag.
        tag: String,
        /// The value.
        value: String,
    },
    /// A `...State:` tag with no known key state.
    #[error("{tag}: {source}")]
    KeyState {
        /// The tag (`DSState`...).
        tag: String,
        /// The value that is no key state.
        source: UnknownKeyState,
    },
    /// Nothing but comments.
    #[error("empty .state file")]
    Empty,
}

/// The content of a `.state` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateFile {
    /// `Algorithm:`.
    pub algorithm: Option<u8>,
    /// `Length:` in bits.
    pub length: Option<u32>,
    /// Roles and key states.
    pub state: KaspState,
    /// Timing, mapped to the `.key`/`.private` events.
    pub timing: Timing,
    /// Tags we did not recognise (kept for diagnostics).
    pub unknown_tags: Vec<String>,
}

fn timing_event(tag: &str) -> Option<TimingEvent> {
    Some(match tag {
        "Generated" => TimingEvent::Created,
        "Published" => TimingEvent::Publish,
        "Active" => TimingEvent::Activate,
        "Retired" => TimingEvent::Inactive,
        "Revoked" => TimingEvent::Revoke,
        "Removed" => TimingEvent::Delete,
        "DSPublish" => TimingEvent::DsPublish,
        "DSRemoved" | "DSDelete" => TimingEvent::DsDelete,
        "PublishCDS" | "SyncPublish" => TimingEvent::SyncPublish,
        "DeleteCDS" | "SyncDelete" => TimingEvent::SyncDelete,
        _ => return None,
    })
}

/// Tags we know and do not need (numbers and times of no CDS consequence).
const IGNORED_TAGS: [&str; 14] = [
    "Lifetime",
    "Predecessor",
    "Successor",
    "SigPublish",
    "SigRemoved",
    "ZRRSIGPublish",
    "ZZRRSIGDelete",
    "ZRRSIGDelete",
    "DSPubCount",
    "DSDelCount",
    "DSRemCount",
    "DNSKEYChange",
    "ZRRSIGChange",
    "KRRSIGChange",
];

/// Parses the text of a `.state` file.
pub fn parse(text: &str) -> Result<StateFile, ParseError<StateFileError>> {
    let mut file = StateFile::default();
    let mut any = false;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        let Some((tag, value)) = line.split_once(':') else {
            return Err(ParseError::new(
                line_no,
                StateFileError::NotTagValue {
                    line: line.to_string(),
                },
            ));
        };
        let (tag, value) = (tag.trim(), value.trim());
        any = true;
        parse_tag(&mut file, tag, value).map_err(|kind| ParseError::new(line_no, kind))?;
    }
    if !any {
        return Err(ParseError::new(0, StateFileError::Empty));
    }
    Ok(file)
}

/// Reads one `Tag: value` line into `file`.
fn parse_tag(file: &mut StateFile, tag: &str, value: &str) -> Result<(), StateFileError> {
    let time = |value: &str| {
        timestamp::parse_value(value).map_err(|source| StateFileError::Timestamp {
            tag: tag.to_string(),
            source,
        })
    };
    let key_state = |value: &str| {
        KeyState::parse(value).map_err(|source| StateFileError::KeyState {
            tag: tag.to_string(),
            source,
        })
    };
    if let Some(event) = timing_event(tag) {
        file.timing.set(event, Some(time(value)?));
        return Ok(());
    }
    match tag {
        "Algorithm" => file.algorithm = Some(number(tag, value)?),
        "Length" => file.length = Some(number(tag, value)?),
        "KSK" => file.state.ksk = Some(yes_no(tag, value)?),
        "ZSK" => file.state.zsk = Some(yes_no(tag, value)?),
        "DNSKEYState" => file.state.dnskey = key_state(value)?,
        "KRRSIGState" => file.state.krrsig = key_state(value)?,
        "ZRRSIGState" => file.state.zrrsig = key_state(value)?,
        "DSState" => file.state.ds = key_state(value)?,
        "GoalState" => file.state.goal = key_state(value)?,
        "DSChange" => {
            time(value)?;
        }
        t if IGNORED_TAGS.contains(&t) => {}
        t => file.unknown_tags.push(t.to_string()),
    }
    Ok(())
}

fn number<T: std::str::FromStr>(tag: &str, value: &str) -> Result<T, StateFileError> {
    let first = value.split_whitespace().next().unwrap_or("");
    first.parse().map_err(|_| StateFileError::NotANumber {
        tag: tag.to_string(),
        value: value.to_string(),
    })
}

fn yes_no(tag: &str, value: &str) -> Result<bool, StateFileError> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(StateFileError::NotYesNo {
            tag: tag.to_string(),
            value: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = "\
; This is the state of key 55648, for example.net.
Algorithm: 13
Length: 256
Lifetime: 0
KSK: yes
ZSK: no
Generated: 20250101000000 (Wed Jan  1 00:00:00 2025)
Published: 20250101000000 (Wed Jan  1 00:00:00 2025)
Active: 20250101000000 (Wed Jan  1 00:00:00 2025)
PublishCDS: 20250102010500 (Thu Jan  2 01:05:00 2025)
DNSKEYChange: 20250101000000 (Wed Jan  1 00:00:00 2025)
KRRSIGChange: 20250101000000 (Wed Jan  1 00:00:00 2025)
DSChange: 20250101000000 (Wed Jan  1 00:00:00 2025)
DNSKEYState: omnipresent
KRRSIGState: omnipresent
DSState: rumoured
GoalState: omnipresent
FutureTag: 42
";

    #[test]
    fn parses_writer_spelling() {
        let file = parse(STATE).expect("valid");
        assert_eq!(file.algorithm, Some(13));
        assert_eq!(file.length, Some(256));
        assert_eq!(file.state.ksk, Some(true));
        assert_eq!(file.state.ds, Some(KeyState::Rumoured));
        assert_eq!(file.state.zrrsig, None);
        assert!(file.timing.get(TimingEvent::SyncPublish).is_some());
        assert_eq!(file.unknown_tags, ["FutureTag"]);
    }

    #[test]
    fn parses_reader_spelling() {
        let text = STATE.replace("PublishCDS:", "SyncPublish:").replace(
            "Lifetime: 0",
            "DSRemCount: 0\nZRRSIGPublish: 20250101000000",
        );
        let file = parse(&text).expect("valid");
        assert!(file.timing.get(TimingEvent::SyncPublish).is_some());
    }

    #[test]
    fn rejects_bad_values_with_line() {
        let err = parse(&STATE.replace("DSState: rumoured", "DSState: gossip")).expect_err("state");
        assert_eq!(err.line, 16);
        assert!(matches!(err.kind, StateFileError::KeyState { .. }));
        let err = parse(&STATE.replace("KSK: yes", "KSK: maybe")).expect_err("bool");
        assert_eq!(err.line, 5);
        assert_eq!(
            err.to_string(),
            "line 5: KSK: \"maybe\" is neither yes nor no"
        );
        let err = parse(&STATE.replace("Active: 2025", "Active: 9")).expect_err("time");
        assert_eq!(err.line, 9);
        assert!(matches!(err.kind, StateFileError::Timestamp { ref tag, .. } if tag == "Active"));
        let err = parse(&STATE.replace("Length: 256", "Length: long")).expect_err("number");
        assert!(matches!(err.kind, StateFileError::NotANumber { .. }));
        let err = parse("; only a comment\n").expect_err("empty");
        assert_eq!((err.line, err.kind), (0, StateFileError::Empty));
    }
}
