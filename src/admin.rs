//! Administrative commands: organizations and API tokens.

use anyhow::Context;
use rand::RngCore;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{organizations, tokens};
use crate::domain::scope::Scope;

/// Creates an organization and returns its id.
pub async fn create_org(pool: &PgPool, name: &str, concurrency_limit: i32) -> anyhow::Result<Uuid> {
    let name = name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= 200,
        "organization name must be 1 to 200 characters"
    );
    let id = organizations::create(pool, name, concurrency_limit).await?;
    tracing::info!(organization_id = %id, concurrency_limit, "organization created");
    Ok(id)
}

/// Creates a token for `org` with `scopes` and returns it; it is not stored.
pub async fn create_token(pool: &PgPool, org: Uuid, scopes: &str) -> anyhow::Result<String> {
    let scopes = Scope::parse_list(scopes)
        .map_err(anyhow::Error::msg)
        .context("bad --scopes")?;
    anyhow::ensure!(
        organizations::exists(pool, org).await?,
        "no organization with id {org}"
    );
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!(
        "dlr_{}",
        secret
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let id = tokens::create(pool, org, &token, &scopes).await?;
    tracing::info!(token_id = %id, organization_id = %org, "API token created");
    Ok(token)
}
