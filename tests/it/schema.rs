//! What the database itself enforces, whoever writes to it.

use std::time::Duration;

use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::helpers::{lock_waits, TestDb};

async fn config_of(db: &TestDb, org: Uuid) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO configurations (id, organization_id, name, schedule, dialing_policy, agent)
         VALUES (gen_random_uuid(), $1, 'c', '{}', '{}', '{}') RETURNING id",
    )
    .bind(org)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

async fn org_and_config(db: &TestDb) -> (Uuid, Uuid) {
    let org = dialerd::admin::create_org(&db.pool, "Acme", 10)
        .await
        .unwrap();
    (org, config_of(db, org).await)
}

#[tokio::test]
async fn a_status_change_by_any_sql_client_fires_a_notify() {
    let db = TestDb::new().await;
    let (org, config) = org_and_config(&db).await;
    let mut listener = PgListener::connect_with(&db.pool).await.unwrap();
    listener.listen("dialerd_campaign_status").await.unwrap();
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO campaigns (id, organization_id, name, configuration_id) VALUES (gen_random_uuid(), $1, 'x', $2) RETURNING id",
    )
    .bind(org)
    .bind(config)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let created = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(created.payload()).unwrap();
    assert_eq!(payload["id"], id.to_string());
    assert_eq!(payload["status"], "active");

    // A rename is not a status change: no notification.
    sqlx::query("UPDATE campaigns SET name = 'y' WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE campaigns SET status = 'paused' WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    let paused = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(paused.payload()).unwrap();
    assert_eq!(payload["status"], "paused");
}

/// Asserts `sql` fails with SQLSTATE `code` on `constraint`.
async fn refused(db: &TestDb, sql: &str, code: &str, constraint: Option<&str>) {
    let error = match sqlx::query(sql).execute(&db.pool).await {
        Ok(_) => panic!("accepted: {sql}"),
        Err(sqlx::Error::Database(e)) => e,
        Err(e) => panic!("{sql}: not a database error: {e}"),
    };
    assert_eq!(
        (error.code().as_deref(), error.constraint()),
        (Some(code), constraint),
        "{sql}: {error}"
    );
}

