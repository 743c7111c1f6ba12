//! Removing a deleted project's rows from ClickHouse.
//!
//! Deletion happens in PostgreSQL first (`projects::delete`): the hub refuses the project's tokens and the API
//! forgets it at once, whether ClickHouse is up or not. Its rows then go by one `ALTER TABLE ... DELETE` mutation
//! per table. Mutations are asynchronous on every version (18.16 has no `mutations_sync`): ClickHouse accepts
//! them, keeps them on disk across restarts and rewrites the affected parts in the background.
//!
//! Two passes, because a mutation only covers the parts that exist when it is issued: events the hub accepted
//! before the deletion may still wait in the queue and be written a little later. The API issues the first pass
//! at once; a project stays pending (`deleted_at` set, `purged_at` NULL) until a pass issued at least `SETTLE`
//! after the deletion succeeds. `app serve` runs pending passes every `RETRY_EVERY`, and `app migrate` runs them
//! too, so a ClickHouse that was down when the project was deleted is purged once it is back.

use anyhow::Context;
use sqlx::PgPool;
use std::time::Duration;
use tidemark_shared::clickhouse::ClickHouse;
use tidemark_shared::queries;
use uuid::Uuid;

/// The tables holding project rows and the catalogue query that empties each one. The `_input` tables are `Null`
/// engines (they keep nothing) and the materialized views write into these tables.
pub const TABLES: [(&str, &str); 5] = [
    ("events", "projects.purge_events"),
    ("sessions", "projects.purge_sessions"),
    ("devices_v2", "projects.purge_devices_v2"),
    ("users", "projects.purge_users"),
    ("devices", "projects.purge_devices"),
];

/// How long after a deletion a pass counts as the last one: longer than the queue normally holds an event.
pub const SETTLE: Duration = Duration::from_secs(5 * 60);

/// How long a pass waits for ClickHouse to accept its mutations.
pub const ISSUE_WAIT: Duration = Duration::from_secs(60);

/// How often `app serve` looks for pending purges.
pub const RETRY_EVERY: Duration = Duration::from_secs(5 * 60);

/// Issues the delete mutations for one project on every table that exists; returns once ClickHouse accepted them
/// all (the rows disappear when the mutations finish).
pub async fn issue(ch: &ClickHouse, project: Uuid) -> anyhow::Result<()> {
    let present: Vec<String> = ch
        .client
        .query(queries::by_name("projects.purge_tables").sql)
        .fetch_all()
        .await
        .context("listing the ClickHouse tables")?;
    for (table, query) in TABLES {
        if !present.iter().any(|t| t == table) {
            continue;
        }
        ch.client
            .query(queries::by_name(query).sql)
            .bind(project.to_string())
            .execute()
            .await
            .with_context(|| format!("deleting the project's rows from {table}"))?;
    }
    Ok(())
}

/// Whether a final pass is due for some deleted project.
pub async fn any_due(pool: &PgPool) -> anyhow::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM projects WHERE deleted_at IS NOT NULL AND purged_at IS NULL \
         AND deleted_at <= now() - make_interval(secs => $1))",
    )
    .bind(SETTLE.as_secs_f64())
    .fetch_one(pool)
    .await
    .context("looking for pending purges")
}

/// Runs the pending final passes one project at a time; returns how many projects are now purged. A project is
/// claimed with `FOR UPDATE SKIP LOCKED`, so app replicas running this at once do not repeat each other's work;
/// the first ClickHouse failure stops the run (it is down: the next run retries) and leaves that project pending.
pub async fn run_pending(pool: &PgPool, ch: &ClickHouse) -> anyhow::Result<usize> {
    let mut done = 0;
    loop {
        let mut tx = pool.begin().await.context("starting a purge")?;
        let next: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM projects WHERE deleted_at IS NOT NULL AND purged_at IS NULL \
             AND deleted_at <= now() - make_interval(secs => $1) ORDER BY deleted_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .bind(SETTLE.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await
        .context("finding a pending purge")?;
        let Some(project) = next else { return Ok(done) };
        // Bounded, so a ClickHouse that stops answering does not keep the claim (and its transaction) forever.
        tokio::time::timeout(ISSUE_WAIT, issue(ch, project))
            .await
            .map_err(|_| anyhow::anyhow!("ClickHouse did not take the purge of {project} within {ISSUE_WAIT:?}"))??;
        sqlx::query("UPDATE projects SET purged_at = now() WHERE id = $1")
            .bind(project)
            .execute(&mut *tx)
            .await
            .context("recording the purge")?;
        tx.commit().await.context("recording the purge")?;
        tracing::info!(%project, "Deleted project purged from ClickHouse.");
        done += 1;
    }
}

/// `app serve`'s background loop: pending purges every `RETRY_EVERY`, connecting to ClickHouse when needed.
pub async fn keep_purging(pool: PgPool, store: std::sync::Arc<crate::analytics_store::AnalyticsStore>) {
    loop {
        // ClickHouse is reached only when there is work, so a ClickHouse outage with nothing to purge logs nothing.
        let run = async {
            if any_due(&pool).await? {
                run_pending(&pool, store.get().await?).await?;
            }
            anyhow::Ok(())
        };
        if let Err(e) = run.await {
            tracing::warn!(error = format!("{e:#}"), "Pending project purges failed; retrying later.");
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}
