//! Stores killed with SIGKILL under load and restarted, each a private server of the test's own: the hub keeps
//! answering what it can, `/readyz` names the store that is down, and everything comes back without restarting
//! the hub.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tidemark_hub::HubConfig;
use tidemark_shared::secret::Secret;
use tidemark_testkit::private_postgres::PrivatePostgres;
use tidemark_testkit::private_redis::PrivateRedis;
use tidemark_testkit::{TestEnv, test_env};
use tokio::time::Instant;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0";

struct TestHub {
    base: String,
    metrics: String,
    http: reqwest::Client,
}

async fn spawn_hub(env: &TestEnv, redis_url: String, postgres_url: String) -> TestHub {
    let config = HubConfig {
        hub_listen: "127.0.0.1:0".into(),
        redis_url: Secret::new(redis_url),
        postgres_url: Secret::new(postgres_url),
        key_prefix: env.key_prefix.clone(),
        hub_metrics_listen: "127.0.0.1:0".into(),
        hub_threads: 2,
        ..HubConfig::default()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hub = tidemark_hub::build(config, listener).await.expect("hub starts");
    tokio::spawn(hub.server);
    let http = reqwest::Client::builder().user_agent(FIREFOX).timeout(Duration::from_secs(20)).build().unwrap();
    let metrics = format!("http://127.0.0.1:{}/metrics", hub.metrics_port.expect("metrics listener"));
    TestHub { base: format!("http://127.0.0.1:{}", hub.port), metrics, http }
}

impl TestHub {
    async fn event(&self, token: &str, i: usize) -> StatusCode {
        let body = json!({"type": "pageview", "url": format!("https://a.io/{i}")}).to_string();
        match self.http.post(format!("{}/v1/event", self.base)).bearer_auth(token).body(body).send().await {
            Ok(resp) => resp.status(),
            Err(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    async fn ready(&self) -> (StatusCode, Value) {
        let resp = self.http.get(format!("{}/readyz", self.base)).send().await.expect("/readyz answers");
        let status = resp.status();
        (status, resp.json().await.expect("/readyz is JSON"))
    }

    /// Polls `/readyz` until it answers `status`; returns how long that took.
    async fn ready_within(&self, status: StatusCode, timeout: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.ready().await.0 == status {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    async fn metrics(&self) -> String {
        self.http.get(&self.metrics).send().await.unwrap().text().await.unwrap()
    }
}

/// Posts 10 events every 100 ms with `token` until stopped; returns every status.
fn load(
    hub: Arc<TestHub>,
    token: String,
) -> (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<Vec<StatusCode>>) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn(async move {
        let mut i = 0;
        while !*stopped.borrow() {
            let round = futures_util::future::join_all((i..i + 10).map(|n| hub.event(&token, n))).await;
            statuses.lock().unwrap().extend(round);
            i += 10;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        statuses.lock().unwrap().clone()
    });
    (stop, task)
}

async fn new_token(pool: &sqlx::PgPool) -> String {
    let id: uuid::Uuid = sqlx::query_scalar("INSERT INTO projects (name, domains) VALUES ('p', '{}') RETURNING id")
        .fetch_one(pool)
        .await
        .expect("insert project");
    let token = tidemark_testkit::random_name("tm_test_");
    sqlx::query("INSERT INTO ingest_tokens (token, project_id) VALUES ($1, $2)")
        .bind(&token)
        .bind(id)
        .execute(pool)
        .await
        .expect("insert token");
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_under_load_the_hub_serves_cached_tokens_and_recovers_by_itself() {
    let env = test_env().await;
    let mut pg = PrivatePostgres::start().await.expect("private PostgreSQL");
    let pool = pg.migrated("tm_hub").await.unwrap();
    let token = new_token(&pool).await;
    let hub = Arc::new(spawn_hub(&env, env.stores.redis_url.clone(), pg.url("tm_hub")).await);
    assert_eq!(hub.ready().await, (StatusCode::OK, json!({"redis": true, "postgres": true})));
    assert_eq!(hub.event(&token, 0).await, StatusCode::ACCEPTED, "the token is looked up once and cached");

    let (stop, statuses) = load(hub.clone(), token.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.kill().await;
    let went = hub.ready_within(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(5)).await;
    let during = hub.ready().await;
    // A token the hub has not seen cannot be checked now: 503 with Retry-After, never a 2xx or a 500.
    let unknown = hub
        .http
        .post(format!("{}/v1/event", hub.base))
        .bearer_auth("tm_never_seen_before")
        .body(json!({"type": "pageview", "url": "https://a.io/"}).to_string())
        .send()
        .await
        .unwrap();
    let unknown = (unknown.status(), unknown.headers().contains_key("retry-after"));
    tokio::time::sleep(Duration::from_secs(3)).await;

    pg.resume().await.expect("PostgreSQL restarts on its data");
    let back = hub.ready_within(StatusCode::OK, Duration::from_secs(10)).await;
    let pool = tidemark_shared::postgres::connect(&pg.url("tm_hub"), 2).await.unwrap();
    let fresh = new_token(&pool).await;
    let fresh_status = hub.event(&fresh, 1_000_000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(true).unwrap();
    let statuses = statuses.await.unwrap();
    let metrics = hub.metrics().await;
    eprintln!(
        "PostgreSQL killed: /readyz said so after {went:?}; back: /readyz green {back:?} after the restart; {} \
         events posted meanwhile",
        statuses.len()
    );

    assert!(went.is_some(), "/readyz never noticed PostgreSQL was gone");
    assert_eq!(during, (StatusCode::SERVICE_UNAVAILABLE, json!({"redis": true, "postgres": false})));
    assert_eq!(unknown, (StatusCode::SERVICE_UNAVAILABLE, true), "an uncached token during the outage");
    let refused: Vec<_> = statuses.iter().filter(|s| **s != StatusCode::ACCEPTED).collect();
    assert!(refused.is_empty(), "a cached token and prepared salts keep events flowing: {refused:?}");
    assert!(back.is_some_and(|t| t < Duration::from_secs(5)), "/readyz green again {back:?} after the restart");
    assert_eq!(hub.ready().await.1, json!({"redis": true, "postgres": true}));
    assert_eq!(fresh_status, StatusCode::ACCEPTED, "a token created after the restart is looked up");
    assert!(metrics.contains("tidemark_hub_store_failures_total{store=\"postgres\"}"), "{metrics}");
    assert!(metrics.contains("tidemark_hub_store_up{store=\"postgres\"} 1"), "{metrics}");
    let mut conn = env.redis().await;
    let queued = tidemark_testkit::queued_jobs(&mut conn, &env.keys.stream(0)).await;
    assert_eq!(queued, statuses.len() + 2, "every 202 is queued, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_readyz_names_it_and_turns_green_again_by_itself() {
    let env = test_env().await;
    let mut redis = PrivateRedis::start().await.expect("private Redis");
    let hub = spawn_hub(&env, redis.url(), env.postgres_url.clone()).await;
    let (_, token) = env.project(&[]).await;
    assert_eq!(hub.event(&token, 0).await, StatusCode::ACCEPTED);

    redis.kill().await;
    assert_eq!(hub.event(&token, 1).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hub.ready().await, (StatusCode::SERVICE_UNAVAILABLE, json!({"redis": false, "postgres": true})));
    // (The gauges are process-wide, and the other test's hub sets them too: only the counter is asserted here.)
    let metrics = hub.metrics().await;
    assert!(metrics.contains("tidemark_hub_store_failures_total{store=\"redis\"}"), "{metrics}");

    redis.resume().await.unwrap();
    let back = hub.ready_within(StatusCode::OK, Duration::from_secs(5)).await;
    eprintln!("Redis restarted: /readyz green {back:?} after");
    assert!(back.is_some(), "/readyz green again without restarting the hub");
    assert_eq!(hub.event(&token, 2).await, StatusCode::ACCEPTED);
    let metrics = hub.metrics().await;
    assert!(metrics.contains("tidemark_hub_store_up{store=\"redis\"} 1"), "{metrics}");
}
