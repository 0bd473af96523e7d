//! The evidence an attempt keeps of why its call was allowed, as the claim
//! saw it: the zone checked and where it came from, the local time there,
//! the window that let the call through, and the do-not-call lists checked
//! with their versions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::number_zones::{self, Source};
use super::schedule::Schedule;
use super::timezone::Timezone;
use super::window::TimeWindow;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Evidence {
    /// When the claim decided, UTC.
    pub checked_at: DateTime<Utc>,
    /// The zones checked: the contact's own, the candidates of its numbers
    /// (all of them under `strict` inference), or the default; none for an
    /// ad-hoc contact without a zone.
    pub zones: Vec<ZoneChecked>,
    /// Which windows allowed the call: `default`, `override` (of the
    /// zone), `scheduled` or `scheduled_override` (a contact's first
    /// attempt with `scheduled_at`), or `none` for ad-hoc contacts, which
    /// no window gates.
    pub windows: String,
    /// The window the local time fell in.
    pub window: Option<TimeWindow>,
    /// The do-not-call lists that applied, as the claim read them.
    pub dnc_lists: Vec<ListChecked>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ZoneChecked {
    pub zone: String,
    /// `contact` (its stated zone), `number` (from its numbers) or
    /// `default` (the configuration's).
    pub source: String,
    /// Local wall-clock time there, e.g. `2026-12-01T09:12:04`.
    pub local_time: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ListChecked {
    pub id: Uuid,
    pub name: String,
    pub version: i64,
}

/// The evidence of a call decided at `now` for a contact whose stated zone
/// is `zone` (None: the schedule's default), under `schedule` (None:
/// ad hoc), with `lists` checked.
pub fn record(
    schedule: Option<&Schedule>,
    zone: Option<Timezone>,
    number_zones: Option<&str>,
    first_scheduled: bool,
    now: DateTime<Utc>,
    lists: Vec<ListChecked>,
) -> Evidence {
    let Some(schedule) = schedule else {
        // No window gates an ad-hoc contact: its stated zone, if any, is
        // recorded for its local time only.
        return Evidence {
            checked_at: now,
            zones: zone
                .map(|z| checked(z, "contact", now))
                .into_iter()
                .collect(),
            windows: "none".into(),
            window: None,
            dnc_lists: lists,
        };
    };
    let zones = number_zones::resolve(
        zone,
        number_zones,
        schedule.timezone_inference,
        schedule.default_timezone,
    );
    let source = match zones.source {
        Source::Contact => "contact",
        Source::Number => "number",
        Source::Default => "default",
    };
    // The windows of the first zone: every zone's window was open.
    let tz = zones.zones[0];
    let overridden = if first_scheduled {
        schedule
            .scheduled_overrides
            .as_ref()
            .unwrap_or(&schedule.overrides)
    } else {
        &schedule.overrides
    }
    .iter()
    .any(|o| o.timezone == tz);
    let windows = match (first_scheduled, overridden) {
        (false, false) => "default",
        (false, true) => "override",
        (true, false) => "scheduled",
        (true, true) => "scheduled_override",
    };
    let local = now.with_timezone(&tz.0).naive_local();
    let window = schedule
        .windows_for(tz, first_scheduled)
        .iter()
        .find(|w| w.contains(local))
        .cloned();
    Evidence {
        checked_at: now,
        zones: zones
            .zones
            .iter()
            .map(|&z| checked(z, source, now))
            .collect(),
        windows: windows.into(),
        window,
        dnc_lists: lists,
    }
}

fn checked(zone: Timezone, source: &str, now: DateTime<Utc>) -> ZoneChecked {
    ZoneChecked {
        zone: zone.name().into(),
        source: source.into(),
        local_time: now
            .with_timezone(&zone.0)
            .naive_local()
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn evidence_names_the_zone_its_source_local_time_and_window() {
        let schedule: Schedule = serde_json::from_value(serde_json::json!({
            "default_timezone": "America/New_York",
            "default_windows": [{"days": ["tue"], "start": "09:00", "end": "17:00"}],
            "overrides": [{"timezone": "Europe/Paris",
                           "windows": [{"days": ["tue"], "start": "14:00", "end": "20:00"}]}]
        }))
        .unwrap();
        // Tuesday 1 December 2026, 15:30 UTC: 10:30 in New York, 16:30 in Paris.
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 15, 30, 0).unwrap();
        let e = record(Some(&schedule), None, None, false, now, vec![]);
        assert_eq!(e.zones[0].zone, "America/New_York");
        assert_eq!(e.zones[0].source, "default");
        assert_eq!(e.zones[0].local_time, "2026-12-01T10:30:00");
        assert_eq!(e.windows, "default");
        assert!(e.window.is_some());
        let paris = "Europe/Paris".parse().ok();
        let e = record(Some(&schedule), paris, None, false, now, vec![]);
        assert_eq!(
            (e.zones[0].source.as_str(), e.windows.as_str()),
            ("contact", "override")
        );
        assert_eq!(e.zones[0].local_time, "2026-12-01T16:30:00");
        let e = record(None, None, None, false, now, vec![]);
        assert_eq!(e.windows, "none");
        let both = Some("America/Chicago America/New_York");
        let e = record(Some(&schedule), None, both, false, now, vec![]);
        let zones: Vec<(&str, &str)> = e
            .zones
            .iter()
            .map(|z| (z.zone.as_str(), z.source.as_str()))
            .collect();
        assert_eq!(
            zones,
            [
                ("America/Chicago", "number"),
                ("America/New_York", "number")
            ]
        );
        assert_eq!(e.windows, "default");
    }
}
