//! `POST /api/v2/funnel` through real HTTP, against real PostgreSQL and the ClickHouse 18.16 server, on a small
//! scripted history written the way the workers write it (their own row types and insert; the helpers are a copy
//! of the minimum of `query_api.rs`), with one batch written twice so copies sit on disk. The project's clock is
//! UTC; every event is on 10 Jan 2024 unless said otherwise. Funnel `/` → `/pricing/**` → custom `Signup`:
//!
//! | visitor | country | events | reaches (window 1800 s) |
//! |---|---|---|---|
//! | 1 | DE | 09:00 pv `/`, 09:05 pv `/pricing/pro`, 09:10 custom `Signup`: **written twice** | 3 |
//! | 2 | US | 10:00 pv `/`, 10:01 pv `/pricing/team` | 2 |
//! | 3 | DE | 11:00 pv `/` | 1 |
//! | 4 | US | 12:00 pv `/pricing/pro`, 12:05 pv `/` (out of order) | 1 |
//! | 5 | DE | 13:00 pv `/`, 13:40 pv `/pricing/x` (40 min: outside 30, inside 60) | 1 (2 with 3600 s or "session") |
//! | 6 | US | 14:00 custom `Signup` fired on path `/` (not a pageview) | 0 |
//! | 7 | US | 15:00 pv `/` in session 7, 15:10 pv `/pricing/a` in session 8 | 2 (1 with "session") |
//! | 8 | DE | 16:00 pv `/`, 16:01 pv `/pricing` (not `/pricing/**`), 16:02 pageleave `/pricing/a` | 1 |
//! | 9 | DE | 11 Jan 09:00 pv `/`, 09:01 pv `/pricing/a`: outside the range | - |
//!
//! So: entered {1,2,3,4,5,7,8} = 7; step 2 {1,2,7} = 3; step 3 {1} = 1.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tidemark_app::AppConfig;
use tidemark_app::auth::keys;
use tidemark_app::auth::roles::Scope;
use tidemark_app::goals::{GoalKind, store as goals};
use tidemark_shared::job::{Agent, EventJob, EventType, Geo};
use tidemark_shared::secret::Secret;
use tidemark_testkit::{TestEnv, test_env};
use tidemark_worker::events_sink::EventRow;
use tidemark_worker::sessions_sink::SessionInputRow;
use tidemark_worker::sink::{EventTable, insert_all};
use uuid::Uuid;

struct TestApp {
    env: TestEnv,
    base: String,
    http: reqwest::Client,
    project: Uuid,
    key: String,
}

const RANGE: [&str; 2] = ["2024-01-10", "2024-01-10"];
const STEPS: &str = r#"[{"page": "/"}, {"page": "/pricing/**"}, {"event": "Signup"}]"#;

