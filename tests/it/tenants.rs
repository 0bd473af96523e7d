//! Many organizations on one database: the claim lists only those with
//! due work (`organization_due`), shares slots among them exactly, and an
//! organization that gets work after a long idle spell is dialed at once.

use chrono::Utc;
use dialerd::db::claim::{self, NewAttempt, OpenGates};
use dialerd::domain::agent::AgentFields;
use uuid::Uuid;

use crate::daemon::seed;
use crate::helpers::{cycles, engine_settings, eventually, open_gates, start_engine, TestDb};

/// Organizations `(org, campaign)` of `limits.len()`, each with its limit
/// and `n` due contacts in an active around-the-clock campaign.
async fn organizations(db: &TestDb, limits: &[i32], n: u32) -> Vec<(Uuid, Uuid)> {
    let mut made = Vec::new();
    for (i, &limit) in limits.iter().enumerate() {
        let org = seed(db, &format!("tenant-{i}"), limit, n).await;
        let campaign: Uuid =
            sqlx::query_scalar("SELECT id FROM campaigns WHERE organization_id = $1")
                .bind(org)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        made.push((org, campaign));
    }
    made
}

/// One claim of up to `want` under `global` as a new owner; the claimed
/// contacts' organizations, and the organizations found with nothing due.
async fn claim(db: &TestDb, gates: &OpenGates, want: u32, global: u32) -> (Vec<Uuid>, Vec<Uuid>) {
    let batch = batch(db, gates, want, global).await;
    (batch.calls, batch.idle)
}

/// [`claim`], the whole batch: each call is its contact's organization.
async fn batch(db: &TestDb, gates: &OpenGates, want: u32, global: u32) -> claim::Batch<Uuid> {
    claim::claim(
        &db.pool,
        Uuid::now_v7(),
        Utc::now(),
        gates,
        want,
        global,
        |c| {
            let attempt = NewAttempt {
                attempt_id: Uuid::now_v7(),
                phone_number: c.phone_numbers[0].clone(),
                agent: AgentFields::default(),
                evidence: None,
            };
            Ok((c.organization_id, attempt))
        },
    )
    .await
    .unwrap()
}

