//! Calling windows: local wall-clock ranges on chosen weekdays (SPEC 1).
//!
//! `start < end` is a same-day half-open range `[start, end)`. `start > end`
//! crosses midnight: the part after midnight belongs to the previous day's
//! entry, so `fri 22:30-03:30` covers Friday 22:30 to Saturday 03:30.

use std::fmt;

use chrono::{Datelike, NaiveDateTime, NaiveTime, Timelike, Weekday};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A day of the week as written in windows: `mon` .. `sun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    fn of(weekday: Weekday) -> Day {
        match weekday {
            Weekday::Mon => Day::Mon,
            Weekday::Tue => Day::Tue,
            Weekday::Wed => Day::Wed,
            Weekday::Thu => Day::Thu,
            Weekday::Fri => Day::Fri,
            Weekday::Sat => Day::Sat,
            Weekday::Sun => Day::Sun,
        }
    }
}

/// A minute of the day written `HH:MM` (24-hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(u16);

impl ClockTime {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a 24-hour HH:MM time");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok(ClockTime(h * 60 + m))
    }

    fn of(time: NaiveTime) -> Self {
        ClockTime((time.hour() * 60 + time.minute()) as u16)
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// One calling window. Built only through validation: days not empty and
/// without repeats, `start != end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "RawWindow", into = "RawWindow")]
pub struct TimeWindow {
    #[schema(min_items = 1, example = json!(["mon", "tue", "wed", "thu", "fri"]))]
    days: Vec<Day>,
    #[schema(value_type = String, example = "09:00")]
    start: ClockTime,
    #[schema(value_type = String, example = "17:00")]
    end: ClockTime,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    days: Vec<Day>,
    start: String,
    end: String,
}

impl TryFrom<RawWindow> for TimeWindow {
    type Error = String;

    fn try_from(raw: RawWindow) -> Result<Self, String> {
        TimeWindow::new(raw.days, &raw.start, &raw.end)
    }
}

impl From<TimeWindow> for RawWindow {
    fn from(w: TimeWindow) -> Self {
        RawWindow {
            days: w.days,
            start: w.start.to_string(),
            end: w.end.to_string(),
        }
    }
}

impl TimeWindow {
    pub fn new(days: Vec<Day>, start: &str, end: &str) -> Result<Self, String> {
        if days.is_empty() {
            return Err("a window needs at least one day".into());
        }
        if days.iter().enumerate().any(|(i, d)| days[..i].contains(d)) {
            return Err("a window lists a day twice".into());
        }
        let start = ClockTime::parse(start)?;
        let end = ClockTime::parse(end)?;
        if start == end {
            return Err(format!(
                "window start and end are both {start}; they must differ"
            ));
        }
        Ok(TimeWindow { days, start, end })
    }

    /// Whether the local wall-clock time `local` falls inside this window.
    pub fn contains(&self, local: NaiveDateTime) -> bool {
        let now = ClockTime::of(local.time());
        let today = Day::of(local.weekday());
        if self.start < self.end {
            self.days.contains(&today) && self.start <= now && now < self.end
        } else {
            let yesterday = Day::of(local.weekday().pred());
            (self.days.contains(&today) && now >= self.start)
                || (self.days.contains(&yesterday) && now < self.end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    fn window(json: &str) -> Result<TimeWindow, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn a_same_day_window_is_half_open() {
        let w = window(r#"{"days":["mon"],"start":"09:00","end":"17:00"}"#).unwrap();
        // 2026-11-23 is a Monday.
        assert!(!w.contains(at(2026, 11, 23, 8, 59)));
        assert!(w.contains(at(2026, 11, 23, 9, 0)));
        assert!(w.contains(at(2026, 11, 23, 16, 59)));
        assert!(!w.contains(at(2026, 11, 23, 17, 0)));
        assert!(!w.contains(at(2026, 11, 24, 10, 0)));
    }

    #[test]
    fn a_midnight_crossing_window_belongs_to_the_day_it_starts() {
        let w = window(r#"{"days":["fri"],"start":"22:30","end":"03:30"}"#).unwrap();
        // 2026-11-27 is a Friday.
        assert!(!w.contains(at(2026, 11, 27, 22, 29)));
        assert!(w.contains(at(2026, 11, 27, 22, 30)));
        assert!(w.contains(at(2026, 11, 28, 3, 29)));
        assert!(!w.contains(at(2026, 11, 28, 3, 30)));
        // Friday's early hours belong to Thursday's entry, which is absent.
        assert!(!w.contains(at(2026, 11, 27, 1, 0)));
        assert!(!w.contains(at(2026, 11, 28, 22, 45)));
    }

    #[test]
    fn bad_windows_are_refused_with_a_reason() {
        let err = |j| window(j).unwrap_err().to_string();
        assert!(err(r#"{"days":["mon"],"start":"09:00","end":"09:00"}"#).contains("must differ"));
        assert!(err(r#"{"days":[],"start":"09:00","end":"10:00"}"#).contains("at least one day"));
        assert!(err(r#"{"days":["mon","mon"],"start":"09:00","end":"10:00"}"#).contains("twice"));
        assert!(err(r#"{"days":["mon"],"start":"24:00","end":"10:00"}"#).contains("HH:MM"));
        assert!(err(r#"{"days":["mon"],"start":"9:00","end":"10:00"}"#).contains("HH:MM"));
        assert!(err(r#"{"days":["mon"],"start":"09:60","end":"10:00"}"#).contains("HH:MM"));
        assert!(err(r#"{"days":["funday"],"start":"09:00","end":"10:00"}"#).contains("funday"));
        assert!(
            err(r#"{"days":["mon"],"start":"09:00","end":"10:00","x":1}"#)
                .contains("unknown field")
        );
    }

    #[test]
    fn windows_round_trip_through_json() {
        let json = r#"{"days":["sat","sun"],"start":"23:15","end":"01:05"}"#;
        let w = window(json).unwrap();
        assert_eq!(serde_json::to_string(&w).unwrap(), json);
    }
}
