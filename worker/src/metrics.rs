//! Prometheus metrics of a worker process, every series labelled with its consumer `group`, and the small HTTP
//! endpoint that serves them and the worker's readiness (`worker_metrics_listen`). The recorder is process-wide: installed once, by `serve`;
//! without it (tests, embedded use) the counters cost nothing.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Batches written and acknowledged.
pub const BATCHES: &str = "tidemark_worker_batches_total";
/// Rows written to ClickHouse (one per entry of the kinds the table takes).
pub const ROWS: &str = "tidemark_worker_rows_total";
/// Rows per batch written.
pub const BATCH_ROWS: &str = "tidemark_worker_batch_rows";
/// Duration of each insert attempt, successful or not.
pub const INSERT_SECONDS: &str = "tidemark_worker_insert_duration_seconds";
/// Failed insert attempts that will be retried (ClickHouse or network down).
pub const RETRIES: &str = "tidemark_worker_insert_retries_total";
/// Entries moved to the dead-letter stream.
pub const DEAD_LETTERED: &str = "tidemark_worker_dead_lettered_total";
/// Insert attempts where ClickHouse refused every row alike (a schema or view problem): needs an operator.
pub const SYSTEMIC: &str = "tidemark_worker_systemic_rejections_total";
/// Dead letters waiting for an operator, all shards (bounded by `dead_letter_max_len` per shard).
pub const DEAD_LETTERS: &str = "tidemark_worker_dead_letters";
/// Failed attempts to use a store, label `store`: `redis` (stream reads, acks, claims; the worker reconnects and
/// retries) or `clickhouse` (inserts that got no answer). Written by [`tidemark_shared::outage`].
pub const STORE_FAILURES: &str = "tidemark_worker_store_failures_total";
/// 1 while the store's last attempt worked, 0 from a failure until the next success; label `store`.
pub const STORE_UP: &str = "tidemark_worker_store_up";
/// Entries taken over from consumers that stopped without acknowledging them.
pub const RECLAIMED: &str = "tidemark_worker_reclaimed_total";
/// Entries in the streams not yet delivered to the group (XINFO GROUPS `lag`).
pub const STREAM_LAG: &str = "tidemark_worker_stream_lag";
/// Entries delivered to the group and not yet acknowledged.
pub const PENDING: &str = "tidemark_worker_pending_entries";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let seconds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
        let rows = [1.0, 10.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 50000.0];
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_ROWS.into()), &rows))
            .expect("valid buckets")
            .install_recorder()
            .expect("the worker installs the only metrics recorder of its process")
    })
}

/// Answers `GET /metrics` with the Prometheus text, `GET /readyz` with 200 (503 while a store is failing) and a
/// JSON object naming each store (`{"redis": true, "clickhouse": false}`), and anything else with 404, one request
/// per connection. A scrape endpoint needs nothing more, and this keeps an HTTP framework out of the worker.
pub async fn serve(listener: TcpListener, handle: &'static PrometheusHandle, health: crate::runner::Health) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            // Out of file descriptors or the like: pause instead of spinning on the error.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let health = health.clone();
        tokio::spawn(async move {
            let mut head = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
            let asks = |path: &str| head.starts_with(format!("GET {path} ").as_bytes());
            let (status, content_type, body) = if asks("/metrics") || head.starts_with(b"GET /metrics?") {
                ("200 OK", "text/plain; version=0.0.4", handle.render())
            } else if asks("/readyz") {
                let (ready, body) = health.readiness();
                (if ready { "200 OK" } else { "503 Service Unavailable" }, "application/json", body)
            } else {
                ("404 Not Found", "text/plain", "not found\n".to_owned())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
