//! Drains the ingest streams into the ClickHouse `sessions` table (through `session_input` and its view).

use tidemark_worker::sessions_sink::SessionsSink;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tidemark_shared::telemetry::init("info");
    let config: tidemark_worker::WorkerConfig = tidemark_shared::config::load()?;
    let ch = tidemark_worker::connect_clickhouse(&config).await?;
    tidemark_worker::serve(config, SessionsSink::new(ch)).await
}
