//! Shared pieces of the pipeline tests: jobs written to the stream exactly as the hub's ingest script writes them,
//! engines on the test's own key prefix, worker processes, and the counts the assertions compare.

use redis::aio::MultiplexedConnection;
use std::sync::Arc;
use std::time::Duration;
use tidemark_shared::clickhouse::ClickHouse;
use tidemark_shared::job::{Agent, EventJob, EventType, FIELD_JOB, FIELD_KIND, FIELD_SESSION, FIELD_VISITOR, JobKind};
use tidemark_shared::keys::Keys;
use tidemark_testkit::TestEnv;
use tidemark_testkit::batch;
use tidemark_worker::consumer::Consumer;
use tidemark_worker::devices_sink::DevicesSink;
use tidemark_worker::events_sink::EventsSink;
use tidemark_worker::runner::{Engine, EngineSettings, Outcome, Recovery};
use tidemark_worker::sessions_sink::SessionsSink;
use tidemark_worker::sink::Sink;
use tidemark_worker::users_sink::UsersSink;
use uuid::Uuid;

pub const PAGEVIEW: EventType = EventType::Pageview;

pub fn agent(browser: &str, os: &str, device: &str) -> Arc<Agent> {
    Arc::new(Agent {
        browser: browser.into(),
        browser_version: "1".into(),
        os: os.into(),
        os_version: String::new(),
        device: device.into(),
    })
}

/// One enriched event as the hub builds it.
pub fn event(project: Uuid, visitor: u64, ts_ms: i64, kind: EventType, path: &str) -> EventJob {
    EventJob {
        project_id: project,
        event_id: Uuid::new_v4(),
        event_type: kind,
        name: if kind == EventType::Custom { "signup".into() } else { String::new() },
        ts_ms,
        received_ms: ts_ms,
        visitor_id: visitor,
        visitor_kind: Default::default(),
        user_id: String::new(),
        url: format!("https://shop.example{path}"),
        host: "shop.example".into(),
        path: path.into(),
        title: String::new(),
        referrer: String::new(),
        referrer_host: String::new(),
        referrer_source: "direct".into(),
        referrer_name: String::new(),
        utm: Default::default(),
        geo: Default::default(),
        agent: agent("Chrome", "Linux", "desktop"),
        screen_width: 1280,
        duration_ms: 0,
        props: Vec::new(),
    }
}

/// Appends jobs as single-job entries (`k`, `s`, `v`, `j`; `event.v1`), the layout of earlier hubs and of
/// redriven dead letters, pipelined; returns entry ids.
pub async fn enqueue(conn: &mut MultiplexedConnection, keys: &Keys, jobs: &[(EventJob, u64)]) -> Vec<String> {
    let mut ids = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(1000) {
        let mut pipe = redis::pipe();
        for (event, session) in chunk {
            pipe.cmd("XADD")
                .arg(keys.stream(0))
                .arg("*")
                .arg(FIELD_KIND)
                .arg(JobKind::EventV1.as_str())
                .arg(FIELD_SESSION)
                .arg(session)
                .arg(FIELD_VISITOR)
                .arg(event.visitor_id)
                .arg(FIELD_JOB)
                .arg(serde_json::to_string(event).unwrap());
        }
        let chunk_ids: Vec<String> = pipe.query_async(conn).await.expect("XADD");
        ids.extend(chunk_ids);
    }
    ids
}

/// Appends jobs as the hub's script does: `batch.v1` entries of `per_entry` `event.v2` jobs each, with the
/// script's session and visitor assignments; returns entry ids.
pub async fn enqueue_batches(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    jobs: &[(EventJob, u64)],
    per_entry: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in jobs.chunks(per_entry * 100) {
        let mut pipe = redis::pipe();
        for entry in chunk.chunks(per_entry) {
            let (assigned, frames) = batch::encode_events(entry);
            pipe.add_command(batch::xadd(&keys.stream(0), &assigned, &frames));
        }
        let chunk_ids: Vec<String> = pipe.query_async(conn).await.expect("XADD");
        ids.extend(chunk_ids);
    }
    ids
}

