//! A claim and its attempts are two transactions: what recovery does with
//! a claim whose attempts were never written, and the fence between writing
//! attempts and handing the same contacts back, in both orders; and the
//! zones a campaign's window gates are built from.

use chrono::Utc;
use dialerd::db::attempts;
use dialerd::db::campaigns::load_plans;
use dialerd::db::claim::{self, Batch, NewAttempt, NoCall, OpenGates};
use dialerd::db::recovery::{recover, Interruption, Recovered};
use dialerd::domain::agent::AgentFields;
use uuid::Uuid;

use crate::daemon::seed;
use crate::helpers::{assert_attempts_accounted, lock_waits, open_gates, TestDb};

/// An active campaign of `n` due contacts.
async fn campaign(db: &TestDb, name: &str, n: u32) -> Uuid {
    let org = seed(db, name, 10, n).await;
    sqlx::query_scalar(
        "UPDATE campaigns SET status = 'active' WHERE organization_id = $1 RETURNING id",
    )
    .bind(org)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// The campaign's one gate: contacts with no zone of their own, open.
async fn gates(pool: &sqlx::PgPool, campaign: Uuid) -> OpenGates {
    let org: Uuid = sqlx::query_scalar("SELECT organization_id FROM campaigns WHERE id = $1")
        .bind(campaign)
        .fetch_one(pool)
        .await
        .unwrap();
    open_gates(pool, &[(org, campaign)]).await
}

/// Claims up to `want` of the campaign's contacts for `owner`; each call is
/// its contact's id and its attempt's.
async fn claim(db: &TestDb, owner: Uuid, campaign: Uuid, want: u32) -> Batch<(Uuid, Uuid)> {
    claim_on(&db.pool, owner, campaign, want).await
}

/// [`claim`] through a pool of the caller's.
async fn claim_on(
    pool: &sqlx::PgPool,
    owner: Uuid,
    campaign: Uuid,
    want: u32,
) -> Batch<(Uuid, Uuid)> {
    let gates = gates(pool, campaign).await;
    claim::claim(pool, owner, Utc::now(), &gates, want, 1000, |c| {
        let attempt = NewAttempt {
            attempt_id: Uuid::now_v7(),
            phone_number: c.phone_numbers[0].clone(),
            agent: AgentFields::default(),
            evidence: None,
        };
        Ok(((c.id, attempt.attempt_id), attempt))
    })
    .await
    .unwrap()
}

/// The campaign's contacts by id: the order the tests number them k = 1, 2...
async fn ids_in_order(db: &TestDb, campaign: Uuid) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT id FROM contacts WHERE campaign_id = $1 ORDER BY id")
        .bind(campaign)
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

/// Recovers `owner`'s claims (of `contacts` only, when given) as of now.
async fn recover_now(
    pool: &sqlx::PgPool,
    owner: Uuid,
    contacts: Option<&[Uuid]>,
    why: Interruption,
) -> Recovered {
    recover(pool, &[owner], contacts, Utc::now(), why)
        .await
        .unwrap()
}

/// Contacts back to `pending`, unclaimed, with no attempt counted.
async fn handed_back(db: &TestDb) -> i64 {
    db.count(
        "SELECT count(*) FROM contacts
          WHERE status = 'pending' AND attempt_count = 0 AND owner_instance IS NULL",
    )
    .await
}

/// Runs `sql` with `$1` bound to `id`.
async fn exec(db: &TestDb, sql: &str, id: Uuid) {
    sqlx::query(sql).bind(id).execute(&db.pool).await.unwrap();
}

/// Sets columns of the campaign's contacts, each numbered `z.k` = 1, 2... in
/// id order (as [`ids_in_order`] lists them); `$1` is the campaign.
async fn set_by_k(db: &TestDb, campaign: Uuid, set: &str) {
    let sql = format!(
        "WITH z AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM contacts WHERE campaign_id = $1)
         UPDATE contacts c SET {set} FROM z WHERE c.id = z.id"
    );
    exec(db, &sql, campaign).await;
}

/// Starts writing the attempts of `batch` and holds the write up once it
/// has taken its locks: an uncommitted row with the id of its first
/// attempt, on which its insert waits until the returned transaction ends.
/// Returns once the write waits.
async fn held_start(
    db: &TestDb,
    owner: Uuid,
    batch: Batch<(Uuid, Uuid)>,
) -> (
    sqlx::Transaction<'static, sqlx::Postgres>,
    tokio::task::JoinHandle<Result<Vec<Uuid>, dialerd::db::claim::ClaimFailed>>,
) {
    let (contact, attempt) = batch.calls[0];
    let mut blocker = db.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO attempts (id, organization_id, contact_id, campaign_id, attempt_number,
                               phone_number, instance_id, outcome, ended_at)
         SELECT $1, organization_id, id, campaign_id, 99, phone_numbers[1], $3, 'failed', now()
           FROM contacts WHERE id = $2",
    )
    .bind(attempt)
    .bind(contact)
    .bind(owner)
    .execute(&mut *blocker)
    .await
    .unwrap();
    let pool = db.pool.clone();
    let attempts = batch.attempts;
    let start = tokio::spawn(async move { attempts::start(&pool, owner, &attempts).await });
    lock_waits(db, 1).await;
    (blocker, start)
}