#[tokio::test]
async fn the_database_refuses_rows_that_break_the_rules() {
    let db = TestDb::new().await;
    let (org, config) = org_and_config(&db).await;
    // Each statement breaks one rule, and is refused by that rule: the
    // error's SQLSTATE and, for constraints, the constraint's name.
    let bad = [
        (format!("UPDATE organizations SET concurrency_limit = 0 WHERE id = '{org}'"), "23514", Some("organizations_concurrency_limit_check")),
        (format!("INSERT INTO campaigns (id, organization_id, name, configuration_id, priority) VALUES (gen_random_uuid(), '{org}', 'x', '{config}', 1000000)"), "23514", Some("campaigns_priority_check")),
        (format!("INSERT INTO campaigns (id, organization_id, name, configuration_id, status) VALUES (gen_random_uuid(), '{org}', 'x', '{config}', 'running')"), "22P02", None),
        (format!("INSERT INTO campaigns (id, organization_id, name, configuration_id) VALUES (gen_random_uuid(), '{org}', 'x', gen_random_uuid())"), "23503", Some("campaigns_organization_id_configuration_id_fkey")),
        (format!("INSERT INTO contacts (id, organization_id, phone_numbers) VALUES (gen_random_uuid(), '{org}', '{{}}')"), "23514", Some("contacts_phone_numbers_check")),
        (format!("INSERT INTO contacts (id, organization_id, phone_numbers, status) VALUES (gen_random_uuid(), '{org}', '{{+14155552671}}', 'locked')"), "23514", Some("contacts_check")),
        (format!("INSERT INTO contacts (id, organization_id, phone_numbers, data) VALUES (gen_random_uuid(), '{org}', '{{+14155552671}}', '[1]')"), "23514", Some("contacts_data_check")),
        (format!("INSERT INTO api_tokens (id, organization_id, token_sha256, scopes) VALUES (gen_random_uuid(), '{org}', '\\x00', '{{campaigns:read}}')"), "23514", Some("api_tokens_token_sha256_check")),
    ];
    for (sql, code, constraint) in bad {
        refused(&db, &sql, code, constraint).await;
    }
    let insert_campaign = format!(
        "INSERT INTO campaigns (id, organization_id, name, configuration_id, external_id) VALUES (gen_random_uuid(), '{org}', 'x', '{config}', 'same')"
    );
    sqlx::query(&insert_campaign)
        .execute(&db.pool)
        .await
        .unwrap();
    refused(
        &db,
        &insert_campaign,
        "23505",
        Some("campaigns_organization_id_external_id_key"),
    )
    .await;
    let other = dialerd::admin::create_org(&db.pool, "Other", 10)
        .await
        .unwrap();
    let other_config = config_of(&db, other).await;
    // The same external_id in another organization is fine.
    sqlx::query(
        &insert_campaign
            .replace(&org.to_string(), &other.to_string())
            .replace(&config.to_string(), &other_config.to_string()),
    )
    .execute(&db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn migrations_apply_twice_without_harm() {
    let db = TestDb::new().await;
    dialerd::db::migrate(&db.pool, &db.url).await.unwrap();
    assert!(db.count("SELECT count(*) FROM _sqlx_migrations").await >= 1);
}

#[tokio::test]
async fn a_database_of_an_earlier_unreleased_schema_is_named_as_such() {
    let db = TestDb::new().await;
    // A migration applied there that this dialerd does not have.
    db.run(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (20261126000001, 'create core tables', true, '\\x00', 0)",
    )
    .await
    .unwrap();
    let error = dialerd::db::migrate(&db.pool, &db.url).await.unwrap_err();
    assert!(
        matches!(
            error,
            dialerd::db::DbError::Unreleased {
                version: 20261126000001,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("drop it"), "{error}");
}

#[tokio::test]
async fn one_daemon_at_a_time_vacuums_each_queue_table() {
    use dialerd::db::instances::{vacuum, QueueTable};
    let db = TestDb::new().await;
    let last_vacuum = |table: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
                "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = $1",
            )
            .bind(table)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert!(vacuum(&db.pool, QueueTable::Contacts).await.unwrap());
    assert!(last_vacuum("contacts").await.is_some());
    assert!(last_vacuum("organization_due").await.is_some());
    assert!(last_vacuum("attempts").await.is_none(), "each on its own");

    // Another daemon vacuuming contacts (holding its lock) goes first; the
    // attempts table has a lock of its own.
    let mut other = db.pool.acquire().await.unwrap();
    async fn advisory(conn: &mut sqlx::PgConnection, call: &str, key: i64) {
        let sql = format!("SELECT {call}($1)");
        sqlx::query(&sql).bind(key).execute(conn).await.unwrap();
    }
    let (contacts_lock, attempts_lock) = (0x6469_616c_7661, 0x6469_616c_7662);
    advisory(&mut other, "pg_advisory_lock", contacts_lock).await;
    assert!(!vacuum(&db.pool, QueueTable::Contacts).await.unwrap());
    assert!(vacuum(&db.pool, QueueTable::Attempts).await.unwrap());
    assert!(last_vacuum("attempts").await.is_some());
    advisory(&mut other, "pg_advisory_unlock", contacts_lock).await;
    advisory(&mut other, "pg_advisory_lock", attempts_lock).await;
    assert!(!vacuum(&db.pool, QueueTable::Attempts).await.unwrap());
    assert!(vacuum(&db.pool, QueueTable::Contacts).await.unwrap());
}

#[tokio::test]
async fn deleting_an_organization_deletes_everything_it_owns() {
    let db = TestDb::new().await;
    let (org, config) = org_and_config(&db).await;
    let (other, other_config) = org_and_config(&db).await;
    for (o, c) in [(org, config), (other, other_config)] {
        sqlx::query(
            "WITH k AS (INSERT INTO campaigns (id, organization_id, name, configuration_id)
                        VALUES (gen_random_uuid(), $1, 'k', $2) RETURNING id),
                  c AS (INSERT INTO contacts (id, organization_id, campaign_id, phone_numbers)
                        SELECT gen_random_uuid(), $1, k.id, '{+14155552671}' FROM k RETURNING id, campaign_id)
             INSERT INTO attempts (id, organization_id, contact_id, campaign_id, attempt_number,
                                   phone_number, instance_id, outcome, ended_at)
             SELECT gen_random_uuid(), $1, c.id, c.campaign_id, 1, '+14155552671', gen_random_uuid(),
                    'completed', now()
               FROM c",
        )
        .bind(o)
        .bind(c)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    sqlx::query("DELETE FROM organizations WHERE id = $1")
        .bind(org)
        .execute(&db.pool)
        .await
        .unwrap();
    for table in ["campaigns", "contacts", "attempts", "configurations"] {
        let left: Vec<Uuid> =
            sqlx::query_scalar(&format!("SELECT DISTINCT organization_id FROM {table}"))
                .fetch_all(&db.pool)
                .await
                .unwrap();
        assert_eq!(left, vec![other], "{table}");
    }
}

/// One statement writing a closed attempt (number `n`) of each of `contacts`.
fn insert_attempts(contacts: &[Uuid], n: i32) -> String {
    let list: Vec<String> = contacts.iter().map(|c| format!("'{c}'")).collect();
    format!(
        "INSERT INTO attempts (id, organization_id, contact_id, attempt_number, phone_number,
                               instance_id, outcome, ended_at)
         SELECT gen_random_uuid(), o.id, c, {n}, '+14155552671', gen_random_uuid(), 'completed', now()
           FROM (SELECT id FROM organizations LIMIT 1) o, unnest(ARRAY[{}]::uuid[]) AS c",
        list.join(", ")
    )
}

fn is_reference_violation(e: sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_foreign_key_violation())
}

#[tokio::test]
async fn an_attempt_belongs_to_a_contact_and_goes_with_it() {
    let db = TestDb::new().await;
    let (org, config) = org_and_config(&db).await;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "WITH k AS (INSERT INTO campaigns (id, organization_id, name, configuration_id)
                    VALUES (gen_random_uuid(), $1, 'k', $2) RETURNING id)
         INSERT INTO contacts (id, organization_id, campaign_id, phone_numbers)
         SELECT gen_random_uuid(), $1, CASE WHEN i < 3 THEN k.id END, '{+14155552671}'
           FROM k, generate_series(1, 4) AS i RETURNING id",
    )
    .bind(org)
    .bind(config)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    // No contact, no attempt: alone or among good rows, and nothing written.
    let missing = Uuid::now_v7();
    let alone = insert_attempts(&[missing], 1);
    assert!(is_reference_violation(db.run(&alone).await.unwrap_err()));
    let mixed = insert_attempts(&[ids[0], missing, ids[1]], 1);
    assert!(is_reference_violation(db.run(&mixed).await.unwrap_err()));
    assert_eq!(db.count("SELECT count(*) FROM attempts").await, 0);
    for (i, id) in ids.iter().enumerate() {
        db.run(&insert_attempts(&[*id], 1)).await.unwrap();
        db.run(&insert_attempts(&[*id], 2 + i as i32))
            .await
            .unwrap();
    }
    // An attempt moved to a contact that does not exist is refused; to one
    // that does, allowed; a contact keeps its id.
    let move_to = |to: Uuid| {
        format!(
            "UPDATE attempts SET contact_id = '{to}' WHERE contact_id = '{}' AND attempt_number = 5",
            ids[3]
        )
    };
    assert!(is_reference_violation(
        db.run(&move_to(missing)).await.unwrap_err()
    ));
    db.run(&move_to(ids[2])).await.unwrap();
    let renamed = format!(
        "UPDATE contacts SET id = gen_random_uuid() WHERE id = '{}'",
        ids[0]
    );
    assert!(is_reference_violation(db.run(&renamed).await.unwrap_err()));
    // A contact's attempts go with it, alone or by its campaign's cascade.
    let left = |id: Uuid| format!("SELECT count(*) FROM attempts WHERE contact_id = '{id}'");
    assert_eq!(db.count(&left(ids[2])).await, 3);
    let deleted = format!("DELETE FROM contacts WHERE id = '{}'", ids[2]);
    db.run(&deleted).await.unwrap();
    assert_eq!(db.count(&left(ids[2])).await, 0);
    let cascaded = format!("DELETE FROM campaigns WHERE organization_id = '{org}'");
    db.run(&cascaded).await.unwrap();
    assert_eq!(
        db.count(&left(ids[0])).await + db.count(&left(ids[1])).await,
        0
    );
    assert_eq!(db.count("SELECT count(*) FROM attempts").await, 1);
    db.run("TRUNCATE contacts").await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM attempts").await, 0);
}

