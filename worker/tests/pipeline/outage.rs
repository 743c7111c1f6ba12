//! ClickHouse goes away for 30 s under a steady load (a private server: the shared one is never stopped). Nothing
//! may be lost, the backlog must drain once it is back, and no duplicate may be visible.

use crate::support::*;
use std::time::Duration;
use tidemark_shared::keys::GROUPS;
use tidemark_testkit::private_clickhouse::PrivateClickHouse;
use tidemark_worker::consumer::group_lag;
use tidemark_worker::devices_sink::DevicesSink;
use tidemark_worker::events_sink::EventsSink;
use tidemark_worker::runner::{self, Stats};
use tidemark_worker::sessions_sink::SessionsSink;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_down_for_30_s_under_load_loses_and_doubles_nothing() {
    let env = tidemark_testkit::test_env().await;
    let mut server = PrivateClickHouse::start().await.expect("private ClickHouse");
    let ch = server.migrated("tm_outage").await.unwrap();
    let project = Uuid::new_v4();
    let (per_tick, ticks, visitors) = (30usize, 400usize, 60u64); // 300 events/s for 40 s
    let all = load(project, per_tick * ticks, visitors, 1_750_000_000_000);

    // The three worker kinds, in this process so their counters can be read.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let events = engine(&env, EventsSink::new(ch.clone()), "e", settings(2000)).await;
    let sessions = engine(&env, SessionsSink::new(ch.clone()), "s", settings(2000)).await;
    let devices = engine(&env, DevicesSink::new(ch.clone()), "d", settings(2000)).await;
    let stats = [events.stats(), sessions.stats(), devices.stats()];
    let grace = Duration::from_secs(5);
    let runs = [
        tokio::spawn(runner::run(events, stop_rx.clone(), grace)),
        tokio::spawn(runner::run(sessions, stop_rx.clone(), grace)),
        tokio::spawn(runner::run(devices, stop_rx.clone(), grace)),
    ];

    // Steady offered load; ClickHouse is killed 5 s in and restarted 30 s later.
    let producer = {
        let keys = env.keys.clone();
        let mut conn = env.redis().await;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            for chunk in all.chunks(per_tick) {
                tick.tick().await;
                enqueue_batches(&mut conn, &keys, chunk, 16).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = event_counts(&ch).await.0;
    server.stop().await;
    let down_at = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let retries_during: Vec<u64> = stats.iter().map(|s| Stats::get(&s.retries)).collect();
    server.resume().await.expect("ClickHouse restarts");
    eprintln!("ClickHouse down for {:?}; {before} events written before", down_at.elapsed());
    producer.await.unwrap();

    let drained = eventually(Duration::from_secs(90), || async {
        let mut conn = env.redis().await;
        let mut done = true;
        for group in GROUPS {
            let lag = group_lag(&mut conn, &env.keys, group).await.unwrap();
            done &= lag.lag == 0 && lag.pending == 0;
        }
        done
    })
    .await;
    let drain_time = down_at.elapsed();
    stop_tx.send(true).unwrap();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    assert!(drained, "the backlog did not drain within 90 s of the restart");
    eprintln!("Backlog drained {drain_time:?} after the stop; retries per kind {retries_during:?}");

    assert!(before > 0, "workers were writing before the outage");
    assert!(retries_during.iter().all(|r| (1..=20).contains(r)), "backed off, no busy loop: {retries_during:?}");
    let n = per_tick * ticks;
    let expected = Answers::for_load(n, visitors);
    assert_eq!(answers(&ch, project).await, expected);
    let mut conn = env.redis().await;
    let dead: u64 = redis::cmd("XLEN").arg(env.keys.dead_letters(0)).query_async(&mut conn).await.unwrap();
    assert_eq!(dead, 0, "an outage is not a reason to dead-letter");
}
