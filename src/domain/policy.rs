//! Dialing policy: how many calls a contact gets, which outcomes are retried,
//! after how long, and on which number (SPEC 1, Dialing policy).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::phone::Country;
use super::status::Outcome;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, try_from = "RawPolicy")]
pub struct DialingPolicy {
    /// Total calls per contact, 1 to 50.
    #[schema(minimum = 1, maximum = 50, example = 3)]
    pub max_attempts: u32,
    /// Delay before a retry when `retry_delays` names no delay for the outcome.
    #[schema(example = 3600)]
    pub retry_delay_seconds: u32,
    /// Per-outcome delays in seconds, keyed by outcome.
    #[schema(value_type = BTreeMap<String, u32>)]
    pub retry_delays: BTreeMap<Outcome, u32>,
    /// Outcomes that are retried; any other outcome but `completed` and
    /// `invalid_number` exhausts the contact.
    pub retry_outcomes: Vec<Outcome>,
    /// ISO 3166 alpha-2 country for numbers uploaded without `+`.
    #[schema(value_type = Option<String>, example = "US")]
    pub default_country: Option<Country>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_delay")]
    retry_delay_seconds: u32,
    #[serde(default)]
    retry_delays: BTreeMap<Outcome, u32>,
    #[serde(default = "default_retry_outcomes")]
    retry_outcomes: Vec<Outcome>,
    #[serde(default)]
    default_country: Option<Country>,
}

fn default_max_attempts() -> u32 {
    3
}

fn default_delay() -> u32 {
    3600
}

fn default_retry_outcomes() -> Vec<Outcome> {
    Outcome::RETRYABLE.to_vec()
}

impl TryFrom<RawPolicy> for DialingPolicy {
    type Error = String;

    fn try_from(raw: RawPolicy) -> Result<Self, String> {
        if !(1..=50).contains(&raw.max_attempts) {
            return Err(format!(
                "max_attempts must be 1 to 50, got {}",
                raw.max_attempts
            ));
        }
        if raw.retry_delays.contains_key(&Outcome::Completed) {
            return Err("retry_delays cannot name `completed`: it is never retried".into());
        }
        if let Some(o) = raw
            .retry_outcomes
            .iter()
            .find(|o| !Outcome::RETRYABLE.contains(o))
        {
            return Err(format!("retry_outcomes cannot name `{}`", o.as_str()));
        }
        let mut retry_outcomes = raw.retry_outcomes;
        retry_outcomes.sort_unstable();
        retry_outcomes.dedup();
        Ok(DialingPolicy {
            max_attempts: raw.max_attempts,
            retry_delay_seconds: raw.retry_delay_seconds,
            retry_delays: raw.retry_delays,
            retry_outcomes,
            default_country: raw.default_country,
        })
    }
}

impl Default for DialingPolicy {
    fn default() -> Self {
        serde_json::from_str("{}").expect("the empty policy is valid")
    }
}

/// The state of a contact's numbers and calls after an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    pub outcome: Outcome,
    /// Calls made so far, this one included.
    pub attempt_count: u32,
    /// Index of the number this call dialed.
    pub number_index: usize,
    pub number_count: usize,
    /// Numbers already retired before this call.
    pub retired: Vec<usize>,
}

/// What happens to the contact next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Completed,
    Exhausted {
        retired: Vec<usize>,
    },
    Retry {
        at: DateTime<Utc>,
        number_index: usize,
        retired: Vec<usize>,
    },
}

impl DialingPolicy {
    /// Decides the contact's next state once an attempt ended at `now`.
    pub fn after(&self, result: &AttemptResult, now: DateTime<Utc>) -> Next {
        let mut retired = result.retired.clone();
        match result.outcome {
            Outcome::Completed => return Next::Completed,
            Outcome::InvalidNumber if !retired.contains(&result.number_index) => {
                retired.push(result.number_index);
                retired.sort_unstable();
            }
            Outcome::InvalidNumber => {}
            other if !self.retry_outcomes.contains(&other) => return Next::Exhausted { retired },
            _ => {}
        }
        let next_number = (1..=result.number_count)
            .map(|step| (result.number_index + step) % result.number_count)
            .find(|i| !retired.contains(i));
        match next_number {
            Some(number_index) if result.attempt_count < self.max_attempts => Next::Retry {
                at: now + Duration::seconds(i64::from(self.delay_after(result.outcome))),
                number_index,
                retired,
            },
            _ => Next::Exhausted { retired },
        }
    }