/// `n` events of `visitors` visitors, each visitor one session, a second apart, on three pages.
pub fn load(project: Uuid, n: usize, visitors: u64, start_ms: i64) -> Vec<(EventJob, u64)> {
    (0..n)
        .map(|i| {
            let visitor = 1 + (i as u64 % visitors);
            let pages = ["/", "/pricing", "/docs"];
            let e = event(project, visitor, start_ms + i as i64 * 10, PAGEVIEW, pages[i % pages.len()]);
            (e, 1_000_000 + visitor)
        })
        .collect()
}

pub fn settings(batch_size: usize) -> EngineSettings {
    EngineSettings { batch_size, max_wait: Duration::from_millis(100) }
}

/// Takes over entries idle for 200 ms; parks an entry after `max_deliveries`.
pub fn quick_recovery(max_deliveries: u64) -> Recovery {
    Recovery { claim_idle: Duration::from_millis(200), max_deliveries, ..Recovery::default() }
}

pub async fn engine<S: Sink>(env: &TestEnv, sink: S, name: &str, settings: EngineSettings) -> Engine<S> {
    let consumer =
        Consumer::connect(&env.stores.redis_url, env.keys.clone(), sink.group(), name.into()).await.expect("consumer");
    Engine::new(consumer, sink, settings)
}

pub async fn events_engine(env: &TestEnv, ch: &ClickHouse, name: &str) -> Engine<EventsSink> {
    engine(env, EventsSink::new(ch.clone()), name, settings(1000)).await
}

/// Steps until the stream has nothing more; panics on a failed insert (the shared ClickHouse is up).
pub async fn drain<S: Sink>(engine: &mut Engine<S>) -> usize {
    let mut rows = 0;
    loop {
        match engine.process_batch().await.expect("stream step") {
            Outcome::Idle => return rows,
            Outcome::Written { rows: n, .. } => rows += n,
            Outcome::Retrying { error, .. } => panic!("insert failed: {error}"),
        }
    }
}

/// Drains the stream through all four worker kinds.
pub async fn drain_all(env: &TestEnv) {
    drain(&mut events_engine(env, &env.ch, "t-events").await).await;
    drain(&mut engine(env, SessionsSink::new(env.ch.clone()), "t-sessions", settings(1000)).await).await;
    drain(&mut engine(env, DevicesSink::new(env.ch.clone()), "t-devices", settings(1000)).await).await;
    drain(&mut engine(env, UsersSink::new(env.ch.clone()), "t-users", settings(1000)).await).await;
}

/// Entries delivered to `group` and not acknowledged.
pub async fn pending(conn: &mut MultiplexedConnection, keys: &Keys, group: &str) -> u64 {
    let summary: Vec<redis::Value> =
        redis::cmd("XPENDING").arg(keys.stream(0)).arg(group).query_async(conn).await.expect("XPENDING");
    match summary.first() {
        Some(redis::Value::Int(n)) => *n as u64,
        other => panic!("unexpected XPENDING reply {other:?}"),
    }
}

/// (distinct event ids, physical rows) in `events`: the first is what queries see, the second shows whether
/// duplicates were really written.
pub async fn event_counts(ch: &ClickHouse) -> (u64, u64) {
    ch.client.query("SELECT uniqExact(event_id), count() FROM events").fetch_one::<(u64, u64)>().await.expect("count")
}

/// What the app's queries answer for a project over all time, through the catalog's SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct Answers {
    pub events: u64,
    pub pageviews: u64,
    pub visitors: u64,
    pub sessions_from_events: u64,
    pub sessions: u64,
    pub bounces: u64,
    pub avg_duration_s: f64,
    /// Devices seen (any identity).
    pub devices: u64,
}

