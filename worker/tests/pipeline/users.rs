//! Identified users: `identify.v1` jobs and the events that carry a user feed the `users` table, with known
//! answers for first/last seen, the latest traits, visitors, sessions and events; a second delivery of every job
//! changes none of them, merged or not.

use crate::support::*;
use tidemark_shared::job::{EventJob, IdentifyV1, JobKind};
use tidemark_shared::queries::by_name;
use tidemark_testkit::batch;
use tidemark_worker::sink::{Decoded, Sink};
use tidemark_worker::users_sink::UsersSink;
use uuid::Uuid;

#[derive(Debug, PartialEq, serde::Deserialize, clickhouse::Row)]
struct User {
    user_id: String,
    first_ms: u64,
    last_ms: u64,
    latest_traits: String,
    last_visitor: u64,
    n_visitors: u64,
    n_sessions: u64,
    n_events: u64,
}

/// One job of a batch entry as the hub's script files it: the job, its session, visitor and linked user.
enum Queued {
    Identify(IdentifyV1, u64),
    Event(Box<EventJob>, u64, &'static str),
}

async fn enqueue(env: &tidemark_testkit::TestEnv, jobs: &[Queued]) {
    let (mut assigned, mut frames) = (Vec::new(), Vec::new());
    for job in jobs {
        match job {
            Queued::Identify(identify, session) => {
                batch::frame_job(&mut frames, JobKind::IdentifyV1.as_str(), &serde_json::to_vec(identify).unwrap());
                batch::assign_job(&mut assigned, *session, identify.visitor_id, &identify.user_id);
            }
            Queued::Event(event, session, user) => {
                batch::frame_job(&mut frames, JobKind::EventV3.as_str(), &event.to_v3());
                batch::assign_job(&mut assigned, *session, event.visitor_id, user);
            }
        }
    }
    let mut conn = env.redis().await;
    let _: String = batch::xadd(&env.keys.stream(0), &assigned, &frames).query_async(&mut conn).await.unwrap();
}

async fn users(env: &tidemark_testkit::TestEnv, project: Uuid) -> Vec<User> {
    env.ch
        .client
        .query(by_name("users.list").sql)
        .bind(project.to_string())
        .bind(0u64)
        .bind(u64::MAX)
        .bind(100u32)
        .fetch_all()
        .await
        .expect("users.list")
}

#[tokio::test]
async fn identifies_and_events_of_users_give_known_users_and_redelivery_changes_nothing() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let t0 = 1_750_000_000_000i64;
    let at = |secs: i64| t0 + secs * 1000;
    let identify = |visitor: u64, secs: i64, traits: &[(&str, &str)]| IdentifyV1 {
        project_id: project,
        visitor_id: visitor,
        user_id: "u-1".into(),
        ts_ms: at(secs),
        traits: traits.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    };
    let page = |visitor: u64, secs: i64| event(project, visitor, at(secs), PAGEVIEW, "/");
    let mut own_user = page(6, 60);
    own_user.user_id = "u-1".into();
    let mut other_user = page(7, 30);
    other_user.user_id = "u-2".into();
    enqueue(
        &env,
        &[
            Queued::Identify(identify(5, 0, &[("plan", "free"), ("name", "Ada")]), 900),
            // The script links the session to the user: this event carries it without naming it.
            Queued::Event(Box::new(page(5, 1)), 900, "u-1"),
            Queued::Event(Box::new(page(5, 2)), 900, ""),
            Queued::Event(Box::new(other_user), 950, ""),
        ],
    )
    .await;
    enqueue(
        &env,
        &[
            // The same user on a second device, naming itself on the event.
            Queued::Event(Box::new(own_user), 901, ""),
            Queued::Identify(identify(6, 120, &[("plan", "pro")]), 901),
            // An identify without traits keeps the known ones; its session had expired (session 0).
            Queued::Identify(identify(5, 180, &[]), 0),
        ],
    )
    .await;
    drain(&mut engine(&env, UsersSink::new(env.ch.clone()), "t-users", settings(2)).await).await;

    let expected = vec![
        User {
            user_id: "u-1".into(),
            first_ms: at(0) as u64,
            last_ms: at(180) as u64,
            latest_traits: r#"{"plan":"pro"}"#.into(),
            last_visitor: 5,
            n_visitors: 2,
            n_sessions: 2,
            n_events: 2,
        },
        User {
            user_id: "u-2".into(),
            first_ms: at(30) as u64,
            last_ms: at(30) as u64,
            latest_traits: String::new(),
            last_visitor: 7,
            n_visitors: 1,
            n_sessions: 1,
            n_events: 1,
        },
    ];
    assert_eq!(users(&env, project).await, expected);

    // Every entry written again, as a worker killed between its insert and its ack would.
    let rewritten = rewrite(&env).await;
    let rows: u64 = env.ch.client.query("SELECT count() FROM users").fetch_one().await.unwrap();
    assert!(rows >= 4, "the copies are really there: {rows} rows, {rewritten} rewritten");
    for pass in ["unmerged", "merged"] {
        assert_eq!(users(&env, project).await, expected, "{pass}");
        env.ch.client.query("OPTIMIZE TABLE users FINAL").execute().await.unwrap();
    }
}

async fn rewrite(env: &tidemark_testkit::TestEnv) -> usize {
    let mut conn = env.redis().await;
    let reply: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(env.keys.stream(0)).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    let entries: Vec<tidemark_worker::consumer::Entry> = reply
        .ids
        .into_iter()
        .map(|id| tidemark_worker::consumer::Entry { shard: 0, id: id.id, fields: id.map, deliveries: 2 })
        .collect();
    let sink = UsersSink::new(env.ch.clone());
    let rows: Vec<_> = entries
        .iter()
        .flat_map(|e| e.jobs().expect("the entries split"))
        .filter_map(|job| match sink.decode(&job) {
            Decoded::Row(row) => Some(row),
            _ => None,
        })
        .collect();
    sink.write(&rows).await.expect("rewrite");
    rows.len()
}
