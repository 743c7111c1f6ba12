//! Test harness: makes sure the real stores run (starting them with `scripts/stack.sh up` when they do not
//! answer) and gives each test its own PostgreSQL database, ClickHouse database and Redis key prefix, all migrated.

use anyhow::Context;
use rand::Rng;
use rand::distr::Alphanumeric;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;
use tidemark_shared::clickhouse::{ClickHouse, Endpoint};
use tidemark_shared::keys::Keys;
use tokio::sync::OnceCell;

pub mod batch;
pub mod private_clickhouse;
pub mod private_postgres;
pub mod private_redis;

/// Where the shared local stack answers.
#[derive(Debug, Clone)]
pub struct Stores {
    pub redis_url: String,
    pub postgres_url: String,
    pub clickhouse_url: String,
}

/// One test's private slice of the stores.
pub struct TestEnv {
    pub stores: Stores,
    /// Random, so tests never see each other's keys.
    pub key_prefix: String,
    pub keys: Keys,
    pub postgres_url: String,
    pub pg: sqlx::PgPool,
    pub clickhouse_url: String,
    pub ch: ClickHouse,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

static STORES: OnceCell<Stores> = OnceCell::const_new();

/// The shared stack, started on first use when any store does not answer.
pub async fn stores() -> &'static Stores {
    STORES
        .get_or_init(|| async {
            tokio::task::spawn_blocking(ensure_stack).await.expect("stack start-up task").expect("local stack")
        })
        .await
}

fn ensure_stack() -> anyhow::Result<Stores> {
    let root = repo_root();
    let env_file = root.join(".data/tidemark.env");
    let answering = read_env(&env_file).ok().filter(|env| {
        ["TIDEMARK_REDIS_URL", "TIDEMARK_POSTGRES_URL", "TIDEMARK_CLICKHOUSE_URL"]
            .iter()
            .all(|k| env.get(*k).is_some_and(|url| port_open(url)))
    });
    let env = match answering {
        Some(env) => env,
        None => {
            let status = std::process::Command::new("bash")
                .arg(root.join("scripts/stack.sh"))
                .arg("up")
                .status()
                .context("running scripts/stack.sh up")?;
            anyhow::ensure!(status.success(), "scripts/stack.sh up failed");
            read_env(&env_file)?
        }
    };
    let get = |k: &str| env.get(k).cloned().with_context(|| format!("{k} missing from {}", env_file.display()));
    Ok(Stores {
        redis_url: get("TIDEMARK_REDIS_URL")?,
        postgres_url: get("TIDEMARK_POSTGRES_URL")?,
        clickhouse_url: get("TIDEMARK_CLICKHOUSE_URL")?,
    })
}

fn read_env(path: &PathBuf) -> anyhow::Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

fn port_open(raw_url: &str) -> bool {
    let Ok(url) = url::Url::parse(raw_url) else { return false };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { return false };
    let Ok(addr) = format!("{host}:{port}").parse::<SocketAddr>() else { return false };
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

pub fn random_name(prefix: &str) -> String {
    let suffix: String = rand::rng().sample_iter(Alphanumeric).take(10).map(char::from).collect();
    format!("{prefix}{}", suffix.to_lowercase())
}

/// A fresh, migrated PostgreSQL database, ClickHouse database and Redis key prefix for one test.
pub async fn test_env() -> TestEnv {
    let stores = stores().await.clone();
    let name = random_name("t_");

    let admin = tidemark_shared::postgres::connect(&stores.postgres_url, 2).await.expect("PostgreSQL admin pool");
    // The name is ours (random letters and digits), not input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("create test database");
    admin.close().await;
    let mut pg_url = url::Url::parse(&stores.postgres_url).expect("PostgreSQL URL");
    pg_url.set_path(&name);
    let postgres_url = pg_url.to_string();
    let pg = tidemark_shared::postgres::connect(&postgres_url, 10).await.expect("test database pool");
    tidemark_shared::postgres::migrate(&pg).await.expect("PostgreSQL migrations");

    let mut ch_url = url::Url::parse(&stores.clickhouse_url).expect("ClickHouse URL");
    ch_url.set_path(&name);
    let clickhouse_url = ch_url.to_string();
    let ch = ClickHouse::connect(Endpoint::parse(&clickhouse_url, "").expect("endpoint")).await.expect("ClickHouse");
    tidemark_shared::ch_migrations::migrate(&ch).await.expect("ClickHouse migrations");

    let key_prefix = name.clone();
    TestEnv { keys: Keys::new(key_prefix.clone(), 1), key_prefix, stores, postgres_url, pg, clickhouse_url, ch }
}

impl TestEnv {
    /// Creates a project with one ingest token, the way `app project create` does, and returns (id, token).
    pub async fn project(&self, domains: &[&str]) -> (uuid::Uuid, String) {
        let id: uuid::Uuid = sqlx::query_scalar("INSERT INTO projects (name, domains) VALUES ($1, $2) RETURNING id")
            .bind("Test project")
            .bind(domains.iter().map(|d| d.to_string()).collect::<Vec<_>>())
            .fetch_one(&self.pg)
            .await
            .expect("insert project");
        let token = random_name("tm_test_");
        sqlx::query("INSERT INTO ingest_tokens (token, project_id) VALUES ($1, $2)")
            .bind(&token)
            .bind(id)
            .execute(&self.pg)
            .await
            .expect("insert token");
        (id, token)
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let client = tidemark_shared::redis::client(&self.stores.redis_url).expect("Redis client");
        tidemark_shared::redis::connect(&client).await.expect("Redis connection")
    }

    /// Polls `sql` (returning one UInt64) until it equals `want` or `timeout` passes; returns the last value.
    pub async fn wait_for_count(&self, sql: &str, want: u64, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got: u64 = self.ch.client.query(sql).fetch_one().await.expect("count query");
            if got == want || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The jobs queued in `stream`, whatever the layout of its entries: the hub's `batch.v1` entries or single-job
/// entries.
pub async fn queued_jobs(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> usize {
    use tidemark_shared::batch;
    let entries: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(stream).arg("-").arg("+").query_async(conn).await.expect("XRANGE");
    entries
        .ids
        .iter()
        .map(|entry| match entry.get::<String>("k").as_deref() {
            Some(batch::BATCH_V1) => {
                let assigned: Vec<u8> = entry.get(batch::FIELD_ASSIGNED).expect("assignments");
                let frames: Vec<u8> = entry.get(batch::FIELD_JOBS).expect("jobs");
                batch::split(&assigned, &frames).expect("a batch entry the hub wrote").len()
            }
            _ => 1,
        })
        .sum()
}