#[tokio::test]
async fn a_claim_whose_attempts_were_never_written_goes_back_uncounted() {
    let db = TestDb::new().await;
    let campaign = campaign(&db, "unwritten", 5).await;
    let owner = Uuid::now_v7();
    let batch = claim(&db, owner, campaign, 5).await;
    assert_eq!(batch.calls.len(), 5);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM contacts WHERE status = 'in_progress' AND attempt_count = 1"
        )
        .await,
        5,
        "claimed contacts count against the limits at once"
    );
    assert_eq!(db.count("SELECT count(*) FROM attempts").await, 0);

    // The owner stopped before writing the attempts: no call was placed.
    let done = recover_now(&db.pool, owner, None, Interruption::OwnerStopped).await;
    assert_eq!(
        done,
        Recovered {
            released: 5,
            interrupted: 0
        }
    );
    assert_eq!(handed_back(&db).await, 5);
    // A start that comes after writes nothing: the contacts are no longer held.
    let started = attempts::start(&db.pool, owner, &batch.attempts)
        .await
        .unwrap();
    assert!(started.is_empty(), "{started:?}");
    assert_eq!(db.count("SELECT count(*) FROM attempts").await, 0);
    assert_attempts_accounted(&db.pool).await;
}

#[tokio::test]
async fn handing_back_waits_for_attempts_being_written_and_leaves_their_calls_alone() {
    let db = TestDb::new().await;
    let campaign = campaign(&db, "racing", 3).await;
    let owner = Uuid::now_v7();
    let batch = claim(&db, owner, campaign, 3).await;

    // Hold the start between locking its contacts and writing its attempts.
    let claimed: Vec<Uuid> = batch.calls.iter().map(|(c, _)| *c).collect();
    let (blocker, start) = held_start(&db, owner, batch).await;
    // Recovery sees claims with no attempt yet, and must wait for the start.
    let pool = db.pool.clone();
    let recovery =
        tokio::spawn(
            async move { recover_now(&pool, owner, None, Interruption::OwnerStopped).await },
        );
    lock_waits(&db, 2).await;
    blocker.rollback().await.unwrap();

    let mut started = start.await.unwrap().unwrap();
    started.sort();
    let mut claimed = claimed;
    claimed.sort();
    assert_eq!(started, claimed, "every call may be placed");
    let done = recovery.await.unwrap();
    assert_eq!(done, Recovered::default(), "nothing handed back");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM contacts c JOIN attempts a ON a.contact_id = c.id
              WHERE c.status = 'in_progress' AND c.attempt_count = 1 AND a.outcome IS NULL"
        )
        .await,
        3
    );

    // Calls under way are recovered as interrupted, as for any stopped owner.
    let done = recover_now(&db.pool, owner, None, Interruption::OwnerStopped).await;
    assert_eq!(done.interrupted, 3);
    assert_attempts_accounted(&db.pool).await;
}

