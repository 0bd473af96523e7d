//! Fixtures shared by the integration tests and the benchmarks (which
//! include this file with `#[path]`): they depend on the dialerd library
//! alone.

use uuid::Uuid;

/// The URL of database `name` on the server of `url`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a database URL has a path");
    format!("{base}/{name}")
}

/// Gates open for contacts that state no zone of their own, in each
/// (organization, campaign) given: the claim may take them. Their zone key
/// is "" or, for contacts written through dialerd, `~` and the zones of
/// their numbers: every key their contacts have now is opened.
pub async fn open_gates(
    pool: &sqlx::PgPool,
    campaigns: &[(Uuid, Uuid)],
) -> dialerd::db::claim::OpenGates {
    let ids: Vec<Uuid> = campaigns.iter().map(|&(_, c)| c).collect();
    let keys: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT DISTINCT campaign_id, zone_key FROM contacts
          WHERE campaign_id = ANY($1) AND timezone IS NULL",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .expect("the contacts' zone keys");
    let mut gates = dialerd::db::claim::OpenGates::default();
    for &(org, campaign) in campaigns {
        let mut open: Vec<dialerd::domain::plan::Gate> = keys
            .iter()
            .filter(|(c, _)| *c == campaign)
            .map(|(_, key)| key.clone())
            .chain([String::new()])
            .map(|zone| dialerd::domain::plan::Gate {
                zone,
                first_scheduled: false,
            })
            .collect();
        open.sort();
        open.dedup();
        gates.set(org, campaign, &open);
    }
    gates
}
