//! A campaign's dialing plan: its configuration's schedule and policy, and
//! its agent defaults; and from them, which of its contacts' time zones may
//! be called right now.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::agent::AgentFields;
use super::policy::DialingPolicy;
use super::schedule::Schedule;

#[derive(Debug, Clone, PartialEq)]
pub struct CampaignPlan {
    pub campaign_id: Uuid,
    pub organization_id: Uuid,
    pub schedule: Schedule,
    pub policy: DialingPolicy,
    /// Campaign overrides already laid over the configuration's agent.
    pub agent: AgentFields,
}

/// One open gate: contacts of this campaign whose stored `timezone` is
/// `zone` ("" for none) and whose next attempt is (or is not) a first
/// scheduled attempt may be called now.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gate {
    pub zone: String,
    pub first_scheduled: bool,
}

impl CampaignPlan {
    /// The open gates among the zone keys the campaign's contacts use (a
    /// stated zone, `~` and the zones of their numbers, or ""): open when
    /// the window is open in every zone the key stands for under the
    /// schedule's `timezone_inference`. A stated zone that does not parse
    /// is never open.
    pub fn open_gates(&self, zones: &[String], now: DateTime<Utc>) -> Vec<Gate> {
        let mut gates = Vec::new();
        for zone in zones {
            let Some(checked) = self.schedule.zones_of(zone) else {
                continue;
            };
            for first_scheduled in [false, true] {
                if self.schedule.is_open_in(&checked, first_scheduled, now) {
                    gates.push(Gate {
                        zone: zone.clone(),
                        first_scheduled,
                    });
                }
            }
        }
        gates.sort();
        gates
    }

    /// The plan of ad-hoc contacts: default policy, no windows, no agent defaults.
    pub fn ad_hoc(organization_id: Uuid) -> CampaignPlan {
        CampaignPlan {
            campaign_id: Uuid::nil(),
            organization_id,
            schedule: serde_json::from_str("{}").expect("the empty schedule is valid"),
            policy: DialingPolicy::default(),
            agent: AgentFields::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn plan(schedule: &str) -> CampaignPlan {
        CampaignPlan {
            campaign_id: Uuid::nil(),
            organization_id: Uuid::nil(),
            schedule: serde_json::from_str(schedule).unwrap(),
            policy: DialingPolicy::default(),
            agent: AgentFields::default(),
        }
    }

    #[test]
    fn only_zones_inside_their_windows_are_open() {
        let p = plan(
            r#"{"default_timezone":"America/New_York","default_windows":[{"days":["mon"],"start":"09:00","end":"17:00"}]}"#,
        );
        // Monday 2026-11-23 15:00 UTC: 10:00 in New York, 16:00 in Paris, 00:00 Tuesday in Tokyo.
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap();
        let zones = vec![
            "".to_owned(),
            "Europe/Paris".into(),
            "Asia/Tokyo".into(),
            "Not/AZone".into(),
        ];
        let gates = p.open_gates(&zones, now);
        let open: Vec<(&str, bool)> = gates
            .iter()
            .map(|g| (g.zone.as_str(), g.first_scheduled))
            .collect();
        assert_eq!(
            open,
            [
                ("", false),
                ("", true),
                ("Europe/Paris", false),
                ("Europe/Paris", true)
            ]
        );
    }

    #[test]
    fn scheduled_windows_open_separate_gates_for_first_scheduled_attempts() {
        let p = plan(
            r#"{"default_timezone":"UTC","default_windows":[{"days":["mon"],"start":"09:00","end":"10:00"}],
                "scheduled_windows":[{"days":["mon"],"start":"18:00","end":"19:00"}]}"#,
        );
        let evening = Utc.with_ymd_and_hms(2026, 11, 23, 18, 30, 0).unwrap();
        assert_eq!(
            p.open_gates(&["".into()], evening),
            vec![Gate {
                zone: "".into(),
                first_scheduled: true
            }]
        );
    }
}
