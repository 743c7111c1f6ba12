//! Entries that can never be written go to the dead-letter stream with their error, and nothing else waits for them.

use crate::support::*;
use redis::streams::StreamRangeReply;
use std::collections::HashMap;
use std::time::Duration;
use tidemark_shared::job::{EventType, FIELD_JOB, FIELD_KIND, FIELD_SESSION};
use tidemark_shared::keys::GROUP_EVENTS;
use tidemark_testkit::batch;
use tidemark_worker::consumer::Consumer;
use tidemark_worker::events_sink::EventsSink;
use tidemark_worker::runner::{Outcome, Recovery, Stats};
use tidemark_worker::sessions_sink::SessionsSink;
use uuid::Uuid;

/// The dead-letter stream as a list of field maps.
async fn dead_letters(env: &tidemark_testkit::TestEnv) -> Vec<HashMap<String, String>> {
    let mut conn = env.redis().await;
    let reply: StreamRangeReply =
        redis::cmd("XRANGE").arg(env.keys.dead_letters(0)).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    reply
        .ids
        .into_iter()
        .map(|id| {
            id.map.into_iter().map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap_or_default())).collect()
        })
        .collect()
}

/// An operator's view on `events` that casts order amounts (the names of custom events): ClickHouse rejects any
/// insert block holding an amount that is not a number (Code 6), a real server-side data error, as a table
/// constraint would.
async fn refuse_orders_that_are_not_numbers(env: &tidemark_testkit::TestEnv) {
    env.ch
        .client
        .query(
            "CREATE MATERIALIZED VIEW order_amounts ENGINE = Null AS SELECT toUInt32(name) AS amount FROM events \
             WHERE type = 'custom'",
        )
        .execute()
        .await
        .unwrap();
}

#[tokio::test]
async fn poison_entries_are_dead_lettered_and_the_rest_of_their_batch_is_written() {
    let env = tidemark_testkit::test_env().await;
    refuse_orders_that_are_not_numbers(&env).await;
    let project = Uuid::new_v4();
    let mut jobs = load(project, 50, 5, 1_750_000_000_000);
    let mut order = event(project, 1, 1_750_000_100_000, EventType::Custom, "/checkout");
    order.name = "12".into();
    let mut poison = event(project, 2, 1_750_000_100_000, EventType::Custom, "/checkout");
    poison.name = "twelve".into();
    jobs.insert(20, (order, 1));
    jobs.insert(40, (poison.clone(), 2));
    let mut conn = env.redis().await;
    enqueue(&mut conn, &env.keys, &jobs).await;
    // An undecodable job and a kind no worker knows, in the same batch.
    let _: String = redis::cmd("XADD")
        .arg(env.keys.stream(0))
        .arg("*")
        .arg(FIELD_KIND)
        .arg("event.v1")
        .arg(FIELD_SESSION)
        .arg("7")
        .arg(FIELD_JOB)
        .arg("{broken")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(env.keys.stream(0))
        .arg("*")
        .arg(FIELD_KIND)
        .arg("event.v9")
        .arg(FIELD_JOB)
        .arg("{}")
        .query_async(&mut conn)
        .await
        .unwrap();

    let mut engine = engine(&env, EventsSink::new(env.ch.clone()), "w", settings(1000)).await;
    let stats = engine.stats();
    let outcome = engine.process_batch().await.unwrap();
    assert_eq!(outcome, Outcome::Written { rows: 51, dead: 3, skipped: 0 });
    // Bisecting 52 rows down to the one bad row costs two inserts per level, not one insert per row.
    let inserts = Stats::get(&stats.inserts);
    assert!((2..=13).contains(&inserts), "{inserts} inserts");

    let good: u64 =
        env.ch.client.query("SELECT uniqExactIf(event_id, name != 'twelve') FROM events").fetch_one().await.unwrap();
    assert_eq!(good, 51, "every good entry of the batch was written");
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, 0);

    let dead = dead_letters(&env).await;
    assert_eq!(dead.len(), 3, "{dead:#?}");
    let rejected = dead.iter().find(|d| d["j"].contains("twelve")).expect("the rejected order is parked");
    assert!(
        rejected["error"].contains("rejected by ClickHouse") && rejected["error"].contains("Code: 6"),
        "{rejected:?}"
    );
    assert_eq!((rejected["group"].as_str(), rejected["deliveries"].as_str()), ("events", "1"));
    assert!(dead.iter().any(|d| d["error"].contains("undecodable event.v1 job")));
    assert!(dead.iter().any(|d| d["error"].contains("unknown job kind `event.v9`")));
    assert!(dead.iter().all(|d| d.contains_key("entry") && d.contains_key("consumer")));
}

