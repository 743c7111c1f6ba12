//! Visitor ids and sessions against real PostgreSQL (salts) and Redis (the ingest script): stable within a day,
//! shared by replicas, different across projects, and kept by a visit that crosses midnight.

use chrono::NaiveDate;
use std::net::IpAddr;
use tidemark_hub::identity::{Salts, VisitorIds};
use tidemark_hub::queue::{OutgoingJob, Queue};
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
        json: "{}".into(),
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
    let pool = deadpool_redis::Config::from_url(env.stores.redis_url.clone())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let queue = Queue::new(pool, env.keys.clone(), 1_000, 30 * 60 * 1000);
    let before = queue.enqueue(&[job(project, ids_monday)]).await.unwrap();
    let after = queue.enqueue(&[job(project, ids_tuesday)]).await.unwrap();
    assert_eq!(after[0].visitor_id, ids_monday.today);
    assert_eq!(after[0].session_id, before[0].session_id);

    // A visitor with no session open last night starts under today's id.
    let fresh_ip: IpAddr = "203.0.113.6".parse().unwrap();
    let fresh = replica_a.visitor_ids(tuesday, &project, fresh_ip, ua).await.unwrap();
    let filed = queue.enqueue(&[job(project, fresh)]).await.unwrap();
    assert_eq!(filed[0].visitor_id, fresh.today);

    // Salts older than yesterday are gone: nobody can recompute Sunday's ids.
    let days: Vec<NaiveDate> =
        sqlx::query_scalar("SELECT day FROM daily_salts ORDER BY day").fetch_all(&env.pg).await.unwrap();
    assert_eq!(days, vec![monday, tuesday]);
}

#[tokio::test]
async fn a_new_session_starts_after_the_inactivity_window() {
    let env = test_env().await;
    let pool = deadpool_redis::Config::from_url(env.stores.redis_url.clone())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let queue = Queue::new(pool, env.keys.clone(), 1_000, 300);
    let project = Uuid::new_v4();
    let ids = VisitorIds { today: 11, yesterday: 12 };
    let first = queue.enqueue(&[job(project, ids)]).await.unwrap();
    let second = queue.enqueue(&[job(project, ids)]).await.unwrap();
    assert_eq!(first[0].session_id, second[0].session_id, "activity within the window keeps the session");
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    let third = queue.enqueue(&[job(project, ids)]).await.unwrap();
    assert_ne!(third[0].session_id, first[0].session_id, "inactivity ends the session");
}
