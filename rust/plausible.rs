//! Plausibility bounds on what a source claims about a message, defined once for every source.
//!
//! Design: sources deliver what they read (an export field can hold any integer, a queue entry
//! any value), and the hot path ([`crate::pipeline::process`]) refuses a message whose dates or
//! ids fall outside these bounds: it goes to quarantine with the reason. Stored as is, a date in
//! year 294247 needs a partition PostgreSQL cannot make, and a far-future edit date would beat
//! every real edit of that message forever. The upper date bound follows the clock of the
//! machine checking (a message cannot be sent tomorrow), with a day of slack for clock skew.

use crate::message::RawMessage;
use std::time::{SystemTime, UNIX_EPOCH};

/// 2000-01-01T00:00:00Z: before any Telegram message (2013) and any chat history imported into
/// Telegram from another messenger.
pub const MIN_DATE: i64 = 946_684_800;

/// How far a date may lie ahead of the checking machine's clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 86_400;

/// Largest magnitude of a chat or message id. Telegram's message ids are positive 32-bit
/// numbers (exports number a migrated group's history negative) and chat ids, as the API marks
/// them, stay below 2^53; 2^56 is Telegram Desktop's own ceiling for message ids. Ids beyond it
/// are damage, and would overflow the id arithmetic of coverage ranges.
pub const MAX_ABS_ID: i64 = 1 << 56;

/// Seconds since the Unix epoch now (0 if the clock is before 1970).
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The latest plausible date at `now`.
pub fn max_date(now: i64) -> i64 {
    now.saturating_add(MAX_CLOCK_SKEW_SECS)
}

/// Why `m` is not plausible at `now`, or None when every date and id is within bounds.
pub fn check(m: &RawMessage, now: i64) -> Option<String> {
    for (name, value) in [("chat id", m.chat_id), ("message id", m.message_id)] {
        if value == 0 || value.unsigned_abs() > MAX_ABS_ID as u64 {
            return Some(format!(
                "implausible {name} {value}: not zero and at most 2^56 in magnitude"
            ));
        }
    }
    let latest = max_date(now);
    for (name, value) in [
        ("date", Some(m.date)),
        ("edit date", m.edit_date),
        ("forward date", m.forward_date),
    ] {
        match value {
            // The reason names no clock reading: the same record refused again later must
            // give the same text (quarantine keeps one row per record and reason).
            Some(v) if v < MIN_DATE => {
                return Some(format!(
                    "implausible {name} {v} ({}): before {}",
                    iso(v),
                    iso(MIN_DATE)
                ))
            }
            Some(v) if v > latest => {
                return Some(format!(
                    "implausible {name} {v} ({}): more than a day past the clock",
                    iso(v)
                ))
            }
            _ => {}
        }
    }
    None
}

/// `YYYY-MM-DDTHH:MM:SSZ` of any Unix time (proleptic Gregorian, years beyond 9999 as is).
pub fn iso(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days, in i128 so no input overflows.
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000;

    fn msg(date: i64) -> RawMessage {
        RawMessage::text(-1001, 1, date, "x")
    }

    #[test]
    fn the_reason_does_not_depend_on_the_clock() {
        // The same record refused a week later must give the same text (quarantine dedupes by it).
        let far = msg(NOW + 400 * 86_400);
        assert_eq!(check(&far, NOW), check(&far, NOW + 7 * 86_400));
        assert!(check(&far, NOW).unwrap().contains("past the clock"));
    }

    #[test]
    fn dates_inside_the_bounds_pass_and_the_edges_are_inclusive() {
        assert_eq!(check(&msg(1_700_000_000), NOW), None);
        assert_eq!(check(&msg(MIN_DATE), NOW), None);
        assert_eq!(check(&msg(max_date(NOW)), NOW), None);
        assert!(check(&msg(MIN_DATE - 1), NOW).unwrap().contains("date"));
        assert!(check(&msg(max_date(NOW) + 1), NOW).is_some());
    }

    #[test]
    fn every_date_field_and_the_representable_edges_are_checked() {
        for bad in [i64::MIN, -1, 0, 253_402_300_800, i64::MAX] {
            assert!(check(&msg(bad), NOW)
                .unwrap()
                .starts_with("implausible date"));
            let mut m = msg(1_700_000_000);
            m.edit_date = Some(bad);
            assert!(check(&m, NOW).unwrap().starts_with("implausible edit date"));
            let mut m = msg(1_700_000_000);
            m.forward_date = Some(bad);
            assert!(check(&m, NOW)
                .unwrap()
                .starts_with("implausible forward date"));
        }
        // A clock at the edge of time does not overflow either.
        assert_eq!(check(&msg(1_700_000_000), i64::MAX), None);
    }

    #[test]
    fn ids_are_bounded_and_never_zero() {
        for (chat, id, ok) in [
            (-1_001_234_567_890, 5, true),
            (1, -7, true),
            (5, MAX_ABS_ID, true),
            (5, -MAX_ABS_ID, true),
            (5, 0, false),
            (0, 5, false),
            (5, MAX_ABS_ID + 1, false),
            (i64::MIN, 5, false),
            (5, i64::MAX, false),
        ] {
            let m = RawMessage::text(chat, id, 1_700_000_000, "x");
            assert_eq!(check(&m, NOW).is_none(), ok, "{chat} {id}");
        }
    }

    #[test]
    fn iso_formats_any_instant() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(MIN_DATE), "2000-01-01T00:00:00Z");
        assert_eq!(iso(951_782_399), "2000-02-28T23:59:59Z");
        assert_eq!(iso(-1), "1969-12-31T23:59:59Z");
        assert!(iso(i64::MAX).starts_with("292277026596-"));
        assert!(iso(i64::MIN).starts_with("-292277022657-"));
    }
}
