//! Hub settings. Every key can be set in the config file or as `TIDEMARK_<KEY>` (e.g. `TIDEMARK_HUB_LISTEN`).

use serde::Deserialize;
use tidemark_shared::config::{ConfigError, Validate, require_key_prefix, require_positive, require_url};
use tidemark_shared::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HubConfig {
    /// Address the HTTP server binds.
    pub hub_listen: String,
    /// Address serving Prometheus text on `/metrics`, apart from the public ingest port (keep it private); empty
    /// disables it, port 0 picks a free one.
    pub hub_metrics_listen: String,
    pub redis_url: Secret<String>,
    pub postgres_url: Secret<String>,
    /// Prefix of every Redis key; one prefix per Tidemark installation.
    pub key_prefix: String,
    /// Number of ingest streams; more than one only helps on a Redis Cluster.
    pub stream_shards: u16,
    /// Back-pressure: a shard stream taking this many bytes of Redis memory (Redis's `MEMORY USAGE` estimate) makes
    /// the hub answer 503 until workers catch up. Streams are never trimmed of unprocessed entries.
    pub max_stream_bytes: u64,
    /// Largest request body accepted, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Largest number of events in one `/v1/batch` request.
    pub max_batch: usize,
    /// Largest serialized `props` object of one event, in bytes.
    pub max_props_bytes: usize,
    /// Inactivity after which the next event of a visitor starts a new session.
    pub session_timeout_secs: u64,
    /// How long a validated token is trusted before the token store is asked again.
    pub token_cache_ttl_secs: u64,
    /// Database lookups per second, for the whole hub, of tokens found in neither cache (bursts of twice that);
    /// past it the hub answers 503 instead of passing a flood of made-up tokens on to PostgreSQL. 0 = no bound.
    pub token_lookups_per_sec: u32,
    /// Client timestamps earlier than this many seconds before arrival are clamped to that bound.
    pub max_event_age_secs: u64,
    /// Query parameters that stored page URLs and referrers keep besides the UTM tags (comma-separated names; `*`
    /// keeps every parameter and the fragment). Others are cut: they carry e-mail addresses and reset tokens.
    pub url_query_allowlist: String,
    /// A store unreachable this long is logged at ERROR (at WARN when it first fails, at INFO when it is back).
    pub store_alert_secs: u64,
    /// HTTP worker threads; 0 means one per core. Each has its own Redis connection and enqueue writer.
    pub hub_threads: usize,
    /// Comma-separated `.mmdb` paths (GeoIP2 or ip-location-db schema); empty disables geo.
    pub geo_database: String,
    /// Comma-separated CIDRs of reverse proxies whose forwarded headers are believed; empty trusts none.
    pub trusted_proxies: String,
    /// Comma-separated CIDRs whose traffic is answered 202 but not counted (an office, a monitoring probe).
    pub excluded_cidrs: String,
    /// Sustained events per second one project may send to one hub replica; 0 disables the limit.
    pub rate_limit_per_sec: u32,
    /// Events a project may send in a burst above the sustained rate.
    pub rate_limit_burst: u32,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            hub_listen: "127.0.0.1:17080".into(),
            hub_metrics_listen: "127.0.0.1:17082".into(),
            redis_url: Secret::new("redis://127.0.0.1:17379/0".into()),
            postgres_url: Secret::new("postgres://postgres@127.0.0.1:17432/tidemark".into()),
            key_prefix: "tm".into(),
            stream_shards: 1,
            max_stream_bytes: 1 << 30,
            max_body_bytes: 512 * 1024,
            max_batch: 100,
            max_props_bytes: 8 * 1024,
            session_timeout_secs: 30 * 60,
            token_cache_ttl_secs: 60,
            token_lookups_per_sec: 200,
            max_event_age_secs: 24 * 3600,
            url_query_allowlist: crate::url_parts::DEFAULT_QUERY_ALLOWLIST.into(),
            store_alert_secs: tidemark_shared::outage::DEFAULT_ALERT_SECS,
            hub_threads: 0,
            geo_database: String::new(),
            trusted_proxies: String::new(),
            excluded_cidrs: String::new(),
            rate_limit_per_sec: 5_000,
            rate_limit_burst: 20_000,
        }
    }
}

impl Validate for HubConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.hub_listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| ConfigError::invalid("hub_listen", format!("not a socket address ({e})")))?;
        if !self.hub_metrics_listen.is_empty() {
            self.hub_metrics_listen
                .parse::<std::net::SocketAddr>()
                .map_err(|e| ConfigError::invalid("hub_metrics_listen", format!("not a socket address ({e})")))?;
            if self.hub_metrics_listen == self.hub_listen {
                return Err(ConfigError::invalid("hub_metrics_listen", "must differ from hub_listen"));
            }
        }
        require_url("redis_url", self.redis_url.expose(), &["redis", "rediss", "unix"])?;
        require_url("postgres_url", self.postgres_url.expose(), &["postgres", "postgresql"])?;
        require_key_prefix("key_prefix", &self.key_prefix)?;
        require_positive("stream_shards", u64::from(self.stream_shards))?;
        require_positive("max_stream_bytes", self.max_stream_bytes)?;
        require_positive("max_body_bytes", self.max_body_bytes as u64)?;
        require_positive("max_batch", self.max_batch as u64)?;
        require_positive("max_props_bytes", self.max_props_bytes as u64)?;
        require_positive("session_timeout_secs", self.session_timeout_secs)?;
        crate::client_ip::TrustedProxies::parse(&split_list(&self.trusted_proxies))
            .map_err(|e| ConfigError::invalid("trusted_proxies", e))?;
        crate::client_ip::TrustedProxies::parse(&split_list(&self.excluded_cidrs))
            .map_err(|e| ConfigError::invalid("excluded_cidrs", e))?;
        if self.rate_limit_per_sec > 0 && self.rate_limit_burst == 0 {
            return Err(ConfigError::invalid(
                "rate_limit_burst",
                "must be greater than 0 when rate_limit_per_sec is set",
            ));
        }
        Ok(())
    }
}

/// Comma-separated config values, trimmed, empties dropped.
pub fn split_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        HubConfig::default().validate().unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let config = HubConfig { redis_url: Secret::new("http://x".into()), ..HubConfig::default() };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("`redis_url`"), "{err}");
        let config = HubConfig { max_batch: 0, ..HubConfig::default() };
        assert!(config.validate().unwrap_err().to_string().contains("`max_batch`"));
        let config = HubConfig { trusted_proxies: "10.0.0.0/8, nonsense".into(), ..HubConfig::default() };
        assert!(config.validate().unwrap_err().to_string().contains("`trusted_proxies`"));
        let config = HubConfig { excluded_cidrs: "192.0.2.0/24".into(), ..HubConfig::default() };
        config.validate().unwrap();
    }
}
