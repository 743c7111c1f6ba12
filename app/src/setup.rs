//! `app migrate`: brings PostgreSQL and ClickHouse to the schema this binary expects.

use crate::AppConfig;
use tidemark_shared::clickhouse::{ClickHouse, Endpoint};

pub async fn migrate(config: &AppConfig) -> anyhow::Result<Vec<&'static str>> {
    let pg = tidemark_shared::postgres::connect(config.postgres_url.expose(), 2).await?;
    tidemark_shared::postgres::migrate(&pg).await?;
    let endpoint = Endpoint::parse(config.clickhouse_url.expose(), &config.clickhouse_database)?;
    let ch = ClickHouse::connect(endpoint).await?;
    tidemark_shared::ch_migrations::migrate(&ch).await
}