impl Answers {
    /// What `load(project, n, visitors, _)` must show once everything is in ClickHouse exactly once: every event a
    /// pageview, one session and one device per visitor, no bounce.
    pub fn for_load(n: usize, visitors: u64) -> Self {
        Answers {
            events: n as u64,
            pageviews: n as u64,
            visitors,
            sessions_from_events: visitors,
            sessions: visitors,
            bounces: 0,
            avg_duration_s: load_avg_duration(n, visitors),
            devices: visitors,
        }
    }
}

/// `load` spaces events 10 ms apart round-robin over visitors, so visitor v's events span (n/visitors - 1) steps.
pub fn load_avg_duration(n: usize, visitors: u64) -> f64 {
    let per_visitor = n as u64 / visitors;
    (((per_visitor - 1) * visitors * 10) / 1000) as f64
}

pub async fn answers(ch: &ClickHouse, project: Uuid) -> Answers {
    use tidemark_shared::queries::by_name;
    let p = project.to_string();
    let (pageviews, visitors, sessions_from_events, events): (u64, u64, u64, u64) = ch
        .client
        .query(by_name("events.totals").sql)
        .bind(&p)
        .bind(0u32)
        .bind(u32::MAX)
        .fetch_one()
        .await
        .expect("events.totals");
    let (sessions, bounces, _rate, avg_duration_s): (u64, u64, f64, f64) = ch
        .client
        .query(by_name("sessions.summary").sql)
        .bind(&p)
        .bind(0u64)
        .bind(u64::MAX)
        .fetch_one()
        .await
        .expect("sessions.summary");
    let by_identity: Vec<(String, u64)> = ch
        .client
        .query(by_name("devices.seen").sql)
        .bind(&p)
        .bind(0u64)
        .bind(u64::MAX)
        .fetch_all()
        .await
        .expect("devices.seen");
    let devices = by_identity.iter().map(|(_, n)| n).sum();
    Answers { events, pageviews, visitors, sessions_from_events, sessions, bounces, avg_duration_s, devices }
}

/// Polls until `check` holds or `timeout` passes; returns whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Dead letters on shard 0.
pub async fn dead_letter_count(env: &TestEnv) -> u64 {
    let mut conn = env.redis().await;
    redis::cmd("XLEN").arg(env.keys.dead_letters(0)).query_async(&mut conn).await.expect("XLEN")
}

/// A worker binary of this crate, started with only the settings given (no inherited `TIDEMARK_*`).
pub fn spawn_worker(bin: &str, env: &TestEnv, clickhouse_url: &str, extra: &[(&str, String)]) -> tokio::process::Child {
    let path = match bin {
        "worker-events" => env!("CARGO_BIN_EXE_worker-events"),
        "worker-sessions" => env!("CARGO_BIN_EXE_worker-sessions"),
        "worker-devices" => env!("CARGO_BIN_EXE_worker-devices"),
        "worker-users" => env!("CARGO_BIN_EXE_worker-users"),
        other => panic!("no worker binary {other}"),
    };
    let mut cmd = tokio::process::Command::new(path);
    cmd.env_clear()
        .env("RUST_LOG", "info")
        .env("TIDEMARK_CONFIG", "/dev/null")
        .env("TIDEMARK_REDIS_URL", &env.stores.redis_url)
        .env("TIDEMARK_CLICKHOUSE_URL", clickhouse_url)
        .env("TIDEMARK_KEY_PREFIX", &env.key_prefix)
        .kill_on_drop(true);
    for (key, value) in extra {
        cmd.env(key, value);
    }
    cmd.spawn().expect("worker binary starts")
}

pub fn signal(child: &tokio::process::Child, name: &str) {
    let pid = child.id().expect("running child").to_string();
    let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(pid).status().expect("kill");
    assert!(status.success(), "kill -{name} failed");
}
