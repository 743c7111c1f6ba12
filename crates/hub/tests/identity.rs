//! Visitor ids and sessions against real PostgreSQL (salts) and Redis (the ingest script): stable within a day,
//! shared by replicas, different across projects, and kept by a visit that crosses midnight.

use chrono::NaiveDate;
use std::net::IpAddr;
use tidemark_hub::identity::{Salts, VisitorIds};
use tidemark_hub::queue::{OutgoingJob, Queue, QueueError};
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
        session_candidate: rand::random::<u64>() | 1,
        payload: b"{}".to_vec(),
        link_user: None,
    }
}

#[tokio::test]
async fn visitor_ids_follow_the_daily_salt_and_survive_midnight() {
    let env = test_env().await;
    let replica_a = Salts::new(env.pg.clone());
    let replica_b = Salts::new(env.pg.clone());
    let (project, other_project) = (Uuid::new_v4(), Uuid::new_v4());
    let ip: IpAddr = "203.0.113.5".parse().unwrap();
    let ua = "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0";
    let monday = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let tuesday = monday.succ_opt().unwrap();

    let ids_monday = replica_a.visitor_ids(monday, &project, ip, ua).await.unwrap();
    assert_eq!(replica_a.visitor_ids(monday, &project, ip, ua).await.unwrap(), ids_monday, "stable within the day");
    assert_eq!(replica_b.visitor_ids(monday, &project, ip, ua).await.unwrap(), ids_monday, "replicas agree");
    assert_ne!(replica_a.visitor_ids(monday, &other_project, ip, ua).await.unwrap().today, ids_monday.today);
    let ids_tuesday = replica_b.visitor_ids(tuesday, &project, ip, ua).await.unwrap();
    assert_ne!(ids_tuesday.today, ids_monday.today, "a new day, a new salt");
    assert_eq!(ids_tuesday.yesterday, ids_monday.today, "yesterday's salt is honoured");

    // Through the real ingest script: a session open at 23:50 continues at 00:05 under Monday's visitor id.
    let queue = Queue::connect(&env.stores.redis_url, env.keys.clone(), 1_000, 30 * 60 * 1000).unwrap();
    assert_eq!(queue.enqueue(vec![job(project, ids_monday)]).await.unwrap(), 1);
    assert_eq!(queue.enqueue(vec![job(project, ids_tuesday)]).await.unwrap(), 1);
    let overnight = filed(&env).await;
    assert_eq!(overnight[1].visitor_id, ids_monday.today);
    assert_eq!(overnight[1].session_id, overnight[0].session_id);

    // A visitor with no session open last night starts under today's id.
    let fresh_ip: IpAddr = "203.0.113.6".parse().unwrap();
    let fresh = replica_a.visitor_ids(tuesday, &project, fresh_ip, ua).await.unwrap();
    queue.enqueue(vec![job(project, fresh)]).await.unwrap();
    assert_eq!(filed(&env).await[2].visitor_id, fresh.today);

    // Salts older than yesterday are gone: nobody can recompute Sunday's ids.
    let days: Vec<NaiveDate> =
        sqlx::query_scalar("SELECT day FROM daily_salts ORDER BY day").fetch_all(&env.pg).await.unwrap();
    assert_eq!(days, vec![monday, tuesday]);
}

#[tokio::test]
async fn a_new_session_starts_after_the_inactivity_window() {
    let env = test_env().await;
    let queue = Queue::connect(&env.stores.redis_url, env.keys.clone(), 1_000, 300).unwrap();
    let project = Uuid::new_v4();
    let ids = VisitorIds { today: 11, yesterday: 12 };
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
    let queue = Queue::connect(&env.stores.redis_url, env.keys.clone(), 5, 60_000).unwrap();
    let project = Uuid::new_v4();
    let ids = VisitorIds { today: 21, yesterday: 22 };
    let jobs = |n| (0..n).map(|_| job(project, ids)).collect::<Vec<_>>();
    // Several requests in flight at once share one script call; each is still all or nothing.
    let (three, two, one) = tokio::join!(queue.enqueue(jobs(3)), queue.enqueue(jobs(2)), queue.enqueue(jobs(1)));
    let appended = [&three, &two, &one].iter().filter_map(|r| r.as_ref().ok()).sum::<usize>();
    assert!(appended <= 5, "never past the bound: {three:?} {two:?} {one:?}");
    assert_eq!(filed(&env).await.len(), appended, "a refused request leaves nothing behind");
    while filed(&env).await.len() < 5 {
        queue.enqueue(jobs(1)).await.unwrap();
    }
    assert!(matches!(queue.enqueue(jobs(1)).await, Err(QueueError::Full)));
    assert_eq!(filed(&env).await.len(), 5);
}

/// What the script filed, in stream order: the session and visitor of each entry.
struct Filed {
    session_id: u64,
    visitor_id: u64,
}

async fn filed(env: &tidemark_testkit::TestEnv) -> Vec<Filed> {
    let mut conn = env.redis().await;
    let entries: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(env.keys.stream(0)).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    entries
        .ids
        .iter()
        .map(|entry| Filed {
            session_id: entry.get::<String>("s").unwrap().parse().unwrap(),
            visitor_id: entry.get::<String>("v").unwrap().parse().unwrap(),
        })
        .collect()
}
