//! What the store-restart tests share: a real worker process (the `worker-events` binary, so its own start-up
//! wiring is what is tested) whose JSON log lines are kept, its `/readyz`, and a producer that writes entries the
//! way the hub does and remembers which writes Redis acknowledged (the hub's 202s).

use crate::support::{PAGEVIEW, event};
use serde_json::Value;
use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tidemark_shared::clickhouse::ClickHouse;
use tidemark_shared::keys::Keys;
use tidemark_testkit::batch;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;

pub struct WorkerProcess {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<Value>>>,
    metrics_port: u16,
}

impl WorkerProcess {
    /// `worker-events` on the given stores, logging JSON lines, with its metrics and readiness on a free port.
    pub fn spawn(redis_url: &str, clickhouse_url: &str, key_prefix: &str, extra: &[(&str, &str)]) -> Self {
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker-events"));
        cmd.env_clear()
            .env("RUST_LOG", "info")
            .env("TIDEMARK_LOG_FORMAT", "json")
            .env("TIDEMARK_CONFIG", "/dev/null")
            .env("TIDEMARK_REDIS_URL", redis_url)
            .env("TIDEMARK_CLICKHOUSE_URL", clickhouse_url)
            .env("TIDEMARK_KEY_PREFIX", key_prefix)
            .env("TIDEMARK_BATCH_MAX_WAIT_MS", "200")
            .env("TIDEMARK_WORKER_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in extra {
            cmd.env(key, value);
        }
        let mut child = cmd.spawn().expect("worker binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let kept = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    kept.lock().unwrap().push(value);
                }
            }
        });
        Self { child, lines, metrics_port }
    }

    /// Status and body of `GET path` on the worker's metrics listener.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).await.ok()?;
        stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: worker\r\n\r\n").as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n")?.1.to_owned();
        Some((status, body))
    }

    /// `/readyz` as (status, JSON).
    pub async fn readiness(&self) -> Option<(u16, Value)> {
        let (status, body) = self.get("/readyz").await?;
        Some((status, serde_json::from_str(&body).ok()?))
    }

    /// The log lines about `store`, as (level, message).
    pub fn store_lines(&self, store: &str) -> Vec<(String, String)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line["fields"]["store"] == store)
            .map(|line| (line["level"].as_str().unwrap_or("").to_owned(), line["fields"]["message"].to_string()))
            .collect()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then wait for the graceful stop.
    pub async fn stop(mut self) {
        crate::support::signal(&self.child, "TERM");
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}

/// Writes a `batch.v1` entry of `per_tick` events every 100 ms to shard 0, as the hub would, reconnecting after a
/// failed write; the ids of events whose write Redis acknowledged are the 202s the pipeline owes.
pub struct Producer {
    acknowledged: Arc<Mutex<Vec<Uuid>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Producer {
    pub fn start(redis_url: String, keys: Keys, project: Uuid, per_tick: usize) -> Self {
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let acked = acknowledged.clone();
        let task = tokio::spawn(async move {
            let client = redis::Client::open(redis_url).unwrap();
            let mut conn = None;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut ts = 1_750_000_000_000i64;
            while !*stopped.borrow() {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let jobs: Vec<_> = (0..per_tick)
                    .map(|i| {
                        ts += 10;
                        let visitor = 1 + (i as u64 % 40);
                        (event(project, visitor, ts, PAGEVIEW, "/"), 1_000_000 + visitor)
                    })
                    .collect();
                if conn.is_none() {
                    conn = tidemark_shared::redis::connect(&client).await.ok();
                }
                let Some(live) = conn.as_mut() else { continue };
                let (assigned, frames) = batch::encode_events(&jobs);
                let written = batch::xadd(&keys.stream(0), &assigned, &frames).query_async::<String>(live).await;
                match written {
                    Ok(_) => acked.lock().unwrap().extend(jobs.iter().map(|(e, _)| e.event_id)),
                    // Unanswered: the entry may or may not be in Redis, like a request the hub answered 503.
                    Err(_) => conn = None,
                }
            }
        });
        Self { acknowledged, stop, task }
    }

    pub fn acknowledged(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    /// Stops writing and returns the acknowledged event ids.
    pub async fn finish(self) -> HashSet<Uuid> {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
        self.acknowledged.lock().unwrap().iter().copied().collect()
    }
}

/// The distinct event ids in `events`.
pub async fn stored_ids(ch: &ClickHouse) -> HashSet<Uuid> {
    let ids: Vec<String> = ch.client.query("SELECT toString(event_id) FROM events").fetch_all().await.expect("ids");
    ids.iter().map(|id| id.parse().expect("a UUID")).collect()
}

/// Every acknowledged event is in ClickHouse; queries count each once (distinct event ids, the only way they
/// count) and nothing unknown appeared.
pub async fn every_acknowledged_event_is_stored(ch: &ClickHouse, acknowledged: &HashSet<Uuid>) -> bool {
    let stored = stored_ids(ch).await;
    acknowledged.is_subset(&stored)
}
