//! ClickHouse killed with SIGKILL under load and kept down long enough for the insert back-off to reach its
//! ceiling, then restarted on its data: the worker process resumes within a second or so of the server answering
//! (it probes during the back-off pause instead of sleeping it out), reports ClickHouse on `/readyz`, and every
//! acknowledged write is stored once, with no process restarted.

use crate::outages_support::*;
use crate::support::eventually;
use std::time::Duration;
use tidemark_testkit::private_clickhouse::PrivateClickHouse;
use tidemark_worker::consumer::group_lag;
use tidemark_worker::retry::MAX_BACKOFF;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_clickhouse_gets_the_backlog_within_5_s() {
    let env = tidemark_testkit::test_env().await;
    let mut server = PrivateClickHouse::start().await.expect("private ClickHouse");
    let ch = server.migrated("tm_restart").await.unwrap();
    let mut worker = WorkerProcess::spawn(&env.stores.redis_url, &server.url("tm_restart"), &env.key_prefix, &[]);
    let ready = eventually(Duration::from_secs(30), || async { worker.readiness().await.is_some_and(|r| r.0 == 200) });
    assert!(ready.await, "the worker starts and reports ready");

    // Twice: a single restart can land at the end of a back-off pause by chance.
    let mut acknowledged = std::collections::HashSet::new();
    let (mut during, mut drain_times) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let project = Uuid::new_v4();
        let producer = Producer::start(env.stores.redis_url.clone(), env.keys.clone(), project, 30); // 300/s
        tokio::time::sleep(Duration::from_secs(3)).await;
        // Down long enough that the back-off pause between two inserts has reached its ceiling.
        server.stop().await;
        let down = MAX_BACKOFF + Duration::from_secs(8);
        tokio::time::sleep(Duration::from_secs(3)).await;
        during.push(worker.readiness().await.expect("/readyz answers while ClickHouse is down"));
        tokio::time::sleep(down - Duration::from_secs(3)).await;
        acknowledged.extend(producer.finish().await);
        server.resume().await.expect("ClickHouse restarts on its data");
        let back = tokio::time::Instant::now();
        let drained = eventually(Duration::from_secs(20), || async {
            let mut conn = env.redis().await;
            let lag = group_lag(&mut conn, &env.keys, "events").await.unwrap();
            lag.lag == 0 && lag.pending == 0 && every_acknowledged_event_is_stored(&ch, &acknowledged).await
        })
        .await;
        assert!(drained, "not drained within 20 s of ClickHouse coming back");
        drain_times.push(back.elapsed());
        eprintln!(
            "ClickHouse down {down:?}; {} events stored {:?} after it answered again",
            acknowledged.len(),
            back.elapsed()
        );
    }
    let ready_again = worker.readiness().await.expect("/readyz");
    let running = worker.is_running();
    let lines = worker.store_lines("clickhouse");
    worker.stop().await;

    for (status, body) in during {
        assert_eq!(status, 503, "{body}");
        assert_eq!(body, serde_json::json!({"redis": true, "clickhouse": false}));
    }
    assert!(running, "the worker process was never restarted");
    assert!(
        drain_times.iter().all(|t| *t < Duration::from_secs(5)),
        "drained {drain_times:?} after ClickHouse came back, not within 5 s"
    );
    assert_eq!(ready_again.0, 200, "{ready_again:?}");
    let stored = stored_ids(&ch).await;
    assert!(acknowledged.is_subset(&stored), "an acknowledged event is missing");
    let levels: Vec<&str> = lines.iter().map(|(level, _)| level.as_str()).collect();
    assert_eq!(levels, ["WARN", "INFO", "WARN", "INFO"], "one line when it went, one when it came back: {lines:?}");
}
