//! Redis killed with SIGKILL and restarted on the same data under load: a running worker reconnects by itself,
//! finds its group again and drains what arrives, within seconds.

use crate::support::*;
use std::time::Duration;
use tidemark_testkit::private_redis::PrivateRedis;
use tidemark_worker::consumer::Consumer;
use tidemark_worker::events_sink::EventsSink;
use tidemark_worker::runner::{self, Engine};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reads_again_after_redis_is_killed_and_restarted() {
    let env = tidemark_testkit::test_env().await;
    let mut redis = PrivateRedis::start().await.expect("private Redis");
    let client = redis::Client::open(redis.url()).unwrap();
    let consumer = Consumer::connect(&redis.url(), env.keys.clone(), "events", "w".into()).await.unwrap();
    let engine = Engine::new(consumer, EventsSink::new(env.ch.clone()), settings(1000));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(runner::run(engine, stopped, Duration::from_secs(2)));

    let project = Uuid::new_v4();
    let mut conn = tidemark_shared::redis::connect(&client).await.unwrap();
    enqueue_batches(&mut conn, &env.keys, &load(project, 300, 10, 1_750_000_000_000), 16).await;
    assert!(eventually(Duration::from_secs(10), || async { event_counts(&env.ch).await.0 == 300 }).await);

    redis.kill().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.resume().await.unwrap();
    let mut conn = tidemark_shared::redis::connect(&client).await.unwrap();
    enqueue_batches(&mut conn, &env.keys, &load(project, 300, 10, 1_750_000_100_000), 16).await;
    let back = tokio::time::Instant::now();
    let drained = eventually(Duration::from_secs(5), || async { event_counts(&env.ch).await.0 == 600 }).await;
    eprintln!("drained {:?} after the restart", back.elapsed());
    stop.send(true).unwrap();
    run.await.unwrap().unwrap();
    assert!(drained, "the worker did not read again within 5 s of Redis coming back");
    assert_eq!(pending(&mut conn, &env.keys, "events").await, 0);
}
