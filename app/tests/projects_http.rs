//! Projects over real HTTP against real PostgreSQL, ClickHouse and Redis (and a real hub for the ingest token):
//! create, list, settings, token rotation, deletion with its ClickHouse purge, and who may do each.

mod http_support;

use http_support::{Who, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use tidemark_app::auth::roles::{Role, Scope};
use tidemark_app::purge;
use tidemark_shared::secret::Secret;
use uuid::Uuid;

#[tokio::test]
async fn any_account_creates_projects_it_owns_and_lists_only_what_it_may_see() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in("alice@x.test", false).await;
    let (_, bob) = app.signed_in("bob@x.test", false).await;
    let (_, admin) = app.signed_in("admin@x.test", true).await;

    let (status, created) = app
        .post(
            "/api/v1/projects",
            Who::Browser(&alice),
            json!({ "name": " Shop ", "domains": ["https://Shop.Example.com/", "shop.example.com"],
                    "timezone": "europe/berlin" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "Shop");
    assert_eq!(created["domains"], json!(["shop.example.com"]), "normalized and de-duplicated");
    assert_eq!(created["timezone"], "Europe/Berlin");
    assert_eq!(created["role"], "owner");
    assert!(created["token"].as_str().unwrap().starts_with("tm_"));
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, listed) = app.get("/api/v1/projects", Who::Browser(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed,
        json!([{ "id": id, "name": "Shop", "domains": ["shop.example.com"], "timezone": "Europe/Berlin",
                 "role": "owner" }])
    );
    assert_eq!(app.get("/api/v1/projects", Who::Browser(&bob)).await, (StatusCode::OK, json!([])));
    assert_eq!(app.get(&format!("/api/v1/projects/{id}"), Who::Browser(&bob)).await.0, StatusCode::NOT_FOUND);
    let (_, all) = app.get("/api/v1/projects", Who::Browser(&admin)).await;
    assert_eq!(all[0]["role"], "owner", "instance admins own every project: {all}");

    // A key sees its own project with its scope, and cannot create projects.
    let key = app.key(id.parse().unwrap(), Scope::Read).await;
    let (status, listed) = app.get("/api/v1/projects", Who::Key(&key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((listed[0]["id"].as_str(), &listed[0]["scope"]), (Some(id.as_str()), &json!("read")));
    assert!(listed[0].get("role").is_none());
    let (status, _) = app.post("/api/v1/projects", Who::Key(&key), json!({ "name": "Other" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    for (body, field) in [
        (json!({ "name": "  " }), "name"),
        (json!({ "name": "A", "timezone": "Mars/Olympus" }), "timezone"),
        (json!({ "name": "A", "domains": ["http://"] }), "domains"),
        (json!({ "name": "A", "colour": "blue" }), "colour"),
        (json!({ "domains": [] }), "name"),
    ] {
        let (status, answer) = app.post("/api/v1/projects", Who::Browser(&alice), body.clone()).await;
        assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{body}: {answer}");
    }
    assert_eq!(app.post("/api/v1/projects", Who::Nobody, json!({ "name": "A" })).await.0, StatusCode::UNAUTHORIZED);
    let (status, answer) = app.post("/api/v1/projects", Who::CookieOnly(&alice), json!({ "name": "A" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the cookie alone is not enough: {answer}");
    let (_, listed) = app.get("/api/v1/projects", Who::Browser(&alice)).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "no refused request created a project");
}

#[tokio::test]
async fn editors_rename_and_set_domains_and_timezone_and_viewers_cannot() {
    let app = spawn_app().await;
    let (_, owner) = app.signed_in("owner@x.test", false).await;
    let (editor_id, editor) = app.signed_in("editor@x.test", false).await;
    let (viewer_id, viewer) = app.signed_in("viewer@x.test", false).await;
    let (project, _) = app.project(&owner, "Blog").await;
    app.grant(project, editor_id, Role::Editor).await;
    app.grant(project, viewer_id, Role::Viewer).await;
    let path = format!("/api/v1/projects/{project}");

    let (status, settings) = app
        .patch(
            &path,
            Who::Browser(&editor),
            json!({ "name": "Engineering blog", "domains": ["Blog.Example.org", "www.blog.example.org"],
                    "timezone": "America/New_York" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let want = json!({ "id": project, "name": "Engineering blog",
                       "domains": ["blog.example.org", "www.blog.example.org"], "timezone": "America/New_York" });
    assert_eq!(settings, want);
    assert_eq!(app.get(&path, Who::Browser(&viewer)).await, (StatusCode::OK, want.clone()));

    let (status, answer) = app.patch(&path, Who::Browser(&owner), json!({ "timezone": "Europe/Atlantis" })).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("timezone")), "{answer}");
    let (status, answer) = app.patch(&path, Who::Browser(&owner), json!({ "domains": ["a b"] })).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("domains")), "{answer}");
    assert_eq!(app.patch(&path, Who::Browser(&viewer), json!({ "name": "Mine" })).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.patch(&path, Who::CookieOnly(&owner), json!({ "name": "Mine" })).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.get(&path, Who::Browser(&owner)).await.1, want, "refused changes changed nothing");

    // An empty list allows every origin again.
    let (_, settings) = app.patch(&path, Who::Browser(&owner), json!({ "domains": [] })).await;
    assert_eq!(settings["domains"], json!([]));
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0";

/// A real hub on this test's stores that caches tokens for an hour, so only the app's announcement can make it
/// forget one in time.
async fn spawn_hub(env: &tidemark_testkit::TestEnv) -> String {
    let config = tidemark_hub::HubConfig {
        hub_listen: "127.0.0.1:0".into(),
        redis_url: Secret::new(env.stores.redis_url.clone()),
        postgres_url: Secret::new(env.postgres_url.clone()),
        key_prefix: env.key_prefix.clone(),
        hub_metrics_listen: "127.0.0.1:0".into(),
        hub_threads: 1,
        token_cache_ttl_secs: 3600,
        ..tidemark_hub::HubConfig::default()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hub = tidemark_hub::build(config, listener).await.expect("hub starts");
    tokio::spawn(hub.server);
    // Give the hub's subscriber a moment to subscribe before anything is announced.
    tokio::time::sleep(Duration::from_millis(300)).await;
    format!("http://127.0.0.1:{}", hub.port)
}

async fn send_event(hub: &str, token: &str) -> StatusCode {
    send_event_from(hub, token, "https://a.io").await
}

/// An event as a browser on `origin` sends it.
async fn send_event_from(hub: &str, token: &str, origin: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{hub}/v1/event"))
        .header("user-agent", FIREFOX)
        .header("origin", origin)
        .bearer_auth(token)
        .json(&json!({ "type": "pageview", "url": "https://a.io/" }))
        .send()
        .await
        .unwrap()
        .status()
}

/// Polls the hub until it refuses `token` (the announcement travels through Redis) or a second passes.
async fn hub_refuses(hub: &str, token: &str) -> bool {
    for _ in 0..50 {
        if send_event(hub, token).await == StatusCode::UNAUTHORIZED {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_rotated_or_deleted_projects_token_is_refused_at_once_by_a_running_hub() {
    let app = spawn_app().await;
    let hub = spawn_hub(&app.env).await;
    let (_, owner) = app.signed_in("owner@x.test", false).await;
    let (editor_id, editor) = app.signed_in("editor@x.test", false).await;
    let (project, old) = app.project(&owner, "Site").await;
    app.grant(project, editor_id, Role::Editor).await;
    assert_eq!(send_event(&hub, &old).await, StatusCode::ACCEPTED, "the hub now caches the token for an hour");
    let path = format!("/api/v1/projects/{project}/token");
    assert_eq!(app.get(&path, Who::Browser(&editor)).await.1["token"], json!(old));

    // New allowed domains hold at once, although the hub cached the project with none.
    let settings = format!("/api/v1/projects/{project}");
    let (status, _) = app.patch(&settings, Who::Browser(&editor), json!({ "domains": ["shop.example"] })).await;
    assert_eq!(status, StatusCode::OK);
    let mut refused = false;
    for _ in 0..50 {
        if send_event_from(&hub, &old, "https://a.io").await == StatusCode::FORBIDDEN {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the hub still allowed an origin the project no longer lists");
    assert_eq!(send_event_from(&hub, &old, "https://www.shop.example").await, StatusCode::ACCEPTED);
    app.patch(&settings, Who::Browser(&editor), json!({ "domains": [] })).await;
    for _ in 0..50 {
        if send_event(&hub, &old).await == StatusCode::ACCEPTED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(app.post(&path, Who::Browser(&editor), json!({})).await.0, StatusCode::FORBIDDEN);
    let admin_key = app.key(project, Scope::Admin).await;
    assert_eq!(app.post(&path, Who::Key(&admin_key), json!({})).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.post(&path, Who::CookieOnly(&owner), json!({})).await.0, StatusCode::FORBIDDEN);
    assert_eq!(send_event(&hub, &old).await, StatusCode::ACCEPTED, "refused rotations changed nothing");

    let (status, rotated) = app.post(&path, Who::Browser(&owner), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["revoked"], 1);
    let new = rotated["token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let revoked: bool = sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM ingest_tokens WHERE token = $1")
        .bind(&old)
        .fetch_one(&app.env.pg)
        .await
        .unwrap();
    assert!(revoked);
    assert!(hub_refuses(&hub, &old).await, "the hub forgot the old token although it cached it for an hour");
    assert_eq!(send_event(&hub, &new).await, StatusCode::ACCEPTED);
    assert_eq!(app.get(&path, Who::Browser(&owner)).await.1["token"], json!(new));

    let (status, _) = app.delete(&format!("/api/v1/projects/{project}"), Who::Browser(&owner)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(hub_refuses(&hub, &new).await, "a deleted project's token is refused at once");
}

/// Rows of one project in every table that holds project rows, through the same tables the workers write (the
/// `_input` tables feed the aggregating ones through their materialized views).
async fn seed(ch: &tidemark_shared::clickhouse::ClickHouse, project: Uuid, n: u64) {
    let p = format!("toUUID('{project}')");
    for sql in [
        format!(
            "INSERT INTO events (project_id, event_id, type, ts, received_at, visitor_id, session_id, path) \
             SELECT {p}, generateUUIDv4(), 'pageview', toDateTime(1700000000 + number * 86400 * 40, 'UTC'), \
             toDateTime(1700000000, 'UTC'), number, number, '/' FROM system.numbers LIMIT {n}"
        ),
        format!(
            "INSERT INTO session_input (project_id, session_id, visitor_id, event_id, type, ts_ms, ord, path) \
             SELECT {p}, number + 1, number + 1, generateUUIDv4(), 'pageview', 1700000000000 + number, \
             (1700000000000 + number) * 65536, '/' FROM system.numbers LIMIT {n}"
        ),
        format!(
            "INSERT INTO device_input_v2 (project_id, device_id, identity, visitor_id, browser, ts_ms, ord) \
             SELECT {p}, number + 1, 'daily', number + 1, 'Firefox', 1700000000000 + number, \
             (1700000000000 + number) * 65536 FROM system.numbers LIMIT {n}"
        ),
        format!(
            "INSERT INTO users_input (project_id, user_id, visitor_id, session_id, event_id, ts_ms, ord) \
             SELECT {p}, toString(number), number + 1, number + 1, generateUUIDv4(), 1700000000000 + number, \
             (1700000000000 + number) * 65536 FROM system.numbers LIMIT {n}"
        ),
        format!(
            "INSERT INTO device_input (project_id, device_id, visitor_id, browser, ts_ms) \
             SELECT {p}, number + 1, number + 1, 'Firefox', 1700000000000 + number FROM system.numbers LIMIT {n}"
        ),
    ] {
        ch.client.query(&sql).execute().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Every table that holds project rows today, named here rather than taken from `purge::TABLES`, so that a table
/// missing there shows as rows left behind.
const TABLES: [&str; 5] = ["events", "sessions", "devices_v2", "users", "devices"];

/// Rows of `project` per table, in `TABLES` order.
async fn rows(ch: &tidemark_shared::clickhouse::ClickHouse, project: Uuid) -> Vec<u64> {
    let mut out = Vec::new();
    for table in TABLES {
        let sql = format!("SELECT count() FROM {table} WHERE project_id = toUUID('{project}')");
        out.push(ch.client.query(&sql).fetch_one::<u64>().await.unwrap());
    }
    out
}

/// Waits until this database has no unfinished mutation (ClickHouse runs them in the background).
async fn mutations_done(ch: &tidemark_shared::clickhouse::ClickHouse) {
    let sql = "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND is_done = 0";
    for _ in 0..300 {
        if ch.client.query(sql).fetch_one::<u64>().await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("mutations still running after 30 s");
}

async fn mutations_issued(ch: &tidemark_shared::clickhouse::ClickHouse) -> u64 {
    let sql = "SELECT count() FROM system.mutations WHERE database = currentDatabase()";
    ch.client.query(sql).fetch_one::<u64>().await.unwrap()
}

#[tokio::test]
async fn only_owners_delete_and_every_clickhouse_row_of_the_project_goes_while_others_stay() {
    let app = spawn_app().await;
    let (_, owner) = app.signed_in("owner@x.test", false).await;
    let (editor_id, editor) = app.signed_in("editor@x.test", false).await;
    let (viewer_id, viewer) = app.signed_in("viewer@x.test", false).await;
    let (doomed, token) = app.project(&owner, "Doomed").await;
    let (kept, _) = app.project(&owner, "Kept").await;
    app.grant(doomed, editor_id, Role::Editor).await;
    app.grant(doomed, viewer_id, Role::Viewer).await;
    seed(&app.env.ch, doomed, 3).await;
    seed(&app.env.ch, kept, 4).await;
    assert_eq!(rows(&app.env.ch, doomed).await, vec![3; 5]);
    let kept_rows = rows(&app.env.ch, kept).await;
    assert_eq!(kept_rows, vec![4; 5]);

    let path = format!("/api/v1/projects/{doomed}");
    let admin_key = app.key(doomed, Scope::Admin).await;
    let other_key = app.key(kept, Scope::Admin).await;
    assert_eq!(app.delete(&path, Who::Browser(&viewer)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.delete(&path, Who::Browser(&editor)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.delete(&path, Who::Key(&admin_key)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.delete(&path, Who::Key(&other_key)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&path, Who::CookieOnly(&owner)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.get(&path, Who::Browser(&owner)).await.0, StatusCode::OK, "refused deletions deleted nothing");
    assert_eq!(mutations_issued(&app.env.ch).await, 0);

    let (status, answer) = app.delete(&path, Who::Browser(&owner)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer, json!({ "id": doomed, "deleted": true, "purge": "started" }));
    assert_eq!(app.get(&path, Who::Browser(&owner)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&path, Who::Browser(&owner)).await.0, StatusCode::NOT_FOUND);
    let (_, listed) = app.get("/api/v1/projects", Who::Browser(&owner)).await;
    assert_eq!(listed.as_array().unwrap().iter().map(|p| p["name"].clone()).collect::<Vec<_>>(), vec![json!("Kept")]);
    assert_eq!(app.get(&path, Who::Key(&admin_key)).await.0, StatusCode::UNAUTHORIZED, "its keys died with it");
    let (deleted, token_revoked): (bool, bool) = sqlx::query_as(
        "SELECT p.deleted_at IS NOT NULL, t.revoked_at IS NOT NULL FROM projects p \
         JOIN ingest_tokens t ON t.project_id = p.id WHERE t.token = $1",
    )
    .bind(&token)
    .fetch_one(&app.env.pg)
    .await
    .unwrap();
    assert!(deleted && token_revoked);

    mutations_done(&app.env.ch).await;
    assert_eq!(rows(&app.env.ch, doomed).await, vec![0; 5], "every table lost the project's rows");
    assert_eq!(rows(&app.env.ch, kept).await, kept_rows, "the other project kept all of its rows");
}

#[tokio::test]
async fn a_deletion_while_clickhouse_is_down_deletes_in_postgres_and_purges_later() {
    // ClickHouse at a port nobody listens on: the app's only view of it.
    let app = spawn_app_with(|c| c.clickhouse_url = Secret::new("http://default@127.0.0.1:9/nowhere".into())).await;
    let (_, owner) = app.signed_in("owner@x.test", false).await;
    let (doomed, _) = app.project(&owner, "Doomed").await;
    let (kept, _) = app.project(&owner, "Kept").await;
    seed(&app.env.ch, doomed, 2).await;
    seed(&app.env.ch, kept, 2).await;

    let path = format!("/api/v1/projects/{doomed}");
    let (status, answer) = app.delete(&path, Who::Browser(&owner)).await;
    assert_eq!((status, &answer["purge"]), (StatusCode::ACCEPTED, &json!("pending")), "{answer}");
    assert_eq!(app.get(&path, Who::Browser(&owner)).await.0, StatusCode::NOT_FOUND, "deleted in PostgreSQL");
    assert_eq!(mutations_issued(&app.env.ch).await, 0);

    // The final pass waits until events queued before the deletion had time to land.
    assert_eq!(purge::run_pending(&app.env.pg, &app.env.ch).await.unwrap(), 0);
    sqlx::query("UPDATE projects SET deleted_at = deleted_at - interval '10 minutes' WHERE id = $1")
        .bind(doomed)
        .execute(&app.env.pg)
        .await
        .unwrap();
    assert!(purge::any_due(&app.env.pg).await.unwrap());
    // ClickHouse back (the test's real one): the retry runs and records itself.
    assert_eq!(purge::run_pending(&app.env.pg, &app.env.ch).await.unwrap(), 1);
    assert_eq!(purge::run_pending(&app.env.pg, &app.env.ch).await.unwrap(), 0, "a purged project is done");
    assert!(!purge::any_due(&app.env.pg).await.unwrap());
    mutations_done(&app.env.ch).await;
    assert_eq!(rows(&app.env.ch, doomed).await, vec![0; 5]);
    assert_eq!(rows(&app.env.ch, kept).await, vec![2; 5]);
    let purged: bool = sqlx::query_scalar("SELECT purged_at IS NOT NULL FROM projects WHERE id = $1")
        .bind(doomed)
        .fetch_one(&app.env.pg)
        .await
        .unwrap();
    assert!(purged);
}

#[tokio::test]
async fn a_purge_skips_a_table_the_operator_dropped() {
    let app = spawn_app().await;
    let (_, owner) = app.signed_in("owner@x.test", false).await;
    let (doomed, _) = app.project(&owner, "Doomed").await;
    seed(&app.env.ch, doomed, 2).await;
    // The upgrade note of 0006 lets operators drop the old devices tables.
    for sql in ["DROP TABLE devices_mv", "DROP TABLE device_input", "DROP TABLE devices"] {
        app.env.ch.client.query(sql).execute().await.unwrap();
    }
    let (status, answer) = app.delete(&format!("/api/v1/projects/{doomed}"), Who::Browser(&owner)).await;
    assert_eq!((status, &answer["purge"]), (StatusCode::ACCEPTED, &json!("started")), "{answer}");
    mutations_done(&app.env.ch).await;
    let events: u64 = app
        .env
        .ch
        .client
        .query(&format!("SELECT count() FROM events WHERE project_id = toUUID('{doomed}')"))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(events, 0);
}

#[tokio::test]
async fn every_table_with_project_rows_is_purged() {
    // A new table keyed by project (a rollup, say) must join purge::TABLES, or deleted projects would live on in it.
    let env = tidemark_testkit::test_env().await;
    let tables: Vec<String> = env
        .ch
        .client
        .query(
            "SELECT table FROM system.columns WHERE database = currentDatabase() AND name = 'project_id' \
             AND table IN (SELECT name FROM system.tables WHERE database = currentDatabase() \
             AND engine LIKE '%MergeTree') ORDER BY table",
        )
        .fetch_all()
        .await
        .unwrap();
    let mut purged: Vec<String> = purge::TABLES.iter().map(|(t, _)| t.to_string()).collect();
    purged.sort();
    assert_eq!(tables, purged);
}

#[tokio::test]
async fn a_rotation_while_redis_is_down_still_revokes_the_old_token() {
    let app = spawn_app_with(|c| c.redis_url = Secret::new("redis://127.0.0.1:9/0".into())).await;
    let (_, owner) = app.signed_in("owner@x.test", false).await;
    let (project, old) = app.project(&owner, "Site").await;
    let (status, rotated) =
        app.post(&format!("/api/v1/projects/{project}/token"), Who::Browser(&owner), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    // What a hub reads on its next lookup (the cache expires on its own when the announcement cannot be sent).
    let live: Option<Uuid> = sqlx::query_scalar(
        "SELECT p.id FROM ingest_tokens t JOIN projects p ON p.id = t.project_id \
         WHERE t.token = $1 AND t.revoked_at IS NULL AND p.deleted_at IS NULL",
    )
    .bind(&old)
    .fetch_optional(&app.env.pg)
    .await
    .unwrap();
    assert_eq!(live, None);
}