#[tokio::test]
async fn entries_of_a_dead_consumer_are_taken_over_and_dead_lettered_after_max_deliveries() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let mut conn = env.redis().await;
    let ghost = |name: &str| Consumer::connect(&env.stores.redis_url, env.keys.clone(), GROUP_EVENTS, name.into());

    // A consumer reads ten entries and dies before acknowledging them.
    enqueue(&mut conn, &env.keys, &load(project, 10, 3, 1_750_000_000_000)).await;
    let mut dead_one = ghost("dead-1").await.unwrap();
    assert_eq!(dead_one.read(100, 0).await.unwrap().len(), 10);
    let mut live =
        engine(&env, EventsSink::new(env.ch.clone()), "live", settings(1000)).await.with_recovery(quick_recovery(2));
    // Not yet idle long enough: nothing is taken over, and there is nothing new.
    assert_eq!(live.process_batch().await.unwrap(), Outcome::Idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(live.process_batch().await.unwrap(), Outcome::Written { rows: 10, dead: 0, skipped: 0 });
    assert_eq!(Stats::get(&live.stats().reclaimed), 10);
    assert_eq!(event_counts(&env.ch).await.0, 10);
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, 0);

    // An entry that kills every consumer holding it: delivered, taken over, taken over again, then parked.
    enqueue(&mut conn, &env.keys, &load(project, 1, 1, 1_750_000_500_000)).await;
    assert_eq!(ghost("dead-2").await.unwrap().read(100, 0).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let claimed = ghost("dead-3").await.unwrap().claim_stale(200, 100).await.unwrap();
    assert_eq!(claimed.iter().map(|e| e.deliveries).collect::<Vec<_>>(), [2]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(live.process_batch().await.unwrap(), Outcome::Written { rows: 0, dead: 1, skipped: 0 });
    let dead = dead_letters(&env).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["deliveries"], "3");
    assert!(dead[0]["error"].contains("gave up after 2 deliveries"), "{:?}", dead[0]);
    assert_eq!(event_counts(&env.ch).await.0, 10, "the parked entry was not written");
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, 0);
}

