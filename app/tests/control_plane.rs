//! Migrations and the command-line contract's library half, against real PostgreSQL and ClickHouse.

use tidemark_app::projects;
use tidemark_testkit::test_env;

#[tokio::test]
async fn migrations_are_safe_to_rerun() {
    let env = test_env().await;
    // test_env already migrated both stores once; a second run applies nothing and does not fail.
    tidemark_shared::postgres::migrate(&env.pg).await.unwrap();
    let again = tidemark_shared::ch_migrations::migrate(&env.ch).await.unwrap();
    assert!(again.is_empty(), "re-run applied {again:?}");
    let tables: Vec<String> = env
        .ch
        .client
        .query("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name")
        .fetch_all()
        .await
        .unwrap();
    assert!(tables.contains(&"events".to_owned()), "{tables:?}");
    let recorded: u64 = env.ch.client.query("SELECT count() FROM tidemark_migrations").fetch_one().await.unwrap();
    assert_eq!(recorded as usize, tidemark_shared::ch_migrations::embedded().len());
}

#[tokio::test]
async fn catalog_queries_run_on_this_server() {
    let env = test_env().await;
    for query in tidemark_shared::queries::CATALOG {
        env.ch.client.query(&query.with_samples()).execute().await.unwrap_or_else(|e| panic!("{}: {e}", query.name));
    }
}

#[tokio::test]
async fn a_created_project_has_a_working_token() {
    let env = test_env().await;
    let created = projects::create(&env.pg, "Docs site", &["https://Docs.Example.com/".into()], "UTC").await.unwrap();
    assert_eq!(created.domains, vec!["docs.example.com"]);
    assert_eq!(created.timezone, "UTC");
    let owner: uuid::Uuid =
        sqlx::query_scalar("SELECT project_id FROM ingest_tokens WHERE token = $1 AND revoked_at IS NULL")
            .bind(&created.token)
            .fetch_one(&env.pg)
            .await
            .unwrap();
    assert_eq!(owner, created.id);
    assert_eq!(projects::first(&env.pg).await.unwrap().unwrap().id, created.id);
    assert!(projects::create(&env.pg, "  ", &[], "UTC").await.is_err());
}

#[tokio::test]
async fn projects_keep_an_iana_time_zone() {
    let env = test_env().await;
    let berlin = projects::create(&env.pg, "Shop", &[], "europe/berlin").await.unwrap();
    assert_eq!(berlin.timezone, "Europe/Berlin", "stored as the zone database spells it");
    let stored: String = sqlx::query_scalar("SELECT timezone FROM projects WHERE id = $1")
        .bind(berlin.id)
        .fetch_one(&env.pg)
        .await
        .unwrap();
    assert_eq!(stored, "Europe/Berlin");
    let err = projects::create(&env.pg, "Shop", &[], "Mars/Olympus").await.unwrap_err().to_string();
    assert!(err.contains("`Mars/Olympus` is not an IANA time zone"), "{err}");
    // ClickHouse knows the stored name: day boundaries can be computed in it.
    let day: String = env
        .ch
        .client
        .query("SELECT toString(toDate(toTimeZone(toDateTime(1764630000, 'UTC'), ?)))")
        .bind(&stored)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(day, "2025-12-02", "23:00 UTC on 1 December is midnight of the 2nd in Berlin");
}

#[tokio::test]
async fn admins_are_stored_hashed_and_unique() {
    let env = test_env().await;
    tidemark_app::users::create(&env.pg, "ops@example.com", "correct horse battery", true).await.unwrap();
    let (hash, admin): (String, bool) =
        sqlx::query_as("SELECT password_hash, is_admin FROM accounts").fetch_one(&env.pg).await.unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("correct horse"));
    assert!(admin);
    assert!(tidemark_app::users::create(&env.pg, "OPS@example.com", "another password!", false).await.is_err());
    assert!(tidemark_app::users::create(&env.pg, "x@example.com", "short", false).await.is_err());
}
