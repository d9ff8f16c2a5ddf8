//! Durations in the config: strings with a unit, `100ms`, `30s`, `10m`, `1h`,
//! `14d`, `2w`, or several together (`1h30m`).

use std::{fmt, time::Duration};

/// Why a duration string was refused; every variant carries the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing but white space.
    #[error("empty duration")]
    Empty,
    /// A letter that is not one of the units.
    #[error("{text:?}: unknown unit {unit:?} (use ms, s, m, h, d or w)")]
    UnknownUnit {
        /// The duration as written.
        text: String,
        /// The letter.
        unit: char,
    },
    /// A unit with no digits before it (`h`).
    #[error("{text:?}: unit {unit:?} without a number")]
    NoNumber {
        /// The duration as written.
        text: String,
        /// The unit.
        unit: char,
    },
    /// Digits that do not fit 64 bits.
    #[error("{text:?}: number too large")]
    NumberTooLarge {
        /// The duration as written.
        text: String,
    },
    /// A total beyond 2^64 milliseconds.
    #[error("{text:?}: duration too large")]
    TooLarge {
        /// The duration as written.
        text: String,
    },
    /// Digits at the end with no unit (`3600`).
    #[error("{text:?} has no unit: write e.g. \"{number}s\" or use ms, m, h, d, w")]
    NoUnit {
        /// The duration as written.
        text: String,
        /// The trailing digits.
        number: String,
    },
}

/// Parses a duration string; bare numbers are refused so `3600` vs `3600s`
/// vs `1h` is never a guess.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total_ms: u64 = 0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit_ms: u64 = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            's' => 1000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 604_800_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    text: text.to_string(),
                    unit: c,
                });
            }
        };
        if number.is_empty() {
            return Err(DurationError::NoNumber {
                text: text.to_string(),
                unit: c,
            });
        }
        let value: u64 = number.parse().map_err(|_| DurationError::NumberTooLarge {
            text: text.to_string(),
        })?;
        total_ms = value
            .checked_mul(unit_ms)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| DurationError::TooLarge {
                text: text.to_string(),
            })?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(DurationError::NoUnit {
            text: text.to_string(),
            number,
        });
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats whole seconds compactly (`1h`, `90s`, `1d2h`).
pub fn format(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// A config duration, deserialised from a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl<'de> serde::Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ConfigDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string with a unit, like \"1h\" or \"30s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse(v).map(ConfigDuration).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Err(E::custom(format!(
                    "durations are strings with a unit: write \"{v}s\" (or m, h, d, w)"
                )))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(format(Duration::from_secs(93_784)), "1d2h3m4s");
    }

    #[test]
    fn refuses_ambiguity() {
        let err = parse("3600").expect_err("no unit");
        assert!(matches!(err, DurationError::NoUnit { .. }));
        assert_eq!(
            err.to_string(),
            "\"3600\" has no unit: write e.g. \"3600s\" or use ms, m, h, d, w"
        );
        assert!(matches!(
            parse("h"),
            Err(DurationError::NoNumber { unit: 'h', .. })
        ));
        assert!(matches!(
            parse("5y"),
            Err(DurationError::UnknownUnit { unit: 'y', .. })
        ));
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert!(matches!(
            parse("99999999999999999999s"),
            Err(DurationError::NumberTooLarge { .. })
        ));
        assert!(matches!(
            parse("99999999999999999d"),
            Err(DurationError::TooLarge { .. })
        ));
    }
}