#[tokio::test]
async fn keeping_a_claim_counts_no_delivery_and_lets_go_of_entries_taken_over() {
    let env = tidemark_testkit::test_env().await;
    let mut conn = env.redis().await;
    enqueue(&mut conn, &env.keys, &load(Uuid::new_v4(), 3, 1, 1_750_000_000_000)).await;
    let connect = |name: &str| Consumer::connect(&env.stores.redis_url, env.keys.clone(), GROUP_EVENTS, name.into());
    let mut holder = connect("holder").await.unwrap();
    let held = holder.read(10, 0).await.unwrap();
    assert_eq!(held.len(), 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another consumer takes over the first entry (as if the holder had looked dead).
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(env.keys.stream(0))
        .arg(GROUP_EVENTS)
        .arg("other")
        .arg(0)
        .arg(&held[0].id)
        .query_async(&mut conn)
        .await
        .unwrap();
    for _ in 0..3 {
        let kept = holder.keep(&held).await.unwrap();
        assert_eq!(kept.len(), 2);
        assert!(!kept.contains(&held[0].id));
    }
    let detail: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(env.keys.stream(0))
        .arg(GROUP_EVENTS)
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(&mut conn)
        .await
        .unwrap();
    let by_id: HashMap<&str, (&str, usize, usize)> = detail
        .ids
        .iter()
        .map(|p| (p.id.as_str(), (p.consumer.as_str(), p.times_delivered, p.last_delivered_ms)))
        .collect();
    assert_eq!(by_id[held[0].id.as_str()].0, "other");
    for entry in &held[1..] {
        let (owner, deliveries, idle_ms) = by_id[entry.id.as_str()];
        // The holder survived (it is refreshing its claim), so its delivery is not held against the entry.
        assert_eq!((owner, deliveries), ("holder", 0), "a refresh is not a delivery");
        assert!(idle_ms < 250, "idle time was reset: {idle_ms} ms");
    }
}

/// A hub's batch entry holding bad jobs: each bad job is parked alone, with its own fields and its index in the
/// entry; the good jobs of the entry are written; and the entry is acknowledged once, with its dead letters.
#[tokio::test]
async fn poison_jobs_inside_a_batch_entry_are_parked_alone() {
    let env = tidemark_testkit::test_env().await;
    refuse_orders_that_are_not_numbers(&env).await;
    let project = Uuid::new_v4();
    let ts = 1_750_000_000_000;
    let mut rejected = event(project, 2, ts, EventType::Custom, "/checkout");
    rejected.name = "twelve".into();
    let jobs: Vec<(&str, Vec<u8>, u64)> = vec![
        ("event.v2", event(project, 1, ts, EventType::Pageview, "/").to_v2(), 10),
        ("event.v2", rejected.to_v2(), 20),
        ("event.v2", vec![0x93, 0x01], 30),
        ("event.v2", event(project, 3, ts, EventType::Pageview, "/pricing").to_v2(), 40),
    ];
    let (mut assigned, mut frames) = (Vec::new(), Vec::new());
    for (kind, payload, session) in &jobs {
        batch::frame_job(&mut frames, kind, payload);
        batch::assign_job(&mut assigned, *session, 99, "");
    }
    let mut conn = env.redis().await;
    let stream = env.keys.stream(0);
    let _: String = batch::xadd(&stream, &assigned, &frames).query_async(&mut conn).await.unwrap();
    // A batch whose bytes do not add up (a cut frame) cannot be split: it is parked whole.
    let _: String = batch::xadd(&stream, &assigned, &frames[..frames.len() - 3]).query_async(&mut conn).await.unwrap();

    let mut engine = engine(&env, EventsSink::new(env.ch.clone()), "w", settings(1000)).await;
    assert_eq!(engine.process_batch().await.unwrap(), Outcome::Written { rows: 2, dead: 3, skipped: 0 });
    let good: u64 =
        env.ch.client.query("SELECT uniqExactIf(event_id, name != 'twelve') FROM events").fetch_one().await.unwrap();
    assert_eq!(good, 2, "the two good jobs of the entry are written");
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, 0, "both entries are acknowledged");

    let dead = dead_letters(&env).await;
    assert_eq!(dead.len(), 3, "{dead:#?}");
    let by_job = |i: &str| dead.iter().find(|d| d.get("job").map(String::as_str) == Some(i));
    let twelve = by_job("1").expect("the rejected job is parked alone");
    assert!(twelve["error"].contains("rejected by ClickHouse"), "{twelve:?}");
    assert_eq!((twelve["k"].as_str(), twelve["s"].as_str(), twelve["v"].as_str()), ("event.v2", "20", "99"));
    let broken = by_job("2").expect("the undecodable job is parked alone");
    assert!(broken["error"].contains("undecodable event.v2 job"), "{broken:?}");
    let whole = dead.iter().find(|d| !d.contains_key("job")).expect("the cut batch is parked whole");
    assert!(whole["error"].contains("job frame is cut"), "{whole:?}");
    assert_eq!(whole["k"], batch::BATCH_V1);
}

