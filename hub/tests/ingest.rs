//! The hub against real Redis and PostgreSQL: what a 202 promises (the job is in the Redis stream, enriched), read
//! back from the stream with the shared batch decoder, and the status of every refusal. From the stream on, events
//! are the worker's: its own tests take them to ClickHouse.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tidemark_hub::HubConfig;
use tidemark_shared::batch;
use tidemark_shared::job::{EventJob, JobKind};
use tidemark_shared::secret::Secret;
use tidemark_testkit::private_redis::PrivateRedis;
use tidemark_testkit::{TestEnv, test_env};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0";

struct TestHub {
    env: TestEnv,
    base: String,
    /// `/metrics` on the hub's private metrics listener.
    metrics: String,
    http: reqwest::Client,
}

async fn spawn_hub_with(tweak: impl FnOnce(&mut HubConfig)) -> TestHub {
    let env = test_env().await;
    let mut config = HubConfig {
        hub_listen: "127.0.0.1:0".into(),
        redis_url: Secret::new(env.stores.redis_url.clone()),
        postgres_url: Secret::new(env.postgres_url.clone()),
        key_prefix: env.key_prefix.clone(),
        hub_metrics_listen: "127.0.0.1:0".into(),
        hub_threads: 1,
        ..HubConfig::default()
    };
    tweak(&mut config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hub = tidemark_hub::build(config, listener).await.expect("hub starts");
    tokio::spawn(hub.server);
    // A browser's user agent by default: requests without one are bots and are not queued.
    let http = reqwest::Client::builder().user_agent(FIREFOX).build().unwrap();
    let metrics = format!("http://127.0.0.1:{}/metrics", hub.metrics_port.expect("metrics listener"));
    TestHub { env, base: format!("http://127.0.0.1:{}", hub.port), metrics, http }
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

    async fn post_with(
        &self,
        path: &str,
        token: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
            )
            .body(body);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// Every job in the stream, in order, decoded as a worker would: what the 202s promised.
    async fn queued(&self) -> Vec<Queued> {
        let mut conn = self.env.redis().await;
        let entries: redis::streams::StreamRangeReply =
            redis::cmd("XRANGE").arg(self.env.keys.stream(0)).arg("-").arg("+").query_async(&mut conn).await.unwrap();
        let mut jobs = Vec::new();
        for entry in &entries.ids {
            assert_eq!(entry.get::<String>(tidemark_shared::job::FIELD_KIND).as_deref(), Some(batch::BATCH_V1));
            let assigned: Vec<u8> = entry.get(batch::FIELD_ASSIGNED).expect("assignments");
            let frames: Vec<u8> = entry.get(batch::FIELD_JOBS).expect("jobs");
            for view in batch::split(&assigned, &frames).expect("a batch entry the hub wrote") {
                let kind = JobKind::parse(view.kind).expect("a known job kind");
                jobs.push(Queued {
                    kind,
                    session: view.session.parse().expect("a session id"),
                    visitor: view.visitor.parse().expect("a visitor id"),
                    user: view.user.to_owned(),
                    event: kind.is_event().then(|| EventJob::decode(kind, view.payload).expect("a decodable event")),
                });
            }
        }
        jobs
    }

    /// The queued event jobs: what becomes rows of the `events` table.
    async fn queued_events(&self) -> Vec<Queued> {
        self.queued().await.into_iter().filter(|job| job.kind.is_event()).collect()
    }
}

/// One job of the stream with the session, visitor and user the hub's script assigned to it.
struct Queued {
    kind: JobKind,
    session: u64,
    visitor: u64,
    user: String,
    /// `None` for an identify job.
    event: Option<EventJob>,
}

impl Queued {
    fn event(&self) -> &EventJob {
        self.event.as_ref().expect("an event job")
    }
}

#[tokio::test]
async fn a_pageview_is_queued_enriched() {
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

    let queued = hub.queued_events().await;
    assert_eq!(queued.len(), 1);
    let (job, row) = (&queued[0], queued[0].event());
    assert_eq!(row.project_id.to_string(), project.to_string());
    assert_eq!(
        (row.event_type.as_str(), row.host.as_str(), row.path.as_str()),
        ("pageview", "example.com", "/pricing")
    );
    assert_eq!(row.title, "Pricing");
    assert_eq!((row.referrer_host.as_str(), row.referrer_source.as_str()), ("news.ycombinator.com", "social"));
    assert_eq!(
        (row.referrer_name.as_str(), row.visitor_kind),
        ("Hacker News", tidemark_shared::job::VisitorKind::Daily)
    );
    assert_eq!(job.kind, tidemark_shared::job::JobKind::EventV3);
    assert_eq!((row.utm.source.as_str(), row.utm.campaign.as_str()), ("newsletter", "fall"));
    assert_eq!(row.props.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), vec!["plan", "seats"]);
    assert_eq!(row.props.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>(), vec!["pro", "3"]);
    assert_eq!(row.screen_width, 1440);
    assert_ne!(job.visitor, 0);
    assert_ne!(job.session, 0);
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
    let queued = hub.queued_events().await;
    assert_eq!(queued.len(), 4);
    let sessions: HashSet<u64> = queued.iter().map(|j| j.session).collect();
    let visitors: HashSet<u64> = queued.iter().map(|j| j.visitor).collect();
    assert_eq!((sessions.len(), visitors.len()), (1, 1));
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
    assert_eq!(hub.queued_events().await.len(), 1);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn gzip_bodies_are_inflated_within_the_body_limit() {
    let hub = spawn_hub_with(|c| c.max_body_bytes = 4096).await;
    let (_, token) = hub.env.project(&[]).await;
    let batch = json!([{"type":"pageview","url":"https://e.com/a"},{"type":"custom","name":"signup"}]).to_string();
    let gzipped = [("content-encoding", "gzip")];

    let (status, body) = hub.post_with("/v1/batch", &token, gzip(batch.as_bytes()), &gzipped).await;
    assert_eq!((status, body["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(2)), "{body}");
    // 1 MB of spaces gzips to about 1 KB, under the limit; inflated, it is far over it.
    let padded = format!("{}{batch}", " ".repeat(1 << 20));
    let (status, body) = hub.post_with("/v1/batch", &token, gzip(padded.as_bytes()), &gzipped).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large")), "{body}");
    let (status, body) = hub.post_with("/v1/batch", &token, batch.clone(), &gzipped).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_encoding")), "{body}");
    let (status, body) = hub.post_with("/v1/batch", &token, batch.clone(), &[("content-encoding", "br")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_encoding")));

    assert_eq!(hub.queued_events().await.len(), 2, "only the valid gzip batch was queued");
}

/// Mangled versions of the golden payloads (bytes flipped, cut, spliced, some gzipped, some with a wrong encoding)
/// through the router: every answer is a 2xx or a 4xx with a JSON body saying what happened, never a 5xx or a hang.
#[tokio::test]
async fn mangled_bodies_get_json_answers_never_a_server_error() {
    use rand::{Rng, SeedableRng};
    let hub = spawn_hub().await;
    let (_, token) = hub.env.project(&[]).await;
    let cases: Vec<Value> = serde_json::from_str(include_str!("data/golden.json")).unwrap();
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut accepted, mut refused) = (0, 0);
    let tokens: &[&[u8]] =
        &[b"{", b"}", b"[", b"]", b"\"", b",", b":", b"null", b"1e999", b"\\u00", b"\xff", b"-", b" "];
    for round in 0..400 {
        let case = &cases[rng.random_range(0..cases.len())];
        let mut body = case["body"].to_string().into_bytes();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..=body.len());
            match rng.random_range(0..4) {
                0 if !body.is_empty() => {
                    let last = body.len() - 1;
                    body[at.min(last)] = rng.random();
                }
                1 => body.truncate(at),
                2 => body.splice(at..at, tokens[rng.random_range(0..tokens.len())].iter().copied()).for_each(drop),
                _ => body.splice(at..at, [rng.random::<u8>()]).for_each(drop),
            }
        }
        let mut headers = vec![];
        match rng.random_range(0..6) {
            0 => {
                body = gzip(&body);
                headers.push(("content-encoding", "gzip"));
            }
            1 => headers.push(("content-encoding", "gzip")),
            2 => headers.push(("content-encoding", "br")),
            _ => {}
        }
        let path = case["path"].as_str().unwrap();
        let (status, answer) = hub.post_with(path, &token, body.clone(), &headers).await;
        let what = format!("seed {seed}, round {round}, {path} {headers:?}: {}", String::from_utf8_lossy(&body));
        assert!(status.is_success() || status.is_client_error(), "{status} {answer} for {what}");
        assert!(answer.get("accepted").is_some() || answer["error"].is_string(), "{answer} for {what}");
        if status.is_success() { accepted += 1 } else { refused += 1 }
    }
    // Both kinds of answer came up, so the mangling neither broke every body nor left them all intact.
    assert!(accepted > 0 && refused > 0, "seed {seed}: {accepted} accepted, {refused} refused");
}

#[tokio::test]
async fn a_full_stream_answers_503_and_queues_nothing() {
    // One byte: the empty stream takes one write, then it is full.
    let hub = spawn_hub_with(|c| c.max_stream_bytes = 1).await;
    let (_, token) = hub.env.project(&[]).await;
    let pageview = json!({"type": "pageview", "url": "https://a.io/"}).to_string();
    assert_eq!(hub.post("/v1/event", Some(&token), pageview.clone()).await.0, StatusCode::ACCEPTED);
    // A batch is refused whole: a 503 means none of it was queued.
    let three = json!([{"type": "pageview", "url": "https://a.io/"}, {"type": "pageview", "url": "https://a.io/b"}, {"type": "pageview", "url": "https://a.io/c"}]);
    assert_eq!(hub.post("/v1/batch", Some(&token), three.to_string()).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let resp = hub.http.post(format!("{}/v1/event", hub.base)).bearer_auth(&token).body(pageview).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(hub.queued_events().await.len(), 1);
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
async fn a_redis_crash_keeps_every_202_and_the_hub_recovers_by_itself() {
    let mut redis = PrivateRedis::start().await.unwrap();
    let hub = spawn_hub_with(|c| c.redis_url = Secret::new(redis.url())).await;
    let (_, token) = hub.env.project(&[]).await;
    let event = |i: usize| json!({"type": "pageview", "url": format!("https://a.io/{i}")}).to_string();
    let post_all = |range: std::ops::Range<usize>| {
        let hub = &hub;
        let token = &token;
        futures_util::future::join_all(
            range.map(move |i| async move { hub.post("/v1/event", Some(token), event(i)).await.0 }),
        )
    };
    let before = post_all(0..40).await;
    assert!(before.iter().all(|s| *s == StatusCode::ACCEPTED), "{before:?}");

    redis.kill().await;
    let during = post_all(40..50).await;
    assert!(during.iter().all(|s| *s == StatusCode::SERVICE_UNAVAILABLE), "never 202 while Redis is gone: {during:?}");

    // A fresh Redis process: no connection, no script cache. The hub reconnects and reloads on its own.
    redis.resume().await.unwrap();
    let after = post_all(50..80).await;
    assert!(after.iter().all(|s| *s == StatusCode::ACCEPTED), "{after:?}");

    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let len = tidemark_testkit::queued_jobs(&mut conn, &hub.env.keys.stream(0)).await;
    assert_eq!(len, 70, "the 40 answered before the crash survived it, and only the 202s are queued");
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let hub = spawn_hub().await;
    let ready = hub.http.get(format!("{}/readyz", hub.base)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let (_, token) = hub.env.project(&[]).await;
    hub.post("/v1/event", Some(&token), json!({"type":"pageview","url":"https://a.io/"}).to_string()).await;
    let metrics = hub.http.get(&hub.metrics).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tidemark_hub_events_accepted_total"), "{metrics}");
    let public = hub.http.get(format!("{}/metrics", hub.base)).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND, "metrics are not served on the public ingest port");
}

#[tokio::test]
async fn golden_payloads_get_their_answers() {
    let hub = spawn_hub().await;
    let (_, token) = hub.env.project(&[]).await;
    let cases: Vec<Value> = serde_json::from_str(include_str!("data/golden.json")).unwrap();
    let mut queued = 0;
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let body = case["body"].to_string().replace("REPEAT_9000", &"x".repeat(9000));
        let (status, answer) = hub.post(case["path"].as_str().unwrap(), Some(&token), body).await;
        assert_eq!(status.as_u16() as u64, case["status"].as_u64().unwrap(), "{name}: {answer}");
        if let Some(field) = case.get("field") {
            assert_eq!(&answer["field"], field, "{name}: {answer}");
        }
        if let Some(n) = case.get("accepted") {
            assert_eq!(&answer["accepted"], n, "{name}");
            queued += n.as_u64().unwrap();
        }
    }
    // Identify jobs are queued too but are not event rows.
    let mut conn = hub.env.redis().await;
    let len = tidemark_testkit::queued_jobs(&mut conn, &hub.env.keys.stream(0)).await as u64;
    assert_eq!(len, queued, "every accepted golden payload is queued");
    assert_eq!(hub.queued_events().await.len() as u64, queued - 1);
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once() {
    let hub = spawn_hub_with(|c| c.token_cache_ttl_secs = 3600).await;
    let created = tidemark_app_project(&hub).await;
    let pageview = json!({"type": "pageview", "url": "https://a.io/"}).to_string();
    assert_eq!(hub.post("/v1/event", Some(&created), pageview.clone()).await.0, StatusCode::ACCEPTED);
    sqlx::query("UPDATE ingest_tokens SET revoked_at = now() WHERE token = $1")
        .bind(&created)
        .execute(&hub.env.pg)
        .await
        .unwrap();
    // Cached for an hour, yet the announcement makes the hub forget it within moments.
    tidemark_shared::pubsub::announce_token_change(&hub.env.stores.redis_url, &hub.env.key_prefix, &created)
        .await
        .unwrap();
    let mut status = StatusCode::ACCEPTED;
    for _ in 0..50 {
        status = hub.post("/v1/event", Some(&created), pageview.clone()).await.0;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn tidemark_app_project(hub: &TestHub) -> String {
    // Give the hub's subscriber a moment to subscribe before anything is announced.
    tokio::time::sleep(Duration::from_millis(200)).await;
    hub.env.project(&[]).await.1
}

#[tokio::test]
async fn a_flooding_project_gets_429_with_retry_after() {
    let hub = spawn_hub_with(|c| {
        c.rate_limit_per_sec = 1;
        c.rate_limit_burst = 3;
    })
    .await;
    let (_, token) = hub.env.project(&[]).await;
    let batch = json!([{"type": "pageview", "url": "https://a.io/"}, {"type": "pageview", "url": "https://a.io/b"}]);
    assert_eq!(hub.post("/v1/batch", Some(&token), batch.to_string()).await.0, StatusCode::ACCEPTED);
    let resp = hub
        .http
        .post(format!("{}/v1/batch", hub.base))
        .bearer_auth(&token)
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "rate_limited");
    assert_eq!(hub.queued_events().await.len(), 2);
}

#[tokio::test]
async fn bots_and_prefetches_get_202_but_are_not_queued() {
    let hub = spawn_hub().await;
    let (_, token) = hub.env.project(&[]).await;
    let pageview = json!({"type": "pageview", "url": "https://a.io/"}).to_string();
    for ua in ["Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "curl/8.5.0", ""] {
        let resp = hub
            .http
            .post(format!("{}/v1/event", hub.base))
            .bearer_auth(&token)
            .header("user-agent", ua)
            .body(pageview.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "{ua}");
        assert_eq!(resp.json::<Value>().await.unwrap(), json!({"accepted": 1}));
    }
    let (status, _) =
        hub.post_with("/v1/event", &token, pageview.clone(), &[("sec-purpose", "prefetch;prerender")]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(hub.queued().await.len(), 0, "nothing from bots or prefetches is queued");
    let metrics = hub.http.get(&hub.metrics).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("tidemark_hub_events_dropped_total") && l.contains("cause=\"bot\"")),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l.starts_with("tidemark_hub_events_dropped_total") && l.contains("cause=\"prefetch\"")),
        "{metrics}"
    );
}

#[tokio::test]
async fn enrichment_fills_agent_source_and_forwarded_ip_behind_a_trusted_proxy() {
    let hub = spawn_hub_with(|c| c.trusted_proxies = "127.0.0.1".into()).await;
    let (_, token) = hub.env.project(&[]).await;
    let body = json!({"type": "pageview", "url": "https://shop.io/?utm_source=google&utm_medium=cpc", "referrer": "https://www.google.com/"}).to_string();
    let (status, _) = hub.post_with("/v1/event", &token, body.clone(), &[("x-forwarded-for", "198.51.100.7")]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Same browser, another forwarded client: another visitor.
    let (status, _) = hub.post_with("/v1/event", &token, body, &[("x-forwarded-for", "198.51.100.8")]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let queued = hub.queued_events().await;
    assert_eq!(queued.len(), 2);
    let seen = queued[0].event();
    assert_eq!(
        (seen.agent.browser.as_str(), seen.agent.os.as_str(), seen.agent.device.as_str()),
        ("Chrome", "Linux", "desktop")
    );
    assert_eq!(seen.referrer_source, "paid");
    let visitors: HashSet<u64> = queued.iter().map(|j| j.visitor).collect();
    assert_eq!(visitors.len(), 2, "the forwarded address, not the proxy's, identifies the visitor");
}

#[tokio::test]
async fn identify_links_the_session_to_the_user() {
    let hub = spawn_hub().await;
    let (_, token) = hub.env.project(&[]).await;
    let view = |path: &str| json!({"type": "pageview", "url": format!("https://a.io{path}")}).to_string();
    assert_eq!(hub.post("/v1/event", Some(&token), view("/before")).await.0, StatusCode::ACCEPTED);
    let (status, _) = hub
        .post("/v1/identify", Some(&token), json!({"user_id": "user-7", "traits": {"plan": "pro"}}).to_string())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(hub.post("/v1/event", Some(&token), view("/after")).await.0, StatusCode::ACCEPTED);
    let queued = hub.queued_events().await;
    assert_eq!(queued.len(), 2);
    // A user the script linked to the session wins over the job's own, as in the `events` table.
    let user = |j: &Queued| if j.user.is_empty() { j.event().user_id.clone() } else { j.user.clone() };
    let rows: Vec<(String, String)> = queued.iter().map(|j| (j.event().path.clone(), user(j))).collect();
    assert_eq!(rows, vec![("/before".to_owned(), String::new()), ("/after".to_owned(), "user-7".to_owned())]);
}

#[tokio::test]
async fn preflight_allows_the_browser_to_post() {
    let hub = spawn_hub().await;
    let resp = hub
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/v1/event", hub.base))
        .header("origin", "https://example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://example.com");
    assert!(resp.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let allowed = resp.headers()["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("content-encoding"), "{allowed}");
}

#[tokio::test]
async fn wrong_methods_and_paths_get_json_errors() {
    let hub = spawn_hub().await;
    for path in ["/v1/event", "/v1/batch", "/v1/identify"] {
        let resp = hub.http.get(format!("{}{path}", hub.base)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(resp.headers()["allow"], "POST, OPTIONS");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "method_not_allowed");
    }
    let resp = hub.http.post(format!("{}/v1/events", hub.base)).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["message"].as_str()),
        (Some("not_found"), Some("no endpoint POST /v1/events"))
    );
}

#[tokio::test]
async fn a_bad_header_token_is_refused_before_the_body_is_read() {
    let hub = spawn_hub().await;
    // Not JSON at all: were the body parsed first, this would be a 400.
    let (status, body) = hub.post("/v1/event", Some("tm_notarealtoken0000"), "{{{ not json").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_token");
    let (status, _) = hub.post("/v1/batch", Some("tm_notarealtoken0000"), "[[[").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A good header token and a bad body: the body's fault is named.
    let (_, token) = hub.env.project(&[]).await;
    let (status, body) = hub.post("/v1/event", Some(&token), "{{{ not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn a_retried_request_keeps_its_event_ids() {
    let hub = spawn_hub().await;
    let (_, token) = hub.env.project(&[]).await;
    let ts = chrono::Utc::now().timestamp_millis() - 2_000;
    let event = json!({"type":"pageview","url":"https://a.io/pricing?plan=pro","ts": ts}).to_string();
    // The same request twice, as a client retries after a 503 that came after Redis had appended it.
    for _ in 0..2 {
        let (status, _) = hub.post("/v1/event", Some(&token), event.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let untimed = json!({"type":"pageview","url":"https://a.io/pricing"}).to_string();
    for _ in 0..2 {
        hub.post("/v1/event", Some(&token), untimed.clone()).await;
    }
    let ids: Vec<uuid::Uuid> = hub.queued_events().await.iter().map(|q| q.event.as_ref().unwrap().event_id).collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0], ids[1], "a retry of an event with its own time is the same event: its copy stays invisible");
    assert_ne!(ids[2], ids[3], "without an id or a time the hub cannot tell a retry from a repeat");
}

#[tokio::test]
async fn stored_urls_and_referrers_keep_no_secrets() {
    let hub = spawn_hub().await;
    let (_, token) = hub.env.project(&[]).await;
    let event = json!({
        "type": "pageview",
        "url": "https://shop.example/reset?email=ann%40example.com&token=s3cr3t&utm_source=mail&ref=footer#access_token=x",
        "referrer": "https://www.google.com/search?q=ann%40example.com+password",
    });
    let (status, _) = hub.post("/v1/event", Some(&token), event.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let queued = hub.queued_events().await;
    let stored = queued[0].event.as_ref().unwrap();
    assert_eq!(stored.url, "https://shop.example/reset?utm_source=mail&ref=footer");
    assert_eq!(stored.referrer, "https://www.google.com/search");
    assert_eq!(stored.utm.source, "mail", "UTM tags are still read from the full URL");
}

#[tokio::test]
async fn a_cookieless_event_is_dated_within_the_day_of_its_visitor_id() {
    let hub = spawn_hub().await;
    let (_, token) = hub.env.project(&[]).await;
    // A minute inside the 24 h bound: the day before, unless the test runs in the last minute of a UTC day.
    let yesterday = chrono::Utc::now().timestamp_millis() - 86_400_000 + 60_000;
    let late = json!([
        {"type": "pageview", "url": "https://a.io/late", "ts": yesterday},
        {"type": "pageview", "url": "https://a.io/late", "ts": yesterday, "anonymous_id": "site-id-7"},
    ]);
    let (status, _) = hub.post("/v1/batch", Some(&token), late.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let queued = hub.queued_events().await;
    let (cookieless, anonymous) = (queued[0].event.as_ref().unwrap(), queued[1].event.as_ref().unwrap());
    let day_start = cookieless.received_ms - cookieless.received_ms.rem_euclid(86_400_000);
    assert_eq!(cookieless.ts_ms, yesterday.max(day_start), "no earlier than the UTC day its visitor id belongs to");
    assert_eq!(anonymous.ts_ms, yesterday, "a site's own anonymous id is stable across days: its time stands");
}
