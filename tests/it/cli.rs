//! The real `dialerd` binary: settings errors, administrative commands.

use std::process::{Command, Output};

use crate::helpers::TestDb;

fn dialerd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dialerd"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("dialerd runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_http_backend_needs_its_credentials_and_urls() {
    let http = ("DIALERD_TELEPHONY__BACKEND", "http");
    let token = ("DIALERD_TELEPHONY__HTTP__TOKEN", "t0k3n");
    let secret = (
        "DIALERD_TELEPHONY__HTTP__SIGNING_SECRET",
        "0123456789abcdef",
    );
    for (env, key) in [
        (vec![http], "telephony.http.token"),
        (vec![http, token], "telephony.http.signing_secret"),
        (
            vec![
                http,
                token,
                ("DIALERD_TELEPHONY__HTTP__SIGNING_SECRET", "short"),
            ],
            "telephony.http.signing_secret",
        ),
        (
            vec![
                http,
                token,
                secret,
                ("DIALERD_TELEPHONY__HTTP__BASE_URL", "ftp://x"),
            ],
            "telephony.http.base_url",
        ),
        (
            vec![
                http,
                token,
                secret,
                ("DIALERD_TELEPHONY__HTTP__MAX_CALL_SECONDS", "0"),
            ],
            "telephony.http.max_call_seconds",
        ),
    ] {
        let out = dialerd(&["check-config"], &env);
        assert_eq!(out.status.code(), Some(78), "{env:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "{env:?}: {}", stderr(&out));
    }
    let out = dialerd(&["check-config"], &[http, token, secret]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        !shown.contains("t0k3n") && !shown.contains("0123456789abcdef"),
        "{shown}"
    );
    assert!(shown.contains("<redacted>"), "{shown}");
    // The simulated backend ignores the empty http credentials.
    assert!(dialerd(&["check-config"], &[]).status.success());
}

#[test]
fn a_bad_setting_exits_78_naming_the_key() {
    let out = dialerd(
        &["check-config"],
        &[("DIALERD_HTTP__LISTEN", "not-an-address")],
    );
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("http.listen"), "{}", stderr(&out));

    let out = dialerd(
        &["check-config"],
        &[("DIALERD_DATABASE__MAX_CONNECTIONS", "0")],
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("database.max_connections"),
        "{}",
        stderr(&out)
    );

    let out = dialerd(&["check-config"], &[("DIALERD_HTTP__LISTN", "127.0.0.1:1")]);
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("listn"), "{}", stderr(&out));
}

#[test]
fn a_settings_file_is_layered_under_the_environment() {
    let dir = std::env::temp_dir().join(format!("dialerd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dialerd.toml");
    std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:9999\"\n").unwrap();
    let path = file.to_str().unwrap();
    let out = dialerd(&["--config", path, "check-config"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:9999"));
    let out = dialerd(
        &["--config", path, "check-config"],
        &[("DIALERD_HTTP__LISTEN", "127.0.0.1:7777")],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:7777"));

    std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:9999\"\nsurprise = 1\n").unwrap();
    let out = dialerd(&["--config", path, "check-config"], &[]);
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("surprise"), "{}", stderr(&out));
    let out = dialerd(
        &["--config", "/nonexistent/dialerd.toml", "check-config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn an_unreachable_database_is_named_in_the_error() {
    let url = "postgres://postgres:hunter2@127.0.0.1:1/dialerd";
    let out = dialerd(
        &["migrate"],
        &[
            ("DATABASE_URL", url),
            ("DIALERD_DATABASE__ACQUIRE_TIMEOUT_SECONDS", "2"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("127.0.0.1:1/dialerd"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn org_and_token_commands_print_ids_and_store_only_a_hash() {
    let db = TestDb::new().await;
    let url = db.url.clone();
    let env = [("DATABASE_URL", url.as_str())];
    let out = dialerd(&["migrate"], &env);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = dialerd(
        &["org", "create", "Acme Corp", "--concurrency-limit", "25"],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let org = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let org_id: uuid::Uuid = org.parse().unwrap();
    let limit: i32 =
        sqlx::query_scalar("SELECT concurrency_limit FROM organizations WHERE id = $1")
            .bind(org_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(limit, 25);

    let out = dialerd(
        &[
            "token",
            "create",
            "--org",
            &org,
            "--scopes",
            "campaigns:read,concurrency:read",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("dlr_") && token.len() > 40);
    let grant = dialerd::db::tokens::lookup(&db.pool, &token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.organization_id, org_id);
    assert_eq!(grant.scopes.len(), 2);
    // What is stored is the token's SHA-256, computed here by PostgreSQL,
    // and nothing else holds the token.
    let stored: (Vec<u8>, Vec<u8>, i64) = sqlx::query_as(
        "SELECT token_sha256, sha256(convert_to($1, 'UTF8')), (SELECT count(*) FROM api_tokens)
           FROM api_tokens",
    )
    .bind(&token)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        stored.0, stored.1,
        "the stored value is the token's SHA-256"
    );
    assert_eq!(stored.2, 1);
    let plaintext = db
        .count(&format!(
            "SELECT count(*) FROM api_tokens t WHERE row_to_json(t)::text LIKE '%{token}%'"
        ))
        .await;
    assert_eq!(plaintext, 0);

    for bad in [
        vec![
            "token",
            "create",
            "--org",
            &org,
            "--scopes",
            "campaigns:write",
        ],
        vec![
            "token",
            "create",
            "--org",
            "00000000-0000-0000-0000-000000000000",
            "--scopes",
            "campaigns:read",
        ],
        vec!["org", "create", "X", "--concurrency-limit", "0"],
    ] {
        let out = dialerd(&bad, &env);
        assert!(!out.status.success(), "{bad:?}");
    }
    assert_eq!(db.count("SELECT count(*) FROM api_tokens").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM organizations").await, 1);
}
