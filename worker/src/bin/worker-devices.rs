//! Drains the ingest streams into the ClickHouse `devices` table (through `device_input` and its view).

use tidemark_worker::devices_sink::DevicesSink;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tidemark_shared::telemetry::init("info");
    let config: tidemark_worker::WorkerConfig = tidemark_shared::config::load()?;
    let ch = tidemark_worker::connect_clickhouse(&config).await?;
    tidemark_worker::serve(config, DevicesSink::new(ch)).await
}