/// `worker dead-letters ...` on this test's keys; the JSON lines it printed.
fn cli(env: &tidemark_testkit::TestEnv, args: &[&str]) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg("dead-letters")
        .args(args)
        .env_clear()
        .env("TIDEMARK_CONFIG", "/dev/null")
        .env("TIDEMARK_REDIS_URL", &env.stores.redis_url)
        .env("TIDEMARK_KEY_PREFIX", &env.key_prefix)
        .output()
        .expect("worker binary runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

/// A row the events table rejects, listed, redriven once the cause is fixed: only the events group writes it again,
/// the sessions group (which had written it) acknowledges it unwritten; then the rest is deleted.
#[tokio::test]
async fn a_dead_letter_is_listed_redriven_to_its_group_only_and_deleted() {
    let env = tidemark_testkit::test_env().await;
    refuse_orders_that_are_not_numbers(&env).await;
    let project = Uuid::new_v4();
    let mut jobs = load(project, 20, 4, 1_750_000_000_000);
    let mut order = event(project, 1, 1_750_000_100_000, EventType::Custom, "/checkout");
    order.name = "twelve".into();
    jobs.insert(10, (order.clone(), 1_000_001));
    let mut conn = env.redis().await;
    enqueue_batches(&mut conn, &env.keys, &jobs, 8).await;
    // A job no version of the worker can read, for both groups.
    enqueue_raw(&mut conn, &env, "{broken").await;

    let mut events = engine(&env, EventsSink::new(env.ch.clone()), "e", settings(1000)).await;
    let mut sessions = engine(&env, SessionsSink::new(env.ch.clone()), "s", settings(1000)).await;
    assert_eq!(events.process_batch().await.unwrap(), Outcome::Written { rows: 20, dead: 2, skipped: 0 });
    assert_eq!(sessions.process_batch().await.unwrap(), Outcome::Written { rows: 21, dead: 1, skipped: 0 });
    let sessions_before = answers(&env.ch, project).await;

    let listed = cli(&env, &["list"]);
    assert_eq!(listed.len(), 3, "{listed:#?}");
    let of_events = cli(&env, &["list", "--group", "events"]);
    assert_eq!(of_events.len(), 2);
    let rejected = of_events.iter().find(|d| d["event"]["name"] == "twelve").expect("the rejected order, decoded");
    assert!(rejected["error"].as_str().unwrap().contains("rejected by ClickHouse"), "{rejected}");
    assert_eq!((rejected["group"].as_str(), rejected["session"].as_str()), (Some("events"), Some("1000001")));
    assert!(rejected["job"].is_u64() && rejected["deliveries"] == 1 && rejected["at_ms"].is_u64(), "{rejected}");

    // The cause is fixed; the order is redriven. (ClickHouse writes a block to the table before its views, so the
    // rejected inserts may have left copies of the order in `events`: invisible, as every copy.)
    let orders = |env: &tidemark_testkit::TestEnv| {
        let query = env.ch.client.query("SELECT uniqExact(event_id), count() FROM events WHERE name = 'twelve'");
        async move { query.fetch_one::<(u64, u64)>().await.unwrap() }
    };
    let (_, rows_before) = orders(&env).await;
    env.ch.client.query("DROP TABLE order_amounts").execute().await.unwrap();
    let id = rejected["id"].as_str().unwrap();
    let redriven = cli(&env, &["redrive", "--id", id]);
    assert_eq!(redriven.len(), 1);
    assert_eq!(redriven[0]["group"], "events");
    assert_eq!(events.process_batch().await.unwrap(), Outcome::Written { rows: 1, dead: 0, skipped: 0 });
    assert_eq!(sessions.process_batch().await.unwrap(), Outcome::Written { rows: 0, dead: 0, skipped: 1 });
    let (distinct, rows) = orders(&env).await;
    assert_eq!((distinct, rows), (1, rows_before + 1), "the redrive wrote the order, seen once");
    let after = answers(&env.ch, project).await;
    assert_eq!((after.events, after.sessions, after.devices), (21, sessions_before.sessions, sessions_before.devices));
    assert_eq!(after.sessions_from_events, sessions_before.sessions_from_events);

    // What cannot be fixed is deleted.
    assert_eq!(cli(&env, &["list"]).len(), 2, "the redriven dead letter is gone");
    assert_eq!(cli(&env, &["delete", "--all", "--group", "sessions"]).len(), 1);
    let last = cli(&env, &["list"]);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["group"], "events");
    assert_eq!(cli(&env, &["delete", "--id", last[0]["id"].as_str().unwrap()]).len(), 1);
    assert!(cli(&env, &["list"]).is_empty());
    assert_eq!(pending(&mut conn, &env.keys, GROUP_EVENTS).await, 0);
}

async fn enqueue_raw(conn: &mut redis::aio::MultiplexedConnection, env: &tidemark_testkit::TestEnv, job: &str) {
    let _: String = redis::cmd("XADD")
        .arg(env.keys.stream(0))
        .arg("*")
        .arg(FIELD_KIND)
        .arg("event.v1")
        .arg(FIELD_SESSION)
        .arg("7")
        .arg(FIELD_JOB)
        .arg(job)
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_dead_letter_stream_is_bounded() {
    let env = tidemark_testkit::test_env().await;
    let mut conn = env.redis().await;
    for _ in 0..10 {
        enqueue_raw(&mut conn, &env, "{broken").await;
    }
    let recovery = Recovery { dead_letter_max_len: 3, ..Recovery::default() };
    let mut engine = engine(&env, EventsSink::new(env.ch.clone()), "w", settings(1000)).await.with_recovery(recovery);
    assert_eq!(engine.process_batch().await.unwrap(), Outcome::Written { rows: 0, dead: 10, skipped: 0 });
    assert_eq!(dead_letter_count(&env).await, 3, "the newest three are kept");
}