async fn spawn_app_with(clickhouse_url: Option<&str>) -> TestApp {
    let env = test_env().await;
    let config = AppConfig {
        postgres_url: Secret::new(env.postgres_url.clone()),
        clickhouse_url: Secret::new(clickhouse_url.unwrap_or(&env.clickhouse_url).to_owned()),
        clickhouse_database: String::new(),
        ..AppConfig::default()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = tidemark_app::startup::build(&config, listener).unwrap();
    tokio::spawn(app.server);
    let (project, _) = env.project(&["shop.example"]).await;
    sqlx::query("UPDATE projects SET timezone = 'UTC' WHERE id = $1").bind(project).execute(&env.pg).await.unwrap();
    let key = keys::create(&env.pg, project, Scope::Read, "test").await.unwrap().key;
    TestApp { env, base: format!("http://127.0.0.1:{}", app.port), http: reqwest::Client::new(), project, key }
}

async fn spawn_app() -> TestApp {
    let app = spawn_app_with(None).await;
    seed(&app.env, app.project).await;
    goals::create(&app.env.pg, app.project, GoalKind::Event { event_name: "Signup".into() }, None).await.unwrap();
    goals::create(&app.env.pg, app.project, GoalKind::Page { page_path: "/pricing/**".into() }, None).await.unwrap();
    app
}

fn event(
    project: Uuid,
    visitor: u64,
    session: u64,
    country: &str,
    at: &str,
    kind: EventType,
    path: &str,
) -> (EventJob, u64) {
    let ms = chrono::DateTime::parse_from_rfc3339(&format!("2024-01-{at}Z")).unwrap().timestamp_millis();
    let job = EventJob {
        project_id: project,
        event_id: Uuid::new_v4(),
        event_type: kind,
        name: if kind == EventType::Custom { "Signup".into() } else { String::new() },
        ts_ms: ms,
        received_ms: ms,
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
        geo: Arc::new(Geo { country: country.into(), ..Default::default() }),
        agent: Arc::new(Agent::default()),
        screen_width: 1280,
        duration_ms: 0,
        props: Vec::new(),
    };
    (job, session)
}

/// Writes a batch as the events and sessions workers do: each worker's row type, one insert per table.
async fn write(env: &TestEnv, batch: &[(EventJob, u64)]) {
    let events: Vec<EventRow> = batch.iter().filter_map(|(e, s)| EventRow::from_event(e.clone(), *s)).collect();
    let sessions: Vec<SessionInputRow> =
        batch.iter().filter_map(|(e, s)| SessionInputRow::from_event(e.clone(), *s)).collect();
    insert_all(&env.ch, "events", &events).await.unwrap();
    insert_all(&env.ch, "session_input", &sessions).await.unwrap();
}

async fn seed(env: &TestEnv, p: Uuid) {
    use EventType::{Custom, Pageleave, Pageview};
    let first = vec![
        event(p, 1, 1, "DE", "10T09:00:00", Pageview, "/"),
        event(p, 1, 1, "DE", "10T09:05:00", Pageview, "/pricing/pro"),
        event(p, 1, 1, "DE", "10T09:10:00", Custom, "/pricing/pro"),
    ];
    // Redelivered: the same batch written twice, so every row of visitor 1 has a copy on disk.
    write(env, &first).await;
    write(env, &first).await;
    let rest = vec![
        event(p, 2, 2, "US", "10T10:00:00", Pageview, "/"),
        event(p, 2, 2, "US", "10T10:01:00", Pageview, "/pricing/team"),
        event(p, 3, 3, "DE", "10T11:00:00", Pageview, "/"),
        event(p, 4, 4, "US", "10T12:00:00", Pageview, "/pricing/pro"),
        event(p, 4, 4, "US", "10T12:05:00", Pageview, "/"),
        event(p, 5, 5, "DE", "10T13:00:00", Pageview, "/"),
        event(p, 5, 5, "DE", "10T13:40:00", Pageview, "/pricing/x"),
        event(p, 6, 6, "US", "10T14:00:00", Custom, "/"),
        event(p, 7, 7, "US", "10T15:00:00", Pageview, "/"),
        event(p, 7, 8, "US", "10T15:10:00", Pageview, "/pricing/a"),
        event(p, 8, 9, "DE", "10T16:00:00", Pageview, "/"),
        event(p, 8, 9, "DE", "10T16:01:00", Pageview, "/pricing"),
        event(p, 8, 9, "DE", "10T16:02:00", Pageleave, "/pricing/a"),
        event(p, 9, 10, "DE", "11T09:00:00", Pageview, "/"),
        event(p, 9, 10, "DE", "11T09:01:00", Pageview, "/pricing/a"),
    ];
    write(env, &rest).await;
}

impl TestApp {
    async fn post_with(&self, key: &str, body: &Value) -> (StatusCode, Value) {
        let response =
            self.http.post(format!("{}/api/v2/funnel", self.base)).bearer_auth(key).json(body).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, body: &Value) -> (StatusCode, Value) {
        self.post_with(&self.key, body).await
    }

    /// The funnel over the scripted day; `extra` adds or replaces fields. Returns each step's visitors.
    async fn reached(&self, extra: Value) -> Vec<u64> {
        let answer = self.funnel(extra).await;
        answer["steps"].as_array().unwrap().iter().map(|s| s["visitors"].as_u64().unwrap()).collect()
    }

    async fn funnel(&self, extra: Value) -> Value {
        let mut body = json!({ "site_id": "shop.example", "date_range": RANGE,
                               "steps": serde_json::from_str::<Value>(STEPS).unwrap() });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = self.post(&body).await;
        assert_eq!(status, StatusCode::OK, "{body} -> {answer}");
        answer
    }
}

#[tokio::test]
async fn steps_match_the_hand_count_and_copies_on_disk_change_nothing() {
    let app = spawn_app().await;
    let rows: u64 =
        app.env.ch.client.query("SELECT count() FROM events WHERE visitor_id = 1").fetch_one().await.unwrap();
    assert_eq!(rows, 6, "the redelivered batch is on disk twice");
    let answer = app.funnel(json!({})).await;
    assert_eq!(
        answer["steps"],
        json!([
            { "label": "/", "visitors": 7, "conversion_rate": 100.0, "conversion_rate_step": 100.0,
              "dropoff": 0, "dropoff_rate": 0.0 },
            { "label": "/pricing/**", "visitors": 3, "conversion_rate": 42.86, "conversion_rate_step": 42.86,
              "dropoff": 4, "dropoff_rate": 57.14 },
            { "label": "Signup", "visitors": 1, "conversion_rate": 14.29, "conversion_rate_step": 33.33,
              "dropoff": 2, "dropoff_rate": 66.67 },
        ])
    );
    assert_eq!(answer["query"]["window"], json!(1800));
    assert_eq!(answer["query"]["date_range"], json!(["2024-01-10T00:00:00Z", "2024-01-10T23:59:59Z"]));
    assert_eq!(answer["meta"], json!({ "entered": 7, "completed": 1 }));
    // Where copies would count: on 18.16 `windowFunnel` takes a copy of an event for the next step when both
    // steps match it. Nobody viewed `/` twice; visitor 1's one view of `/` has a copy on disk.
    let twice = json!([{ "page": "/" }, { "page": "/" }]);
    assert_eq!(app.reached(json!({ "steps": twice })).await, vec![7, 0]);
}

#[tokio::test]
async fn windows_filters_and_goal_steps() {
    let app = spawn_app().await;
    // Visitor 5's second step came after 40 minutes.
    assert_eq!(app.reached(json!({ "window": 3600 })).await, vec![7, 4, 1]);
    // Within one visit: visitor 7's second step was in another visit (out), visitor 5's 40 minutes were one
    // visit (in).
    assert_eq!(app.reached(json!({ "window": "session" })).await, vec![7, 3, 1]);
    let us = json!([["is", "visit:country", ["US"]]]);
    assert_eq!(app.reached(json!({ "filters": us })).await, vec![3, 2, 0]);
    assert_eq!(app.reached(json!({ "filters": us, "window": "session" })).await, vec![3, 1, 0]);
    // A visit filter keeps the visitors from DE: 1, 3, 5 and 8.
    assert_eq!(app.reached(json!({ "filters": [["is", "visit:country", ["DE"]]] })).await, vec![4, 1, 1]);
    // An event filter keeps the events it matches: without `/` no one enters.
    assert_eq!(app.reached(json!({ "filters": [["contains", "event:page", ["pricing"]]] })).await, vec![0, 0, 0]);
    let goals = json!([{ "page": "/" }, { "goal": "Visit /pricing/**" }, { "goal": "Signup" }]);
    assert_eq!(app.reached(json!({ "steps": goals })).await, vec![7, 3, 1]);
    // Event steps: the custom event alone, then a page after it (nobody).
    let events = json!([{ "event": "Signup" }, { "page": "/**" }]);
    assert_eq!(app.reached(json!({ "steps": events })).await, vec![2, 0]);
    // A range with nobody in it: zeros, no division by zero.
    let empty = app.funnel(json!({ "date_range": ["2023-01-01", "2023-01-02"] })).await;
    assert_eq!(empty["steps"][1]["conversion_rate"], json!(0.0));
    // `all` starts on the project's first day (10 Jan) and takes in visitor 9 on 11 Jan.
    let all = app.funnel(json!({ "date_range": "all" })).await;
    assert_eq!(all["query"]["date_range"][0], json!("2024-01-10T00:00:00Z"));
    assert_eq!(all["steps"][1]["visitors"], json!(4));
}

#[tokio::test]
async fn a_signed_in_member_reads_with_the_csrf_token_and_not_without() {
    let app = spawn_app().await;
    let account =
        tidemark_app::users::create(&app.env.pg, "viewer@x.test", "a long enough password", false).await.unwrap();
    tidemark_app::auth::roles::grant(&app.env.pg, app.project, account, tidemark_app::auth::roles::Role::Viewer)
        .await
        .unwrap();
    let login = app
        .http
        .post(format!("{}/api/v1/login", app.base))
        .json(&json!({ "email": "viewer@x.test", "password": "a long enough password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = login.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_owned();
    let body = json!({ "site_id": "shop.example", "date_range": RANGE, "steps": [{ "page": "/" }, { "page": "/x" }] });
    let url = format!("{}/api/v2/funnel", app.base);
    let without = app.http.post(&url).header("Cookie", &cookie).json(&body).send().await.unwrap();
    assert_eq!(without.status(), StatusCode::FORBIDDEN);
    let with =
        app.http.post(&url).header("Cookie", &cookie).header("X-CSRF-Token", csrf).json(&body).send().await.unwrap();
    assert_eq!(with.status(), StatusCode::OK);
    assert_eq!(with.json::<Value>().await.unwrap()["steps"][0]["visitors"], json!(7));
}

#[tokio::test]
async fn bad_funnels_are_400_naming_the_part() {
    let app = spawn_app().await;
    let base = json!({ "site_id": "shop.example", "date_range": RANGE, "steps": [{ "page": "/" }, { "event": "E" }] });
    let with = |key: &str, value: Value| {
        let mut b = base.clone();
        b[key] = value;
        b
    };
    let cases = [
        (with("steps", json!([{ "page": "/" }])), "#/steps: "),
        (with("steps", json!((0..9).map(|i| json!({ "page": format!("/{i}") })).collect::<Vec<_>>())), "#/steps: "),
        (with("steps", json!([{ "page": "/" }, { "page": "pricing" }])), "#/steps/1/page: "),
        (with("steps", json!([{ "page": "/" }, { "url": "/" }])), "#/steps/1: "),
        (with("steps", json!([{ "page": "/" }, { "goal": "Nope" }])), "#/steps/1/goal: "),
        (with("steps", json!("/")), "#/steps: "),
        (with("window", json!(0)), "#/window: "),
        (with("window", json!(86_401)), "#/window: "),
        (with("window", json!("visit")), "#/window: "),
        (with("date_range", json!("lately")), "#/date_range: "),
        (with("filters", json!([["is", "visit:nothing", ["x"]]])), "#/filters/0: "),
        (with("metrics", json!(["visitors"])), "#/metrics: "),
    ];
    for (body, prefix) in cases {
        let (status, answer) = app.post(&body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(prefix), "{body} -> {error}");
    }
    let (status, answer) = app.post(&json!({ "date_range": "7d", "steps": [] })).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some(tidemark_app::query_api::MISSING_SITE))
    );
    let bad_json = app.http.post(format!("{}/api/v2/funnel", app.base)).bearer_auth(&app.key).body("{").send().await;
    assert_eq!(bad_json.unwrap().status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn another_projects_key_gets_404_like_an_unknown_site() {
    let app = spawn_app().await;
    let (other, _) = app.env.project(&["other.example"]).await;
    let other_key = keys::create(&app.env.pg, other, Scope::Read, "b").await.unwrap().key;
    let body = json!({ "site_id": "shop.example", "date_range": RANGE, "steps": [{ "page": "/" }, { "page": "/x" }] });
    let foreign = app.post_with(&other_key, &body).await;
    assert_eq!(foreign.0, StatusCode::NOT_FOUND);
    assert_eq!(foreign.1, json!({ "error": tidemark_app::query_api::UNKNOWN_SITE }));
    let mut unknown = body.clone();
    unknown["site_id"] = json!("nobody.example");
    assert_eq!(app.post(&unknown).await, foreign);
    let anonymous = app.http.post(format!("{}/api/v2/funnel", app.base)).json(&body).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn clickhouse_down_is_503_not_500() {
    let app = spawn_app_with(Some("http://default@127.0.0.1:9/nothing")).await;
    let body = json!({ "site_id": "shop.example", "date_range": "7d", "steps": [{ "page": "/" }, { "page": "/x" }] });
    let (status, answer) = app.post(&body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(answer["error"].is_string());
}
