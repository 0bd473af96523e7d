//! A configuration's schedule: which windows apply to a contact, and whether
//! they are open now (SPEC 1, Configuration).

use super::number_zones::{self, Inference, Zones};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::timezone::Timezone;
use super::window::TimeWindow;

/// Windows that replace the default ones for one time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Override {
    #[schema(value_type = String, example = "Europe/London")]
    pub timezone: Timezone,
    pub windows: Vec<TimeWindow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, try_from = "RawSchedule")]
pub struct Schedule {
    /// Zone of contacts that have none of their own.
    #[schema(value_type = String, example = "America/New_York")]
    pub default_timezone: Timezone,
    /// Empty means no calls at all.
    pub default_windows: Vec<TimeWindow>,
    pub overrides: Vec<Override>,
    /// First attempt of a contact with `scheduled_at`; null falls back to `default_windows`.
    pub scheduled_windows: Option<Vec<TimeWindow>>,
    /// First attempt of a contact with `scheduled_at`; null falls back to `overrides`.
    pub scheduled_overrides: Option<Vec<Override>>,
    /// Zones of a contact that states none, from its numbers: `strict`
    /// (every candidate zone must be inside the window), `first` (the
    /// first candidate) or `off` (the default zone).
    pub timezone_inference: Inference,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    #[serde(default)]
    default_timezone: Timezone,
    #[serde(default)]
    default_windows: Vec<TimeWindow>,
    #[serde(default)]
    overrides: Vec<Override>,
    #[serde(default)]
    scheduled_windows: Option<Vec<TimeWindow>>,
    #[serde(default)]
    scheduled_overrides: Option<Vec<Override>>,
    #[serde(default)]
    timezone_inference: Inference,
}

fn unique_zones(list: &[Override], field: &str) -> Result<(), String> {
    for (i, o) in list.iter().enumerate() {
        if list[..i].iter().any(|p| p.timezone == o.timezone) {
            return Err(format!("{field} lists time zone {} twice", o.timezone));
        }
    }
    Ok(())
}

impl TryFrom<RawSchedule> for Schedule {
    type Error = String;

    fn try_from(raw: RawSchedule) -> Result<Self, String> {
        unique_zones(&raw.overrides, "overrides")?;
        if let Some(list) = &raw.scheduled_overrides {
            unique_zones(list, "scheduled_overrides")?;
        }
        Ok(Schedule {
            default_timezone: raw.default_timezone,
            default_windows: raw.default_windows,
            overrides: raw.overrides,
            scheduled_windows: raw.scheduled_windows,
            scheduled_overrides: raw.scheduled_overrides,
            timezone_inference: raw.timezone_inference,
        })
    }
}

impl Schedule {
    /// The windows for a contact in `zone`. `first_scheduled` is true for the
    /// first attempt of a contact that has `scheduled_at`.
    pub fn windows_for(&self, zone: Timezone, first_scheduled: bool) -> &[TimeWindow] {
        let (overrides, defaults) = if first_scheduled {
            (
                self.scheduled_overrides.as_ref().unwrap_or(&self.overrides),
                self.scheduled_windows
                    .as_ref()
                    .unwrap_or(&self.default_windows),
            )
        } else {
            (&self.overrides, &self.default_windows)
        };
        overrides
            .iter()
            .find(|o| o.timezone == zone)
            .map_or(defaults.as_slice(), |o| o.windows.as_slice())
    }

    /// Whether a contact in `zone` (or the default zone) may be called at `now`.
    pub fn is_open(
        &self,
        zone: Option<Timezone>,
        first_scheduled: bool,
        now: DateTime<Utc>,
    ) -> bool {
        let zone = zone.unwrap_or(self.default_timezone);
        let local = now.with_timezone(&zone.0).naive_local();
        self.windows_for(zone, first_scheduled)
            .iter()
            .any(|w| w.contains(local))
    }

