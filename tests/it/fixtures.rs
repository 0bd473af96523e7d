//! Fixtures shared by the integration tests and the benchmarks (which
//! include this file with `#[path]`): they depend on the dialerd library
//! alone.

use uuid::Uuid;

/// The URL of database `name` on the server of `url`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a database URL has a path");
    format!("{base}/{name}")
}

/// Gates open for contacts with no zone of their own, in each
/// (organization, campaign) given: what the claim is allowed to take.
pub fn open_gates(campaigns: &[(Uuid, Uuid)]) -> dialerd::db::claim::OpenGates {
    let mut gates = dialerd::db::claim::OpenGates::default();
    for &(org, campaign) in campaigns {
        gates.add(
            org,
            campaign,
            &[dialerd::domain::plan::Gate {
                zone: String::new(),
                first_scheduled: false,
            }],
        );
    }
    gates.seal();
    gates
}
