//! Two workers of one kind share its consumer group: each entry goes to exactly one of them.

use crate::support::*;
use tidemark_shared::keys::{GROUP_EVENTS, GROUP_SESSIONS};
use tidemark_worker::events_sink::EventsSink;
use tidemark_worker::runner::{Engine, Outcome};
use tidemark_worker::sessions_sink::SessionsSink;
use tidemark_worker::sink::Sink;
use uuid::Uuid;

/// Steps until a step finds nothing new; the total written.
async fn work<S: Sink>(mut engine: Engine<S>) -> usize {
    let mut rows = 0;
    loop {
        match engine.process_batch().await.unwrap() {
            Outcome::Idle => return rows,
            Outcome::Written { rows: n, .. } => rows += n,
            Outcome::Retrying { error, .. } => panic!("{error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_of_a_kind_split_the_load_without_loss_or_duplicates() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let (n, visitors) = (20_000usize, 40u64);
    let mut conn = env.redis().await;
    enqueue_batches(&mut conn, &env.keys, &load(project, n, visitors, 1_750_000_000_000), 16).await;

    let e1 = engine(&env, EventsSink::new(env.ch.clone()), "events-1", settings(500)).await;
    let e2 = engine(&env, EventsSink::new(env.ch.clone()), "events-2", settings(500)).await;
    let s1 = engine(&env, SessionsSink::new(env.ch.clone()), "sessions-1", settings(500)).await;
    let s2 = engine(&env, SessionsSink::new(env.ch.clone()), "sessions-2", settings(500)).await;
    let (a, b, c, d) =
        tokio::join!(tokio::spawn(work(e1)), tokio::spawn(work(e2)), tokio::spawn(work(s1)), tokio::spawn(work(s2)));
    let (a, b, c, d) = (a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap());
    eprintln!("events split {a} + {b}; sessions split {c} + {d}");
    assert!(a > 0 && b > 0 && c > 0 && d > 0, "both workers of each kind took part");
    assert_eq!((a + b, c + d), (n, n));
    assert_eq!(event_counts(&env.ch).await, (n as u64, n as u64), "not even a physical duplicate");
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, 0);
    assert_eq!(pending(&mut conn, &env.keys, GROUP_SESSIONS).await, 0);
    let seen = answers(&env.ch, project).await;
    assert_eq!((seen.events, seen.visitors, seen.sessions, seen.bounces), (n as u64, visitors, visitors, 0));
    assert_eq!(seen.avg_duration_s, load_avg_duration(n, visitors));
}
