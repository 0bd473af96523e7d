//! The closed sets of states: campaign status, contact status, call outcome.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Lifecycle of a campaign (SPEC 2).
/// How `set_aside_reason` begins for a contact none of whose numbers may be
/// dialed because of do-not-call lists: its final outcome, no call placed.
pub const SUPPRESSED: &str = "suppressed";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "campaign_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Active,
    Paused,
    Closed,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Closed => "closed",
        }
    }
}

impl std::str::FromStr for CampaignStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "paused" => Ok(Self::Paused),
            "closed" => Ok(Self::Closed),
            _ => Err(format!(
                "unknown campaign status `{s}` (active, paused, closed)"
            )),
        }
    }
}

/// Where a contact stands (SPEC 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "contact_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ContactStatus {
    Pending,
    Locked,
    InProgress,
    Completed,
    Exhausted,
}

impl ContactStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Locked => "locked",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Exhausted => "exhausted",
        }
    }
}

impl std::str::FromStr for ContactStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "locked" => Ok(Self::Locked),
            "in_progress" => Ok(Self::InProgress),
            "completed" => Ok(Self::Completed),
            "exhausted" => Ok(Self::Exhausted),
            _ => Err(format!(
                "unknown contact status `{s}` (pending, locked, in_progress, completed, exhausted)"
            )),
        }
    }
}

/// How one call ended (SPEC 1, Attempt).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    sqlx::Type,
    ToSchema,
)]
#[sqlx(type_name = "attempt_outcome", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    NoAnswer,
    Busy,
    Voicemail,
    Rejected,
    InvalidNumber,
    Failed,
    Interrupted,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Completed,
        Outcome::NoAnswer,
        Outcome::Busy,
        Outcome::Voicemail,
        Outcome::Rejected,
        Outcome::InvalidNumber,
        Outcome::Failed,
        Outcome::Interrupted,
    ];

    /// Outcomes that a retry policy may schedule another call for.
    pub const RETRYABLE: [Outcome; 6] = [
        Outcome::NoAnswer,
        Outcome::Busy,
        Outcome::Voicemail,
        Outcome::Rejected,
        Outcome::Failed,
        Outcome::Interrupted,
    ];

    /// The outcome named `name`, as `as_str` spells it.
    pub fn parse(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::NoAnswer => "no_answer",
            Outcome::Busy => "busy",
            Outcome::Voicemail => "voicemail",
            Outcome::Rejected => "rejected",
            Outcome::InvalidNumber => "invalid_number",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}
