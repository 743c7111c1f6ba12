//! Worker settings; every key can be set in the config file or as `TIDEMARK_<KEY>`.

use serde::Deserialize;
use tidemark_shared::config::{ConfigError, Validate, require_key_prefix, require_positive, require_url};
use tidemark_shared::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    pub redis_url: Secret<String>,
    /// `http://USER:PASSWORD@HOST:PORT/DATABASE`
    pub clickhouse_url: Secret<String>,
    /// Overrides the database named in `clickhouse_url` when set.
    pub clickhouse_database: String,
    pub key_prefix: String,
    pub stream_shards: u16,
    /// Most entries per ClickHouse insert.
    pub batch_size: usize,
    /// Longest a partly filled batch waits for more entries before it is written.
    pub batch_max_wait_ms: u64,
    /// Unique per process; empty means host name, process id and a random suffix.
    pub consumer_name: String,
    /// Longest a graceful shutdown waits for the batch in flight.
    pub shutdown_timeout_secs: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            redis_url: Secret::new("redis://127.0.0.1:17379/0".into()),
            clickhouse_url: Secret::new("http://default@127.0.0.1:17123/tidemark".into()),
            clickhouse_database: String::new(),
            key_prefix: "tm".into(),
            stream_shards: 1,
            batch_size: 5000,
            batch_max_wait_ms: 1000,
            consumer_name: String::new(),
            shutdown_timeout_secs: 30,
        }
    }
}

impl Validate for WorkerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        require_url("redis_url", self.redis_url.expose(), &["redis", "rediss", "unix"])?;
        require_url("clickhouse_url", self.clickhouse_url.expose(), &["http", "https"])?;
        require_key_prefix("key_prefix", &self.key_prefix)?;
        require_positive("stream_shards", u64::from(self.stream_shards))?;
        require_positive("batch_size", self.batch_size as u64)?;
        require_positive("batch_max_wait_ms", self.batch_max_wait_ms)?;
        Ok(())
    }
}

impl WorkerConfig {
    pub fn consumer_name(&self) -> String {
        if !self.consumer_name.is_empty() {
            return self.consumer_name.clone();
        }
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
        format!(
            "{}-{}-{:04x}",
            if host.is_empty() { "worker" } else { &host },
            std::process::id(),
            rand::random::<u16>()
        )
    }
}
