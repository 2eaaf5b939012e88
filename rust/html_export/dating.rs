//! Dates for the messages a page shows without a time (service messages, unsupported ones).
//!
//! Design: Desktop writes no time for a service message, only a day separator before the first
//! message of each local day. Such a message waits here until the next dated message arrives,
//! then takes the time of the dated message before it on the same day, else of the one after it
//! on that day, else its day's local midnight, and `extra.date_source` says which
//! (`previous_message`, as the JSON reader says for undated unsupported records,
//! `next_message` or `day`). The waiting list is capped; past the cap messages take their day.

use super::dates::{Clock, LocalDate};
use crate::message::RawMessage;
use serde_json::{Map, Value};

/// Messages waiting for a dated neighbour; past this they are settled at once.
const PENDING_CAP: usize = 10_000;

struct Waiting {
    m: RawMessage,
    day: Option<i64>,
}

pub(crate) struct Dating {
    /// Local day of the latest day separator.
    day: Option<i64>,
    /// The latest dated message: UTC instant and local date.
    last: Option<(i64, LocalDate)>,
    pending: Vec<Waiting>,
    /// How local times become UTC (midnights of days without a dated neighbour).
    clock: Clock,
}

/// A settled message, or one nothing can date (the caller quarantines it).
pub(crate) type Settled = Result<RawMessage, RawMessage>;

impl Dating {
    pub fn new(clock: Clock) -> Self {
        Dating {
            day: None,
            last: None,
            pending: Vec::new(),
            clock,
        }
    }

    pub fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// A day separator.
    pub fn day(&mut self, day: i64) {
        self.day = Some(day);
    }

    /// A message without a time; returns what had to be settled because the list is full.
    pub fn undated(&mut self, m: RawMessage) -> Vec<Settled> {
        self.pending.push(Waiting { m, day: self.day });
        if self.pending.len() < PENDING_CAP {
            return Vec::new();
        }
        self.settle(None)
    }

    /// A dated message: the waiting ones are settled against it (returned), then it becomes
    /// the latest.
    pub fn dated(&mut self, utc: i64, date: LocalDate) -> Vec<Settled> {
        let settled = self.settle(Some((utc, date)));
        self.last = Some((utc, date));
        self.day = Some(date.day());
        settled
    }

    /// The end of the export: whatever still waits.
    pub fn finish(&mut self) -> Vec<Settled> {
        self.settle(None)
    }

    fn settle(&mut self, next: Option<(i64, LocalDate)>) -> Vec<Settled> {
        let mut out = Vec::with_capacity(self.pending.len());
        for Waiting { mut m, day } in std::mem::take(&mut self.pending) {
            let same_day = |d: &(i64, LocalDate)| day.is_none_or(|day| d.1.day() == day);
            let (date, source) = if let Some(prev) = self.last.filter(same_day) {
                (Some(prev.0), "previous_message")
            } else if let Some(next) = next.filter(same_day) {
                (Some(next.0), "next_message")
            } else {
                let seen = next.or(self.last).and_then(|d| d.1.offset);
                (day.and_then(|d| self.clock.midnight(d, seen)), "day")
            };
            let Some(date) = date else {
                out.push(Err(m));
                continue;
            };
            m.date = date;
            let mut extra: Map<String, Value> = m
                .extra
                .as_deref()
                .and_then(|e| serde_json::from_str(e).ok())
                .unwrap_or_default();
            extra.insert("date_source".into(), Value::from(source));
            m.extra = Some(Value::Object(extra).to_string());
            out.push(Ok(m));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(local: i64, offset: i32) -> (i64, LocalDate) {
        let date = LocalDate {
            local,
            offset: Some(offset),
        };
        (local - i64::from(offset), date)
    }

    #[test]
    fn a_service_message_takes_a_neighbour_on_its_day_or_the_days_midnight() {
        let mut d = Dating::new(Clock::default());
        let day = 19_676; // 2023-11-15
        d.day(day);
        assert!(d.undated(RawMessage::text(1, 1, 0, "")).is_empty());
        let (utc, date) = at(day * 86_400 + 3_600, 10_800);
        let first = d.dated(utc, date);
        assert_eq!(
            first[0].as_ref().unwrap().date,
            utc,
            "the next message on its day"
        );
        d.undated(RawMessage::text(1, 3, 0, ""));
        d.day(day + 2);
        d.undated(RawMessage::text(1, 4, 0, ""));
        let rest = d.finish();
        let dates: Vec<i64> = rest.iter().map(|r| r.as_ref().unwrap().date).collect();
        assert_eq!(dates, [utc, (day + 2) * 86_400 - 10_800]);
        assert!(rest[1]
            .as_ref()
            .unwrap()
            .extra
            .as_deref()
            .unwrap()
            .contains("\"day\""));
        let mut lost = Dating::new(Clock::default());
        lost.undated(RawMessage::text(1, 9, 0, ""));
        assert!(lost.finish()[0].is_err(), "no day and no date anywhere");
    }
}
