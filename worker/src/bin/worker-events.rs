//! Drains the ingest streams into the ClickHouse `events` table.

use tidemark_worker::events_sink::EventsSink;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tidemark_shared::telemetry::init("info");
    let config: tidemark_worker::WorkerConfig = tidemark_shared::config::load()?;
    let ch = tidemark_worker::connect_clickhouse(&config).await?;
    tidemark_worker::serve(config, EventsSink::new(ch)).await
}