#[tokio::test]
async fn attempts_started_after_a_hand_back_began_are_not_written() {
    let db = TestDb::new().await;
    let campaign = campaign(&db, "late", 3).await;
    let owner = Uuid::now_v7();
    let batch = claim(&db, owner, campaign, 3).await;
    let ids: Vec<Uuid> = batch.calls.iter().map(|(c, _)| *c).collect();

    // Hold the hand-back between locking its contacts and checking for
    // open attempts.
    let mut blocker = db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE attempts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let pool = db.pool.clone();
    let release = tokio::spawn(async move { claim::release(&pool, owner, &ids).await });
    lock_waits(&db, 1).await;
    let pool = db.pool.clone();
    let attempts = batch.attempts;
    let start = tokio::spawn(async move { attempts::start(&pool, owner, &attempts).await });
    lock_waits(&db, 2).await;
    blocker.commit().await.unwrap();

    assert_eq!(release.await.unwrap().unwrap(), 3);
    let started = start.await.unwrap().unwrap();
    assert!(started.is_empty(), "no call may be placed: {started:?}");
    assert_eq!(db.count("SELECT count(*) FROM attempts").await, 0);
    assert_eq!(handed_back(&db).await, 3);
    assert_attempts_accounted(&db.pool).await;
}

#[tokio::test]
async fn no_attempt_is_written_once_the_campaign_is_paused() {
    let db = TestDb::new().await;
    let campaign = campaign(&db, "paused", 3).await;
    let owner = Uuid::now_v7();
    let batch = claim(&db, owner, campaign, 3).await;
    assert_eq!(batch.calls.len(), 3);
    exec(
        &db,
        "UPDATE campaigns SET status = 'paused' WHERE id = $1",
        campaign,
    )
    .await;
    let started = attempts::start(&db.pool, owner, &batch.attempts)
        .await
        .unwrap();
    assert!(started.is_empty(), "a call after the pause: {started:?}");
    assert_eq!(db.count("SELECT count(*) FROM attempts").await, 0);
    // The dispatcher hands such contacts back as never placed.
    let ids: Vec<Uuid> = batch.calls.iter().map(|(c, _)| *c).collect();
    let done = recover_now(&db.pool, owner, Some(&ids), Interruption::NeverPlaced).await;
    assert_eq!(done.released, 3);
    assert_eq!(handed_back(&db).await, 3);
    assert_attempts_accounted(&db.pool).await;
}

#[tokio::test]
async fn an_attempt_write_waits_for_a_pause_being_committed_and_then_writes_nothing() {
    let db = TestDb::new().await;
    let campaign = campaign(&db, "pausing", 3).await;
    let owner = Uuid::now_v7();
    let batch = claim(&db, owner, campaign, 3).await;
    assert_eq!(batch.calls.len(), 3);

    // A pause written but not committed: the attempt write's snapshot sees
    // the campaign active, and must not decide on that.
    let mut pause = db.pool.begin().await.unwrap();
    sqlx::query("UPDATE campaigns SET status = 'paused' WHERE id = $1")
        .bind(campaign)
        .execute(&mut *pause)
        .await
        .unwrap();
    let pool = db.pool.clone();
    let attempts = batch.attempts;
    let start = tokio::spawn(async move { attempts::start(&pool, owner, &attempts).await });
    lock_waits(&db, 1).await;
    assert!(
        !start.is_finished(),
        "the attempt write went past an uncommitted pause"
    );
    pause.commit().await.unwrap();

    let started = start.await.unwrap().unwrap();
    assert!(started.is_empty(), "a call after the pause: {started:?}");
    assert_eq!(db.count("SELECT count(*) FROM attempts").await, 0);
}

