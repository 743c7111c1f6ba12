//! Sessions run on one clock, the hub's arrival time: the ingest script slides a session's expiry when a job
//! arrives, so the `sessions` table takes start, end and order from `received_ms` too. Entries are written as the
//! script files them (its session ids given explicitly, session 0 for a job that joined no live session).

use crate::support::*;
use tidemark_shared::clickhouse::ClickHouse;
use tidemark_shared::job::{EventJob, EventType};
use tidemark_shared::queries::by_name;
use tidemark_worker::sessions_sink::SessionsSink;
use uuid::Uuid;

const MINUTE: i64 = 60_000;
/// 2025-06-15T00:00:00Z, a midnight inside a month.
const MIDNIGHT: i64 = 1_749_945_600_000;
/// 2025-07-01T00:00:00Z, a midnight that starts a month.
const MONTH_START: i64 = 1_751_328_000_000;

#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct Session {
    session_id: u64,
    first_ms: u64,
    last_ms: u64,
    duration_s: u64,
    n_events: u64,
    n_pageviews: u64,
    entry_path: String,
    exit_path: String,
}

/// The columns of `sessions.list` this file checks, read through the catalog's own SQL.
async fn sessions(ch: &ClickHouse, project: Uuid) -> Vec<Session> {
    let sql = format!(
        "SELECT session_id, first_ms, last_ms, duration_s, n_events, n_pageviews, entry_path, exit_path FROM ({}) AS s",
        by_name("sessions.list").sql
    );
    ch.client
        .query(&sql)
        .bind(project.to_string())
        .bind(0u64)
        .bind(u64::MAX)
        .bind(100u32)
        .fetch_all()
        .await
        .expect("sessions.list")
}

/// An event that happened at `ts_ms` on the client and reached the hub at `received_ms`.
fn arriving(project: Uuid, ts_ms: i64, received_ms: i64, kind: EventType, path: &str) -> EventJob {
    EventJob { received_ms, ..event(project, 7, ts_ms, kind, path) }
}

async fn drain_sessions(env: &tidemark_testkit::TestEnv) {
    drain(&mut engine(env, SessionsSink::new(env.ch.clone()), "t-sessions", settings(1000)).await).await;
}

#[tokio::test]
async fn a_late_batch_joins_its_session_when_it_arrives_without_stretching_it_back() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let t0 = MIDNIGHT + 10 * 60 * MINUTE;
    let mut conn = env.redis().await;
    let live = vec![
        (arriving(project, t0, t0, PAGEVIEW, "/"), 501),
        (arriving(project, t0 + MINUTE, t0 + MINUTE, PAGEVIEW, "/pricing"), 501),
    ];
    enqueue_batches(&mut conn, &env.keys, &live, 16).await;
    // A tracker's offline buffer, sent two minutes in: its events happened 20 minutes before the session began.
    let late = vec![
        (arriving(project, t0 - 20 * MINUTE, t0 + 2 * MINUTE, PAGEVIEW, "/offline"), 501),
        (arriving(project, t0 - 19 * MINUTE, t0 + 2 * MINUTE, PAGEVIEW, "/offline"), 501),
    ];
    enqueue_batches(&mut conn, &env.keys, &late, 16).await;
    drain_all(&env).await;

    let got = sessions(&env.ch, project).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let s = &got[0];
    assert_eq!((s.first_ms, s.last_ms, s.duration_s), (t0 as u64, (t0 + 2 * MINUTE) as u64, 120), "{s:?}");
    assert_eq!((s.n_pageviews, s.entry_path.as_str(), s.exit_path.as_str()), (4, "/", "/offline"));
    // The events table keeps when each event happened.
    let first_ts: u32 = env
        .ch
        .client
        .query("SELECT min(ts) FROM events WHERE project_id = toUUID(?)")
        .bind(project.to_string())
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(i64::from(first_ts), (t0 - 20 * MINUTE) / 1000);
}

#[tokio::test]
async fn a_page_leave_after_the_timeout_makes_no_session() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let t0 = MIDNIGHT + 10 * 60 * MINUTE;
    let mut conn = env.redis().await;
    let mut leave = arriving(project, t0 + 40 * MINUTE, t0 + 40 * MINUTE, EventType::Pageleave, "/");
    leave.duration_ms = 40 * MINUTE as u32;
    // Two visitors' page leaves after their sessions expired: the script files both under session 0.
    let mut other = leave.clone();
    other.event_id = Uuid::new_v4();
    other.visitor_id = 8;
    let jobs = vec![(arriving(project, t0, t0, PAGEVIEW, "/"), 601), (leave, 0), (other, 0)];
    enqueue_batches(&mut conn, &env.keys, &jobs, 16).await;
    drain_all(&env).await;

    let got = sessions(&env.ch, project).await;
    assert_eq!(got.iter().map(|s| (s.session_id, s.n_events)).collect::<Vec<_>>(), [(601, 1)], "{got:#?}");
    let seen = answers(&env.ch, project).await;
    assert_eq!((seen.events, seen.sessions, seen.sessions_from_events, seen.bounces), (3, 1, 1, 1));
}

#[tokio::test]
async fn a_session_across_midnight_is_one_session() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let (before, after) = (MIDNIGHT - 5 * MINUTE, MIDNIGHT + 5 * MINUTE);
    let jobs = vec![
        (arriving(project, before, before, PAGEVIEW, "/"), 701),
        (arriving(project, after, after, PAGEVIEW, "/b"), 701),
    ];
    enqueue_batches(&mut env.redis().await, &env.keys, &jobs, 16).await;
    drain_sessions(&env).await;

    let got = sessions(&env.ch, project).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!((got[0].first_ms, got[0].last_ms, got[0].duration_s), (before as u64, after as u64, 600));
    assert_eq!((got[0].n_pageviews, got[0].entry_path.as_str(), got[0].exit_path.as_str()), (2, "/", "/b"));
}

#[tokio::test]
async fn a_session_across_a_month_boundary_in_two_inserts_reads_as_one() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let (before, after) = (MONTH_START - 5 * MINUTE, MONTH_START + 5 * MINUTE);
    let mut conn = env.redis().await;
    enqueue_batches(&mut conn, &env.keys, &[(arriving(project, before, before, PAGEVIEW, "/"), 801)], 16).await;
    drain_sessions(&env).await;
    enqueue_batches(&mut conn, &env.keys, &[(arriving(project, after, after, PAGEVIEW, "/b"), 801)], 16).await;
    drain_sessions(&env).await;

    // Each insert partitioned its states by the month of its own earliest event: two rows, June and July.
    let (rows, months): (u64, u64) = env
        .ch
        .client
        .query("SELECT count(), uniqExact(month) FROM sessions WHERE project_id = toUUID(?)")
        .bind(project.to_string())
        .fetch_one()
        .await
        .unwrap();
    assert_eq!((rows, months), (2, 2));
    for pass in ["unmerged", "merged"] {
        let got = sessions(&env.ch, project).await;
        assert_eq!(got.len(), 1, "{pass}: {got:#?}");
        let s = &got[0];
        assert_eq!(
            (s.first_ms, s.last_ms, s.duration_s, s.n_pageviews),
            (before as u64, after as u64, 600, 2),
            "{pass}"
        );
        assert_eq!((s.entry_path.as_str(), s.exit_path.as_str()), ("/", "/b"), "{pass}");
        env.ch.client.query("OPTIMIZE TABLE sessions FINAL").execute().await.unwrap();
    }
}
