//! Business hours: a weekly schedule in a time zone, minus closed dates.
//!
//! The schedule is evaluated at the call's wall-clock instant converted to the flow's zone, so
//! daylight-saving shifts are chrono-tz's business, not the admin's. A range whose end is before
//! its start (`22:00-02:00`) runs past midnight into the next day.

use super::IvrError;
use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use std::collections::BTreeSet;

pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MINUTES_PER_DAY: u32 = 24 * 60;

fn invalid(at: usize, message: impl Into<String>) -> IvrError {
    IvrError::Invalid {
        at,
        message: message.into(),
    }
}

/// Minutes since local midnight: start inclusive, end exclusive; `end <= start` crosses midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    pub end: u32,
}

impl Range {
    fn overnight(&self) -> bool {
        self.end <= self.start
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hours {
    pub timezone: Tz,
    /// Index 0 is Monday.
    pub week: [Vec<Range>; 7],
    pub closed_dates: BTreeSet<NaiveDate>,
}

pub fn parse_timezone(text: &str) -> Result<Tz, IvrError> {
    text.parse::<Tz>().map_err(|_| {
        invalid(
            0,
            format!("`{text}` is not a time zone; use an IANA name like America/Sao_Paulo or UTC"),
        )
    })
}

fn day_index(name: &str) -> Option<usize> {
    let lower = name.trim().to_ascii_lowercase();
    DAY_NAMES.iter().position(|d| *d == lower)
}

/// "mon-fri", "sat", "mon,wed", "fri-mon" (wraps) → day indexes.
pub fn parse_days(text: &str) -> Result<Vec<usize>, IvrError> {
    let mut days = Vec::new();
    let mut offset = 0;
    for part in text.split(',') {
        let lead = part.len() - part.trim_start().len();
        let at = offset + lead;
        let bad = |at: usize, word: &str| {
            invalid(
                at,
                format!("`{word}` is not a day; use mon, tue, wed, thu, fri, sat, sun or a range like mon-fri"),
            )
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let from = day_index(a).ok_or_else(|| bad(at, a.trim()))?;
                let to = day_index(b).ok_or_else(|| bad(at + a.len() + 1, b.trim()))?;
                let mut d = from;
                loop {
                    days.push(d);
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days.push(day_index(part).ok_or_else(|| bad(at, part.trim()))?),
        }
        offset += part.chars().count() + 1;
    }
    Ok(days)
}

fn parse_clock(text: &str, at: usize, allow_24: bool) -> Result<u32, IvrError> {
    let bad = || invalid(at, format!("`{text}` is not a time; write it like 08:00"));
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_24)) {
        return Err(invalid(
            at,
            format!("`{}` is not a time of day", text.trim()),
        ));
    }
    Ok(h * 60 + m)
}

/// "08:00-20:00", "08:00-12:00,13:00-18:00", "24h", "00:00-24:00", "closed".
pub fn parse_ranges(text: &str) -> Result<Vec<Range>, IvrError> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("24h") {
        return Ok(vec![Range {
            start: 0,
            end: MINUTES_PER_DAY,
        }]);
    }
    if trimmed.eq_ignore_ascii_case("closed") {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut offset = 0;
    for part in text.split(',') {
        let lead = part.len() - part.trim_start().len();
        let at = offset + lead;
        let (a, b) = part.split_once('-').ok_or_else(|| {
            invalid(
                at,
                format!(
                    "`{}` is not a time range; write it like 08:00-20:00",
                    part.trim()
                ),
            )
        })?;
        let start = parse_clock(a, at, false)?;
        let end = parse_clock(b, at + a.chars().count() + 1, true)?;
        if start == end {
            return Err(invalid(at, format!("`{}` is an empty range", part.trim())));
        }
        let end = if end == 0 { MINUTES_PER_DAY } else { end };
        out.push(Range { start, end });
        offset += part.chars().count() + 1;
    }
    Ok(out)
}

pub fn parse_date(text: &str) -> Result<NaiveDate, IvrError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        invalid(
            0,
            format!("`{text}` is not a date; write it like 2026-12-25"),
        )
    })
}

