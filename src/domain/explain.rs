//! "Why is this contact not being called?": the gates the claim applies to
//! a contact, in its order, each passed or failed with, where it can tell,
//! the moment it next passes; and the verdict. The rules are the claim's
//! own, applied to the same facts: the contact's status and due time, its
//! campaign's status and schedule (the calling window of its zone, or of
//! the configuration's default zone), its numbers, and the limits.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::number_zones::{self, Source};
use super::phone::E164;
use super::schedule::Schedule;
use super::status::{CampaignStatus, ContactStatus};
use super::timezone::Timezone;

/// What the claim looks at for one contact, as stored.
#[derive(Debug, Clone)]
pub struct Facts {
    pub status: ContactStatus,
    pub attempt_count: u32,
    /// The policy's allowance of calls.
    pub max_attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    /// The campaign's status and schedule; `None` for an ad-hoc contact,
    /// which no window gates.
    pub campaign: Option<(CampaignStatus, Schedule)>,
    /// The zone the contact states, if any.
    pub zone: Option<Timezone>,
    /// A stated zone that names no zone: no window ever opens for it.
    pub bad_zone: Option<String>,
    /// The candidate zones of its numbers, as stored.
    pub number_zones: Option<String>,
    /// The first attempt of a contact with `scheduled_at`: the schedule's
    /// scheduled windows apply.
    pub first_scheduled: bool,
    pub phone_numbers: Vec<String>,
    pub retired: Vec<usize>,
    /// Indexes of numbers on a do-not-call list that applies.
    pub suppressed: Vec<usize>,
    pub set_aside_reason: Option<String>,
    /// Calls in progress or claimed, and the limit: the organization's...
    pub organization_active: u32,
    pub organization_limit: u32,
    /// ...and every organization's, against the global limit.
    pub global_active: u32,
    pub global_limit: u32,
}

/// One gate, as the claim applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Check {
    /// `status`, `due`, `campaign`, `window`, `numbers`,
    /// `organization_limit` or `global_limit`.
    pub gate: &'static str,
    pub pass: bool,
    pub detail: String,
    /// When a failed gate passes again, where that is known.
    pub next_pass: Option<DateTime<Utc>>,
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every gate passes: the next claim with room takes it.
    DialableNow,
    /// A gate fails that will pass: at `waiting_until` when known.
    Waiting,
    /// A gate fails that will not pass by itself.
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Explanation {
    pub verdict: Verdict,
    /// For `waiting`: the earliest moment every gate with a time passes
    /// (the limits and a paused campaign have none).
    pub waiting_until: Option<DateTime<Utc>>,
    pub checks: Vec<Check>,
}

