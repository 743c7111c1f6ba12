//! The hub against real Redis, PostgreSQL and ClickHouse: one pageview from HTTP to the `events` table, and the
//! status of every refusal.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tidemark_hub::HubConfig;
use tidemark_shared::secret::Secret;
use tidemark_testkit::{TestEnv, test_env};
use tidemark_worker::consumer::Consumer;
use tidemark_worker::events_sink::EventsSink;
use tidemark_worker::runner::{Engine, EngineSettings, Outcome};

struct TestHub {
    env: TestEnv,
    base: String,
    http: reqwest::Client,
}

async fn spawn_hub_with(tweak: impl FnOnce(&mut HubConfig)) -> TestHub {
    let env = test_env().await;
    let mut config = HubConfig {
        hub_listen: "127.0.0.1:0".into(),
        redis_url: Secret::new(env.stores.redis_url.clone()),
        postgres_url: Secret::new(env.postgres_url.clone()),
        key_prefix: env.key_prefix.clone(),
        hub_threads: 1,
        ..HubConfig::default()
    };
    tweak(&mut config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hub = tidemark_hub::build(config, listener).await.expect("hub starts");
    tokio::spawn(hub.server);
    TestHub { env, base: format!("http://127.0.0.1:{}", hub.port), http: reqwest::Client::new() }
}

async fn spawn_hub() -> TestHub {
    spawn_hub_with(|_| {}).await
}

impl TestHub {
    async fn post(&self, path: &str, token: Option<&str>, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
            )
            .body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn engine(&self) -> Engine<EventsSink> {
        let consumer =
            Consumer::connect(&self.env.stores.redis_url, self.env.keys.clone(), "events", "test-worker".into())
                .await
                .unwrap();
        let settings = EngineSettings { batch_size: 1000, max_wait: Duration::from_millis(100) };
        Engine::new(consumer, EventsSink::new(self.env.ch.clone()), settings)
    }

    async fn drain(&self) -> usize {
        let mut engine = self.engine().await;
        let mut rows = 0;
        loop {
            match engine.process_batch().await.unwrap() {
                Outcome::Idle => return rows,
                Outcome::Written { rows: n, .. } => rows += n,
                Outcome::Retrying { error, .. } => panic!("insert failed: {error}"),
            }
        }
    }
}

#[tokio::test]
async fn a_pageview_reaches_clickhouse() {
    let hub = spawn_hub().await;
    let (project, token) = hub.env.project(&["example.com"]).await;
    let body = json!({
        "type": "pageview",
        "url": "https://www.example.com/pricing?utm_source=newsletter&utm_campaign=fall",
        "referrer": "https://news.ycombinator.com/item?id=1",
        "title": "Pricing",
        "props": {"plan": "pro", "seats": 3},
        "screen_width": 1440
    });
    let (status, answer) = hub.post("/v1/event", Some(&token), body.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer, json!({"accepted": 1}));

    assert_eq!(hub.drain().await, 1);
    #[derive(Debug, serde::Deserialize, clickhouse::Row)]
    struct Seen {
        project: String,
        kind: String,
        host: String,
        path: String,
        title: String,
        referrer_host: String,
        referrer_source: String,
        utm_source: String,
        utm_campaign: String,
        prop_keys: Vec<String>,
        prop_values: Vec<String>,
        screen_width: u16,
        visitor_id: u64,
        session_id: u64,
    }
    let row: Seen = hub
        .env
        .ch
        .client
        .query(
            "SELECT toString(project_id) AS project, type AS kind, host, path, title, referrer_host, referrer_source, \
             utm_source, utm_campaign, prop_keys, prop_values, screen_width, visitor_id, session_id FROM events",
        )
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(row.project, project.to_string());
    assert_eq!((row.kind.as_str(), row.host.as_str(), row.path.as_str()), ("pageview", "example.com", "/pricing"));
    assert_eq!(row.title, "Pricing");
    assert_eq!((row.referrer_host.as_str(), row.referrer_source.as_str()), ("news.ycombinator.com", "referral"));
    assert_eq!((row.utm_source.as_str(), row.utm_campaign.as_str()), ("newsletter", "fall"));
    assert_eq!(row.prop_keys, vec!["plan", "seats"]);
    assert_eq!(row.prop_values, vec!["pro", "3"]);
    assert_eq!(row.screen_width, 1440);
    assert_ne!(row.visitor_id, 0);
    assert_ne!(row.session_id, 0);
}

#[tokio::test]
async fn a_visitor_keeps_its_session_and_a_batch_is_accepted_whole() {
    let hub = spawn_hub().await;
    let (_, token) = hub.env.project(&[]).await;
    let batch = json!([
        {"type": "pageview", "url": "https://a.io/"},
        {"type": "custom", "name": "signup", "id": "client-1"},
        {"type": "pageleave", "url": "https://a.io/", "duration_ms": 5300}
    ]);
    let (status, answer) = hub.post("/v1/batch", Some(&token), batch.to_string()).await;
    assert_eq!((status, answer), (StatusCode::ACCEPTED, json!({"accepted": 3})));
    let (status, _) =
        hub.post("/v1/event", Some(&token), json!({"type":"pageview","url":"https://a.io/b"}).to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(hub.drain().await, 4);
    let sessions: u64 = hub.env.ch.client.query("SELECT uniqExact(session_id) FROM events").fetch_one().await.unwrap();
    let visitors: u64 = hub.env.ch.client.query("SELECT uniqExact(visitor_id) FROM events").fetch_one().await.unwrap();
    assert_eq!((sessions, visitors), (1, 1));
}

#[tokio::test]
async fn refusals_have_their_status_and_name_the_field() {
    let hub = spawn_hub_with(|c| c.max_body_bytes = 4096).await;
    let (_, token) = hub.env.project(&["example.com"]).await;
    let pageview = json!({"type": "pageview", "url": "https://example.com/"}).to_string();

    let (status, body) = hub.post("/v1/event", None, pageview.clone()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("missing_token")));
    let (status, body) = hub.post("/v1/event", Some("tm_unknown_token_123"), pageview.clone()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));

    let (status, body) = hub.post("/v1/event", Some(&token), r#"{"type":"pageview"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "url");
    let (status, body) =
        hub.post("/v1/event", Some(&token), r#"{"type":"pageview","url":"https://e.com","screen_width":"wide"}"#).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("screen_width")));
    let (status, body) = hub.post("/v1/event", Some(&token), "{not json").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));
    let (status, body) = hub
        .post("/v1/batch", Some(&token), json!([{"type":"pageview","url":"https://e.com"},{"type":"nope"}]).to_string())
        .await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("[1].type")));

    let (status, body) = hub
        .post("/v1/event", Some(&token), format!(r#"{{"type":"pageview","url":"https://e.com/{}"}}"#, "a".repeat(5000)))
        .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large")));

    // The body token works where headers cannot be set (sendBeacon), and origins are checked.
    let with_token = json!({"type": "pageview", "url": "https://example.com/", "token": token}).to_string();
    let resp = hub
        .http
        .post(format!("{}/v1/event", hub.base))
        .header("origin", "https://evil.io")
        .body(with_token.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = hub
        .http
        .post(format!("{}/v1/event", hub.base))
        .header("origin", "https://www.example.com")
        .body(with_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://www.example.com");

    // Nothing refused was queued.
    assert_eq!(hub.drain().await, 1);
}

#[tokio::test]
async fn a_full_stream_answers_503_and_queues_nothing() {
    let hub = spawn_hub_with(|c| c.max_stream_len = 2).await;
    let (_, token) = hub.env.project(&[]).await;
    let pageview = json!({"type": "pageview", "url": "https://a.io/"}).to_string();
    for _ in 0..2 {
        assert_eq!(hub.post("/v1/event", Some(&token), pageview.clone()).await.0, StatusCode::ACCEPTED);
    }
    let resp = hub.http.post(format!("{}/v1/event", hub.base)).bearer_auth(&token).body(pageview).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(hub.drain().await, 2);
}

#[tokio::test]
async fn redis_down_is_503_never_202() {
    let hub = spawn_hub_with(|c| c.redis_url = Secret::new("redis://127.0.0.1:1/0".into())).await;
    let (_, token) = hub.env.project(&[]).await;
    let (status, body) =
        hub.post("/v1/event", Some(&token), json!({"type":"pageview","url":"https://a.io/"}).to_string()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")));
    let ready = hub.http.get(format!("{}/readyz", hub.base)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let hub = spawn_hub().await;
    let ready = hub.http.get(format!("{}/readyz", hub.base)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let (_, token) = hub.env.project(&[]).await;
    hub.post("/v1/event", Some(&token), json!({"type":"pageview","url":"https://a.io/"}).to_string()).await;
    let metrics = hub.http.get(format!("{}/metrics", hub.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tidemark_hub_events_accepted_total"), "{metrics}");
}