#[tokio::test]
async fn a_pause_waits_for_an_attempt_write_under_way() {
    let db = TestDb::new().await;
    // Four contacts, three claimed: the fourth shows the pause took effect.
    let campaign = campaign(&db, "writing", 4).await;
    let owner = Uuid::now_v7();
    let batch = claim(&db, owner, campaign, 3).await;

    // Hold the attempt write after it share-locked the campaign.
    let (blocker, start) = held_start(&db, owner, batch).await;
    let pool = db.pool.clone();
    let pause = tokio::spawn(async move {
        sqlx::query("UPDATE campaigns SET status = 'paused' WHERE id = $1")
            .bind(campaign)
            .execute(&pool)
            .await
            .unwrap();
    });
    // The pause waits for the write: it cannot commit while the write,
    // which saw the campaign active, is still to commit.
    lock_waits(&db, 2).await;
    assert!(
        !pause.is_finished(),
        "the pause did not wait for the attempt write"
    );
    blocker.rollback().await.unwrap();

    let started = start.await.unwrap().unwrap();
    assert_eq!(started.len(), 3, "the write that went first is whole");
    pause.await.unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM campaigns WHERE status = 'paused'")
            .await,
        1
    );
    // The pause committed once the write had: the contact left waiting is
    // claimed by nobody now.
    let again = claim(&db, Uuid::now_v7(), campaign, 3).await;
    assert!(again.calls.is_empty(), "a claim after the pause");
}

#[tokio::test]
async fn contacts_that_cannot_be_called_go_back_in_the_claim_itself() {
    let db = TestDb::new().await;
    let campaign = campaign(&db, "unusable", 3).await;
    let gates = gates(&db.pool, campaign).await;
    // No call can be made of any of them now (as when their campaign's
    // plan is not loaded yet).
    let batch = claim::claim(
        &db.pool,
        Uuid::now_v7(),
        Utc::now(),
        &gates,
        3,
        1000,
        |_| Err::<((), NewAttempt), _>(NoCall::NotNow),
    )
    .await
    .unwrap();
    assert!(batch.calls.is_empty());
    assert_eq!(handed_back(&db).await, 3);
    assert_eq!(db.count("SELECT count(*) FROM attempts").await, 0);
}

/// The zones a campaign's gates are built from: every zone (and "" for
/// none) of its waiting contacts, and nothing of its claimed or finished
/// contacts or of another campaign's.
#[tokio::test]
async fn pending_zones_are_the_distinct_zones_of_waiting_contacts() {
    let db = TestDb::new().await;
    let other = campaign(&db, "zones-other", 2).await;
    let campaign = campaign(&db, "zones", 12).await;
    // Zones by contact (ordered by id): three waiting zones, one repeated,
    // two contacts with none; one zone only on a finished contact and one
    // only on a claimed one.
    set_by_k(
        &db,
        campaign,
        "timezone = (ARRAY['Europe/Paris', 'America/New_York', 'Europe/Paris',
                           'Asia/Tokyo', NULL, NULL, 'Africa/Cairo', 'Pacific/Auckland',
                           'America/New_York', 'Asia/Tokyo', 'Europe/Paris', NULL])[z.k],
         status = CASE z.k WHEN 7 THEN 'completed'::contact_status ELSE c.status END",
    )
    .await;
    exec(
        &db,
        "UPDATE contacts SET timezone = 'Australia/Perth' WHERE campaign_id = $1",
        other,
    )
    .await;
    let owner = Uuid::now_v7();
    sqlx::query(
        "UPDATE contacts SET status = 'in_progress', owner_instance = $2, claimed_at = now()
          WHERE campaign_id = $1 AND timezone = 'Pacific/Auckland'",
    )
    .bind(campaign)
    .bind(owner)
    .execute(&db.pool)
    .await
    .unwrap();
    let mut zones = zones_of(&db, campaign).await;
    zones.sort();
    // Contacts stating no zone are keyed by the zones of their numbers
    // (+1 415 and +1 212); one written by other means, with none, by "".
    assert_eq!(
        zones,
        [
            "America/New_York",
            "Asia/Tokyo",
            "Europe/Paris",
            "~America/Los_Angeles America/New_York"
        ]
    );
    sqlx::query(
        "INSERT INTO contacts (id, organization_id, campaign_id, phone_numbers)
         SELECT gen_random_uuid(), organization_id, id, ARRAY['+14155559999'] FROM campaigns WHERE id = $1",
    )
    .bind(campaign)
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(zones_of(&db, campaign).await[0], "");

    // With no contact lacking a zone, no "" gate; with none waiting, none at all.
    exec(
        &db,
        "UPDATE contacts SET status = 'completed' WHERE campaign_id = $1 AND timezone IS NULL",
        campaign,
    )
    .await;
    let mut zones = zones_of(&db, campaign).await;
    zones.sort();
    assert_eq!(zones, ["America/New_York", "Asia/Tokyo", "Europe/Paris"]);
    exec(
        &db,
        "UPDATE contacts SET status = 'completed' WHERE campaign_id = $1 AND status = 'pending'",
        campaign,
    )
    .await;
    assert!(zones_of(&db, campaign).await.is_empty());
    assert_eq!(zones_of(&db, other).await, ["Australia/Perth"]);
    // Both campaigns' plans in one read, each with its own zones.
    let both = load_plans(&db.pool, &[campaign, other]).await.unwrap();
    assert_eq!(both.len(), 2);
}

