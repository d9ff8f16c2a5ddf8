//! `.state` files, written by `dnssec-policy` (lib/dns/dst_api.c
//! `write_key_state`): `Tag: value` lines after a comment line.
//!
//! BIND 9.18's writer and reader disagree on some tag names (SPEC §6.4):
//! `PublishCDS`/`SyncPublish`, `DeleteCDS`/`SyncDelete`, `SigPublish`/
//! `ZRRSIGPublish`, `SigRemoved`/`ZRRSIGDelete`, `DSDelCount`/`DSRemCount`.
//! Both spellings are read. Unknown tags are skipped, as BIND does.

use super::{ParseError, timestamp};
use crate::keys::{KaspState, KeyState, Timing, TimingEvent};

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
pub fn parse(text: &str) -> Result<StateFile, ParseError> {
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
                format!("expected `Tag: value`, found {line:?}"),
            ));
        };
        let (tag, value) = (tag.trim(), value.trim());
        let err = |why: String| ParseError::new(line_no, format!("{tag}: {why}"));
        any = true;
        if let Some(event) = timing_event(tag) {
            file.timing
                .set(event, Some(timestamp::parse_value(value).map_err(err)?));
            continue;
        }
        match tag {
            "Algorithm" => file.algorithm = Some(number(value).map_err(err)?),
            "Length" => file.length = Some(number(value).map_err(err)?),
            "KSK" => file.state.ksk = Some(yes_no(value).map_err(err)?),
            "ZSK" => file.state.zsk = Some(yes_no(value).map_err(err)?),
            "DNSKEYState" => file.state.dnskey = KeyState::parse(value).map_err(err)?,
            "KRRSIGState" => file.state.krrsig = KeyState::parse(value).map_err(err)?,
            "ZRRSIGState" => file.state.zrrsig = KeyState::parse(value).map_err(err)?,
            "DSState" => file.state.ds = KeyState::parse(value).map_err(err)?,
            "GoalState" => file.state.goal = KeyState::parse(value).map_err(err)?,
            "DSChange" => {
                timestamp::parse_value(value).map_err(err)?;
            }
            t if IGNORED_TAGS.contains(&t) => {}
            t => file.unknown_tags.push(t.to_string()),
        }
    }
    if !any {
        return Err(ParseError::new(0, "empty .state file".to_string()));
    }
    Ok(file)
}

fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    let first = value.split_whitespace().next().unwrap_or("");
    first
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))
}

fn yes_no(value: &str) -> Result<bool, String> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(format!("{other:?} is neither yes nor no")),
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
        let err = parse(&STATE.replace("KSK: yes", "KSK: maybe")).expect_err("bool");
        assert_eq!(err.line, 5);
        let err = parse(&STATE.replace("Active: 2025", "Active: 9")).expect_err("time");
        assert_eq!(err.line, 9);
        assert!(parse("; only a comment\n").is_err());
    }
}
