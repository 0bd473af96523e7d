//! Agent fields and their resolution: contact override, then campaign
//! override, then configuration default, field by field (SPEC 4).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The agent a call uses. Every field is optional at every level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct AgentFields {
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub agent_version: Option<String>,
    /// Caller number shown to the contact.
    #[serde(default)]
    pub agent_number: Option<String>,
    /// A JSON object, or null.
    #[serde(default, deserialize_with = "object_or_null")]
    #[schema(value_type = Option<Object>)]
    pub agent_config: Option<serde_json::Value>,
    #[serde(default)]
    pub initial_context: Option<String>,
}

/// `agent_config` is documented as an object: anything else is refused.
pub fn object_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(serde::de::Error::custom("must be a JSON object or null")),
    }
}

impl AgentFields {
    /// Fills every unset field of `self` from `fallback`.
    pub fn or(self, fallback: &AgentFields) -> AgentFields {
        AgentFields {
            agent_id: self.agent_id.or_else(|| fallback.agent_id.clone()),
            agent_version: self
                .agent_version
                .or_else(|| fallback.agent_version.clone()),
            agent_number: self.agent_number.or_else(|| fallback.agent_number.clone()),
            agent_config: self.agent_config.or_else(|| fallback.agent_config.clone()),
            initial_context: self
                .initial_context
                .or_else(|| fallback.initial_context.clone()),
        }
    }

    /// The agent for a call: contact first, then campaign, then configuration.
    pub fn resolve(
        contact: &AgentFields,
        campaign: &AgentFields,
        configuration: &AgentFields,
    ) -> AgentFields {
        contact.clone().or(campaign).or(configuration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(id: Option<&str>, version: Option<&str>, number: Option<&str>) -> AgentFields {
        AgentFields {
            agent_id: id.map(Into::into),
            agent_version: version.map(Into::into),
            agent_number: number.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn each_field_takes_the_first_value_set_from_contact_campaign_configuration() {
        let contact = fields(Some("contact-agent"), None, None);
        let campaign = fields(Some("campaign-agent"), Some("v2"), None);
        let configuration = AgentFields {
            initial_context: Some("hello".into()),
            ..fields(Some("config-agent"), Some("v1"), Some("+14155550100"))
        };
        let agent = AgentFields::resolve(&contact, &campaign, &configuration);
        assert_eq!(agent.agent_id.as_deref(), Some("contact-agent"));
        assert_eq!(agent.agent_version.as_deref(), Some("v2"));
        assert_eq!(agent.agent_number.as_deref(), Some("+14155550100"));
        assert_eq!(agent.initial_context.as_deref(), Some("hello"));
        assert_eq!(agent.agent_config, None);
    }
}