/// The zones of one campaign's plan, as the batched plan read gives them.
async fn zones_of(db: &TestDb, campaign: Uuid) -> Vec<String> {
    let mut plans = load_plans(&db.pool, &[campaign]).await.unwrap();
    assert_eq!(plans.len(), 1, "the campaign is active");
    plans.remove(0).1
}

/// Whether an organization has due work is asked group by group (priority,
/// then fresh before retries): a first group with nothing due yet must not
/// hide a later group's due contacts.
#[tokio::test]
async fn due_work_in_a_later_group_is_found_and_claimed() {
    let db = TestDb::new().await;
    let campaign = campaign(&db, "groups", 6).await;
    let org: Uuid = sqlx::query_scalar("SELECT organization_id FROM campaigns WHERE id = $1")
        .bind(campaign)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    // Fresh contacts all due tomorrow; two retries due now; one claimed
    // contact of a higher priority, which is not waiting.
    set_by_k(
        &db,
        campaign,
        "next_attempt_at = CASE WHEN z.k IN (2, 5) THEN now() - interval '1 minute'
                                ELSE now() + interval '1 day' END,
         attempt_count = CASE WHEN z.k IN (2, 5) THEN 1 ELSE 0 END,
         priority = CASE WHEN z.k = 6 THEN 7 ELSE c.priority END,
         status = CASE WHEN z.k = 6 THEN 'in_progress'::contact_status ELSE c.status END,
         owner_instance = CASE WHEN z.k = 6 THEN $1 END,
         claimed_at = CASE WHEN z.k = 6 THEN now() END",
    )
    .await;
    let due_work = |at: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>(&format!(
                "SELECT group_priority IS NOT NULL FROM next_due_group($1, {at}, NULL, NULL)"
            ))
            .bind(org)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert!(due_work("now()").await);
    assert!(!due_work("now() - interval '1 hour'").await);
    let batch = claim(&db, Uuid::now_v7(), campaign, 5).await;
    assert_eq!(batch.calls.len(), 2, "the two due retries");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM contacts WHERE status = 'in_progress' AND attempt_count = 2"
        )
        .await,
        2
    );
    // Nothing due any more, until the fresh contacts' time; nothing at all
    // for an organization with no contacts.
    assert!(!due_work("now()").await);
    assert!(claim(&db, Uuid::now_v7(), campaign, 5)
        .await
        .calls
        .is_empty());
    assert!(due_work("now() + interval '2 days'").await);
    let none: bool = sqlx::query_scalar(
        "SELECT group_priority IS NOT NULL FROM next_due_group($1, now(), NULL, NULL)",
    )
    .bind(Uuid::now_v7())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(!none);
}