async fn bound(db: &TestDb, org: Uuid) -> Option<chrono::DateTime<Utc>> {
    sqlx::query_scalar::<_, Option<chrono::DateTime<Utc>>>(
        "SELECT CASE WHEN next_due = 'infinity' THEN NULL ELSE next_due END
           FROM organization_due WHERE organization_id = $1",
    )
    .bind(org)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn free_slots_are_shared_among_many_organizations_by_the_largest_remainder() {
    let db = TestDb::new().await;
    let limits: Vec<i32> = (1..=12).collect();
    let orgs = organizations(&db, &limits, 30).await;
    let (claimed, _) = claim(&db, &open_gates(&db.pool, &orgs).await, 20, 20).await;
    // 20 slots over limits 1..12 (sum 78): quotas 20 * i / 78, floors
    // 0 0 0 1 1 1 1 2 2 2 2 3 (15 slots), the 5 left to the largest
    // remainders: i = 11 (.821), 7 (.795), 3 (.769), 10 (.564), 6 (.538).
    let expected = [0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3];
    let got: Vec<usize> = orgs
        .iter()
        .map(|(org, _)| claimed.iter().filter(|o| *o == org).count())
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn an_organization_given_work_after_a_long_idle_spell_is_claimed_at_once() {
    let db = TestDb::new().await;
    let orgs = organizations(&db, &[10, 10], 2).await;
    let gates = open_gates(&db.pool, &orgs).await;
    let (busy, idle) = (orgs[0], orgs[1]);
    // The idle organization's contacts finished long ago: its bound is
    // stale until a claim finds it with nothing due and raises it.
    sqlx::query("UPDATE contacts SET status = 'completed' WHERE organization_id = $1")
        .bind(idle.0)
        .execute(&db.pool)
        .await
        .unwrap();
    let (claimed, found_idle) = claim(&db, &gates, 10, 100).await;
    assert_eq!(claimed, vec![busy.0, busy.0]);
    assert_eq!(found_idle, vec![idle.0]);
    // The claim raised the bounds of both: the idle one, and the busy one,
    // which it left with nothing due.
    assert_eq!(bound(&db, idle.0).await, None, "nothing waits: no bound");
    assert_eq!(bound(&db, busy.0).await, None, "nothing waits: no bound");
    // Any SQL client's insert lowers the bound: the next claim takes it.
    sqlx::query(
        "INSERT INTO contacts (id, organization_id, campaign_id, phone_numbers)
         VALUES (gen_random_uuid(), $1, $2, ARRAY['+14155550999'])",
    )
    .bind(idle.0)
    .bind(idle.1)
    .execute(&db.pool)
    .await
    .unwrap();
    assert!(bound(&db, idle.0).await.is_some_and(|b| b <= Utc::now()));
    let (claimed, _) = claim(&db, &gates, 10, 100).await;
    assert_eq!(claimed, vec![idle.0]);
}

#[tokio::test]
async fn a_bound_is_never_raised_past_contacts_being_written() {
    let db = TestDb::new().await;
    let orgs = organizations(&db, &[10], 1).await;
    let (org, campaign) = orgs[0];
    sqlx::query("UPDATE contacts SET status = 'completed' WHERE organization_id = $1")
        .bind(org)
        .execute(&db.pool)
        .await
        .unwrap();
    // A contact being written: its statement found the (stale) bound low
    // enough already, so it changed nothing there, and holds the row.
    let mut writer = db.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO contacts (id, organization_id, campaign_id, phone_numbers)
         VALUES (gen_random_uuid(), $1, $2, ARRAY['+14155550998'])",
    )
    .bind(org)
    .bind(campaign)
    .execute(&mut *writer)
    .await
    .unwrap();
    // A claim finds nothing due (the contact is not committed) and raises:
    // the organization is passed over, its bound left as it is.
    let before = bound(&db, org).await;
    let (claimed, idle) = claim(&db, &open_gates(&db.pool, &orgs).await, 10, 100).await;
    assert!(claimed.is_empty());
    assert_eq!(idle, vec![org]);
    assert_eq!(bound(&db, org).await, before);
    writer.commit().await.unwrap();
    let (claimed, _) = claim(&db, &open_gates(&db.pool, &orgs).await, 10, 100).await;
    assert_eq!(
        claimed,
        vec![org],
        "the contact written meanwhile is claimed"
    );
}

#[tokio::test]
async fn shares_are_exact_over_the_organizations_with_due_work_among_many_listed_with_none() {
    let db = TestDb::new().await;
    // 12 organizations with work and 40 whose every contact is done but
    // whose bounds were never raised, all of limit 10, created in turn so
    // that the listing interleaves them.
    let all = organizations(&db, &[10; 52], 5).await;
    let (with_work, stale): (Vec<_>, Vec<_>) = all
        .iter()
        .enumerate()
        .partition(|(i, _)| i % 4 == 0 && *i < 48);
    let with_work: Vec<(Uuid, Uuid)> = with_work.into_iter().map(|(_, o)| *o).collect();
    let stale: Vec<(Uuid, Uuid)> = stale.into_iter().map(|(_, o)| *o).collect();
    assert_eq!((with_work.len(), stale.len()), (12, 40));
    let stale_ids: Vec<Uuid> = stale.iter().map(|(o, _)| *o).collect();
    sqlx::query("UPDATE contacts SET status = 'completed' WHERE organization_id = ANY($1)")
        .bind(&stale_ids)
        .execute(&db.pool)
        .await
        .unwrap();
    let gates = open_gates(&db.pool, &all).await;
    let (claimed, idle) = claim(&db, &gates, 20, 20).await;
    // Every slot goes to an organization with work, by the shares of the
    // 12 alone (20 slots, equal limits: 1 each and 8 left over), and every
    // organization with nothing due is found, its bound raised.
    let mut got: Vec<usize> = with_work
        .iter()
        .map(|(org, _)| claimed.iter().filter(|o| *o == org).count())
        .collect();
    got.sort_unstable();
    assert_eq!(got, [vec![1; 4], vec![2; 8]].concat());
    let mut idle = idle;
    idle.sort_unstable();
    let mut expected = stale_ids.clone();
    expected.sort_unstable();
    assert_eq!(
        idle, expected,
        "every organization with nothing due is found"
    );
    for org in &stale_ids {
        assert_eq!(bound(&db, *org).await, None, "raised by the claim");
    }
    // Struck off the listing, they cost the next claim nothing: it finds
    // no organization with nothing due.
    let (claimed, idle) = claim(&db, &gates, 20, 40).await;
    assert_eq!((claimed.len(), idle), (20, vec![]));
}

#[tokio::test]
async fn a_claim_raises_the_bounds_of_the_organizations_it_leaves_with_nothing_due() {
    let db = TestDb::new().await;
    let orgs = organizations(&db, &[10, 10], 3).await;
    let gates = open_gates(&db.pool, &orgs).await;
    let before: Vec<_> = [bound(&db, orgs[0].0).await, bound(&db, orgs[1].0).await].into();
    // Two of each organization's three: both still have one due.
    let (claimed, _) = claim(&db, &gates, 4, 100).await;
    assert_eq!(claimed.len(), 4);
    let after: Vec<_> = [bound(&db, orgs[0].0).await, bound(&db, orgs[1].0).await].into();
    assert_eq!(after, before);
    assert!(after.iter().all(|b| b.is_some_and(|b| b <= Utc::now())));
    // The last of each, exactly their shares: both are left with nothing
    // due, and the claim that did so says so in their bounds at once.
    let (claimed, idle) = claim(&db, &gates, 2, 100).await;
    assert_eq!((claimed.len(), idle), (2, vec![]));
    for (org, _) in &orgs {
        assert_eq!(bound(&db, *org).await, None);
    }
}

#[tokio::test]
async fn a_claim_cut_short_by_the_global_limit_says_so() {
    let db = TestDb::new().await;
    let orgs = organizations(&db, &[10], 5).await;
    let gates = open_gates(&db.pool, &orgs).await;
    // Room for 2 of the 3 asked: both taken, and the claim was capped.
    let b = batch(&db, &gates, 3, 2).await;
    assert_eq!((b.calls.len(), b.capped), (2, true));
    // The limit is reached: nothing, and capped.
    let b = batch(&db, &gates, 3, 2).await;
    assert_eq!((b.calls.len(), b.capped), (0, true));
    // Room for all asked: not capped.
    let b = batch(&db, &gates, 2, 100).await;
    assert_eq!((b.calls.len(), b.capped), (2, false));
}

#[tokio::test]
async fn an_idle_daemon_sleeps_until_work_falls_due_and_is_woken_by_it() {
    let db = TestDb::new().await;
    let org = organizations(&db, &[10], 0).await[0].0;
    let mut settings = engine_settings(&db, 2);
    // Nothing but the NOTIFY can wake it within the test.
    settings.dialer.idle_recheck_ms = 60_000;
    let engine = start_engine(&db, &settings, dialerd::clock::SystemClock).await;
    eventually(10, "a first claim cycle", || async {
        cycles(&engine).await >= 1
    })
    .await;
    // Nothing is due anywhere: no claim cycle while it sleeps (one may
    // have been under way), where a claim interval of 5 ms would run 100.
    let before = cycles(&engine).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = cycles(&engine).await;
    assert!(
        after <= before + 1,
        "claim cycles while idle: {before} -> {after}"
    );
    // Any SQL client's insert of a contact due now wakes it at once.
    sqlx::query(
        "INSERT INTO contacts (id, organization_id, phone_numbers)
         VALUES (gen_random_uuid(), $1, ARRAY['+14155550997'])",
    )
    .bind(org)
    .execute(&db.pool)
    .await
    .unwrap();
    eventually(10, "the ad-hoc contact dialed", || async {
        db.count("SELECT count(*) FROM attempts").await == 1
    })
    .await;
    engine
        .stop(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}
