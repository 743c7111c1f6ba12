//! ClickHouse refusing inserts for reasons that are no row's fault: an overload (too many parts), and a table that
//! refuses every row (a broken view, a column missing during a rolling upgrade). Good data is never parked; a
//! really bad row still is, once rows around it are written.

use crate::support::*;
use tidemark_shared::job::EventType;
use tidemark_shared::keys::GROUP_EVENTS;
use tidemark_worker::events_sink::EventsSink;
use tidemark_worker::runner::{Outcome, Stats};
use uuid::Uuid;

async fn execute(env: &tidemark_testkit::TestEnv, sql: &str) {
    env.ch.client.query(sql).execute().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn too_many_parts_is_retried_whole_and_nothing_is_dead_lettered() {
    let env = tidemark_testkit::test_env().await;
    // A view on `events` feeding a table at its parts limit with merges stopped: every insert into `events` gets
    // ClickHouse's real error 252 TOO_MANY_PARTS, as when merges fall behind the inserts.
    execute(
        &env,
        "CREATE TABLE crowded (x UInt8) ENGINE = MergeTree() ORDER BY x \
         SETTINGS parts_to_delay_insert = 1, parts_to_throw_insert = 2",
    )
    .await;
    execute(&env, "SYSTEM STOP MERGES crowded").await;
    execute(&env, "INSERT INTO crowded VALUES (1)").await;
    execute(&env, "INSERT INTO crowded VALUES (2)").await;
    execute(&env, "CREATE MATERIALIZED VIEW crowding TO crowded AS SELECT toUInt8(1) AS x FROM events").await;

    let project = Uuid::new_v4();
    let mut conn = env.redis().await;
    let entries = enqueue_batches(&mut conn, &env.keys, &load(project, 200, 10, 1_750_000_000_000), 16).await;
    let mut engine = engine(&env, EventsSink::new(env.ch.clone()), "w", settings(1000)).await;
    let stats = engine.stats();
    match engine.process_batch().await.unwrap() {
        Outcome::Retrying { error, .. } => assert!(error.contains("Code: 252"), "{error}"),
        other => panic!("an overload must be retried, got {other:?}"),
    }
    assert_eq!(Stats::get(&stats.inserts), 1, "an overload is not split into smaller inserts (more parts)");
    assert_eq!(Stats::get(&stats.systemic), 0);
    assert_eq!(dead_letter_count(&env).await, 0);
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, entries.len() as u64);

    // The merges catch up; the same batch goes in whole.
    execute(&env, "SYSTEM START MERGES crowded").await;
    execute(&env, "OPTIMIZE TABLE crowded FINAL").await;
    assert_eq!(engine.process_batch().await.unwrap(), Outcome::Written { rows: 200, dead: 0, skipped: 0 });
    assert_eq!(event_counts(&env.ch).await.0, 200);
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, 0);
    assert_eq!(dead_letter_count(&env).await, 0);
}

#[tokio::test]
async fn a_view_refusing_every_row_keeps_the_batch_instead_of_dead_lettering_it() {
    let env = tidemark_testkit::test_env().await;
    // A broken view: no path parses as a number, so ClickHouse rejects every row with a data error (Code 6).
    execute(&env, "CREATE MATERIALIZED VIEW broken ENGINE = Null AS SELECT toUInt32(path) AS n FROM events").await;
    let mut conn = env.redis().await;
    let entries = enqueue_batches(&mut conn, &env.keys, &load(Uuid::new_v4(), 300, 10, 1_750_000_000_000), 16).await;
    let mut engine = engine(&env, EventsSink::new(env.ch.clone()), "w", settings(1000)).await;
    let stats = engine.stats();
    for attempt in 1..=2 {
        match engine.process_batch().await.unwrap() {
            Outcome::Retrying { error, .. } => assert!(error.contains("Code: 6"), "{error}"),
            other => panic!("attempt {attempt}: a refusing table must be retried, got {other:?}"),
        }
        assert_eq!(Stats::get(&stats.systemic), attempt);
        assert_eq!(dead_letter_count(&env).await, 0, "no good row is parked");
    }
    let inserts = Stats::get(&stats.inserts);
    assert!(inserts <= 12, "stopped splitting early: {inserts} inserts for two attempts, not one per row");
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, entries.len() as u64);

    execute(&env, "DROP TABLE broken").await;
    assert_eq!(engine.process_batch().await.unwrap(), Outcome::Written { rows: 300, dead: 0, skipped: 0 });
    assert_eq!(event_counts(&env.ch).await.0, 300);
    assert_eq!(dead_letter_count(&env).await, 0);
}

#[tokio::test]
async fn a_missing_column_is_systemic_at_once() {
    let env = tidemark_testkit::test_env().await;
    // A rolling upgrade gone wrong: the table lacks a column this worker writes (Code 16).
    execute(&env, "ALTER TABLE events DROP COLUMN title").await;
    let mut conn = env.redis().await;
    enqueue(&mut conn, &env.keys, &load(Uuid::new_v4(), 40, 4, 1_750_000_000_000)).await;
    let mut engine = engine(&env, EventsSink::new(env.ch.clone()), "w", settings(1000)).await;
    let stats = engine.stats();
    match engine.process_batch().await.unwrap() {
        Outcome::Retrying { error, .. } => assert!(error.contains("Code: 16"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert_eq!((Stats::get(&stats.inserts), Stats::get(&stats.systemic)), (1, 1), "not split at all");
    execute(&env, "ALTER TABLE events ADD COLUMN title String AFTER path").await;
    assert_eq!(engine.process_batch().await.unwrap(), Outcome::Written { rows: 40, dead: 0, skipped: 0 });
    assert_eq!(dead_letter_count(&env).await, 0);
}

#[tokio::test]
async fn a_lone_bad_row_waits_for_neighbours_and_is_then_parked_alone() {
    let env = tidemark_testkit::test_env().await;
    execute(
        &env,
        "CREATE MATERIALIZED VIEW order_amounts ENGINE = Null AS SELECT toUInt32(name) AS amount FROM events \
         WHERE type = 'custom'",
    )
    .await;
    let project = Uuid::new_v4();
    let mut poison = event(project, 2, 1_750_000_100_000, EventType::Custom, "/checkout");
    poison.name = "twelve".into();
    let mut conn = env.redis().await;
    enqueue(&mut conn, &env.keys, &[(poison, 2)]).await;
    let mut engine = engine(&env, EventsSink::new(env.ch.clone()), "w", settings(1000)).await;
    // Alone, the row cannot be told apart from a table refusing everything: it is kept, not parked.
    assert!(matches!(engine.process_batch().await.unwrap(), Outcome::Retrying { .. }));
    assert_eq!(dead_letter_count(&env).await, 0);
    // Good events arrive: the retry takes them in, they are written, and the bad row is parked alone.
    enqueue(&mut conn, &env.keys, &load(project, 10, 2, 1_750_000_000_000)).await;
    assert_eq!(engine.process_batch().await.unwrap(), Outcome::Written { rows: 10, dead: 1, skipped: 0 });
    assert_eq!(dead_letter_count(&env).await, 1);
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, 0);
}
