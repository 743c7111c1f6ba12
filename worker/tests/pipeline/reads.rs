//! A batch counts jobs and a stream read counts entries, which hold 1 to 64 jobs: after a quiet period (one job per
//! entry) a burst of full entries must not make one read pull many times `batch_size` jobs.

use crate::support::*;
use tidemark_worker::events_sink::EventsSink;
use tidemark_worker::runner::Outcome;
use uuid::Uuid;

#[tokio::test]
async fn a_burst_after_a_quiet_period_fills_a_batch_to_at_most_twice_its_size() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let mut conn = env.redis().await;
    let mut engine = engine(&env, EventsSink::new(env.ch.clone()), "w", settings(100)).await;
    // Quiet: single-job entries.
    enqueue(&mut conn, &env.keys, &load(project, 5, 5, 1_750_000_000_000)).await;
    assert_eq!(drain(&mut engine).await, 5);
    // A burst: 50 entries of 64 jobs.
    enqueue_batches(&mut conn, &env.keys, &load(project, 3200, 50, 1_750_000_100_000), 64).await;
    let Outcome::Written { rows, .. } = engine.process_batch().await.unwrap() else { panic!("not written") };
    assert!((100..=200).contains(&rows), "a batch of 100 jobs took {rows}");
    assert_eq!(drain(&mut engine).await + rows, 3200);
}
