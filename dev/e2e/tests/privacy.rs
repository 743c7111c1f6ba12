//! Raw IP addresses never reach storage or logs. A distinctive client address, sent through a trusted proxy as a
//! real deployment sees it, is looked for everywhere an event leaves a trace: every Redis key under the test's
//! prefix (streams, session keys, dead letters), every ClickHouse table, every PostgreSQL table, and everything
//! the hub and the workers logged at TRACE level. The hub does use the address (geo, visitor id, shard): what
//! this proves is that it ends there.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tidemark_hub::HubConfig;
use tidemark_shared::secret::Secret;
use tidemark_testkit::{TestEnv, test_env};
use tidemark_worker::consumer::Consumer;
use tidemark_worker::devices_sink::DevicesSink;
use tidemark_worker::events_sink::EventsSink;
use tidemark_worker::runner::{Engine, EngineSettings, Outcome};
use tidemark_worker::sessions_sink::SessionsSink;
use tidemark_worker::sink::Sink;

const V4: &str = "198.51.100.237";
const V6: &str = "2001:db8:dead:beef::77";
const V6_EXPANDED: &str = "2001:0db8:dead:beef:0000:0000:0000:0077";

/// Everything logged in this process, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The forms an address can take in bytes: its text (IPv6 also written out in full) and its raw octets.
fn needles() -> Vec<(String, Vec<u8>)> {
    let v4: std::net::Ipv4Addr = V4.parse().unwrap();
    let v6: std::net::Ipv6Addr = V6.parse().unwrap();
    vec![
        (V4.into(), V4.as_bytes().to_vec()),
        (V6.into(), V6.as_bytes().to_vec()),
        (V6_EXPANDED.into(), V6_EXPANDED.as_bytes().to_vec()),
        (format!("{V4} as octets"), v4.octets().to_vec()),
        (format!("{V6} as octets"), v6.octets().to_vec()),
    ]
}

fn assert_absent(place: &str, haystack: &[u8]) {
    for (name, needle) in needles() {
        assert!(
            !haystack.windows(needle.len()).any(|w| w == needle.as_slice()),
            "the client address ({name}) reached {place}"
        );
    }
}

async fn drain<S: Sink>(env: &TestEnv, sink: S) {
    let consumer = Consumer::connect(&env.stores.redis_url, env.keys.clone(), sink.group(), "privacy".into())
        .await
        .expect("consumer");
    let mut engine =
        Engine::new(consumer, sink, EngineSettings { batch_size: 1000, max_wait: Duration::from_millis(50) });
    loop {
        match engine.process_batch().await.expect("a worker step") {
            Outcome::Idle => break,
            Outcome::Written { .. } => {}
            Outcome::Retrying { error, .. } => panic!("an insert failed: {error}"),
        }
    }
}

