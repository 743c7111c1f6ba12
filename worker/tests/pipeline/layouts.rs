//! Job layouts of different hub versions in one stream: `event.v3` (what the hub writes) carries the referrer's
//! name and the visitor's kind; `event.v2` entries queued before an upgrade still drain, with neither.

use crate::support::*;
use tidemark_testkit::batch;
use uuid::Uuid;

#[tokio::test]
async fn v2_and_v3_entries_drain_side_by_side_and_v3_keeps_the_referrer_name() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let t0 = 1_750_000_000_000i64;
    let from_google = |visitor: u64, path: &str| {
        let mut e = event(project, visitor, t0, PAGEVIEW, path);
        e.referrer = "https://www.google.com/".into();
        e.referrer_host = "www.google.com".into();
        e.referrer_source = "search".into();
        e.referrer_name = "Google".into();
        e
    };
    let mut conn = env.redis().await;
    let (assigned, frames) = batch::encode_events_v2(&[(from_google(1, "/old"), 11)]);
    let _: String = batch::xadd(&env.keys.stream(0), &assigned, &frames).query_async(&mut conn).await.unwrap();
    enqueue_batches(&mut conn, &env.keys, &[(from_google(2, "/new"), 12)], 16).await;
    drain_all(&env).await;

    let rows: Vec<(String, String, String)> = env
        .ch
        .client
        .query("SELECT path, referrer_source, referrer_name FROM events WHERE project_id = toUUID(?) ORDER BY path")
        .bind(project.to_string())
        .fetch_all()
        .await
        .unwrap();
    let want = |p: &str, n: &str| (p.to_owned(), "search".to_owned(), n.to_owned());
    assert_eq!(rows, [want("/new", "Google"), want("/old", "")]);

    let sources: Vec<(String, String, String, u64)> = env
        .ch
        .client
        .query(tidemark_shared::queries::by_name("sessions.sources").sql)
        .bind(project.to_string())
        .bind(0u64)
        .bind(u64::MAX)
        .bind(10u32)
        .fetch_all()
        .await
        .unwrap();
    let source = |n: &str| ("search".to_owned(), n.to_owned(), "www.google.com".to_owned(), 1);
    assert_eq!(sources, [source(""), source("Google")]);
}
