//! Local wall-clock times to UTC with a time zone's rules (its offset changes).
//!
//! Design: exports write local times; a fixed `--tz` offset is wrong for half the year in a
//! zone with daylight saving, and Telegram Desktop's HTML pages even print the zone's standard
//! offset on summer dates. The caller (Python's zoneinfo, which has the tz database) hands the
//! zone's offset changes as (UTC instant, offset from then on); the core never reads zone files.
//! A local time in a spring-forward gap takes the offset before the change; one in a repeated
//! autumn hour takes its first (earlier) instant.

use crate::error::{CoreError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// (UTC seconds, offset east of UTC in seconds from that instant on), ascending.
    changes: Vec<(i64, i32)>,
}

impl Zone {
    /// A zone from its offset changes; the first applies before it too.
    pub fn new(mut changes: Vec<(i64, i32)>) -> Result<Self> {
        if changes.is_empty() {
            return Err(CoreError::InvalidInput(
                "a time zone needs at least one offset".into(),
            ));
        }
        if changes.iter().any(|&(_, o)| o.abs() > 18 * 3600) {
            return Err(CoreError::InvalidInput(
                "a time zone offset beyond 18 hours".into(),
            ));
        }
        changes.sort_by_key(|&(at, _)| at);
        Ok(Zone { changes })
    }

    /// A zone that never changes.
    pub fn fixed(offset: i32) -> Self {
        Zone {
            changes: vec![(i64::MIN, offset)],
        }
    }

    /// The offset in effect at a UTC instant.
    pub fn offset_at(&self, utc: i64) -> i32 {
        let i = self.changes.partition_point(|&(at, _)| at <= utc);
        self.changes[i.saturating_sub(1)].1
    }

    /// UTC seconds of a local time (seconds since the epoch as if the local time were UTC).
    pub fn to_utc(&self, local: i64) -> i64 {
        // Every offset that could apply near this local time, largest first (earliest UTC).
        let mut candidates: Vec<i32> = [-14 * 3600, 0, 14 * 3600]
            .iter()
            .map(|&shift| self.offset_at(local - shift))
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        candidates.dedup();
        for &o in &candidates {
            let utc = local - i64::from(o);
            if self.offset_at(utc) == o {
                return utc;
            }
        }
        // In a gap: the clock jumped over this time; read it with the offset before the jump.
        let before = self.offset_at(local - i64::from(candidates[candidates.len() - 1]) - 86_400);
        local - i64::from(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Europe/Berlin in 2023: CET (+1) until 26 March 01:00 UTC, CEST (+2) until 29 October
    /// 01:00 UTC, then CET.
    fn berlin() -> Zone {
        Zone::new(vec![
            (0, 3600),
            (1_679_792_400, 7200),
            (1_698_541_200, 3600),
        ])
        .unwrap()
    }

    #[test]
    fn summer_and_winter_local_times() {
        let z = berlin();
        // 15 July 2023 14:00 local (CEST) = 12:00 UTC; 15 January 14:00 local (CET) = 13:00 UTC.
        assert_eq!(z.to_utc(1_689_429_600), 1_689_422_400);
        assert_eq!(z.to_utc(1_673_791_200), 1_673_787_600);
        assert_eq!(Zone::fixed(10_800).to_utc(1_700_010_800), 1_700_000_000);
    }

    #[test]
    fn gaps_and_repeated_hours() {
        let z = berlin();
        // 26 March 02:30 local does not exist: read with +1 -> 01:30 UTC.
        assert_eq!(z.to_utc(1_679_797_800), 1_679_794_200);
        // 29 October 02:30 local happens twice: the first, in CEST -> 00:30 UTC.
        assert_eq!(z.to_utc(1_698_546_600), 1_698_539_400);
        assert!(Zone::new(vec![]).is_err());
        assert!(Zone::new(vec![(0, 20 * 3600)]).is_err());
    }
}
