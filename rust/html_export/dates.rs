//! Dates as an HTML export writes them.
//!
//! Design: a message's time is in the `title` of its date element, `DD.MM.YYYY HH:MM:SS` in the
//! exporting machine's local time, followed since mid-2022 by that machine's UTC offset
//! (` UTC+03:00`). The shown `HH:MM` is never used alone. Without an offset the user's `--tz`
//! decides; without either the import stops with one line saying so. Day separators
//! ("14 December 2021") date the service messages, which carry no time of their own.

use crate::export::local_to_utc;
use crate::zone::Zone;

/// The import needs `--tz` (an export made before Telegram Desktop wrote UTC offsets).
pub const NO_OFFSET: &str = "this HTML export's dates have no UTC offset (made by a Telegram \
     Desktop older than mid-2022): pass --tz with the UTC offset of the machine that made it, \
     e.g. --tz +03:00";

/// A `title` date: local seconds since the epoch (as if UTC) and the written offset, if any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LocalDate {
    pub local: i64,
    pub offset: Option<i32>,
}

impl LocalDate {
    /// UTC Unix seconds with the written offset, else `tz`; `None` when neither is known.
    pub fn utc(self, tz: Option<i32>) -> Option<i64> {
        Some(self.local - i64::from(self.offset.or(tz)?))
    }

    /// Days since 1970-01-01 of the local date (what the day separators show).
    pub fn day(self) -> i64 {
        self.local.div_euclid(86_400)
    }
}

/// How the page's local times become UTC: the user's time zone rules when given (`--tz
/// Europe/Berlin`: Desktop prints the zone's standard offset even on summer dates, so the rules
/// beat the page), else the offset the page writes, else the user's fixed `--tz` offset.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clock {
    pub tz: Option<i32>,
    pub zone: Option<Zone>,
}

impl Clock {
    pub fn utc(&self, d: LocalDate) -> Option<i64> {
        match &self.zone {
            Some(zone) => Some(zone.to_utc(d.local)),
            None => d.utc(self.tz),
        }
    }

    /// Local midnight of `day`; `seen` is an offset the page wrote nearby.
    pub fn midnight(&self, day: i64, seen: Option<i32>) -> Option<i64> {
        if let Some(zone) = &self.zone {
            return Some(zone.to_utc(day * 86_400));
        }
        let offset = seen.or(self.tz)?;
        Some(day * 86_400 - i64::from(offset))
    }
}

/// `DD.MM.YYYY HH:MM:SS` with an optional ` UTC+HH:MM` (or ` UTC`) after it.
pub(crate) fn parse_title(title: &str) -> Option<LocalDate> {
    let title = title.trim();
    let (stamp, zone) = match title.get(19..) {
        Some(rest) => (title.get(..19)?, rest.trim()),
        None => (title, ""),
    };
    let b = stamp.as_bytes();
    if b.len() != 19 || b[2] != b'.' || b[5] != b'.' || b[10] != b' ' {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}",
        stamp.get(6..10)?,
        stamp.get(3..5)?,
        stamp.get(0..2)?,
        stamp.get(11..19)?
    );
    let local = local_to_utc(&iso, 0)?;
    let offset = if zone.is_empty() {
        None
    } else {
        Some(parse_offset(zone)?)
    };
    Some(LocalDate { local, offset })
}

/// `UTC`, `UTC+03:00`, `UTC-05:30`, `UTC+3`, `GMT+0100` -> seconds east of UTC.
fn parse_offset(zone: &str) -> Option<i32> {
    let rest = zone
        .strip_prefix("UTC")
        .or_else(|| zone.strip_prefix("GMT"))?;
    if rest.is_empty() {
        return Some(0);
    }
    let (sign, digits) = match rest.as_bytes()[0] {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let (h, m) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() == 4 => (&digits[..2], &digits[2..]),
        None => (digits, "0"),
    };
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A day separator ("14 December 2021") -> days since 1970-01-01; `None` for any other text.
pub(crate) fn parse_day(text: &str) -> Option<i64> {
    let mut parts = text.split_ascii_whitespace();
    let (d, month, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || d.len() > 2 || y.len() != 4 {
        return None;
    }
    let m = MONTHS.iter().position(|&name| name == month)? + 1;
    let iso = format!("{y}-{m:02}-{:0>2}T00:00:00", d);
    Some(local_to_utc(&iso, 0)?.div_euclid(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_with_and_without_offsets() {
        let d = parse_title("14.11.2023 22:13:20 UTC+03:00").unwrap();
        assert_eq!(d.offset, Some(10_800));
        assert_eq!(d.utc(None), Some(1_699_989_200));
        assert_eq!(
            d.utc(Some(0)),
            Some(1_699_989_200),
            "the written offset wins"
        );
        let old = parse_title("14.11.2023 19:13:20").unwrap();
        assert_eq!((old.offset, old.utc(None)), (None, None));
        assert_eq!(old.utc(Some(0)), Some(1_699_989_200));
        assert_eq!(
            parse_title("01.01.2024 00:00:00 UTC-05:30")
                .unwrap()
                .utc(None),
            Some(1_704_067_200 + 19_800)
        );
        assert_eq!(
            parse_title("01.01.2024 00:00:00 UTC").unwrap().offset,
            Some(0)
        );
        for bad in [
            "",
            "2024-01-01 00:00:00",
            "32.01.2024 00:00:00",
            "01.01.2024 00:00:00 EST",
        ] {
            assert_eq!(parse_title(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn day_separators() {
        assert_eq!(parse_day("14 December 2021"), Some(18_975));
        assert_eq!(parse_day("1 January 1970"), Some(0));
        assert_eq!(parse_day("Alice joined the group"), None);
        assert_eq!(parse_day("14 Decembre 2021"), None);
    }
}
