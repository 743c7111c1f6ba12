//! `POST /api/v2/query` through real HTTP, against real PostgreSQL and the ClickHouse 18.16 server, on a small
//! scripted history written the way the workers write it (their own row types and insert), with one batch written
//! twice so copies sit on disk. Every expected number below is worked out by hand from the script.
//!
//! The project's clock is Europe/Berlin (UTC+1 in January). The script, in UTC:
//!
//! | session | visitor | events (UTC) | session facts |
//! |---|---|---|---|
//! | 101 | 1 | 09:00:00 pv `/`, 09:00:30 pv `/pricing`, 09:01:00 leave `/pricing` 20 s, 09:02:00 custom `Signup` (plan=pro) on 10 Jan | Google (search), DE, Chrome; 120 s; entry `/`, exit `/pricing`; **written twice** |
//! | 102 | 2 | 12:00:00 pv `/`, 12:00:40 leave `/` 40 s on 10 Jan | direct, US, Firefox; bounce; 40 s |
//! | 103 | 3 | 22:59:00 pv `/blog` (23:59 local 10 Jan), 23:01:00 pv `/pricing` (00:01 local **11 Jan**) | utm newsletter/email, DE, Safari mobile; 120 s |
//! | 104 | 1 | 08:00:00 pv `/blog` on 11 Jan | Google, DE, Chrome; bounce; 0 s |
//! | 0 | 2 | 13:00:00 leave `/` 5 s on 10 Jan, after its session expired | events only |
//! | 0 | 3 | 23:30:00 leave `/pricing` 50 s on 10 Jan, after its session expired | events only |
//! | 105 | 5 | 22:30:00 pv `/` on 9 Jan (23:30 local 9 Jan): before the range | |
//! | 106 | 6 | 23:30:00 pv `/` on 11 Jan (00:30 local 12 Jan): after the range | |
//!
//! Range `["2024-01-10", "2024-01-11"]`: visitors {1, 2, 3} = 3; visits 101-104 = 4; pageviews 2+1+2+1 = 6;
//! events 6 + 1 custom = 7; bounces 102, 104 = 50 %; duration (120+40+120+0)/4 = 70 s; views per visit 6/4 = 1.5.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tidemark_app::AppConfig;
use tidemark_app::auth::keys;
use tidemark_app::auth::roles::Scope;
use tidemark_app::goals::{GoalKind, store as goals};
use tidemark_shared::job::{Agent, EventJob, EventType, Geo, Utm};
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

const RANGE: [&str; 2] = ["2024-01-10", "2024-01-11"];

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
    sqlx::query("UPDATE projects SET timezone = 'Europe/Berlin' WHERE id = $1")
        .bind(project)
        .execute(&env.pg)
        .await
        .unwrap();
    let key = keys::create(&env.pg, project, Scope::Read, "test").await.unwrap().key;
    TestApp { env, base: format!("http://127.0.0.1:{}", app.port), http: reqwest::Client::new(), project, key }
}

async fn spawn_app() -> TestApp {
    let app = spawn_app_with(None).await;
    seed(&app.env, app.project).await;
    goals::create(&app.env.pg, app.project, GoalKind::Event { event_name: "Signup".into() }, None).await.unwrap();
    goals::create(&app.env.pg, app.project, GoalKind::Page { page_path: "/pricing".into() }, None).await.unwrap();
    app
}

fn ms(utc: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(utc).unwrap().timestamp_millis()
}

