//! Workers: consumer groups that drain the hub's ingest streams into ClickHouse, one binary per table, all on
//! one engine. An entry is acknowledged only after the ClickHouse insert that holds it succeeded.

pub mod config;
pub mod consumer;
pub mod events_sink;
pub mod runner;
pub mod sink;
pub mod trim;

pub use config::WorkerConfig;

use anyhow::Context;
use std::time::Duration;
use tidemark_shared::clickhouse::{ClickHouse, Endpoint};
use tidemark_shared::keys::Keys;

pub async fn connect_clickhouse(config: &WorkerConfig) -> anyhow::Result<ClickHouse> {
    let endpoint = Endpoint::parse(config.clickhouse_url.expose(), &config.clickhouse_database)?;
    // ClickHouse may still be starting (or down): the worker waits for it rather than exiting.
    let mut delay = Duration::from_millis(200);
    loop {
        match ClickHouse::connect(endpoint.clone()).await {
            Ok(ch) => return Ok(ch),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "ClickHouse not reachable yet; waiting.");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Runs one worker until SIGINT or SIGTERM, then drains its batch in flight and returns.
pub async fn serve<S: sink::Sink>(config: WorkerConfig, sink: S) -> anyhow::Result<()> {
    let keys = Keys::new(config.key_prefix.clone(), config.stream_shards);
    let name = config.consumer_name();
    let group = sink.group();
    let consumer = consumer::Consumer::connect(config.redis_url.expose(), keys, group, name.clone())
        .await
        .context("joining the consumer group")?;
    tracing::info!(group, consumer = name, "Worker started.");
    let settings = runner::EngineSettings {
        batch_size: config.batch_size,
        max_wait: Duration::from_millis(config.batch_max_wait_ms),
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("Shutdown requested; finishing the batch in flight.");
        let _ = tx.send(true);
    });
    let trimmer = tokio::spawn(trim_loop(config.clone(), rx.clone()));
    runner::run(runner::Engine::new(consumer, sink, settings), rx, Duration::from_secs(config.shutdown_timeout_secs))
        .await?;
    trimmer.abort();
    tracing::info!(group, consumer = name, "Worker stopped.");
    Ok(())
}

async fn trim_loop(config: WorkerConfig, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let keys = Keys::new(config.key_prefix.clone(), config.stream_shards);
    let Ok(client) = tidemark_shared::redis::client(config.redis_url.expose()) else { return };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
        if let Ok(mut conn) = tidemark_shared::redis::connect(&client).await
            && let Err(e) = trim::trim_processed(&mut conn, &keys, tidemark_shared::keys::GROUPS).await
        {
            tracing::debug!(error = %e, "Trimming processed entries failed; next round retries.");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