    /// Seconds to wait after `outcome`; an invalid number moves on at once
    /// unless `retry_delays` says otherwise.
    pub fn delay_after(&self, outcome: Outcome) -> u32 {
        match self.retry_delays.get(&outcome) {
            Some(&d) => d,
            None if outcome == Outcome::InvalidNumber => 0,
            None => self.retry_delay_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
    }

    fn result(
        outcome: Outcome,
        attempt_count: u32,
        number_index: usize,
        count: usize,
    ) -> AttemptResult {
        AttemptResult {
            outcome,
            attempt_count,
            number_index,
            number_count: count,
            retired: vec![],
        }
    }

    fn policy(json: &str) -> DialingPolicy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_are_three_attempts_an_hour_apart() {
        let p = DialingPolicy::default();
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.retry_delay_seconds, 3600);
        assert_eq!(p.retry_outcomes, Outcome::RETRYABLE.to_vec());
    }

    #[test]
    fn a_completed_call_finishes_the_contact() {
        assert_eq!(
            DialingPolicy::default().after(&result(Outcome::Completed, 1, 0, 2), now()),
            Next::Completed
        );
    }

    #[test]
    fn retries_rotate_through_the_numbers_and_wrap_around() {
        let p = policy(r#"{"max_attempts":5,"retry_delay_seconds":60,"retry_delays":{"busy":10}}"#);
        let next = p.after(&result(Outcome::NoAnswer, 1, 0, 2), now());
        assert_eq!(
            next,
            Next::Retry {
                at: now() + Duration::seconds(60),
                number_index: 1,
                retired: vec![]
            }
        );
        let next = p.after(&result(Outcome::Busy, 2, 1, 2), now());
        assert_eq!(
            next,
            Next::Retry {
                at: now() + Duration::seconds(10),
                number_index: 0,
                retired: vec![]
            }
        );
    }

    #[test]
    fn the_contact_is_exhausted_at_max_attempts() {
        let p = policy(r#"{"max_attempts":2}"#);
        assert!(matches!(
            p.after(&result(Outcome::Busy, 1, 0, 1), now()),
            Next::Retry { .. }
        ));
        assert_eq!(
            p.after(&result(Outcome::Busy, 2, 0, 1), now()),
            Next::Exhausted { retired: vec![] }
        );
    }

    #[test]
    fn an_invalid_number_is_retired_and_the_next_one_tried_at_once() {
        let p = DialingPolicy::default();
        let next = p.after(&result(Outcome::InvalidNumber, 1, 0, 3), now());
        assert_eq!(
            next,
            Next::Retry {
                at: now(),
                number_index: 1,
                retired: vec![0]
            }
        );
        let mut r = result(Outcome::NoAnswer, 2, 1, 3);
        r.retired = vec![0];
        assert!(matches!(
            p.after(&r, now()),
            Next::Retry {
                number_index: 2,
                ..
            }
        ));
        let mut r = result(Outcome::NoAnswer, 2, 2, 3);
        r.retired = vec![0];
        assert!(matches!(
            p.after(&r, now()),
            Next::Retry {
                number_index: 1,
                ..
            }
        ));
    }

    #[test]
    fn a_contact_whose_every_number_is_invalid_is_exhausted() {
        let mut r = result(Outcome::InvalidNumber, 2, 1, 2);
        r.retired = vec![0];
        assert_eq!(
            DialingPolicy::default().after(&r, now()),
            Next::Exhausted {
                retired: vec![0, 1]
            }
        );
    }

    #[test]
    fn an_outcome_the_policy_does_not_retry_exhausts_the_contact() {
        let p = policy(r#"{"retry_outcomes":["no_answer"]}"#);
        assert_eq!(
            p.after(&result(Outcome::Voicemail, 1, 0, 1), now()),
            Next::Exhausted { retired: vec![] }
        );
        assert!(matches!(
            p.after(&result(Outcome::NoAnswer, 1, 0, 1), now()),
            Next::Retry { .. }
        ));
    }

    #[test]
    fn bad_policies_are_refused() {
        let err = |j| {
            serde_json::from_str::<DialingPolicy>(j)
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"max_attempts":0}"#).contains("1 to 50"));
        assert!(err(r#"{"max_attempts":51}"#).contains("1 to 50"));
        assert!(err(r#"{"retry_delay_seconds":-1}"#).contains("invalid value"));
        assert!(err(r#"{"retry_delays":{"completed":5}}"#).contains("never retried"));
        assert!(err(r#"{"retry_outcomes":["invalid_number"]}"#).contains("cannot name"));
        assert!(err(r#"{"default_country":"XX"}"#).contains("country"));
        assert!(err(r#"{"surprise":1}"#).contains("unknown field"));
    }
}
