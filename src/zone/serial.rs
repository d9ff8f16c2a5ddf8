//! SOA serials: RFC 1982 arithmetic and the operator's serial policy.

use jiff::Timestamp;

use crate::config::SerialPolicy;

/// True when `a` is greater than `b` in RFC 1982 serial arithmetic.
pub fn is_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

/// The serial to use after `old` (or for a new zone when `old` is `None`).
/// Always newer than `old` under RFC 1982.
pub fn next(policy: SerialPolicy, old: Option<u32>, now: Timestamp) -> u32 {
    let candidate = match policy {
        SerialPolicy::Increment => old.map_or(1, |o| o.wrapping_add(1)),
        SerialPolicy::Unixtime => now.as_second().clamp(1, i64::from(u32::MAX)) as u32,
        SerialPolicy::Dateserial => {
            let day: u32 = now
                .strftime("%Y%m%d")
                .to_string()
                .parse()
                .unwrap_or(19_700_101);
            day.saturating_mul(100)
        }
    };
    match old {
        Some(old) if !is_newer(candidate, old) => {
            let bumped = old.wrapping_add(1);
            // Serial 0 is legal but confuses people; skip it.
            if bumped == 0 { 1 } else { bumped }
        }
        _ if candidate == 0 => 1,
        _ => candidate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid")
    }

    #[test]
    fn rfc1982() {
        assert!(is_newer(2, 1));
        assert!(!is_newer(1, 2));
        assert!(is_newer(0, u32::MAX));
        assert!(is_newer(5, u32::MAX - 5));
        assert!(!is_newer(7, 7));
    }

    #[test]
    fn policies_always_move_forward() {
        let now = at(1_795_000_000); // 2026-11-18
        assert_eq!(next(SerialPolicy::Increment, None, now), 1);
        assert_eq!(next(SerialPolicy::Increment, Some(41), now), 42);
        assert_eq!(next(SerialPolicy::Increment, Some(u32::MAX), now), 1);
        assert_eq!(next(SerialPolicy::Unixtime, Some(5), now), 1_795_000_000);
        assert_eq!(
            next(SerialPolicy::Unixtime, Some(1_795_000_000), now),
            1_795_000_001
        );
        assert_eq!(next(SerialPolicy::Dateserial, None, now), 2_026_111_800);
        assert_eq!(
            next(SerialPolicy::Dateserial, Some(2_026_111_807), now),
            2_026_111_808
        );
        assert_eq!(
            next(SerialPolicy::Dateserial, Some(2_026_111_900), now),
            2_026_111_901
        );
    }
}