    /// Whether a contact checked in `zones` may be called at `now`: the
    /// window must be open in every one of them.
    pub fn is_open_in(&self, zones: &Zones, first_scheduled: bool, now: DateTime<Utc>) -> bool {
        zones
            .zones
            .iter()
            .all(|&z| self.is_open(Some(z), first_scheduled, now))
    }

    /// The zones a contact with a stored zone key (`contacts.zone_key`) is
    /// checked in; None for a stated zone that does not parse.
    pub fn zones_of(&self, key: &str) -> Option<Zones> {
        let (stated, numbers) = number_zones::parse_key(key)?;
        Some(number_zones::resolve(
            stated,
            numbers,
            self.timezone_inference,
            self.default_timezone,
        ))
    }

    /// The first moment at or after `after` when a contact in `zone` may be
    /// called, within a week and a day; `None` when no window opens by then.
    /// Windows start and end on whole local minutes, and every zone's
    /// offset is whole minutes, so the minutes from `after` on are all the
    /// moments where a window can open: [`Schedule::is_open`] decides each,
    /// daylight-saving changes included.
    pub fn next_open(
        &self,
        zone: Option<Timezone>,
        first_scheduled: bool,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let zones = Zones {
            zones: vec![zone.unwrap_or(self.default_timezone)],
            source: number_zones::Source::Default,
        };
        self.next_open_in(&zones, first_scheduled, after)
    }

    /// [`Schedule::next_open`] for a contact checked in every one of `zones`.
    pub fn next_open_in(
        &self,
        zones: &Zones,
        first_scheduled: bool,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if self.is_open_in(zones, first_scheduled, after) {
            return Some(after);
        }
        let minute = chrono::Duration::minutes(1);
        let whole = after.timestamp().div_euclid(60) * 60;
        let mut t = DateTime::<Utc>::from_timestamp(whole, 0)? + minute;
        let end = after + chrono::Duration::days(8);
        while t <= end {
            if self.is_open_in(zones, first_scheduled, t) {
                return Some(t);
            }
            t += minute;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedule(json: &str) -> Schedule {
        serde_json::from_str(json).unwrap()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    const WEEKDAYS: &str = r#"["mon","tue","wed","thu","fri"]"#;

    #[test]
    fn contacts_without_a_zone_use_the_default_zone() {
        let s = schedule(&format!(
            r#"{{"default_timezone":"America/New_York","default_windows":[{{"days":{WEEKDAYS},"start":"09:00","end":"17:00"}}]}}"#
        ));
        // 2026-11-23 14:00 UTC is 09:00 in New York (EST, UTC-5).
        assert!(s.is_open(None, false, utc(2026, 11, 23, 14, 0)));
        assert!(!s.is_open(None, false, utc(2026, 11, 23, 13, 59)));
        let paris = "Europe/Paris".parse().ok();
        assert!(s.is_open(paris, false, utc(2026, 11, 23, 8, 0)));
        assert!(!s.is_open(paris, false, utc(2026, 11, 23, 16, 0)));
    }

    #[test]
    fn empty_default_windows_mean_no_calls() {
        let s = schedule("{}");
        assert!(!s.is_open(None, false, utc(2026, 11, 23, 14, 0)));
    }

    #[test]
    fn an_override_replaces_the_default_windows_for_its_zone() {
        let s = schedule(&format!(
            r#"{{"default_windows":[{{"days":{WEEKDAYS},"start":"09:00","end":"17:00"}}],
                "overrides":[{{"timezone":"Asia/Tokyo","windows":[{{"days":["sat"],"start":"10:00","end":"12:00"}}]}}]}}"#
        ));
        let tokyo = "Asia/Tokyo".parse().ok();
        // Monday 10:00 in Tokyo (UTC+9) = Monday 01:00 UTC: default would allow, override does not.
        assert!(!s.is_open(tokyo, false, utc(2026, 11, 23, 1, 0)));
        // Saturday 11:00 in Tokyo = Saturday 02:00 UTC.
        assert!(s.is_open(tokyo, false, utc(2026, 11, 28, 2, 0)));
    }

    #[test]
    fn scheduled_windows_apply_only_to_first_scheduled_attempts() {
        let s = schedule(
            r#"{"default_timezone":"UTC","default_windows":[{"days":["mon"],"start":"09:00","end":"10:00"}],
                "scheduled_windows":[{"days":["mon"],"start":"18:00","end":"20:00"}]}"#,
        );
        assert!(s.is_open(None, true, utc(2026, 11, 23, 19, 0)));
        assert!(!s.is_open(None, false, utc(2026, 11, 23, 19, 0)));
        assert!(!s.is_open(None, true, utc(2026, 11, 23, 9, 30)));
        assert!(s.is_open(None, false, utc(2026, 11, 23, 9, 30)));
    }