struct Visit {
    session: u64,
    visitor: u64,
    source: (&'static str, &'static str, &'static str),
    utm: (&'static str, &'static str),
    country: &'static str,
    agent: (&'static str, &'static str, &'static str),
}

fn event(project: Uuid, v: &Visit, at: &str, kind: EventType, path: &str) -> (EventJob, u64) {
    let job = EventJob {
        project_id: project,
        event_id: Uuid::new_v4(),
        event_type: kind,
        name: String::new(),
        ts_ms: ms(at),
        received_ms: ms(at),
        visitor_id: v.visitor,
        visitor_kind: Default::default(),
        user_id: String::new(),
        url: format!("https://shop.example{path}"),
        host: "shop.example".into(),
        path: path.into(),
        title: String::new(),
        referrer: if v.source.2.is_empty() { String::new() } else { format!("https://{}/", v.source.2) },
        referrer_host: v.source.2.into(),
        referrer_source: v.source.0.into(),
        referrer_name: v.source.1.into(),
        utm: Utm { source: v.utm.0.into(), medium: v.utm.1.into(), ..Default::default() },
        geo: Arc::new(Geo { country: v.country.into(), ..Default::default() }),
        agent: Arc::new(Agent {
            browser: v.agent.0.into(),
            browser_version: "1".into(),
            os: v.agent.1.into(),
            os_version: String::new(),
            device: v.agent.2.into(),
        }),
        screen_width: 1280,
        duration_ms: 0,
        props: Vec::new(),
    };
    (job, v.session)
}

/// Writes a batch as the events and sessions workers do: each worker's row type, one insert per table.
async fn write(env: &TestEnv, batch: &[(EventJob, u64)]) {
    let events: Vec<EventRow> = batch.iter().filter_map(|(e, s)| EventRow::from_event(e.clone(), *s)).collect();
    let sessions: Vec<SessionInputRow> =
        batch.iter().filter_map(|(e, s)| SessionInputRow::from_event(e.clone(), *s)).collect();
    insert_all(&env.ch, "events", &events).await.unwrap();
    insert_all(&env.ch, "session_input", &sessions).await.unwrap();
}

async fn seed(env: &TestEnv, project: Uuid) {
    let google = ("search", "Google", "google.com");
    let direct = ("direct", "", "");
    let chrome = ("Chrome", "Linux", "desktop");
    let v1 = Visit { session: 101, visitor: 1, source: google, utm: ("", ""), country: "DE", agent: chrome };
    let v2 = Visit {
        session: 102,
        visitor: 2,
        source: direct,
        utm: ("", ""),
        country: "US",
        agent: ("Firefox", "Windows", "desktop"),
    };
    let v3 = Visit {
        session: 103,
        visitor: 3,
        source: ("email", "", ""),
        utm: ("newsletter", "email"),
        country: "DE",
        agent: ("Safari", "iOS", "mobile"),
    };
    let v4 = Visit { session: 104, visitor: 1, source: google, utm: ("", ""), country: "DE", agent: chrome };
    let expired = Visit { session: 0, ..Visit { visitor: 2, ..v2 } };
    let expired3 = Visit { session: 0, ..Visit { visitor: 3, ..v3 } };
    let before = Visit { session: 105, visitor: 5, ..Visit { ..v4 } };
    let after = Visit { session: 106, visitor: 6, ..Visit { ..before } };

    let mut s1 = vec![
        event(project, &v1, "2024-01-10T09:00:00Z", EventType::Pageview, "/"),
        event(project, &v1, "2024-01-10T09:00:30Z", EventType::Pageview, "/pricing"),
        event(project, &v1, "2024-01-10T09:01:00Z", EventType::Pageleave, "/pricing"),
        event(project, &v1, "2024-01-10T09:02:00Z", EventType::Custom, "/pricing"),
    ];
    s1[2].0.duration_ms = 20_000;
    s1[3].0.name = "Signup".into();
    s1[3].0.props = vec![("plan".into(), "pro".into())];
    // Redelivered: the same batch written twice, so every row of session 101 has a copy on disk.
    write(env, &s1).await;
    write(env, &s1).await;

    let mut rest = vec![
        event(project, &v2, "2024-01-10T12:00:00Z", EventType::Pageview, "/"),
        event(project, &v2, "2024-01-10T12:00:40Z", EventType::Pageleave, "/"),
        event(project, &v3, "2024-01-10T22:59:00Z", EventType::Pageview, "/blog"),
        event(project, &v3, "2024-01-10T23:01:00Z", EventType::Pageview, "/pricing"),
        event(project, &v4, "2024-01-11T08:00:00Z", EventType::Pageview, "/blog"),
        event(project, &expired, "2024-01-10T13:00:00Z", EventType::Pageleave, "/"),
        event(project, &before, "2024-01-09T22:30:00Z", EventType::Pageview, "/"),
        event(project, &after, "2024-01-11T23:30:00Z", EventType::Pageview, "/"),
        event(project, &expired3, "2024-01-10T23:30:00Z", EventType::Pageleave, "/pricing"),
    ];
    rest[1].0.duration_ms = 40_000;
    rest[5].0.duration_ms = 5_000;
    rest[8].0.duration_ms = 50_000;
    write(env, &rest).await;
}

impl TestApp {
    async fn post(&self, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/api/v2/query", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A query over the scripted range; `extra` adds or replaces fields.
    async fn query(&self, metrics: Value, extra: Value) -> Value {
        let mut body = json!({ "site_id": "shop.example", "metrics": metrics, "date_range": RANGE });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = self.post(body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body} -> {answer}");
        answer
    }

    /// `[dimensions..., metrics...]` per result row.
    async fn rows(&self, metrics: Value, extra: Value) -> Vec<Value> {
        let answer = self.query(metrics, extra).await;
        answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut row = r["dimensions"].as_array().unwrap().clone();
                row.extend(r["metrics"].as_array().unwrap().iter().cloned());
                Value::Array(row)
            })
            .collect()
    }
}

#[tokio::test]
async fn aggregates_match_the_hand_count_and_copies_on_disk_change_nothing() {
    let app = spawn_app().await;
    // The copies are really there: plain row counts see session 101 twice.
    let rows: u64 =
        app.env.ch.client.query("SELECT count() FROM events WHERE session_id = 101").fetch_one().await.unwrap();
    assert_eq!(rows, 8);
    let metrics =
        json!(["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"]);
    let answer = app.query(metrics.clone(), json!({})).await;
    assert_eq!(answer["results"], json!([{ "metrics": [3, 4, 6, 7, 50, 70, 1.5], "dimensions": [] }]));
    assert_eq!(answer["meta"], json!({}));
    assert_eq!(
        answer["query"],
        json!({
            "site_id": "shop.example",
            "metrics": metrics,
            "date_range": ["2024-01-10T00:00:00+01:00", "2024-01-11T23:59:59+01:00"],
            "filters": [],
            "dimensions": [],
            "order_by": [["visitors", "desc"]],
            "include": {},
            "pagination": { "limit": 10000, "offset": 0 }
        })
    );
    // Merging the parts away changes nothing either.
    for table in ["events", "sessions"] {
        app.env.ch.client.query(&format!("OPTIMIZE TABLE {table} FINAL")).execute().await.unwrap();
    }
    let again = app
        .query(
            json!(["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"]),
            json!({}),
        )
        .await;
    assert_eq!(again["results"], answer["results"]);
}

#[tokio::test]
async fn dimensions_group_as_counted_by_hand() {
    let app = spawn_app().await;
    let rows = |m: Value, d: &str| app.rows(m, json!({ "dimensions": [d] }));
    // Local days: session 103's second pageview (23:01 UTC) is on 11 January in Berlin.
    assert_eq!(
        rows(json!(["visitors", "pageviews", "visits", "bounce_rate"]), "time:day").await,
        [json!(["2024-01-10", 3, 4, 3, 33]), json!(["2024-01-11", 2, 2, 1, 100])]
    );
    assert_eq!(
        rows(json!(["visitors", "visits", "bounce_rate"]), "visit:source").await,
        [json!(["Direct / None", 1, 1, 100]), json!(["Google", 1, 2, 50]), json!(["newsletter", 1, 1, 0])]
    );
    assert_eq!(
        rows(json!(["visitors", "visits"]), "visit:channel").await,
        [json!(["Direct", 1, 1]), json!(["Email", 1, 1]), json!(["Organic Search", 1, 2])]
    );
    assert_eq!(
        rows(json!(["visitors", "pageviews", "time_on_page"]), "event:page").await,
        // `/`: leaves of 40 s and 5 s (the one filed under no session counts too): 22.5, rounded to even.
        // `/pricing`: 20 s (on disk twice, counted once) and 50 s: 35 (30 if the copy counted).
        [json!(["/", 2, 2, 22]), json!(["/blog", 2, 2, null]), json!(["/pricing", 2, 2, 35])]
    );
    assert_eq!(
        rows(json!(["visits", "bounce_rate", "visit_duration"]), "visit:entry_page").await,
        [json!(["/", 2, 50, 80]), json!(["/blog", 2, 50, 60])]
    );
    assert_eq!(
        rows(json!(["visits"]), "visit:exit_page").await,
        [json!(["/pricing", 2]), json!(["/", 1]), json!(["/blog", 1])]
    );
    assert_eq!(
        rows(json!(["visitors", "percentage"]), "visit:country").await,
        [json!(["DE", 2, 66.7]), json!(["US", 1, 33.3])]
    );
    assert_eq!(
        rows(json!(["visitors", "events"]), "event:props:plan").await,
        [json!(["(none)", 3, 6]), json!(["pro", 1, 1])]
    );
    assert_eq!(
        rows(json!(["visitors"]), "visit:browser").await,
        [json!(["Chrome", 1]), json!(["Firefox", 1]), json!(["Safari", 1])]
    );
    assert_eq!(rows(json!(["visitors"]), "visit:device").await, [json!(["desktop", 2]), json!(["mobile", 1])]);
    assert_eq!(
        rows(json!(["visitors", "visits"]), "visit:utm_medium").await,
        [json!(["", 2, 3]), json!(["email", 1, 1])]
    );
    assert_eq!(rows(json!(["events"]), "event:name").await, [json!(["pageview", 6]), json!(["Signup", 1])]);
}

#[tokio::test]
async fn the_other_dimensions() {
    let app = spawn_app().await;
    let visitors = |d: &str| app.rows(json!(["visitors"]), json!({ "dimensions": [d] }));
    assert_eq!(visitors("event:hostname").await, [json!(["shop.example", 3])]);
    assert_eq!(visitors("visit:utm_source").await, [json!(["", 2]), json!(["newsletter", 1])]);
    for empty in ["visit:utm_campaign", "visit:utm_content", "visit:utm_term", "visit:region", "visit:city"] {
        assert_eq!(visitors(empty).await, [json!(["", 3])], "{empty}");
    }
    assert_eq!(visitors("visit:browser_version").await, [json!(["1", 3])]);
    assert_eq!(visitors("visit:os").await, [json!(["Linux", 1]), json!(["Windows", 1]), json!(["iOS", 1])]);
    assert_eq!(visitors("visit:os_version").await, [json!(["(not set)", 3])]);
    assert_eq!(
        app.rows(json!(["visitors", "visits"]), json!({ "dimensions": ["visit:referrer"] })).await,
        [json!(["Direct / None", 2, 2]), json!(["https://google.com/", 1, 2])]
    );
    // Two dimensions at once: each pair of values is a group; the default order puts time first.
    assert_eq!(
        app.rows(json!(["visitors"]), json!({ "dimensions": ["visit:country", "time:day"] })).await,
        [json!(["DE", "2024-01-10", 2]), json!(["US", "2024-01-10", 1]), json!(["DE", "2024-01-11", 2])]
    );
}

#[tokio::test]
async fn request_values_are_data_never_sql() {
    let app = spawn_app().await;
    let sneaky = "x') OR 1=1 OR ('";
    let rows = app
        .rows(
            json!(["visitors"]),
            json!({ "filters": [["is", "event:page", [sneaky]], ["contains", "visit:source", ["\\'"]]] }),
        )
        .await;
    assert_eq!(rows, [json!([0])]);
    assert_eq!(
        app.rows(json!(["visitors"]), json!({ "dimensions": ["event:props:it's"] })).await,
        [json!(["(none)", 3])]
    );
}

#[tokio::test]
async fn every_filter_operator_and_nesting() {
    let app = spawn_app().await;
    let agg = |filters: Value| {
        app.rows(json!(["visitors", "pageviews", "visits", "bounce_rate"]), json!({ "filters": filters }))
    };
    assert_eq!(agg(json!([["is", "event:page", ["/pricing"]]])).await, [json!([2, 2, 2, 0])]);
    assert_eq!(
        agg(json!([["contains", "event:page", ["PRIC"], { "case_sensitive": false }]])).await,
        [json!([2, 2, 2, 0])]
    );
    assert_eq!(agg(json!([["contains", "event:page", ["PRIC"]]])).await, [json!([0, 0, 0, 0])]);
    assert_eq!(agg(json!([["is", "visit:country", ["DE"]]])).await, [json!([2, 5, 3, 33])]);
    assert_eq!(agg(json!([["is_not", "visit:country", ["DE"]]])).await, [json!([1, 1, 1, 100])]);
    assert_eq!(agg(json!([["is", "visit:source", ["Google"]]])).await, [json!([1, 3, 2, 50])]);
    assert_eq!(agg(json!([["matches", "event:page", ["^/b"]]])).await, [json!([2, 2, 2, 50])]);
    // Visits that had a pageview of `/`: 101 and 102.
    assert_eq!(agg(json!([["matches_not", "event:page", ["^/(blog|pricing)"]]])).await, [json!([2, 2, 2, 50])]);
    assert_eq!(agg(json!([["contains_not", "visit:browser", ["Chrome"]]])).await, [json!([2, 3, 2, 50])]);
    assert_eq!(agg(json!([["is", "visit:channel", ["Email"]]])).await, [json!([1, 2, 1, 0])]);
    // DE and not /blog: 101 (`/`, `/pricing`, Signup) and 103's `/pricing`.
    assert_eq!(
        agg(json!([["and", [["is", "visit:country", ["DE"]], ["not", ["is", "event:page", ["/blog"]]]]]])).await,
        [json!([2, 3, 2, 0])]
    );
    assert_eq!(
        agg(json!([["or", [["is", "visit:country", ["US"]], ["is", "visit:entry_page", ["/blog"]]]]])).await,
        // US: visitor 2's `/`; entry /blog: sessions 103 and 104.
        [json!([3, 4, 3, 67])]
    );
}

#[tokio::test]
async fn goals_and_conversion_rates() {
    let app = spawn_app().await;
    assert_eq!(
        app.rows(json!(["visitors", "events", "conversion_rate"]), json!({ "dimensions": ["event:goal"] })).await,
        [json!(["Visit /pricing", 2, 2, 66.7]), json!(["Signup", 1, 1, 33.3])]
    );
    assert_eq!(
        app.rows(json!(["visitors", "conversion_rate"]), json!({ "filters": [["is", "event:goal", ["Signup"]]] }))
            .await,
        [json!([1, 33.3])]
    );
    assert_eq!(
        app.rows(
            json!(["visitors", "group_conversion_rate"]),
            json!({ "dimensions": ["visit:country"], "filters": [["is", "event:goal", ["Visit /pricing"]]] })
        )
        .await,
        // DE: visitors 1 and 3 both saw /pricing (2 of 2); US: nobody did, so no row.
        [json!(["DE", 2, 100.0])]
    );
    let (status, body) = app
        .post(json!({ "site_id": "shop.example", "metrics": ["visitors"], "date_range": RANGE,
                      "filters": [["is", "event:goal", ["Nope"]]] }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("The goal `Nope` is not configured for this site"), "{body}");
}

#[tokio::test]
async fn time_buckets_labels_order_pagination_and_total_rows() {
    let app = spawn_app().await;
    let day11 = json!(["2024-01-11", "2024-01-11"]);
    let hourly = app
        .query(
            json!(["visitors"]),
            json!({ "date_range": day11, "dimensions": ["time"], "include": { "time_labels": true } }),
        )
        .await;
    assert_eq!(
        hourly["results"],
        json!([{ "metrics": [1], "dimensions": ["2024-01-11 00:00:00"] }, { "metrics": [1], "dimensions": ["2024-01-11 09:00:00"] }])
    );
    let labels = hourly["meta"]["time_labels"].as_array().unwrap();
    assert_eq!(
        (labels.len(), labels[0].clone(), labels[23].clone()),
        (24, json!("2024-01-11 00:00:00"), json!("2024-01-11 23:00:00"))
    );
    // 10 January 2024 is a Wednesday: its week is labelled by the range's first day, as Plausible does.
    let weekly = app
        .query(json!(["visitors"]), json!({ "dimensions": ["time:week"], "include": { "time_labels": true } }))
        .await;
    assert_eq!(weekly["results"], json!([{ "metrics": [3], "dimensions": ["2024-01-10"] }]));
    assert_eq!(weekly["meta"]["time_labels"], json!(["2024-01-10"]));
    let monthly = app.rows(json!(["visitors"]), json!({ "dimensions": ["time:month"] })).await;
    assert_eq!(monthly, [json!(["2024-01-01", 3])]);

    let page = app
        .query(
            json!(["visitors", "pageviews"]),
            json!({ "dimensions": ["event:page"], "order_by": [["event:page", "desc"]],
                    "pagination": { "limit": 2, "offset": 1 }, "include": { "total_rows": true } }),
        )
        .await;
    assert_eq!(page["meta"], json!({ "total_rows": 3 }));
    let pages: Vec<Value> = page["results"].as_array().unwrap().iter().map(|r| r["dimensions"][0].clone()).collect();
    assert_eq!(pages, [json!("/blog"), json!("/")]);
    assert_eq!(page["query"]["order_by"], json!([["event:page", "desc"]]));
}

#[tokio::test]
async fn comparisons_pair_periods_and_buckets() {
    let app = spawn_app().await;
    // The previous period of 10-11 January is 8-9 January: visitor 5 at 23:30 local on the 9th.
    let answer = app
        .query(
            json!(["visitors", "visits", "bounce_rate"]),
            json!({ "include": { "comparisons": { "mode": "previous_period" } } }),
        )
        .await;
    assert_eq!(
        answer["results"],
        json!([{ "metrics": [3, 4, 50], "dimensions": [],
                 "comparison": { "dimensions": [], "metrics": [1, 1, 100], "change": [200, 300, -50] } }])
    );
    assert_eq!(
        answer["meta"]["comparison_date_range"],
        json!(["2024-01-08T00:00:00+01:00", "2024-01-09T23:59:59+01:00"])
    );
    let by_day = app
        .query(
            json!(["visitors"]),
            json!({ "dimensions": ["time:day"], "include": { "comparisons": { "mode": "previous_period" } } }),
        )
        .await;
    assert_eq!(
        by_day["results"],
        json!([
            { "metrics": [3], "dimensions": ["2024-01-10"], "comparison": { "dimensions": ["2024-01-08"], "metrics": [0], "change": [100] } },
            { "metrics": [2], "dimensions": ["2024-01-11"], "comparison": { "dimensions": ["2024-01-09"], "metrics": [1], "change": [100] } }
        ])
    );
    let custom = app
        .query(
            json!(["visitors"]),
            json!({ "include": { "comparisons": { "mode": "custom", "date_range": ["2024-01-11", "2024-01-11"] } } }),
        )
        .await;
    assert_eq!(custom["results"][0]["comparison"]["metrics"], json!([2]));
    // 365 days back: nothing then.
    let yoy =
        app.query(json!(["visitors"]), json!({ "include": { "comparisons": { "mode": "year_over_year" } } })).await;
    assert_eq!(yoy["results"][0]["comparison"], json!({ "dimensions": [], "metrics": [0], "change": [100] }));
    assert_eq!(yoy["meta"]["comparison_date_range"], json!(["2023-01-10T00:00:00+01:00", "2023-01-11T23:59:59+01:00"]));
    // The previous period starts on Monday 8 January; matching Wednesday 10 January's weekday would land on the
    // source's own first day, so it goes back a week: 3-4 January.
    let weekday = app
        .query(
            json!(["visitors"]),
            json!({ "include": { "comparisons": { "mode": "previous_period", "match_day_of_week": true } } }),
        )
        .await;
    assert_eq!(
        weekday["meta"]["comparison_date_range"],
        json!(["2024-01-03T00:00:00+01:00", "2024-01-04T23:59:59+01:00"])
    );
    assert_eq!(
        weekday["query"]["include"],
        json!({ "comparisons": { "mode": "previous_period", "match_day_of_week": true } })
    );
}

#[tokio::test]
async fn relative_ranges_are_the_projects_days_around_now() {
    let app = spawn_app_with(None).await;
    let visit = Visit {
        session: 7,
        visitor: 7,
        source: ("direct", "", ""),
        utm: ("", ""),
        country: "DE",
        agent: ("Chrome", "Linux", "desktop"),
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    write(&app.env, &[event(app.project, &visit, &now, EventType::Pageview, "/")]).await;
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Berlin).date_naive();
    for (range, visitors) in [("day", 1), ("7d", 0), ("30d", 0), ("month", 1), ("year", 1), ("12mo", 0), ("all", 1)] {
        let answer = app.query(json!(["visitors", "visits"]), json!({ "date_range": range })).await;
        assert_eq!(answer["results"][0]["metrics"], json!([visitors, visitors]), "{range}");
        if range == "all" {
            // `all` starts on the project's first day with events: today.
            let from = answer["query"]["date_range"][0].as_str().unwrap().to_owned();
            assert!(from.starts_with(&format!("{today}T00:00:00")), "{from}");
        }
    }
}

#[tokio::test]
async fn csv_answers_the_rows() {
    let app = spawn_app().await;
    let body = json!({ "site_id": "shop.example", "metrics": ["visitors", "pageviews"], "date_range": RANGE,
                       "dimensions": ["event:page"] });
    let want = "event:page,visitors,pageviews\r\n/,2,2\r\n/blog,2,2\r\n/pricing,2,2\r\n";
    for (url, accept) in [("/api/v2/query", "text/csv"), ("/api/v2/query?format=csv", "*/*")] {
        let response = app
            .http
            .post(format!("{}{url}", app.base))
            .bearer_auth(&app.key)
            .header("Accept", accept)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        assert_eq!(response.text().await.unwrap(), want);
    }
}

#[tokio::test]
async fn access_is_by_key_and_site_and_unknown_or_foreign_sites_look_alike() {
    let app = spawn_app().await;
    let (other, _) = app.env.project(&["other.example"]).await;
    let other_key = keys::create(&app.env.pg, other, Scope::Read, "b").await.unwrap();
    let body = json!({ "site_id": "shop.example", "metrics": ["visitors"], "date_range": RANGE });
    let send = |key: String, body: Value| {
        let http = app.http.clone();
        let url = format!("{}/api/v2/query", app.base);
        async move {
            let r = http.post(url).bearer_auth(key).json(&body).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let foreign = send(other_key.key.clone(), body.clone()).await;
    let unknown =
        send(app.key.clone(), json!({ "site_id": "nobody.example", "metrics": ["visitors"], "date_range": RANGE }))
            .await;
    assert_eq!(foreign.0, StatusCode::NOT_FOUND);
    assert_eq!(foreign, unknown);
    assert_eq!(foreign.1, json!({ "error": tidemark_app::query_api::UNKNOWN_SITE }));
    // The project id works as site_id as well as the domain.
    let by_id = send(
        app.key.clone(),
        json!({ "site_id": app.project.to_string(), "metrics": ["visitors"], "date_range": RANGE }),
    )
    .await;
    assert_eq!((by_id.0, by_id.1["results"][0]["metrics"].clone()), (StatusCode::OK, json!([3])));
    keys::revoke(&app.env.pg, other_key.id).await.unwrap();
    let revoked =
        send(other_key.key, json!({ "site_id": "other.example", "metrics": ["visitors"], "date_range": RANGE })).await;
    assert_eq!(revoked.0, StatusCode::UNAUTHORIZED);
    let anonymous = app.http.post(format!("{}/api/v2/query", app.base)).json(&body).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
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
    let body = json!({ "site_id": "shop.example", "metrics": ["visitors"], "date_range": RANGE });
    let url = format!("{}/api/v2/query", app.base);
    let without = app.http.post(&url).header("Cookie", &cookie).json(&body).send().await.unwrap();
    assert_eq!(without.status(), StatusCode::FORBIDDEN);
    let with =
        app.http.post(&url).header("Cookie", &cookie).header("X-CSRF-Token", csrf).json(&body).send().await.unwrap();
    assert_eq!(with.status(), StatusCode::OK);
    assert_eq!(with.json::<Value>().await.unwrap()["results"][0]["metrics"], json!([3]));
}

#[tokio::test]
async fn bad_queries_are_400_naming_the_part() {
    let app = spawn_app().await;
    let cases = [
        (json!({ "site_id": "shop.example", "date_range": "7d" }), "#: Required property metrics was not present."),
        (json!({ "metrics": ["visitors"], "date_range": "7d" }), tidemark_app::query_api::MISSING_SITE),
        (json!({ "site_id": 7, "metrics": ["visitors"], "date_range": "7d" }), "#/site_id: Type mismatch."),
        (
            json!({ "site_id": "shop.example", "metrics": ["nope"], "date_range": "7d" }),
            "#/metrics/0: Invalid metric \"nope\"",
        ),
        (
            json!({ "site_id": "shop.example", "metrics": ["visitors"], "date_range": "7d",
                    "filters": [["matches", "event:page", ["("]]] }),
            "Invalid filter: `matches` on `event:page` has an invalid regular expression",
        ),
        (
            // Rust's regex crate takes `(?<n>...)`; the RE2 of ClickHouse 18.16 does not: still a 400.
            // ClickHouse compiles the pattern when rows reach it, so the range must hold data.
            json!({ "site_id": "shop.example", "metrics": ["visitors"], "date_range": RANGE,
                    "filters": [["matches", "event:page", ["(?<n>a)"]]] }),
            "Invalid filters. A regular expression is not valid RE2 syntax (ClickHouse's `match`): (?<n>a), error: invalid perl operator",
        ),
        (
            json!({ "site_id": "shop.example", "metrics": ["views_per_visit"], "date_range": "7d", "dimensions": ["event:page"] }),
            "Metric `views_per_visit` cannot be queried with `dimensions`.",
        ),
    ];
    for (body, want) in cases {
        let (status, answer) = app.post(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer["error"].as_str().unwrap().starts_with(want), "{body} -> {answer}");
    }
}

#[tokio::test]
async fn scroll_depth_is_null_with_a_warning() {
    let app = spawn_app().await;
    let answer = app.query(json!(["scroll_depth"]), json!({ "dimensions": ["event:page"] })).await;
    assert!(answer["results"].as_array().unwrap().iter().all(|r| r["metrics"] == json!([null])));
    assert_eq!(answer["meta"]["metric_warnings"]["scroll_depth"]["code"], json!("no_scroll_depth_data"));
}

#[tokio::test]
async fn clickhouse_down_is_503_not_500() {
    let app = spawn_app_with(Some("http://default@127.0.0.1:9/nothing")).await;
    let (status, body) =
        app.post(json!({ "site_id": "shop.example", "metrics": ["visitors"], "date_range": "7d" })).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].is_string());
}
