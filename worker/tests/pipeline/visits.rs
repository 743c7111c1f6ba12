//! A scripted visit sequence with known answers for sessions and devices, through all three workers; then every
//! event delivered a second time, which must change no answer, merged or not.
//!
//! Session boundaries are decided by the hub's ingest script (30 minutes of inactivity, on arrival) and filed in
//! the entry's `s` field; workers only reflect them. The test writes entries exactly as that script does (`k`,
//! `s`, `v`, `j`) with explicit event times, assigning session ids by the same rule over those times, so a
//! 30-minute split, durations and first/last pages have exact expected values without waiting 30 minutes. (The
//! hub's own tests cover HTTP to stream; depending on the hub crate here would tie these tests to its build.)

use crate::support::*;
use std::collections::HashMap;
use tidemark_shared::job::{EventJob, EventType};
use tidemark_shared::queries::by_name;
use tidemark_worker::devices_sink::DevicesSink;
use tidemark_worker::events_sink::EventsSink;
use tidemark_worker::sessions_sink::SessionsSink;
use tidemark_worker::sink::{Decoded, Sink};
use uuid::Uuid;

const SESSION_TIMEOUT_MS: i64 = 30 * 60 * 1000;

/// The hub's rule: a visitor's event more than 30 minutes after its previous one opens a new session.
fn assign_sessions(events: Vec<EventJob>) -> Vec<(EventJob, u64)> {
    let mut last: HashMap<u64, (i64, u64)> = HashMap::new();
    let mut next_id = 1000u64;
    let mut out = Vec::new();
    for event in events {
        let session = match last.get(&event.visitor_id) {
            Some((ts, id)) if event.ts_ms - ts <= SESSION_TIMEOUT_MS => *id,
            _ => {
                next_id += 1;
                next_id
            }
        };
        last.insert(event.visitor_id, (event.ts_ms, session));
        out.push((event, session));
    }
    out
}

#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct Session {
    session_id: u64,
    visitor: u64,
    #[allow(dead_code)]
    user: String,
    first_ms: u64,
    last_ms: u64,
    duration_s: u64,
    n_events: u64,
    n_pageviews: u64,
    n_interactions: u64,
    bounce: u8,
    entry_path: String,
    exit_path: String,
    first_referrer_host: String,
    first_source: String,
    first_referrer_name: String,
    first_utm_source: String,
    first_utm_campaign: String,
    #[allow(dead_code)]
    first_country: String,
    #[allow(dead_code)]
    first_browser: String,
    #[allow(dead_code)]
    first_os: String,
    #[allow(dead_code)]
    first_device: String,
}

#[derive(Debug, PartialEq, serde::Deserialize, clickhouse::Row)]
struct Device {
    device_id: u64,
    identity: String,
    user_id: String,
    last_visitor: u64,
    browser: String,
    last_browser_version: String,
    os: String,
    last_os_version: String,
    device: String,
    first_ms: u64,
    last_ms: u64,
}

async fn sessions(ch: &tidemark_shared::clickhouse::ClickHouse, project: Uuid) -> Vec<Session> {
    ch.client
        .query(by_name("sessions.list").sql)
        .bind(project.to_string())
        .bind(0u64)
        .bind(u64::MAX)
        .bind(100u32)
        .fetch_all()
        .await
        .expect("sessions.list")
}

async fn pages(ch: &tidemark_shared::clickhouse::ClickHouse, query: &str, project: Uuid) -> Vec<(String, u64)> {
    ch.client
        .query(by_name(query).sql)
        .bind(project.to_string())
        .bind(0u64)
        .bind(u64::MAX)
        .bind(10u32)
        .fetch_all()
        .await
        .expect(query)
}

async fn devices(ch: &tidemark_shared::clickhouse::ClickHouse, project: Uuid) -> Vec<Device> {
    ch.client.query(by_name("devices.list").sql).bind(project.to_string()).bind(100u32).fetch_all().await.unwrap()
}

