//! Workers: consumer groups that drain the hub's ingest streams into ClickHouse, one binary per table, all on
//! one engine. An entry is acknowledged only after the ClickHouse insert that holds it succeeded.

pub mod config;
pub mod consumer;
pub mod dead_letters;
pub mod decode;
pub mod devices_sink;
pub mod events_sink;
pub mod metrics;
pub mod retry;
pub mod runner;
pub mod sessions_sink;
pub mod sink;
pub mod trim;
pub mod users_sink;

pub use config::WorkerConfig;

use anyhow::Context;
use std::time::Duration;
use tidemark_shared::clickhouse::{ClickHouse, Endpoint};
use tidemark_shared::keys::Keys;

pub async fn connect_clickhouse(config: &WorkerConfig) -> anyhow::Result<ClickHouse> {
    let endpoint = Endpoint::parse(config.clickhouse_url.expose(), &config.clickhouse_database)?;
    // ClickHouse may still be starting (or down): the worker waits for it rather than exiting, saying so once.
    let mut delay = Duration::from_millis(200);
    let mut said = false;
    loop {
        match ClickHouse::connect(endpoint.clone()).await {
            Ok(ch) => return Ok(ch),
            Err(e) => {
                if !said {
                    tracing::warn!(error = format!("{e:#}"), "ClickHouse not reachable yet; waiting.");
                    said = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Runs one worker until SIGINT or SIGTERM, then drains its batch in flight and returns.
pub async fn serve<S: sink::Sink>(config: WorkerConfig, sink: S) -> anyhow::Result<()> {
    let keys = Keys::new(config.key_prefix.clone(), config.stream_shards);
    let name = config.consumer_name();
    let group = sink.group();
    if config.claim_idle_ms < config.safe_claim_idle_ms() {
        tracing::warn!(
            claim_idle_ms = config.claim_idle_ms,
            safe = config.safe_claim_idle_ms(),
            "claim_idle_ms is short: workers may take over batches still being retried (duplicate inserts, which \
             queries do not see, and wasted work)."
        );
    }
    // The recorder first: the store gauges register with it.
    let recorder = (!config.worker_metrics_listen.is_empty()).then(metrics::handle);
    let health = runner::Health::new(group, Duration::from_secs(config.store_alert_secs));
    if let Some(handle) = recorder {
        let listener = tokio::net::TcpListener::bind(&config.worker_metrics_listen)
            .await
            .with_context(|| format!("binding worker_metrics_listen {}", config.worker_metrics_listen))?;
        tracing::info!(listen = %listener.local_addr()?, "Metrics listening on /metrics, readiness on /readyz.");
        tokio::spawn(metrics::serve(listener, handle, health.clone()));
        tokio::spawn(tidemark_shared::telemetry::metrics_upkeep(handle));
    }
    // Redis may be down at start too: wait for it as for ClickHouse, retrying every second.
    let consumer = loop {
        match consumer::Consumer::connect(config.redis_url.expose(), keys.clone(), group, name.clone()).await {
            Ok(consumer) => break consumer,
            Err(e) => health.redis.failed(&format!("{:#}", e.context("joining the consumer group"))),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    health.redis.succeeded();
    let probe = Endpoint::parse(config.clickhouse_url.expose(), &config.clickhouse_database)?;
    tracing::info!(group, consumer = name, "Worker started.");
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("Shutdown requested; finishing the batch in flight.");
        let _ = tx.send(true);
    });
    let engine = runner::Engine::new(consumer, sink, runner::EngineSettings::from_config(&config))
        .with_recovery(runner::Recovery::from_config(&config))
        .with_health(health)
        .with_probe(&probe);
    let housekeeping = tokio::spawn(housekeeping(config.clone(), group, engine.stats(), rx.clone()));
    runner::run(engine, rx, Duration::from_secs(config.shutdown_timeout_secs)).await?;
    housekeeping.abort();
    tracing::info!(group, consumer = name, "Worker stopped.");
    Ok(())
}

/// Every few seconds: trims what every group processed, publishes the group's lag, logs a one-line summary at
/// debug level. Failures only skip a round: none of this is on the path of an event.
async fn housekeeping(
    config: WorkerConfig,
    group: &'static str,
    stats: std::sync::Arc<runner::Stats>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use runner::Stats as S;
    let keys = Keys::new(config.key_prefix.clone(), config.stream_shards);
    let Ok(client) = tidemark_shared::redis::client(config.redis_url.expose()) else { return };
    let mut last = (0, 0);
    let mut dead_letter_fill = Fill::Low;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
        let Ok(mut conn) = tidemark_shared::redis::connect(&client).await else { continue };
        if let Err(e) = trim::trim_processed(&mut conn, &keys, tidemark_shared::keys::GROUPS).await {
            tracing::debug!(error = %e, "Trimming processed entries failed; next round retries.");
        }
        if config.dead_letter_max_age_secs > 0 {
            let max_age = Duration::from_secs(config.dead_letter_max_age_secs);
            if let Err(e) = dead_letters::trim_older_than(&mut conn, &keys, max_age).await {
                tracing::debug!(error = %e, "Trimming old dead letters failed; next round retries.");
            }
        }
        if let Ok(parked) = dead_letters::count(&mut conn, &keys).await {
            ::metrics::gauge!(metrics::DEAD_LETTERS).set(parked as f64);
            dead_letter_fill = watch_dead_letters(
                group,
                parked,
                config.dead_letter_max_len * u64::from(keys.shards()),
                dead_letter_fill,
            );
        }
        let lag = consumer::group_lag(&mut conn, &keys, group).await.unwrap_or_default();
        ::metrics::gauge!(metrics::STREAM_LAG, "group" => group).set(lag.lag as f64);
        ::metrics::gauge!(metrics::PENDING, "group" => group).set(lag.pending as f64);
        let (batches, rows) = (S::get(&stats.batches), S::get(&stats.rows));
        tracing::debug!(
            group,
            batches = batches - last.0,
            rows = rows - last.1,
            retries = S::get(&stats.retries),
            dead_lettered = S::get(&stats.dead_lettered),
            reclaimed = S::get(&stats.reclaimed),
            lag = lag.lag,
            pending = lag.pending,
            "Worker summary (last 5 s)."
        );
        last = (batches, rows);
    }
}

/// How full the dead-letter streams are, to log each change of level once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fill {
    Low,
    High,
    Full,
}

/// Warns once when the dead-letter streams pass 80 % of their bound, and logs an error once they reach it: from then
/// on every new dead letter pushes out the oldest.
fn watch_dead_letters(group: &str, parked: u64, bound: u64, was: Fill) -> Fill {
    let now = match parked {
        n if n >= bound => Fill::Full,
        n if n * 5 >= bound * 4 => Fill::High,
        _ => Fill::Low,
    };
    if now > was {
        if now == Fill::Full {
            tracing::error!(
                group,
                parked,
                bound,
                "Dead-letter stream is full; the oldest dead letters are being dropped. Redrive or delete them (`worker dead-letters`)."
            );
        } else {
            tracing::warn!(
                group,
                parked,
                bound,
                "Dead-letter stream is over 80 % full; redrive or delete dead letters (`worker dead-letters`)."
            );
        }
    }
    now
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
