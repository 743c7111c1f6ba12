//! Drains the ingest streams into the ClickHouse `users` table (through `users_input` and its view): identifies
//! and the events of identified users.

use tidemark_worker::users_sink::UsersSink;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tidemark_shared::telemetry::init("info");
    let config: tidemark_worker::WorkerConfig = tidemark_shared::config::load()?;
    let ch = tidemark_worker::connect_clickhouse(&config).await?;
    tidemark_worker::serve(config, UsersSink::new(ch)).await
}