    #[test]
    fn null_scheduled_settings_fall_back_to_the_regular_ones() {
        let s = schedule(
            r#"{"default_timezone":"UTC","default_windows":[{"days":["mon"],"start":"09:00","end":"10:00"}],
                "overrides":[{"timezone":"Asia/Tokyo","windows":[{"days":["mon"],"start":"20:00","end":"21:00"}]}],
                "scheduled_windows":[{"days":["mon"],"start":"18:00","end":"20:00"}]}"#,
        );
        assert!(s.is_open(None, true, utc(2026, 11, 23, 19, 0)));
        let tokyo = "Asia/Tokyo".parse().ok();
        // Regular Tokyo override still applies to the first scheduled attempt: Monday 20:30 JST.
        assert!(s.is_open(tokyo, true, utc(2026, 11, 23, 11, 30)));
    }

    #[test]
    fn windows_follow_daylight_saving_time() {
        let s = schedule(
            r#"{"default_timezone":"America/New_York","default_windows":[{"days":["sun"],"start":"09:00","end":"10:00"}]}"#,
        );
        // 2026-11-01 is the Sunday New York leaves DST: 09:00 local = 14:00 UTC (EST).
        assert!(s.is_open(None, false, utc(2026, 11, 1, 14, 0)));
        assert!(!s.is_open(None, false, utc(2026, 11, 1, 13, 0)));
        // 2026-03-08 is the Sunday New York enters DST: 09:00 local = 13:00 UTC (EDT).
        assert!(s.is_open(None, false, utc(2026, 3, 8, 13, 0)));
        assert!(!s.is_open(None, false, utc(2026, 3, 8, 14, 0)));
    }

    /// New York's clocks jump from 02:00 to 03:00 on 2026-03-08 (07:00 UTC)
    /// and go back from 02:00 to 01:00 on 2026-11-01 (06:00 UTC). Windows
    /// are read on the callee's wall clock: an hour that is skipped is never
    /// open, an hour that repeats is open both times.
    fn new_york(windows: &str) -> Schedule {
        schedule(&format!(
            r#"{{"default_timezone":"America/New_York","default_windows":{windows}}}"#
        ))
    }

    #[test]
    fn a_window_inside_the_skipped_hour_never_opens_and_one_across_it_opens_after_it() {
        let inside = new_york(r#"[{"days":["sun"],"start":"02:00","end":"02:45"}]"#);
        let mut t = utc(2026, 3, 8, 5, 0);
        while t < utc(2026, 3, 8, 9, 0) {
            assert!(!inside.is_open(None, false, t), "open at {t}");
            t += chrono::Duration::minutes(1);
        }
        let across = new_york(r#"[{"days":["sun"],"start":"01:30","end":"03:30"}]"#);
        // 01:30-01:59 EST, then 03:00-03:29 EDT: an hour of calling, not two.
        assert!(!across.is_open(None, false, utc(2026, 3, 8, 6, 29)));
        assert!(across.is_open(None, false, utc(2026, 3, 8, 6, 30)));
        assert!(across.is_open(None, false, utc(2026, 3, 8, 6, 59)));
        assert!(across.is_open(None, false, utc(2026, 3, 8, 7, 0)));
        assert!(across.is_open(None, false, utc(2026, 3, 8, 7, 29)));
        assert!(!across.is_open(None, false, utc(2026, 3, 8, 7, 30)));
    }

    #[test]
    fn a_window_inside_the_repeated_hour_is_open_both_times() {
        let s = new_york(r#"[{"days":["sun"],"start":"01:15","end":"01:45"}]"#);
        // 01:15-01:44 EDT (05:15-05:44 UTC), then again in EST (06:15-06:44 UTC).
        for (h, m, open) in [
            (5, 14, false),
            (5, 15, true),
            (5, 44, true),
            (5, 45, false),
            (6, 0, false),
            (6, 15, true),
            (6, 44, true),
            (6, 45, false),
        ] {
            assert_eq!(
                s.is_open(None, false, utc(2026, 11, 1, h, m)),
                open,
                "{h:02}:{m:02} UTC"
            );
        }
    }

    #[test]
    fn a_midnight_crossing_window_on_a_transition_night_ends_at_its_wall_clock_time() {
        let s = new_york(r#"[{"days":["sat"],"start":"22:00","end":"02:00"}]"#);
        // Spring: Saturday 22:00 EST (03:00 UTC) to Sunday 02:00, which the
        // clocks skip: closed from 03:00 EDT (07:00 UTC).
        assert!(!s.is_open(None, false, utc(2026, 3, 8, 2, 59)));
        assert!(s.is_open(None, false, utc(2026, 3, 8, 3, 0)));
        assert!(s.is_open(None, false, utc(2026, 3, 8, 6, 59)));
        assert!(!s.is_open(None, false, utc(2026, 3, 8, 7, 0)));
        // Autumn: Saturday 22:00 EDT (02:00 UTC) to Sunday 02:00 EST
        // (07:00 UTC), the repeated hour included: five hours of calling.
        assert!(!s.is_open(None, false, utc(2026, 11, 1, 1, 59)));
        assert!(s.is_open(None, false, utc(2026, 11, 1, 2, 0)));
        assert!(s.is_open(None, false, utc(2026, 11, 1, 5, 30)));
        assert!(s.is_open(None, false, utc(2026, 11, 1, 6, 30)));
        assert!(s.is_open(None, false, utc(2026, 11, 1, 6, 59)));
        assert!(!s.is_open(None, false, utc(2026, 11, 1, 7, 0)));
    }

    #[test]
    fn the_next_opening_is_found_to_the_minute_across_days_and_dst() {
        let s = new_york(r#"[{"days":["mon"],"start":"09:00","end":"10:00"}]"#);
        // Open now: now.
        let open = utc(2026, 11, 23, 14, 30) + chrono::Duration::seconds(17);
        assert_eq!(s.next_open(None, false, open), Some(open));
        // Monday 10:00 EST, just closed: next Monday 09:00 EST.
        assert_eq!(
            s.next_open(None, false, utc(2026, 11, 23, 15, 0)),
            Some(utc(2026, 11, 30, 14, 0))
        );
        // From Saturday before the spring change to Monday 09:00 EDT (13:00 UTC).
        assert_eq!(
            s.next_open(None, false, utc(2026, 3, 7, 12, 0)),
            Some(utc(2026, 3, 9, 13, 0))
        );
        // Nothing opens: no windows.
        assert_eq!(schedule("{}").next_open(None, false, open), None);
    }

    #[test]
    fn a_zone_listed_twice_in_overrides_is_refused() {
        let err = serde_json::from_str::<Schedule>(
            r#"{"overrides":[{"timezone":"UTC","windows":[]},{"timezone":"UTC","windows":[]}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
