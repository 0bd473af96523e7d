//! API token scopes and which of them a route accepts (SPEC 5, Auth).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    CampaignsRead,
    CampaignsManage,
    ConcurrencyRead,
    ConcurrencyManage,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::CampaignsRead,
        Scope::CampaignsManage,
        Scope::ConcurrencyRead,
        Scope::ConcurrencyManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::CampaignsRead => "campaigns:read",
            Scope::CampaignsManage => "campaigns:manage",
            Scope::ConcurrencyRead => "concurrency:read",
            Scope::ConcurrencyManage => "concurrency:manage",
        }
    }

    /// Parses a comma-separated list such as `campaigns:read,concurrency:read`.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, String> {
        let mut scopes = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let scope: Scope = part.parse()?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return Err("at least one scope is required".into());
        }
        Ok(scopes)
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown scope `{s}` (campaigns:read, campaigns:manage, concurrency:read, concurrency:manage)"
                )
            })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a route needs: any one of the listed scopes lets the call through.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    CampaignsRead,
    CampaignsManage,
    ConcurrencyRead,
    ConcurrencyManage,
}

impl Access {
    pub fn accepted(self) -> &'static [Scope] {
        match self {
            Access::CampaignsRead => &[Scope::CampaignsRead, Scope::CampaignsManage],
            Access::CampaignsManage => &[Scope::CampaignsManage],
            Access::ConcurrencyRead => &[
                Scope::ConcurrencyRead,
                Scope::ConcurrencyManage,
                Scope::CampaignsRead,
                Scope::CampaignsManage,
            ],
            Access::ConcurrencyManage => &[Scope::ConcurrencyManage, Scope::CampaignsManage],
        }
    }

    pub fn allows(self, held: &[Scope]) -> bool {
        self.accepted().iter().any(|s| held.contains(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_accept_read_or_manage_and_writes_need_manage() {
        assert!(Access::CampaignsRead.allows(&[Scope::CampaignsRead]));
        assert!(Access::CampaignsRead.allows(&[Scope::CampaignsManage]));
        assert!(!Access::CampaignsManage.allows(&[Scope::CampaignsRead]));
        assert!(!Access::CampaignsRead.allows(&[Scope::ConcurrencyRead]));
    }

    #[test]
    fn concurrency_settings_also_accept_the_concurrency_scopes() {
        assert!(Access::ConcurrencyRead.allows(&[Scope::ConcurrencyRead]));
        assert!(Access::ConcurrencyManage.allows(&[Scope::ConcurrencyManage]));
        assert!(!Access::ConcurrencyManage.allows(&[Scope::ConcurrencyRead]));
        assert!(!Access::ConcurrencyManage.allows(&[Scope::CampaignsRead]));
    }

    #[test]
    fn scope_lists_parse_and_reject_unknown_names() {
        assert_eq!(
            Scope::parse_list("campaigns:read, concurrency:manage").unwrap(),
            vec![Scope::CampaignsRead, Scope::ConcurrencyManage]
        );
        assert!(Scope::parse_list("campaigns:write").is_err());
        assert!(Scope::parse_list(" , ").is_err());
    }
}
