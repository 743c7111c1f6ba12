//! PostgreSQL: the control plane (admins, projects, ingest tokens, API key hashes, daily salts).

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::str::FromStr;
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    pool_options(max_connections).connect_with(connect_options(url)?).await.context("connecting to PostgreSQL")
}

/// A pool that connects on first use: a service that can work from its caches (the hub) starts, and reports
/// itself unready, while PostgreSQL is down. Broken connections are dropped and replaced on the next use.
pub fn connect_lazy(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    Ok(pool_options(max_connections).connect_lazy_with(connect_options(url)?))
}

fn connect_options(url: &str) -> anyhow::Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url)
        .context("PostgreSQL URL is not valid")?
        .log_statements(tracing::log::LevelFilter::Debug))
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    // A request waits at most this long for a connection: past it, PostgreSQL is as good as down.
    PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(5))
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("applying PostgreSQL migrations")
}