#[tokio::test]
async fn a_contact_deleted_while_its_attempt_is_written_takes_the_attempt_along() {
    let db = TestDb::new().await;
    let (org, _) = org_and_config(&db).await;
    let contact: Uuid = sqlx::query_scalar(
        "INSERT INTO contacts (id, organization_id, phone_numbers)
         VALUES (gen_random_uuid(), $1, '{+14155552671}') RETURNING id",
    )
    .bind(org)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let mut writer = db.pool.begin().await.unwrap();
    sqlx::query(&insert_attempts(&[contact], 1))
        .execute(&mut *writer)
        .await
        .unwrap();
    // The delete waits for the writer's lock on the contact...
    let pool = db.pool.clone();
    let delete = tokio::spawn(async move {
        sqlx::query("DELETE FROM contacts WHERE id = $1")
            .bind(contact)
            .execute(&pool)
            .await
            .unwrap()
            .rows_affected()
    });
    lock_waits(&db, 1).await;
    assert!(
        !delete.is_finished(),
        "the delete did not wait for the writer"
    );
    writer.commit().await.unwrap();
    // ...then sees the attempt written and deletes it with the contact.
    assert_eq!(delete.await.unwrap(), 1);
    assert_eq!(db.count("SELECT count(*) FROM attempts").await, 0);
    // The other way round: a writer that comes after the delete is refused.
    let late = insert_attempts(&[contact], 2);
    assert!(is_reference_violation(db.run(&late).await.unwrap_err()));
}
