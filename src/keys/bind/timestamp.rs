//! BIND timestamps: `YYYYMMDDHHMMSS`, always UTC (lib/dns/dst_api.c).

use jiff::{Timestamp, civil::DateTime, tz::TimeZone};

/// Parses a BIND `YYYYMMDDHHMMSS` timestamp (UTC). Anything after the 14
/// digits (BIND appends a ctime in parentheses) must be separated by space
/// and is ignored by the callers, not here.
pub fn parse(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a YYYYMMDDHHMMSS timestamp"));
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
    .map_err(|e| format!("{text:?} is not a valid time: {e}"))?;
    datetime
        .to_zoned_datetime(TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|e| format!("{text:?} is out of range: {e}"))
}

/// Formats a timestamp the way BIND writes it.
pub fn format(ts: Timestamp) -> String {
    ts.strftime("%Y%m%d%H%M%S").to_string()
}

/// Parses the first whitespace-separated word of a metadata value, the part
/// BIND reads; the `(ctime)` after it is decoration.
pub fn parse_value(value: &str) -> Result<Timestamp, String> {
    let first = value.split_whitespace().next().unwrap_or("");
    parse(first)
}

/// Parses a user-supplied time: RFC 3339 (`2030-01-01T00:00:00Z`) or BIND
/// `YYYYMMDDHHMMSS`.
pub fn parse_user(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    if text.len() == 14 && text.bytes().all(|b| b.is_ascii_digit()) {
        return parse(text);
    }
    text.parse::<Timestamp>().map_err(|e| {
        format!("{text:?} is neither RFC 3339 (2030-01-01T00:00:00Z) nor YYYYMMDDHHMMSS: {e}")
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
        for bad in [
            "",
            "2025",
            "2025010100000x",
            "20251301000000",
            "20250230000000",
            "yesterday",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
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
        assert!(parse_user("tomorrow").is_err());
    }
}
