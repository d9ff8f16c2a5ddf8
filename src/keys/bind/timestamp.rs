//! BIND timestamps: `YYYYMMDDHHMMSS`, always UTC (lib/dns/dst_api.c).

use jiff::{Timestamp, civil::DateTime, tz::TimeZone};

/// Why a timestamp was refused; every variant carries the text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TimestampError {
    /// Not exactly 14 digits.
    #[error("{text:?} is not a YYYYMMDDHHMMSS timestamp")]
    BadLength {
        /// The timestamp as written.
        text: String,
    },
    /// 14 digits, but no calendar date and time (month 13, February 30).
    #[error("{text:?} is not a valid time: {source}")]
    NoSuchTime {
        /// The timestamp as written.
        text: String,
        /// What jiff said.
        source: jiff::Error,
    },
    /// A valid date and time outside the range of a timestamp.
    #[error("{text:?} is out of range: {source}")]
    OutOfRange {
        /// The timestamp as written.
        text: String,
        /// What jiff said.
        source: jiff::Error,
    },
    /// A user time (`--at`) in neither accepted form.
    #[error("{text:?} is neither RFC 3339 (2030-01-01T00:00:00Z) nor YYYYMMDDHHMMSS: {source}")]
    NotUserTime {
        /// The time as written.
        text: String,
        /// Why RFC 3339 parsing failed.
        source: jiff::Error,
    },
}

impl PartialEq for TimestampError {
    /// Equal when the kind and the text are (jiff's errors do not compare).
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other) && self.text() == other.text()
    }
}

impl Eq for TimestampError {}

impl TimestampError {
    /// The text that was refused.
    pub fn text(&self) -> &str {
        match self {
            TimestampError::BadLength { text }
            | TimestampError::NoSuchTime { text, .. }
            | TimestampError::OutOfRange { text, .. }
            | TimestampError::NotUserTime { text, .. } => text,
        }
    }
}

/// Parses a BIND `YYYYMMDDHHMMSS` timestamp (UTC). Anything after the 14
/// digits (BIND appends a ctime in parentheses) must be separated by space
/// and is ignored by the callers, not here.
pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
    let text = text.trim();
    if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimestampError::BadLength {
            text: text.to_string(),
        });
    }
    let field = |range: std::ops::Range<usize>| -> i32 {
        // Only ASCII digits here, so slicing and parsing cannot fail.
        text[range].parse::<i32>().unwrap_or(0)
    };
    let datetime = DateTime::new(
        field(0..4) as i16,
        field(4..6) as i8,
        field(6..8) as i8,
        field(8..10) as i8,
        field(10..12) as i8,
        field(12..14) as i8,
        0,
    )
    .map_err(|source| TimestampError::NoSuchTime {
        text: text.to_string(),
        source,
    })?;
    datetime
        .to_zoned_datetime(TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|source| TimestampError::OutOfRange {
            text: text.to_string(),
            source,
        })
}

/// Formats a timestamp the way BIND writes it.
pub fn format(ts: Timestamp) -> String {
    ts.strftime("%Y%m%d%H%M%S").to_string()
}

/// Parses the first whitespace-separated word of a metadata value, the part
/// BIND reads; the `(ctime)` after it is decoration.
pub fn parse_value(value: &str) -> Result<Timestamp, TimestampError> {
    let first = value.split_whitespace().next().unwrap_or("");
    parse(first)
}

/// Parses a user-supplied time: RFC 3339 (`2030-01-01T00:00:00Z`) or BIND
/// `YYYYMMDDHHMMSS`.
pub fn parse_user(text: &str) -> Result<Timestamp, TimestampError> {
    let text = text.trim();
    if text.len() == 14 && text.bytes().all(|b| b.is_ascii_digit()) {
        return parse(text);
    }
    text.parse::<Timestamp>()
        .map_err(|source| TimestampError::NotUserTime {
            text: text.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ts = parse("20250101000000").expect("valid");
        assert_eq!(ts.as_second(), 1_735_689_600);
        assert_eq!(format(ts), "20250101000000");
        assert_eq!(
            parse_value("20250102010500 (Thu Jan  2 01:05:00 2025)").expect("valid"),
            parse("20250102010500").expect("valid")
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "2025", "2025010100000x", "yesterday"] {
            assert!(
                matches!(parse(bad), Err(TimestampError::BadLength { .. })),
                "{bad} accepted"
            );
        }
        for bad in ["20251301000000", "20250230000000"] {
            assert!(
                matches!(parse(bad), Err(TimestampError::NoSuchTime { .. })),
                "{bad} accepted"
            );
        }
        assert_eq!(
            parse("2025").expect_err("short").to_string(),
            "\"2025\" is not a YYYYMMDDHHMMSS timestamp"
        );
    }

    #[test]
    fn user_times() {
        assert_eq!(
            parse_user("2025-01-01T00:00:00Z").expect("valid"),
            parse("20250101000000").expect("valid")
        );
        assert_eq!(
            parse_user("20250101000000").expect("valid"),
            parse("20250101000000").expect("valid")
        );
        let err = parse_user("tomorrow").expect_err("not a time");
        assert!(matches!(err, TimestampError::NotUserTime { .. }));
        assert_eq!(err.text(), "tomorrow");
    }
}