#[tokio::test]
async fn scripted_visits_give_known_sessions_and_devices_and_redelivery_changes_nothing() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let t0 = 1_750_000_000_000i64;
    let at = |secs: i64| t0 + secs * 1000;
    let (va, vb, vc) = (101u64, 202u64, 303u64);
    let desktop = agent("Chrome", "Linux", "desktop");
    let phone = agent("Firefox", "Android", "mobile");
    let ev = |visitor: u64, secs: i64, kind: EventType, path: &str| {
        let mut e = event(project, visitor, at(secs), kind, path);
        e.agent = if visitor == vb { phone.clone() } else { desktop.clone() };
        e
    };
    let mut script = Vec::new();
    // Visitor A, first visit: lands from Hacker News with UTM tags, reads pricing, signs up, leaves.
    let mut landing = ev(va, 0, PAGEVIEW, "/");
    landing.referrer = "https://news.ycombinator.com/item?id=1".into();
    landing.referrer_host = "news.ycombinator.com".into();
    landing.referrer_source = "social".into();
    landing.referrer_name = "Hacker News".into();
    landing.utm.source = "hn".into();
    landing.utm.campaign = "launch".into();
    script.push(landing);
    // Visitor B, a phone: two pages two minutes apart.
    script.push(ev(vb, 10, PAGEVIEW, "/docs"));
    script.push(ev(va, 60, PAGEVIEW, "/pricing"));
    script.push(ev(va, 75, EventType::Custom, "/pricing"));
    let mut leave = ev(va, 90, EventType::Pageleave, "/pricing");
    leave.duration_ms = 15_000;
    script.push(leave);
    script.push(ev(vb, 130, PAGEVIEW, "/docs/install"));
    // Visitor C (an anonymous id sent from two browsers): one visitor, one session, two devices.
    script.push(ev(vc, 200, PAGEVIEW, "/c"));
    let mut c_phone = ev(vc, 260, PAGEVIEW, "/c2");
    c_phone.agent = phone.clone();
    script.push(c_phone);
    // A returns after 30 minutes and 1 second of inactivity: a second session, a bounce. B returns within 30
    // minutes of its last event: the same session goes on.
    script.push(ev(va, 90 + 1801, PAGEVIEW, "/blog"));
    script.push(ev(vb, 130 + 1800, PAGEVIEW, "/docs/faq"));
    let jobs = assign_sessions(script);
    let mut conn = env.redis().await;
    enqueue_batches(&mut conn, &env.keys, &jobs, 16).await;

    drain_all(&env).await;

    let got = sessions(&env.ch, project).await;
    assert_eq!(got.len(), 4, "{got:#?}");
    let (a1, b, c, a2) = (&got[0], &got[1], &got[2], &got[3]);
    assert_eq!((a1.first_ms, a1.last_ms, a1.duration_s), (at(0) as u64, at(90) as u64, 90));
    assert_eq!((a1.n_events, a1.n_pageviews, a1.n_interactions, a1.bounce), (4, 2, 1, 0));
    assert_eq!((a1.entry_path.as_str(), a1.exit_path.as_str()), ("/", "/pricing"));
    assert_eq!(
        (a1.first_referrer_host.as_str(), a1.first_source.as_str(), a1.first_referrer_name.as_str()),
        ("news.ycombinator.com", "social", "Hacker News")
    );
    assert_eq!((a1.first_utm_source.as_str(), a1.first_utm_campaign.as_str()), ("hn", "launch"));

    assert_eq!((b.first_ms, b.duration_s, b.n_pageviews, b.bounce), (at(10) as u64, 1920, 3, 0));
    assert_eq!((b.entry_path.as_str(), b.exit_path.as_str()), ("/docs", "/docs/faq"));
    assert_ne!(b.visitor, a1.visitor);

    assert_eq!((c.first_ms, c.duration_s, c.n_pageviews, c.bounce), (at(200) as u64, 60, 2, 0));
    assert_eq!((c.entry_path.as_str(), c.exit_path.as_str()), ("/c", "/c2"));

    assert_eq!((a2.first_ms, a2.duration_s, a2.n_events, a2.n_pageviews, a2.bounce), (at(1891) as u64, 0, 1, 1, 1));
    assert_eq!((a2.entry_path.as_str(), a2.exit_path.as_str()), ("/blog", "/blog"));
    assert_eq!((a2.first_referrer_host.as_str(), a2.first_utm_source.as_str()), ("", ""));
    assert_eq!(a2.visitor, a1.visitor, "same visitor, split only by inactivity");
    assert_ne!(a2.session_id, a1.session_id);

    let expected = Answers {
        events: 10,
        pageviews: 8,
        visitors: 3,
        sessions_from_events: 4,
        sessions: 4,
        bounces: 1,
        avg_duration_s: (90.0 + 1920.0 + 60.0 + 0.0) / 4.0,
        // A's desktop (both sessions), B's phone, C's desktop and phone.
        devices: 4,
    };
    let seen = answers(&env.ch, project).await;
    assert_eq!(seen, expected);
    assert_eq!(pages(&env.ch, "sessions.entry_pages", project).await.len(), 4);
    let exits = pages(&env.ch, "sessions.exit_pages", project).await;
    let mut exit_paths: Vec<&str> = exits.iter().map(|(p, _)| p.as_str()).collect();
    exit_paths.sort();
    assert_eq!(exit_paths, ["/blog", "/c2", "/docs/faq", "/pricing"]);

    // Devices: A's two sessions are one device, seen from its first to its last event; C has two.
    let device_rows = devices(&env.ch, project).await;
    let of = |v: u64| device_rows.iter().filter(|d| d.last_visitor == v).collect::<Vec<_>>();
    assert_eq!(of(va).len(), 1, "two sessions of one browser are one device");
    assert_eq!((of(va)[0].first_ms, of(va)[0].last_ms), (at(0) as u64, at(1891) as u64));
    assert_eq!(of(vc).iter().map(|d| d.device.as_str()).collect::<Vec<_>>(), ["desktop", "mobile"]);
    assert_eq!((a1.visitor, b.visitor, c.visitor), (va, vb, vc));

    // Redelivery: every entry written again through each sink, as a worker killed between insert and ack would.
    let before_sessions: Vec<String> = sessions(&env.ch, project).await.iter().map(|s| format!("{s:?}")).collect();
    let before_devices = devices(&env.ch, project).await;
    rewrite_everything(&env).await;
    let (distinct_ids, rows) = event_counts(&env.ch).await;
    assert_eq!((distinct_ids, rows), (10, 20), "the copies are really there");
    for pass in ["unmerged", "merged"] {
        assert_eq!(answers(&env.ch, project).await, seen, "{pass}");
        let again: Vec<String> = sessions(&env.ch, project).await.iter().map(|s| format!("{s:?}")).collect();
        assert_eq!(again, before_sessions, "{pass}");
        assert_eq!(devices(&env.ch, project).await, before_devices, "{pass}");
        for table in ["events", "sessions", "devices"] {
            env.ch.client.query(&format!("OPTIMIZE TABLE {table} FINAL")).execute().await.unwrap();
        }
    }
}