#[tokio::test]
async fn a_claim_goes_group_by_group_in_dialing_order() {
    let db = TestDb::new().await;
    let campaign = campaign(&db, "order", 8).await;
    // k = 1..8 by id: priority 9 fresh (1 due, 2 tomorrow), priority 9
    // retries (3, 4 due), priority 5 fresh (5, 6 due, 6 the earlier; 7, 8
    // tomorrow).
    set_by_k(
        &db,
        campaign,
        "priority = CASE WHEN z.k <= 4 THEN 9 ELSE 5 END,
         attempt_count = CASE WHEN z.k IN (3, 4) THEN 1 ELSE 0 END,
         next_attempt_at = CASE WHEN z.k IN (2, 7, 8) THEN now() + interval '1 day'
                                ELSE now() - z.k * interval '1 minute' END",
    )
    .await;
    let ids = ids_in_order(&db, campaign).await;
    let claimed = |batch: Batch<(Uuid, Uuid)>| {
        let mut got: Vec<usize> = batch
            .calls
            .iter()
            .map(|(c, _)| ids.iter().position(|i| i == c).unwrap() + 1)
            .collect();
        got.sort_unstable();
        got
    };
    // The due one of the first group, both of the second, and the earlier
    // of the third's (6 is due earlier than 5).
    let first = claimed(claim(&db, Uuid::now_v7(), campaign, 4).await);
    assert_eq!(first, vec![1, 3, 4, 6]);
    // The rest of what is due, and nothing due tomorrow.
    let second = claimed(claim(&db, Uuid::now_v7(), campaign, 10).await);
    assert_eq!(second, vec![5]);
    assert!(claim(&db, Uuid::now_v7(), campaign, 10)
        .await
        .calls
        .is_empty());
}

/// A claim's scan starts at its group's earliest due contact, as
/// `next_due_group` reads it in the claim's own transaction, so that lower
/// bound must never pass a waiting contact: `group_first_due` follows the
/// earliest waiting contact (claimed ones no longer count), and a contact
/// handed back with a due time earlier than every other waiting one is the
/// first the next claim takes.
#[tokio::test]
async fn a_claim_starts_at_the_earliest_due_of_its_group() {
    let db = TestDb::new().await;
    let campaign = campaign(&db, "earliest", 6).await;
    // k = 1..6 by id, due k minutes before a fixed past moment (not now(),
    // which moves between statements): 6 is the earliest.
    set_by_k(
        &db,
        campaign,
        "next_attempt_at = '2026-01-01 12:00:00+00'::timestamptz - z.k * interval '1 minute'",
    )
    .await;
    let ids = ids_in_order(&db, campaign).await;
    let first_due_minutes_before = || {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, f64>(
                "SELECT extract(epoch FROM '2026-01-01 12:00:00+00'::timestamptz - g.group_first_due)::float8 / 60
                   FROM campaigns k, next_due_group(k.organization_id, now(), NULL, NULL) g
                  WHERE k.id = $1",
            )
            .bind(campaign)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(first_due_minutes_before().await, 6.0);
    let owner = Uuid::now_v7();
    let first: Vec<Uuid> = claim(&db, owner, campaign, 2)
        .await
        .calls
        .iter()
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(first.len(), 2);
    assert!(first.contains(&ids[5]) && first.contains(&ids[4]));
    assert_eq!(first_due_minutes_before().await, 4.0);

    // 6 handed back (no attempt was written): the earliest again, and claimed first.
    assert_eq!(claim::release(&db.pool, owner, &[ids[5]]).await.unwrap(), 1);
    assert_eq!(first_due_minutes_before().await, 6.0);
    let next = claim(&db, Uuid::now_v7(), campaign, 1).await.calls;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].0, ids[5]);
    let rest = claim(&db, Uuid::now_v7(), campaign, 10).await.calls;
    let mut rest: Vec<Uuid> = rest.iter().map(|(c, _)| *c).collect();
    rest.sort();
    assert_eq!(rest, ids[..4].to_vec());
}

