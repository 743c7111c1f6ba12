//! Workers die: `kill -9` in the middle of draining, an insert that succeeded without its ack. Every accepted event
//! must be visible exactly once afterwards, to every query the app issues.

use crate::support::*;
use std::time::Duration;
use tidemark_shared::keys::{GROUP_EVENTS, GROUPS};
use tidemark_worker::consumer::{Consumer, group_lag};
use tidemark_worker::events_sink::EventsSink;
use tidemark_worker::runner::Outcome;
use tidemark_worker::sink::{Decoded, Sink};
use uuid::Uuid;

const KINDS: [&str; 4] = ["worker-events", "worker-sessions", "worker-devices", "worker-users"];

async fn all_groups_done(env: &tidemark_testkit::TestEnv) -> bool {
    let mut conn = env.redis().await;
    for group in GROUPS {
        match group_lag(&mut conn, &env.keys, group).await {
            Ok(lag) if lag.lag == 0 && lag.pending == 0 => {}
            _ => return false,
        }
    }
    true
}

#[tokio::test]
async fn kill_9_mid_batch_then_restart_shows_every_event_exactly_once() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let (n, visitors) = (30_000usize, 50u64);
    let mut conn = env.redis().await;
    enqueue_batches(&mut conn, &env.keys, &load(project, n, visitors, 1_750_000_000_000), 16).await;
    let opts = |claim_ms: u64| {
        vec![
            ("TIDEMARK_BATCH_SIZE", "2000".to_owned()),
            ("TIDEMARK_BATCH_MAX_WAIT_MS", "200".to_owned()),
            ("TIDEMARK_CLAIM_IDLE_MS", claim_ms.to_string()),
        ]
    };

    // Three rounds: start every worker kind, let them write some batches, kill -9 them all at once.
    let mut killed_holding = 0;
    for round in 1..=3u64 {
        let mut workers: Vec<_> =
            KINDS.iter().map(|kind| spawn_worker(kind, &env, &env.clickhouse_url, &opts(1000))).collect();
        let target = round * 4000;
        let progressed =
            eventually(Duration::from_secs(60), || async { event_counts(&env.ch).await.0 >= target.min(n as u64) })
                .await;
        assert!(progressed, "round {round}: workers made no progress");
        for worker in &mut workers {
            worker.kill().await.unwrap();
        }
        killed_holding += pending(&mut conn, &env.keys, GROUP_EVENTS).await;
    }

    // Restarted workers take over what the dead ones held (after the claim idle time) and drain the rest.
    let workers: Vec<_> = KINDS.iter().map(|kind| spawn_worker(kind, &env, &env.clickhouse_url, &opts(1000))).collect();
    assert!(eventually(Duration::from_secs(120), || all_groups_done(&env)).await, "the backlog did not drain");
    drop(workers);

    let (distinct, rows) = event_counts(&env.ch).await;
    eprintln!("kill -9: {killed_holding} entries pending at the kills; {rows} rows on disk for {distinct} events");
    let expected = Answers::for_load(n, visitors);
    assert_eq!(answers(&env.ch, project).await, expected);
    let dead: u64 = redis::cmd("XLEN").arg(env.keys.dead_letters(0)).query_async(&mut conn).await.unwrap();
    assert_eq!(dead, 0);
}

#[tokio::test]
async fn an_insert_without_its_ack_is_redelivered_and_invisible_twice() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let mut conn = env.redis().await;
    enqueue(&mut conn, &env.keys, &load(project, 500, 10, 1_750_000_000_000)).await;

    // A worker reads a batch, inserts it, and dies before XACK: exactly the window a crash can hit.
    let mut doomed =
        Consumer::connect(&env.stores.redis_url, env.keys.clone(), GROUP_EVENTS, "doomed".into()).await.unwrap();
    let batch = doomed.read(300, 0).await.unwrap();
    let sink = EventsSink::new(env.ch.clone());
    let rows: Vec<_> = batch
        .iter()
        .flat_map(|e| e.jobs().unwrap())
        .filter_map(|job| if let Decoded::Row(r) = sink.decode(&job) { Some(r) } else { None })
        .collect();
    sink.write(&rows).await.unwrap();
    drop(doomed);

    let mut heir =
        engine(&env, EventsSink::new(env.ch.clone()), "heir", settings(1000)).await.with_recovery(quick_recovery(5));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut written = 0;
    while let Outcome::Written { rows, .. } = heir.process_batch().await.unwrap() {
        written += rows;
    }
    assert_eq!(written, 500, "the 300 taken over plus the 200 never delivered");
    assert_eq!(event_counts(&env.ch).await, (500, 800), "300 events are on disk twice");
    let seen = answers(&env.ch, project).await;
    assert_eq!((seen.events, seen.pageviews, seen.visitors, seen.sessions_from_events), (500, 500, 10, 10));
    let top: Vec<(String, u64, u64)> = env
        .ch
        .client
        .query(tidemark_shared::queries::by_name("events.top_pages").sql)
        .bind(project.to_string())
        .bind(0u32)
        .bind(u32::MAX)
        .bind(10u32)
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(top.iter().map(|(_, pageviews, _)| pageviews).sum::<u64>(), 500);
    let recent: Vec<(String, String, String, String, u32, u16)> = env
        .ch
        .client
        .query(tidemark_shared::queries::by_name("events.recent").sql)
        .bind(project.to_string())
        .bind(0u32)
        .bind(1000u32)
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(recent.len(), 500, "FINAL shows each event once");
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, 0);
}