/// Every gate, in the claim's order, for a contact with `facts` at `now`.
pub fn explain(facts: &Facts, now: DateTime<Utc>) -> Explanation {
    let mut checks = Vec::new();
    let mut never = false;
    let mut check = |gate, pass, detail: String, next_pass| {
        checks.push(Check {
            gate,
            pass,
            detail,
            next_pass,
        })
    };

    let waiting_for_call = matches!(
        facts.status,
        ContactStatus::Locked | ContactStatus::InProgress
    );
    let status = match facts.status {
        ContactStatus::Pending => "pending".to_owned(),
        ContactStatus::Locked | ContactStatus::InProgress => {
            "in a call now: it is claimed until the call ends".to_owned()
        }
        final_status => {
            never = true;
            match &facts.set_aside_reason {
                Some(why) => format!("{} (set aside: {why})", final_status.as_str()),
                None => format!("{}: final", final_status.as_str()),
            }
        }
    };
    check(
        "status",
        facts.status == ContactStatus::Pending,
        format!(
            "{status}; {} of {} calls made",
            facts.attempt_count, facts.max_attempts
        ),
        None,
    );

    let due = facts.next_attempt_at <= now;
    check(
        "due",
        due,
        format!("next attempt at {}", facts.next_attempt_at.to_rfc3339()),
        (!due).then_some(facts.next_attempt_at),
    );
    // The first moment both the due time and the window allow a call.
    let mut when = facts.next_attempt_at.max(now);

    if let (Some(_), Some(bad)) = (&facts.campaign, &facts.bad_zone) {
        never = true;
        check("campaign", true, "campaign contact".into(), None);
        check(
            "window",
            false,
            format!("the stated zone {bad:?} is no zone"),
            None,
        );
    } else if let Some((campaign_status, schedule)) = &facts.campaign {
        let active = *campaign_status == CampaignStatus::Active;
        never |= *campaign_status == CampaignStatus::Closed;
        check(
            "campaign",
            active,
            format!("campaign {}", campaign_status.as_str()),
            None,
        );
        let zones = number_zones::resolve(
            facts.zone,
            facts.number_zones.as_deref(),
            schedule.timezone_inference,
            schedule.default_timezone,
        );
        let source = match zones.source {
            Source::Contact => "the contact's zone",
            Source::Number => "the zones of its numbers: open only when open in every one",
            Source::Default => "the default zone",
        };
        let open = schedule.is_open_in(&zones, facts.first_scheduled, now);
        let each: Vec<String> = zones
            .zones
            .iter()
            .map(|z| {
                let state = if schedule.is_open(Some(*z), facts.first_scheduled, now) {
                    "inside"
                } else {
                    "outside"
                };
                format!(
                    "{} in {} ({state})",
                    now.with_timezone(&z.0).format("%a %H:%M"),
                    z.name()
                )
            })
            .collect();
        let local = each.join(", ");
        let opens = schedule.next_open_in(&zones, facts.first_scheduled, when);
        let detail = match (open, opens) {
            (true, _) => format!("{local} ({source}): inside a window"),
            (false, Some(_)) => format!("{local} ({source}): outside a window"),
            (false, None) => format!("{local} ({source}): no window opens within 8 days"),
        };
        if opens.is_none() {
            never = true;
        }
        check("window", open, detail, (!open).then_some(opens).flatten());
        when = opens.unwrap_or(when);
    } else {
        check(
            "campaign",
            true,
            "ad-hoc: no campaign, no window".into(),
            None,
        );
    }

    let usable = facts
        .phone_numbers
        .iter()
        .enumerate()
        .filter(|(i, n)| {
            !facts.retired.contains(i)
                && !facts.suppressed.contains(i)
                && E164::from_stored((*n).clone()).is_some()
        })
        .count();
    never |= usable == 0;
    check(
        "numbers",
        usable > 0,
        format!(
            "{usable} of {} numbers usable ({} retired, {} on a do-not-call list)",
            facts.phone_numbers.len(),
            facts.retired.len(),
            facts.suppressed.len()
        ),
        None,
    );

    // A contact in a call counts towards the limits itself.
    let room = |active: u32, limit: u32| active < limit || waiting_for_call;
    let org_room = room(facts.organization_active, facts.organization_limit);
    check(
        "organization_limit",
        org_room,
        format!(
            "{} of {} calls in use",
            facts.organization_active, facts.organization_limit
        ),
        None,
    );
    let global_room = room(facts.global_active, facts.global_limit);
    check(
        "global_limit",
        global_room,
        format!(
            "{} of {} calls in use",
            facts.global_active, facts.global_limit
        ),
        None,
    );

    let verdict = if never {
        Verdict::Never
    } else if checks.iter().all(|c| c.pass) {
        Verdict::DialableNow
    } else {
        Verdict::Waiting
    };
    // Only the gates with a time: a limit or a paused campaign has none.
    let timeless = checks.iter().any(|c| {
        !c.pass
            && matches!(
                c.gate,
                "campaign" | "organization_limit" | "global_limit" | "status"
            )
    });
    let waiting_until = (verdict == Verdict::Waiting && !timeless).then_some(when);
    Explanation {
        verdict,
        waiting_until,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    /// A pending contact of an active campaign dialing New York weekdays
    /// 09:00-17:00, due, with room everywhere.
    fn facts() -> Facts {
        let schedule: Schedule = serde_json::from_str(
            r#"{"default_timezone":"America/New_York","default_windows":[{"days":["mon","tue","wed","thu","fri"],"start":"09:00","end":"17:00"}]}"#,
        )
        .unwrap();
        Facts {
            status: ContactStatus::Pending,
            attempt_count: 0,
            max_attempts: 3,
            next_attempt_at: utc(2026, 11, 23, 12, 0),
            campaign: Some((CampaignStatus::Active, schedule)),
            zone: None,
            bad_zone: None,
            first_scheduled: false,
            phone_numbers: vec!["+14155550100".into()],
            retired: vec![],
            suppressed: vec![],
            number_zones: None,
            set_aside_reason: None,
            organization_active: 0,
            organization_limit: 10,
            global_active: 0,
            global_limit: 100,
        }
    }

    #[test]
    fn a_due_contact_inside_its_window_with_room_is_dialable_now() {
        // Monday 15:00 UTC = 10:00 EST.
        let e = explain(&facts(), utc(2026, 11, 23, 15, 0));
        assert_eq!(e.verdict, Verdict::DialableNow);
        assert!(e.checks.iter().all(|c| c.pass), "{e:?}");
        let gates: Vec<&str> = e.checks.iter().map(|c| c.gate).collect();
        assert_eq!(
            gates,
            [
                "status",
                "due",
                "campaign",
                "window",
                "numbers",
                "organization_limit",
                "global_limit"
            ]
        );
    }

    #[test]
    fn outside_its_window_it_waits_for_the_next_opening() {
        // Monday 23:00 UTC = 18:00 EST: next Tuesday 09:00 EST = 14:00 UTC.
        let e = explain(&facts(), utc(2026, 11, 23, 23, 0));
        assert_eq!(e.verdict, Verdict::Waiting);
        assert_eq!(e.waiting_until, Some(utc(2026, 11, 24, 14, 0)));
        let window = e.checks.iter().find(|c| c.gate == "window").unwrap();
        assert!(
            !window.pass && window.detail.contains("America/New_York"),
            "{window:?}"
        );
    }

    #[test]
    fn a_retry_due_after_the_window_closes_waits_for_the_day_after() {
        let mut f = facts();
        // Due Monday 22:30 UTC (17:30 EST, closed): Tuesday 14:00 UTC.
        f.next_attempt_at = utc(2026, 11, 23, 22, 30);
        let e = explain(&f, utc(2026, 11, 23, 15, 0));
        assert_eq!(e.verdict, Verdict::Waiting);
        assert_eq!(e.waiting_until, Some(utc(2026, 11, 24, 14, 0)));
    }

    #[test]
    fn limits_and_a_paused_campaign_wait_with_no_time_and_final_states_never() {
        let now = utc(2026, 11, 23, 15, 0);
        let mut full = facts();
        full.organization_active = 10;
        let e = explain(&full, now);
        assert_eq!((e.verdict, e.waiting_until), (Verdict::Waiting, None));
        let mut paused = facts();
        paused.campaign.as_mut().unwrap().0 = CampaignStatus::Paused;
        assert_eq!(explain(&paused, now).verdict, Verdict::Waiting);
        let mut closed = facts();
        closed.campaign.as_mut().unwrap().0 = CampaignStatus::Closed;
        assert_eq!(explain(&closed, now).verdict, Verdict::Never);
        let mut done = facts();
        done.status = ContactStatus::Completed;
        assert_eq!(explain(&done, now).verdict, Verdict::Never);
        let mut retired = facts();
        retired.retired = vec![0];
        assert_eq!(explain(&retired, now).verdict, Verdict::Never);
    }

    #[test]
    fn an_ad_hoc_contact_knows_no_window() {
        let mut f = facts();
        f.campaign = None;
        let e = explain(&f, utc(2026, 11, 23, 23, 0));
        assert_eq!(e.verdict, Verdict::DialableNow);
        assert!(e.checks.iter().all(|c| c.gate != "window"));
    }
}