#[tokio::test]
async fn a_client_address_reaches_no_store_and_no_log() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only subscriber of this test binary");

    let env = test_env().await;
    let (_, token) = env.project(&[]).await;
    let config = HubConfig {
        hub_listen: "127.0.0.1:0".into(),
        hub_metrics_listen: String::new(),
        redis_url: Secret::new(env.stores.redis_url.clone()),
        postgres_url: Secret::new(env.postgres_url.clone()),
        key_prefix: env.key_prefix.clone(),
        trusted_proxies: "127.0.0.1/32".into(),
        hub_threads: 1,
        ..HubConfig::default()
    };
    let hub = tidemark_hub::build(config, std::net::TcpListener::bind("127.0.0.1:0").unwrap()).await.unwrap();
    tokio::spawn(hub.server);
    let base = format!("http://127.0.0.1:{}", hub.port);
    let http = reqwest::Client::builder()
        .user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0")
        .build()
        .unwrap();

    let requests = [
        (
            "/v1/event",
            V4,
            serde_json::json!({"type": "pageview", "url": "https://shop.example/", "referrer": "https://news.example/"}),
        ),
        ("/v1/event", V6, serde_json::json!({"type": "pageview", "url": "https://shop.example/pricing"})),
        (
            "/v1/batch",
            V4,
            serde_json::json!([
                {"type": "custom", "name": "signup", "url": "https://shop.example/join", "props": {"plan": "pro"}},
                {"type": "pageleave", "url": "https://shop.example/join", "duration_ms": 5000},
            ]),
        ),
        ("/v1/identify", V4, serde_json::json!({"user_id": "user-1", "traits": {"plan": "pro"}})),
        // Refused requests log and answer too: a bad field, and a bad token.
        ("/v1/event", V4, serde_json::json!({"type": "pageview", "url": "not a url"})),
    ];
    for (path, address, body) in requests {
        let response = http
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .header("x-forwarded-for", format!("{address}, 127.0.0.1"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().as_u16() < 500, "{path}: {}", response.status());
    }
    let refused = http
        .post(format!("{base}/v1/event"))
        .bearer_auth("tm_notarealtoken0000")
        .header("x-forwarded-for", V4)
        .json(&serde_json::json!({"type": "pageview", "url": "https://shop.example/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    drain(&env, EventsSink::new(env.ch.clone())).await;
    drain(&env, SessionsSink::new(env.ch.clone())).await;
    drain(&env, DevicesSink::new(env.ch.clone())).await;
    let stored: u64 = env.ch.client.query("SELECT count() FROM events").fetch_one().await.unwrap();
    assert_eq!(stored, 4, "the accepted events arrived, so there was something to look through");

    // Redis: every key of this test's prefix, whatever its type.
    let mut conn = env.redis().await;
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}*", env.key_prefix)).query_async(&mut conn).await.unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
        let value: redis::Value = match kind.as_str() {
            "string" => redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap(),
            "stream" => redis::cmd("XRANGE").arg(&key).arg("-").arg("+").query_async(&mut conn).await.unwrap(),
            "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await.unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(&key).query_async(&mut conn).await.unwrap(),
            "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).query_async(&mut conn).await.unwrap(),
            "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query_async(&mut conn).await.unwrap(),
            other => panic!("{key} is a Redis {other}: teach this test to read it"),
        };
        assert_absent(&format!("Redis key {key}"), format!("{key} {value:?}").as_bytes());
        assert_absent(&format!("Redis key {key}"), &raw_bytes(&value));
    }

    // ClickHouse: every table that stores rows, every column, as text.
    let tables: Vec<String> = env
        .ch
        .client
        .query("SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT IN ('Null', 'MaterializedView', 'View')")
        .fetch_all()
        .await
        .unwrap();
    assert!(tables.contains(&"events".to_owned()), "{tables:?}");
    for table in tables {
        // The name comes from system.tables, not from input.
        let dump = env
            .ch
            .client
            .query(&format!("SELECT * FROM {table}"))
            .fetch_bytes("TabSeparated")
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_absent(&format!("ClickHouse table {table}"), &dump);
    }

    // PostgreSQL: every table of the schema, every row as text.
    let pg_tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&env.pg)
            .await
            .unwrap();
    assert!(pg_tables.iter().any(|t| t == "daily_salts"), "{pg_tables:?}");
    for table in pg_tables {
        let rows: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT string_agg(t::text, E'\\n') FROM \"{table}\" t")))
                .fetch_one(&env.pg)
                .await
                .unwrap();
        assert_absent(&format!("PostgreSQL table {table}"), rows.unwrap_or_default().as_bytes());
    }

    let logged = logs.0.lock().unwrap().clone();
    assert!(logged.len() > 1000, "the services logged at TRACE level, so there was something to look through");
    assert_absent("the logs", &logged);
}

/// The bytes of every string in a Redis reply, as they were stored.
fn raw_bytes(value: &redis::Value) -> Vec<u8> {
    match value {
        redis::Value::BulkString(bytes) => bytes.clone(),
        redis::Value::SimpleString(s) => s.as_bytes().to_vec(),
        redis::Value::Array(items) | redis::Value::Set(items) => items.iter().flat_map(raw_bytes).collect(),
        redis::Value::Map(pairs) => pairs.iter().flat_map(|(k, v)| [raw_bytes(k), raw_bytes(v)].concat()).collect(),
        _ => Vec::new(),
    }
}