/// The claim commits without waiting for its WAL to reach disk, which is
/// safe only because nothing is called before the attempt write, whose
/// commit does wait. So the setting must hold inside the claim's
/// transaction only: the connection it goes back to the pool with, which
/// may write the attempts next, waits for disk again.
#[tokio::test]
async fn only_the_claim_commits_without_waiting_for_disk() {
    let db = TestDb::new().await;
    let campaign = campaign(&db, "durable", 2).await;
    // Each write notes the setting its transaction commits with.
    sqlx::raw_sql(
        "CREATE TABLE commit_modes (tbl text, mode text);
         CREATE FUNCTION note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO commit_modes VALUES (TG_TABLE_NAME, current_setting('synchronous_commit'));
             RETURN NULL;
         END $$;
         CREATE TRIGGER note_claim AFTER UPDATE ON contacts
             FOR EACH STATEMENT EXECUTE FUNCTION note_commit_mode();
         CREATE TRIGGER note_start AFTER INSERT ON attempts
             FOR EACH STATEMENT EXECUTE FUNCTION note_commit_mode();",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let owner = Uuid::now_v7();
    let batch = claim_on(&one, owner, campaign, 2).await;
    assert_eq!(batch.calls.len(), 2);
    assert_eq!(
        attempts::start(&one, owner, &batch.attempts)
            .await
            .unwrap()
            .len(),
        2
    );
    let modes: Vec<(String, String)> =
        sqlx::query_as("SELECT DISTINCT tbl, mode FROM commit_modes ORDER BY tbl")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let modes: Vec<(&str, &str)> = modes.iter().map(|(t, m)| (&t[..], &m[..])).collect();
    assert_eq!(
        modes,
        [("attempts", "on"), ("contacts", "off")],
        "the claim (contacts) commits without waiting, the attempt write waits"
    );
}

#[tokio::test]
async fn the_callable_backlog_is_the_due_contacts_the_open_gates_let_through() {
    let db = TestDb::new().await;
    let open = campaign(&db, "open", 4).await;
    // Another organization's campaign whose window is shut: no gate at all.
    campaign(&db, "shut", 3).await;
    let org: Uuid = sqlx::query_scalar("SELECT organization_id FROM campaigns WHERE id = $1")
        .bind(open)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    // In the open campaign: one contact in a zone with no open gate, one
    // not due yet. Two ad-hoc contacts due, which no window gates.
    set_by_k(
        &db,
        open,
        "timezone = CASE WHEN z.k = 1 THEN 'Asia/Tokyo' END",
    )
    .await;
    set_by_k(&db, open, "next_attempt_at = CASE WHEN z.k = 2 THEN now() + interval '1 hour' ELSE next_attempt_at END").await;
    sqlx::query(
        "INSERT INTO contacts (id, organization_id, phone_numbers, priority)
         SELECT gen_random_uuid(), $1, ARRAY['+1415555999' || i], 1000000 FROM generate_series(1, 2) i",
    )
    .bind(org)
    .execute(&db.pool)
    .await
    .unwrap();
    // The open campaign's gate for contacts with no zone; none for `shut`.
    let gates = open_gates(&db.pool, &[(org, open)]).await;
    let backlog = claim::backlog(&db.pool, Utc::now(), &gates).await.unwrap();
    assert_eq!(backlog.due, 4 + 3 + 2 - 1);
    assert_eq!(
        backlog.callable,
        2 + 2,
        "the open campaign's zoneless due, and ad-hoc"
    );
    // A paused campaign's contacts are not callable, whatever the gates say.
    exec(
        &db,
        "UPDATE campaigns SET status = 'paused' WHERE id = $1",
        open,
    )
    .await;
    let paused = claim::backlog(&db.pool, Utc::now(), &gates).await.unwrap();
    assert_eq!((paused.due, paused.callable), (8, 2));
}

/// The campaign's organization, and a do-not-call list of it holding `numbers`.
async fn listed(db: &TestDb, campaign: Uuid, numbers: &[i64]) -> (Uuid, Uuid) {
    let org: Uuid = sqlx::query_scalar("SELECT organization_id FROM campaigns WHERE id = $1")
        .bind(campaign)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let list = dialerd::db::dnc::create(&db.pool, Some(org), "internal", None)
        .await
        .unwrap();
    if !numbers.is_empty() {
        dialerd::db::dnc::add(&db.pool, Some(org), list.id, numbers)
            .await
            .unwrap()
            .unwrap();
    }
    (org, list.id)
}

/// A contact's first number, as lists store it.
async fn first_number(db: &TestDb, contact: Uuid) -> i64 {
    sqlx::query_scalar("SELECT dnc_number(phone_numbers[1]) FROM contacts WHERE id = $1")
        .bind(contact)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// The indexes a claim of the campaign finds on do-not-call lists, by contact.
async fn suppressed_by_claim(pool: &sqlx::PgPool, campaign: Uuid) -> Vec<(Uuid, Vec<i32>)> {
    let gates = gates(pool, campaign).await;
    let batch = claim::claim(pool, Uuid::now_v7(), Utc::now(), &gates, 10, 1000, |c| {
        let attempt = NewAttempt {
            attempt_id: Uuid::now_v7(),
            phone_number: c.phone_numbers[0].clone(),
            agent: AgentFields::default(),
            evidence: None,
        };
        Ok(((c.id, c.suppressed), attempt))
    })
    .await
    .unwrap();
    batch.calls
}

#[tokio::test]
async fn a_number_listed_between_the_claim_and_the_attempt_write_is_not_called() {
    let db = TestDb::new().await;
    let campaign = campaign(&db, "listed", 3).await;
    let owner = Uuid::now_v7();
    let batch = claim(&db, owner, campaign, 3).await;
    assert_eq!(batch.calls.len(), 3);
    let (contact, _) = batch.calls[0];
    let number = first_number(&db, contact).await;
    // The claim checked the lists before this add; the add commits first.
    listed(&db, campaign, &[number]).await;
    let started = attempts::start(&db.pool, owner, &batch.attempts)
        .await
        .unwrap();
    assert_eq!(started.len(), 2, "{started:?}");
    assert!(!started.contains(&contact), "a listed number was called");
    // Handed back as never placed, the next claim finds the number listed.
    let done = recover_now(&db.pool, owner, Some(&[contact]), Interruption::NeverPlaced).await;
    assert_eq!(done.released, 1);
    let again = suppressed_by_claim(&db.pool, campaign).await;
    assert_eq!(again, vec![(contact, vec![0])]);
}

#[tokio::test]
async fn a_listing_waits_for_an_attempt_write_under_way() {
    let db = TestDb::new().await;
    let campaign = campaign(&db, "writing-listed", 3).await;
    let owner = Uuid::now_v7();
    let batch = claim(&db, owner, campaign, 3).await;
    let (contact, _) = batch.calls[0];
    let number = first_number(&db, contact).await;
    let (org, list) = listed(&db, campaign, &[]).await;
    // Hold the attempt write after it share-locked the contacts.
    let (blocker, start) = held_start(&db, owner, batch).await;
    let pool = db.pool.clone();
    let add = tokio::spawn(async move {
        dialerd::db::dnc::add(&pool, Some(org), list, &[number])
            .await
            .unwrap()
    });
    // The add cannot commit while a write that checked before it is open.
    lock_waits(&db, 2).await;
    assert!(
        !add.is_finished(),
        "the add did not wait for the attempt write"
    );
    blocker.rollback().await.unwrap();
    let started = start.await.unwrap().unwrap();
    assert_eq!(started.len(), 3, "the write that went first is whole");
    assert_eq!(add.await.unwrap(), Some(1));
}

#[tokio::test]
async fn a_claim_waits_for_a_listing_being_committed_and_sees_it() {
    let db = TestDb::new().await;
    let campaign = campaign(&db, "claim-after-listing", 1).await;
    let contact: Uuid = sqlx::query_scalar("SELECT id FROM contacts")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let number = first_number(&db, contact).await;
    let (_, list) = listed(&db, campaign, &[]).await;
    // A listing under way, as `dnc::add` makes it: the claim lock, then the number.
    let mut adding = db.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(claim::CLAIM_LOCK)
        .execute(&mut *adding)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO dnc_blocks (block, list_key, generation, members)
         SELECT dnc_block($1), key, generation, ARRAY[dnc_member($1)] FROM dnc_lists WHERE id = $2",
    )
    .bind(number)
    .bind(list)
    .execute(&mut *adding)
    .await
    .unwrap();
    let pool = db.pool.clone();
    let claiming = tokio::spawn(async move { suppressed_by_claim(&pool, campaign).await });
    lock_waits(&db, 1).await;
    assert!(!claiming.is_finished(), "the claim went past the listing");
    adding.commit().await.unwrap();
    assert_eq!(claiming.await.unwrap(), vec![(contact, vec![0])]);
}
