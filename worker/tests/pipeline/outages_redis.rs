//! Redis killed with SIGKILL under load and kept down longer than the workers' insert back-off ceiling, then
//! restarted on the same data: the worker process reconnects by itself, says so once, reports Redis on `/readyz`,
//! and every write Redis acknowledged reaches ClickHouse, counted once, with no process restarted.

use crate::outages_support::*;
use crate::support::eventually;
use std::time::Duration;
use tidemark_testkit::private_redis::PrivateRedis;
use tidemark_worker::consumer::group_lag;
use tidemark_worker::retry::MAX_BACKOFF;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_longer_than_the_back_off_ceiling_loses_nothing_and_drains_within_5_s() {
    let env = tidemark_testkit::test_env().await;
    let mut redis = PrivateRedis::start().await.expect("private Redis");
    let alert = "5";
    let mut worker = WorkerProcess::spawn(
        &redis.url(),
        &env.clickhouse_url,
        &env.key_prefix,
        &[("TIDEMARK_STORE_ALERT_SECS", alert)],
    );
    let ready = eventually(Duration::from_secs(30), || async { worker.readiness().await.is_some_and(|r| r.0 == 200) });
    assert!(ready.await, "the worker starts and reports ready");

    let project = Uuid::new_v4();
    let producer = Producer::start(redis.url(), env.keys.clone(), project, 30); // 300 events/s
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(producer.acknowledged() > 0);

    redis.kill().await;
    let down = MAX_BACKOFF + Duration::from_secs(5);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = worker.readiness().await.expect("/readyz answers while Redis is down");
    assert_eq!(during.0, 503, "{during:?}");
    assert_eq!(during.1, serde_json::json!({"redis": false, "clickhouse": true}));
    tokio::time::sleep(down - Duration::from_secs(2)).await;

    redis.resume().await.expect("Redis restarts on its data");
    let back = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acknowledged = producer.finish().await;
    let client = redis::Client::open(redis.url()).unwrap();
    let drained = eventually(Duration::from_secs(10), || async {
        let Ok(mut conn) = tidemark_shared::redis::connect(&client).await else { return false };
        let lag = group_lag(&mut conn, &env.keys, "events").await.unwrap_or_default();
        lag.lag == 0 && lag.pending == 0 && every_acknowledged_event_is_stored(&env.ch, &acknowledged).await
    })
    .await;
    let drain_time = back.elapsed();
    eprintln!(
        "Redis down {down:?}; every acknowledged event stored {drain_time:?} after it was back (writes went on \
         for 1 s of that); {} acknowledged",
        acknowledged.len()
    );
    let ready_again = worker.readiness().await.expect("/readyz");
    let metrics = worker.get("/metrics").await.expect("/metrics").1;
    let running = worker.is_running();
    let lines = worker.store_lines("redis");
    worker.stop().await;

    assert!(running, "the worker process was never restarted");
    assert!(drained, "not drained within 10 s of Redis coming back");
    assert!(drain_time < Duration::from_secs(5), "drained {drain_time:?} after Redis came back, not within 5 s");
    assert_eq!(ready_again.0, 200, "{ready_again:?}");
    let stored = stored_ids(&env.ch).await;
    assert!(acknowledged.is_subset(&stored), "an acknowledged event is missing");
    let distinct: u64 = env.ch.client.query("SELECT uniqExact(event_id) FROM events").fetch_one().await.unwrap();
    assert_eq!(distinct as usize, stored.len());
    assert!(
        metrics.contains("tidemark_worker_store_failures_total{store=\"redis\",group=\"events\"}")
            && metrics.contains("tidemark_worker_store_up{store=\"redis\",group=\"events\"} 1"),
        "{metrics}"
    );
    // One line per change: unreachable (WARN), still unreachable past the alert time (ERROR), back (INFO).
    let levels: Vec<&str> = lines.iter().map(|(level, _)| level.as_str()).collect();
    assert_eq!(levels, ["WARN", "ERROR", "INFO"], "{lines:?}");
}
