//! Visitor ids and sessions against real PostgreSQL (salts) and Redis (the ingest script): stable within a day,
//! shared by replicas, different across projects, and kept by a visit that crosses midnight.

use chrono::{DateTime, NaiveDate, Utc};
use std::net::IpAddr;
use std::time::Duration;
use tidemark_hub::identity::{Salts, VisitorIds, midnight_grace};
use tidemark_hub::queue::{OutgoingJob, Queue, QueueError};
use tidemark_shared::batch;
use tidemark_shared::job::JobKind;
use tidemark_testkit::test_env;
use uuid::Uuid;

fn job(project: Uuid, ids: VisitorIds) -> OutgoingJob {
    OutgoingJob {
        kind: JobKind::EventV1,
        shard: 0,
        project,
        visitor_today: ids.today,
        visitor_yesterday: ids.yesterday,
        session_candidate: Some(rand::random::<u64>() | 1),
        payload: b"{}".to_vec(),
        link_user: None,
    }
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

#[tokio::test]
async fn visitor_ids_follow_the_daily_salt_and_survive_midnight() {
    let env = test_env().await;
    let grace = midnight_grace(Duration::from_secs(30 * 60));
    let replica_a = Salts::new(env.pg.clone(), grace);
    let replica_b = Salts::new(env.pg.clone(), grace);
    let (project, other_project) = (Uuid::new_v4(), Uuid::new_v4());
    let ip: IpAddr = "203.0.113.5".parse().unwrap();
    let ua = "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0";
    let (monday_night, tuesday_early) = (at("2026-11-23T23:50:00Z"), at("2026-11-24T00:05:00Z"));

    let ids_monday = replica_a.visitor_ids(monday_night, &project, ip, ua).await.unwrap();
    assert_eq!(ids_monday.yesterday, None, "late in the day no session of yesterday can be open");
    let later = at("2026-11-23T08:00:00Z");
    assert_eq!(replica_a.visitor_ids(later, &project, ip, ua).await.unwrap(), ids_monday, "stable within the day");
    assert_eq!(replica_b.visitor_ids(monday_night, &project, ip, ua).await.unwrap(), ids_monday, "replicas agree");
    let elsewhere = replica_a.visitor_ids(monday_night, &other_project, ip, ua).await.unwrap();
    assert_ne!(elsewhere.today, ids_monday.today);
    let ids_tuesday = replica_b.visitor_ids(tuesday_early, &project, ip, ua).await.unwrap();
    assert_ne!(ids_tuesday.today, ids_monday.today, "a new day, a new salt");
    assert_eq!(ids_tuesday.yesterday, Some(ids_monday.today), "yesterday's salt is honoured after midnight");
    let last_moment = replica_b.visitor_ids(at("2026-11-24T03:59:59Z"), &project, ip, ua).await.unwrap();
    assert_eq!(last_moment, ids_tuesday, "within the grace period");
    let ids_tuesday_later = replica_a.visitor_ids(at("2026-11-24T04:00:00Z"), &project, ip, ua).await.unwrap();
    assert_eq!(ids_tuesday_later, VisitorIds { today: ids_tuesday.today, yesterday: None }, "grace period over");

    // Through the real ingest script: a session open at 23:50 continues at 00:05 under Monday's visitor id.
    let queue = Queue::connect(&env.stores.redis_url, env.keys.clone(), 0, 30 * 60 * 1000).unwrap();
    assert_eq!(queue.enqueue(vec![job(project, ids_monday)]).await.unwrap(), 1);
    assert_eq!(queue.enqueue(vec![job(project, ids_tuesday)]).await.unwrap(), 1);
    let overnight = filed(&env).await;
    assert_eq!(overnight[1].visitor_id, ids_monday.today);
    assert_eq!(overnight[1].session_id, overnight[0].session_id);

    // After the grace period yesterday's session is no longer looked for, even were it still open: the visit
    // goes on as a new session of today's visitor.
    queue.enqueue(vec![job(project, ids_tuesday_later)]).await.unwrap();
    let after_grace = &filed(&env).await[2];
    assert_eq!(after_grace.visitor_id, ids_tuesday.today);
    assert_ne!(after_grace.session_id, overnight[0].session_id);

    // A visitor with no session open last night starts under today's id.
    let fresh_ip: IpAddr = "203.0.113.6".parse().unwrap();
    let fresh = replica_a.visitor_ids(tuesday_early, &project, fresh_ip, ua).await.unwrap();
    queue.enqueue(vec![job(project, fresh)]).await.unwrap();
    assert_eq!(filed(&env).await[3].visitor_id, fresh.today);

    // Salts older than yesterday are gone once the day is prepared (which also creates tomorrow's): nobody can
    // recompute Sunday's ids.
    replica_a.prepare(tuesday_early).await.unwrap();
    let days: Vec<NaiveDate> =
        sqlx::query_scalar("SELECT day FROM daily_salts ORDER BY day").fetch_all(&env.pg).await.unwrap();
    let wednesday = tuesday_early.date_naive().succ_opt().unwrap();
    assert_eq!(days, vec![monday_night.date_naive(), tuesday_early.date_naive(), wednesday]);
}

#[test]
fn the_grace_period_outlasts_the_session_timeout() {
    assert_eq!(midnight_grace(Duration::from_secs(30 * 60)), Duration::from_secs(4 * 3600));
    assert_eq!(midnight_grace(Duration::from_secs(6 * 3600)), Duration::from_secs(6 * 3600 + 600));
}

#[tokio::test]
async fn a_new_session_starts_after_the_inactivity_window() {
    let env = test_env().await;
    let queue = Queue::connect(&env.stores.redis_url, env.keys.clone(), 0, 300).unwrap();
    let project = Uuid::new_v4();
    let ids = VisitorIds { today: 11, yesterday: Some(12) };
    queue.enqueue(vec![job(project, ids)]).await.unwrap();
    queue.enqueue(vec![job(project, ids)]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    queue.enqueue(vec![job(project, ids)]).await.unwrap();
    let sessions: Vec<u64> = filed(&env).await.iter().map(|f| f.session_id).collect();
    assert_eq!(sessions[0], sessions[1], "activity within the window keeps the session");
    assert_ne!(sessions[2], sessions[0], "inactivity ends the session");
}

#[tokio::test]
async fn a_full_stream_refuses_whole_requests_and_keeps_its_entries() {
    let env = test_env().await;
    // A bound of one byte: the empty stream takes a call, and then the stream is full. Requests in flight together
    // share one script call and so one entry.
    let queue = Queue::connect(&env.stores.redis_url, env.keys.clone(), 1, 60_000).unwrap();
    let project = Uuid::new_v4();
    let ids = VisitorIds { today: 21, yesterday: None };
    let jobs = |n| (0..n).map(|_| job(project, ids)).collect::<Vec<_>>();
    let (three, two, one) = tokio::join!(queue.enqueue(jobs(3)), queue.enqueue(jobs(2)), queue.enqueue(jobs(1)));
    let appended = [&three, &two, &one].iter().map(|r| *r.as_ref().unwrap()).sum::<usize>();
    assert_eq!(appended, 6, "{three:?} {two:?} {one:?}");
    let entries = filed_entries(&env).await;
    assert_eq!(entries.len(), 6, "every job of every request is filed");
    assert!(entries.iter().all(|(id, _)| *id == entries[0].0), "one call, one entry: {entries:?}");

    let (refused, also_refused) = tokio::join!(queue.enqueue(jobs(2)), queue.enqueue(jobs(1)));
    assert!(matches!(refused, Err(QueueError::Full)), "{refused:?}");
    assert!(matches!(also_refused, Err(QueueError::Full)), "{also_refused:?}");
    assert_eq!(filed(&env).await.len(), 6, "a refused request leaves nothing behind");
}

/// The sessions and user links of several requests filed in one call, and a job per request, stay apart.
#[tokio::test]
async fn requests_filed_together_keep_their_own_sessions() {
    let env = test_env().await;
    let queue = Queue::connect(&env.stores.redis_url, env.keys.clone(), 0, 60_000).unwrap();
    let project = Uuid::new_v4();
    let a = VisitorIds { today: 31, yesterday: Some(32) };
    let b = VisitorIds { today: 41, yesterday: None };
    let (ra, rb, ra2) = tokio::join!(
        queue.enqueue(vec![job(project, a)]),
        queue.enqueue(vec![job(project, b)]),
        queue.enqueue(vec![job(project, a)])
    );
    assert_eq!((ra.unwrap(), rb.unwrap(), ra2.unwrap()), (1, 1, 1));
    let jobs = filed(&env).await;
    let session_of =
        |visitor: u64| -> Vec<u64> { jobs.iter().filter(|f| f.visitor_id == visitor).map(|f| f.session_id).collect() };
    let (sa, sb) = (session_of(31), session_of(41));
    assert_eq!(sa.len(), 2);
    assert_eq!(sa[0], sa[1], "one visitor, one session, even within one call");
    assert_eq!(sb.len(), 1);
    assert_ne!(sa[0], sb[0]);
}

/// What the script filed, in stream order: the session and visitor of each job.
#[derive(Debug)]
struct Filed {
    session_id: u64,
    visitor_id: u64,
}

/// Every job in the stream, with the stream entry that holds it.
async fn filed_entries(env: &tidemark_testkit::TestEnv) -> Vec<(String, Filed)> {
    let mut conn = env.redis().await;
    let entries: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(env.keys.stream(0)).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    let mut out = Vec::new();
    for entry in &entries.ids {
        assert_eq!(entry.get::<String>("k").as_deref(), Some(batch::BATCH_V1), "the hub writes batch entries");
        let assigned: Vec<u8> = entry.get(batch::FIELD_ASSIGNED).unwrap();
        let frames: Vec<u8> = entry.get(batch::FIELD_JOBS).unwrap();
        for job in batch::split(&assigned, &frames).unwrap() {
            let filed = Filed { session_id: job.session.parse().unwrap(), visitor_id: job.visitor.parse().unwrap() };
            out.push((entry.id.clone(), filed));
        }
    }
    out
}

async fn filed(env: &tidemark_testkit::TestEnv) -> Vec<Filed> {
    filed_entries(env).await.into_iter().map(|(_, f)| f).collect()
}

#[tokio::test]
async fn midnight_needs_no_database_once_tomorrow_is_prepared() {
    let env = test_env().await;
    let grace = midnight_grace(Duration::from_secs(30 * 60));
    let own_pool = tidemark_shared::postgres::connect(&env.postgres_url, 2).await.unwrap();
    let replica = Salts::new(own_pool.clone(), grace);
    let reference = Salts::new(env.pg.clone(), grace);
    let project = Uuid::new_v4();
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let ua = "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0";

    replica.prepare(at("2026-11-23T23:50:00Z")).await.unwrap();
    own_pool.close().await; // PostgreSQL is gone for this replica from here on.
    let after_midnight = at("2026-11-24T00:05:00Z");
    let ids = replica.visitor_ids(after_midnight, &project, ip, ua).await.expect("tomorrow's salt was prepared");
    let expected = reference.visitor_ids(after_midnight, &project, ip, ua).await.unwrap();
    assert_eq!(ids, expected, "the prepared salt is the one every replica uses");
    assert!(ids.yesterday.is_some(), "yesterday's keys come prepared too");

    let day_after = at("2026-11-25T09:00:00Z");
    let err = replica.visitor_ids(day_after, &project, ip, ua).await.expect_err("nothing prepared, no database");
    assert_eq!(err.day, NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
}

#[tokio::test]
async fn no_salt_at_start_is_a_503_with_retry_after() {
    use actix_web::ResponseError;
    // Nothing listens on port 1: the pool cannot connect, as when PostgreSQL is down when the hub starts.
    let pool = tidemark_shared::postgres::connect_lazy("postgres://postgres@127.0.0.1:1/x", 1).unwrap();
    let salts = Salts::new(pool, midnight_grace(Duration::from_secs(1800)));
    let err = salts
        .visitor_ids(Utc::now(), &Uuid::new_v4(), "203.0.113.8".parse().unwrap(), "UA")
        .await
        .expect_err("no database, no salt");
    let answer = tidemark_hub::error::IngestError::from(err);
    assert_eq!(answer.status_code(), 503);
    let response = answer.error_response();
    assert_eq!(response.headers().get("retry-after").unwrap(), "5");
    // A second request within the pause is refused at once, without waiting for the pool's timeout again.
    let started = std::time::Instant::now();
    let again = salts.visitor_ids(Utc::now(), &Uuid::new_v4(), "203.0.113.8".parse().unwrap(), "UA").await;
    assert!(again.is_err());
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
}

#[tokio::test]
async fn only_pageviews_and_custom_events_open_a_session() {
    let env = test_env().await;
    let queue = Queue::connect(&env.stores.redis_url, env.keys.clone(), 0, 30 * 60 * 1000).unwrap();
    let project = Uuid::new_v4();
    let ids = VisitorIds { today: 41, yesterday: None };
    let closing = |candidate| OutgoingJob { session_candidate: candidate, ..job(project, ids) };

    // A page leave (or an identify) of a visitor with no live session: no session, and none opened for later.
    queue.enqueue(vec![closing(None)]).await.unwrap();
    // The next pageview opens the session; a page leave then joins it.
    queue.enqueue(vec![closing(Some(777))]).await.unwrap();
    queue.enqueue(vec![closing(None)]).await.unwrap();
    let filed = filed(&env).await;
    assert_eq!(filed[0].session_id, 0, "a late page leave belongs to no session");
    assert_eq!(filed[1].session_id, 777, "the pageview opened a session of its own, not one the leave left behind");
    assert_eq!(filed[2].session_id, 777, "a page leave joins the live session");
}
