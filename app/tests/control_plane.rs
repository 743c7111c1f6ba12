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
    let created = projects::create(&env.pg, "Docs site", &["https://Docs.Example.com/".into()]).await.unwrap();
    assert_eq!(created.domains, vec!["docs.example.com"]);
    let owner: uuid::Uuid =
        sqlx::query_scalar("SELECT project_id FROM ingest_tokens WHERE token = $1 AND revoked_at IS NULL")
            .bind(&created.token)
            .fetch_one(&env.pg)
            .await
            .unwrap();
    assert_eq!(owner, created.id);
    assert_eq!(projects::first(&env.pg).await.unwrap().unwrap().id, created.id);
    assert!(projects::create(&env.pg, "  ", &[]).await.is_err());
}

#[tokio::test]
async fn admins_are_stored_hashed_and_unique() {
    let env = test_env().await;
    tidemark_app::users::create(&env.pg, "ops@example.com", "correct horse battery").await.unwrap();
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM admin_users").fetch_one(&env.pg).await.unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("correct horse"));
    assert!(tidemark_app::users::create(&env.pg, "OPS@example.com", "another password!").await.is_err());
    assert!(tidemark_app::users::create(&env.pg, "x@example.com", "short").await.is_err());
}
