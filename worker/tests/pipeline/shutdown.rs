//! SIGTERM: a worker stops reading, writes and acknowledges the batch it holds, and exits 0 in bounded time. Its
//! metrics endpoint answers while it runs.

use crate::support::*;
use std::time::Duration;
use tidemark_shared::keys::GROUP_EVENTS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

async fn scrape(port: u16) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("metrics port");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body
}

#[tokio::test]
async fn sigterm_finishes_the_batch_in_flight_and_leaves_nothing_pending() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let mut conn = env.redis().await;
    enqueue(&mut conn, &env.keys, &load(project, 1000, 10, 1_750_000_000_000)).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // A batch that waits 5 s for more entries: SIGTERM arrives while it is read and not yet written.
    let mut worker = spawn_worker(
        "worker-events",
        &env,
        &env.clickhouse_url,
        &[
            ("TIDEMARK_BATCH_SIZE", "100000".into()),
            ("TIDEMARK_BATCH_MAX_WAIT_MS", "5000".into()),
            ("TIDEMARK_WORKER_METRICS_LISTEN", format!("127.0.0.1:{port}")),
        ],
    );
    let holding = eventually(Duration::from_secs(20), || async {
        let mut conn = env.redis().await;
        redis::cmd("XPENDING")
            .arg(env.keys.stream(0))
            .arg(GROUP_EVENTS)
            .query_async::<Vec<redis::Value>>(&mut conn)
            .await
            .is_ok_and(|r| matches!(r.first(), Some(redis::Value::Int(1000))))
    })
    .await;
    assert!(holding, "the worker read the batch");
    assert_eq!(event_counts(&env.ch).await.0, 0, "and has not written it yet");
    let scraped = scrape(port).await;
    assert!(scraped.starts_with("HTTP/1.1 200 OK"), "{scraped}");

    signal(&worker, "TERM");
    let sent = tokio::time::Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), worker.wait()).await.expect("exits in time").unwrap();
    assert!(status.success(), "{status}");
    eprintln!("SIGTERM to exit: {:?}", sent.elapsed());
    assert!(sent.elapsed() < Duration::from_secs(3), "did not wait out the 5 s batch wait");
    assert_eq!(event_counts(&env.ch).await, (1000, 1000));
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, 0);

    // The counters: a second worker writes 500 more and reports them.
    let mut worker = spawn_worker(
        "worker-events",
        &env,
        &env.clickhouse_url,
        &[
            ("TIDEMARK_BATCH_MAX_WAIT_MS", "100".into()),
            ("TIDEMARK_WORKER_METRICS_LISTEN", format!("127.0.0.1:{port}")),
        ],
    );
    enqueue(&mut conn, &env.keys, &load(project, 500, 10, 1_750_001_000_000)).await;
    assert!(eventually(Duration::from_secs(20), || async { event_counts(&env.ch).await.0 == 1500 }).await);
    let want = "tidemark_worker_rows_total{group=\"events\"} 500";
    let reported = eventually(Duration::from_secs(5), || async { scrape(port).await.contains(want) }).await;
    let metrics = scrape(port).await;
    assert!(reported, "{metrics}");
    for name in [
        "tidemark_worker_batches_total",
        "tidemark_worker_insert_duration_seconds_bucket",
        "tidemark_worker_batch_rows",
    ] {
        assert!(metrics.contains(name), "{name} missing: {metrics}");
    }
    signal(&worker, "INT");
    let status = tokio::time::timeout(Duration::from_secs(10), worker.wait()).await.expect("exits in time").unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, 0);
}