impl Hours {
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.timezone);
        let date = local.date_naive();
        let minute = local.hour() * 60 + local.minute();
        let today = local.weekday().num_days_from_monday() as usize;
        let yesterday = (today + 6) % 7;
        let open_today = !self.closed_dates.contains(&date)
            && self.week.get(today).is_some_and(|ranges| {
                ranges.iter().any(|r| {
                    minute >= r.start && (r.overnight() || minute < r.end.min(MINUTES_PER_DAY))
                })
            });
        let prev_date = date - ChronoDuration::days(1);
        let spill = !self.closed_dates.contains(&prev_date)
            && self
                .week
                .get(yesterday)
                .is_some_and(|ranges| ranges.iter().any(|r| r.overnight() && minute < r.end));
        open_today || spill
    }

    /// "Mon 10:00 America/Sao_Paulo" — for simulator output.
    pub fn describe_local(&self, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&self.timezone);
        format!(
            "{} {}",
            local.format("%a %Y-%m-%d %H:%M"),
            self.timezone.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(tz: &str, open: &[(&str, &str)], closed: &[&str]) -> Hours {
        let mut week: [Vec<Range>; 7] = Default::default();
        for (days, ranges) in open {
            for d in parse_days(days).unwrap() {
                week[d] = parse_ranges(ranges).unwrap();
            }
        }
        Hours {
            timezone: parse_timezone(tz).unwrap(),
            week,
            closed_dates: closed.iter().map(|d| parse_date(d).unwrap()).collect(),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn spec_schedule_in_sao_paulo() {
        let h = hours(
            "America/Sao_Paulo",
            &[("mon-fri", "08:00-20:00"), ("sat", "09:00-13:00")],
            &["2026-12-25"],
        );
        assert!(
            h.is_open(utc("2026-11-23T10:00:00-03:00")),
            "Monday morning"
        );
        assert!(
            h.is_open(utc("2026-11-23T08:00:00-03:00")),
            "opening minute"
        );
        assert!(!h.is_open(utc("2026-11-23T07:59:00-03:00")));
        assert!(
            !h.is_open(utc("2026-11-23T20:00:00-03:00")),
            "closing is exclusive"
        );
        assert!(h.is_open(utc("2026-11-28T12:59:00-03:00")), "Saturday");
        assert!(!h.is_open(utc("2026-11-28T13:00:00-03:00")));
        assert!(!h.is_open(utc("2026-11-29T10:00:00-03:00")), "Sunday");
        assert!(
            !h.is_open(utc("2026-12-25T10:00:00-03:00")),
            "closed date, a Friday"
        );
    }

    #[test]
    fn opening_follows_daylight_saving_in_new_york() {
        let h = hours("America/New_York", &[("mon-fri", "09:00-17:00")], &[]);
        // Before the March 2026 switch 09:00 local is 14:00 UTC; after it, 13:00 UTC.
        assert!(
            !h.is_open(utc("2026-03-06T13:30:00Z")),
            "Friday before DST: 08:30 EST"
        );
        assert!(h.is_open(utc("2026-03-06T14:00:00Z")), "09:00 EST");
        assert!(
            h.is_open(utc("2026-03-09T13:30:00Z")),
            "Monday after DST: 09:30 EDT"
        );
        assert!(
            !h.is_open(utc("2026-03-09T21:00:00Z")),
            "17:00 EDT is closed"
        );
        assert!(h.is_open(utc("2026-03-06T21:59:00Z")), "16:59 EST is open");
    }

    #[test]
    fn closed_dates_are_local_dates() {
        let h = hours("Asia/Tokyo", &[("mon-sun", "24h")], &["2027-01-01"]);
        // 2026-12-31T16:00Z is already New Year's Day in Tokyo.
        assert!(!h.is_open(utc("2026-12-31T16:00:00Z")));
        assert!(h.is_open(utc("2026-12-31T14:59:00Z")));
    }

    #[test]
    fn split_overnight_and_listed_days() {
        let h = hours(
            "UTC",
            &[
                ("mon,wed", "08:00-12:00, 13:00-18:00"),
                ("fri", "22:00-02:00"),
            ],
            &[],
        );
        assert!(h.is_open(utc("2026-11-23T11:00:00Z")), "Monday morning");
        assert!(!h.is_open(utc("2026-11-23T12:30:00Z")), "Monday lunch");
        assert!(
            !h.is_open(utc("2026-11-24T11:00:00Z")),
            "Tuesday not listed"
        );
        assert!(h.is_open(utc("2026-11-27T23:00:00Z")), "Friday night");
        assert!(
            h.is_open(utc("2026-11-28T01:30:00Z")),
            "spills into Saturday"
        );
        assert!(!h.is_open(utc("2026-11-28T02:00:00Z")));
        let all_day = hours("UTC", &[("sat-sun", "00:00-24:00")], &[]);
        assert!(all_day.is_open(utc("2026-11-29T23:59:00Z")));
        assert!(!all_day.is_open(utc("2026-11-30T00:00:00Z")), "Monday");
    }

    #[test]
    fn malformed_schedules_point_at_the_word() {
        let at = |r: Result<Vec<usize>, IvrError>| match r {
            Err(IvrError::Invalid { at, .. }) => at,
            other => panic!("{other:?}"),
        };
        assert_eq!(at(parse_days("mon-fry")), 4);
        assert_eq!(at(parse_days("mon, wendsday")), 5);
        let at = |r: Result<Vec<Range>, IvrError>| match r {
            Err(IvrError::Invalid { at, .. }) => at,
            other => panic!("{other:?}"),
        };
        assert_eq!(at(parse_ranges("08:00-25:00")), 6);
        assert_eq!(at(parse_ranges("08:00-12:00,1300-1800")), 12);
        assert_eq!(at(parse_ranges("8h")), 0);
        assert!(parse_ranges("10:00-10:00").is_err());
        assert!(parse_timezone("Mars/Olympus").is_err());
        assert!(parse_date("2026-02-30").is_err());
        assert!(parse_date("25/12/2026").is_err());
    }
}
