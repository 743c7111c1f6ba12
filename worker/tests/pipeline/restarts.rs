//! Restarts while ClickHouse is down: each worker reads the backlog, fails to insert it, and is stopped (or dies)
//! holding it. Redis counts every hand-out; none of these may count against the entries, or good batches would
//! reach the dead-letter stream after `max_deliveries` restarts.

use crate::support::*;
use std::time::Duration;
use tidemark_shared::keys::GROUP_EVENTS;
use tidemark_testkit::private_clickhouse::PrivateClickHouse;
use tidemark_worker::events_sink::EventsSink;
use tidemark_worker::runner::{self, Recovery};
use uuid::Uuid;

#[tokio::test]
async fn five_restarts_during_an_outage_dead_letter_nothing() {
    let env = tidemark_testkit::test_env().await;
    let mut server = PrivateClickHouse::start().await.expect("private ClickHouse");
    let ch = server.migrated("tm_restarts").await.unwrap();
    let project = Uuid::new_v4();
    let mut conn = env.redis().await;
    enqueue_batches(&mut conn, &env.keys, &load(project, 400, 8, 1_750_000_000_000), 16).await;
    server.stop().await;

    // The default of five deliveries, and a short claim idle time so each new worker takes the batch over.
    let recovery = Recovery { claim_idle: Duration::from_millis(300), max_deliveries: 5, ..Recovery::default() };
    for round in 0..5 {
        let worker = engine(&env, EventsSink::new(ch.clone()), &format!("w{round}"), settings(1000))
            .await
            .with_recovery(recovery.clone());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let run = tokio::spawn(runner::run(worker, stopped, Duration::from_millis(300)));
        // Long enough to take the batch over and fail at least twice.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if round % 2 == 0 {
            stop.send(true).unwrap();
            run.await.unwrap().unwrap();
        } else {
            // A crash (kill -9 of a worker in the middle of its retries).
            run.abort();
            let _ = run.await;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, 25, "round {round}: the batch stays pending");
    }

    server.resume().await.expect("ClickHouse restarts");
    let mut last =
        engine(&env, EventsSink::new(ch.clone()), "last", settings(1000)).await.with_recovery(recovery.clone());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(drain(&mut last).await, 400);
    assert_eq!(dead_letter_count(&env).await, 0, "restarts during an outage are not a reason to dead-letter");
    let distinct: u64 = ch.client.query("SELECT uniqExact(event_id) FROM events").fetch_one().await.unwrap();
    assert_eq!(distinct, 400);
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, 0);
}