/// Known answers for devices with explicit agents, written as the hub's script writes entries.
#[tokio::test]
async fn devices_are_one_row_per_identity_and_agent_with_first_and_last_seen() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let t0 = 1_750_000_000_000i64;
    let mut jobs = Vec::new();
    // Visitor 1: ten events on one desktop browser over two sessions; then one after the browser updated itself,
    // which is still the same device, now on version 2.
    for i in 0..10 {
        jobs.push((event(project, 1, t0 + i * 60_000, PAGEVIEW, "/"), if i < 5 { 11 } else { 12 }));
    }
    let mut updated = event(project, 1, t0 + 3_600_000, PAGEVIEW, "/");
    std::sync::Arc::make_mut(&mut updated.agent).browser_version = "2".into();
    jobs.push((updated, 13));
    // Visitor 2: a phone.
    let mut phone = event(project, 2, t0 + 5_000, EventType::Pageview, "/m");
    phone.agent = agent("Safari", "iOS", "mobile");
    jobs.push((phone, 21));
    let mut conn = env.redis().await;
    enqueue_batches(&mut conn, &env.keys, &jobs, 16).await;
    drain(&mut engine(&env, DevicesSink::new(env.ch.clone()), "d", settings(4)).await).await;

    let rows = devices(&env.ch, project).await;
    let summary: Vec<(u64, &str, &str, &str, &str, u64, u64)> = rows
        .iter()
        .map(|d| {
            let (browser, version) = (d.browser.as_str(), d.last_browser_version.as_str());
            (d.last_visitor, d.identity.as_str(), browser, version, d.device.as_str(), d.first_ms, d.last_ms)
        })
        .collect();
    let (t0u, m) = (t0 as u64, 60_000u64);
    assert_eq!(
        summary,
        vec![
            (1, "daily", "Chrome", "2", "desktop", t0u, t0u + 60 * m),
            (2, "daily", "Safari", "1", "mobile", t0u + 5_000, t0u + 5_000),
        ]
    );
    assert!(rows.iter().all(|d| d.last_os_version.is_empty() && !d.os.is_empty() && d.user_id.is_empty()));
    let by_type: Vec<(String, u64)> = env
        .ch
        .client
        .query(by_name("devices.by_type").sql)
        .bind(project.to_string())
        .bind(0u64)
        .bind(u64::MAX)
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(by_type, vec![("desktop".to_owned(), 1), ("mobile".to_owned(), 1)]);
}

/// Reads every entry of the stream and writes it again through all three sinks, bypassing the groups.
async fn rewrite_everything(env: &tidemark_testkit::TestEnv) {
    let mut conn = env.redis().await;
    let reply: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(env.keys.stream(0)).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    let entries: Vec<tidemark_worker::consumer::Entry> = reply
        .ids
        .into_iter()
        .map(|id| tidemark_worker::consumer::Entry { shard: 0, id: id.id, fields: id.map, deliveries: 2 })
        .collect();
    assert!(!entries.is_empty(), "the stream still holds the entries (nothing trims in this test)");
    write_all(&EventsSink::new(env.ch.clone()), &entries).await;
    write_all(&SessionsSink::new(env.ch.clone()), &entries).await;
    write_all(&DevicesSink::new(env.ch.clone()), &entries).await;
}

async fn write_all<S: Sink>(sink: &S, entries: &[tidemark_worker::consumer::Entry]) {
    let rows: Vec<S::Row> = entries
        .iter()
        .flat_map(|e| e.jobs().expect("the hub's entries split"))
        .filter_map(|job| match sink.decode(&job) {
            Decoded::Row(row) => Some(row),
            _ => None,
        })
        .collect();
    sink.write(&rows).await.expect("rewrite");
}
