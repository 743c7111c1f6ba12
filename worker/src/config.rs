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
    /// An entry pending this long without its consumer touching it is taken over (XAUTOCLAIM): its consumer died.
    /// Should exceed the longest pause between two touches of a live worker ([`WorkerConfig::safe_claim_idle_ms`]);
    /// shorter only costs duplicate inserts, which no query sees, so it is a warning, not an error.
    pub claim_idle_ms: u64,
    /// After this many deliveries without success (each one a consumer that died holding the entry) the entry is
    /// moved to the dead-letter stream instead of being tried again.
    pub max_deliveries: u64,
    /// The dead-letter stream of each shard keeps at most this many dead letters: the oldest go first. Workers warn
    /// when it is 80 % full and log an error once it is full (dead letters are then being lost).
    pub dead_letter_max_len: u64,
    /// Dead letters older than this are removed; 0 keeps them until the length bound.
    pub dead_letter_max_age_secs: u64,
    /// A store (Redis, ClickHouse) unreachable this long is logged as an ERROR; the first failure is a WARN. The
    /// worker reconnects and retries all along. `redis_alert_secs`, its earlier name, is still read.
    #[serde(alias = "redis_alert_secs")]
    pub store_alert_secs: u64,
    /// `HOST:PORT` serving Prometheus text on `/metrics`; empty disables it, port 0 picks a free one.
    pub worker_metrics_listen: String,
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
            claim_idle_ms: 120_000,
            max_deliveries: 5,
            dead_letter_max_len: 100_000,
            dead_letter_max_age_secs: 0,
            store_alert_secs: tidemark_shared::outage::DEFAULT_ALERT_SECS,
            worker_metrics_listen: String::new(),
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
        require_positive("max_deliveries", self.max_deliveries)?;
        require_positive("claim_idle_ms", self.claim_idle_ms)?;
        require_positive("dead_letter_max_len", self.dead_letter_max_len)?;
        if !self.worker_metrics_listen.is_empty() {
            self.worker_metrics_listen
                .parse::<std::net::SocketAddr>()
                .map_err(|e| ConfigError::invalid("worker_metrics_listen", format!("not a socket address ({e})")))?;
        }
        Ok(())
    }
}

impl WorkerConfig {
    /// A live worker touches its entries at least once per batch wait, and while retrying once per back-off pause
    /// plus one insert attempt: below twice that, a second worker could take over a healthy worker's batch.
    pub fn safe_claim_idle_ms(&self) -> u64 {
        self.batch_max_wait_ms.max(crate::retry::RETRY_CYCLE.as_millis() as u64) * 2
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        WorkerConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let config = WorkerConfig { claim_idle_ms: 0, ..WorkerConfig::default() };
        assert!(config.validate().unwrap_err().to_string().contains("`claim_idle_ms`"));
        let defaults = WorkerConfig::default();
        assert!(defaults.claim_idle_ms >= defaults.safe_claim_idle_ms());
        let config = WorkerConfig { worker_metrics_listen: "nope".into(), ..WorkerConfig::default() };
        assert!(config.validate().unwrap_err().to_string().contains("`worker_metrics_listen`"));
    }

    #[test]
    fn the_earlier_name_of_store_alert_secs_still_counts() {
        let config: WorkerConfig = serde_json::from_str(r#"{"redis_alert_secs": 5}"#).unwrap();
        assert_eq!(config.store_alert_secs, 5);
        let config: WorkerConfig = serde_json::from_str(r#"{"store_alert_secs": 7}"#).unwrap();
        assert_eq!(config.store_alert_secs, 7);
    }
}
