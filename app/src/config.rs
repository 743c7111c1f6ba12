//! App settings; every key can be set in the config file or as `TIDEMARK_<KEY>`.

use serde::Deserialize;
use tidemark_shared::config::{ConfigError, Validate, require_key_prefix, require_url};
use tidemark_shared::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AppConfig {
    pub app_listen: String,
    pub postgres_url: Secret<String>,
    pub redis_url: Secret<String>,
    /// `http://USER:PASSWORD@HOST:PORT/DATABASE`
    pub clickhouse_url: Secret<String>,
    pub clickhouse_database: String,
    pub key_prefix: String,
    /// Where browsers reach the app; `https://` marks the session cookie `Secure`.
    pub app_public_url: String,
    /// A session ends this long after its last request...
    pub app_session_idle_secs: u64,
    /// ...and this long after sign-in, whatever happens.
    pub app_session_max_secs: u64,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            app_listen: "127.0.0.1:17081".into(),
            postgres_url: Secret::new("postgres://postgres@127.0.0.1:17432/tidemark".into()),
            redis_url: Secret::new("redis://127.0.0.1:17379/0".into()),
            clickhouse_url: Secret::new("http://default@127.0.0.1:17123/tidemark".into()),
            clickhouse_database: String::new(),
            key_prefix: "tm".into(),
            app_public_url: "http://127.0.0.1:17081".into(),
            app_session_idle_secs: 30 * 60,
            app_session_max_secs: 12 * 3600,
        }
    }
}

impl Validate for AppConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.app_listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| ConfigError::invalid("app_listen", format!("not a socket address ({e})")))?;
        require_url("postgres_url", self.postgres_url.expose(), &["postgres", "postgresql"])?;
        require_url("redis_url", self.redis_url.expose(), &["redis", "rediss", "unix"])?;
        require_url("clickhouse_url", self.clickhouse_url.expose(), &["http", "https"])?;
        require_key_prefix("key_prefix", &self.key_prefix)?;
        require_url("app_public_url", &self.app_public_url, &["http", "https"])?;
        if self.app_session_idle_secs == 0 || self.app_session_idle_secs > self.app_session_max_secs {
            return Err(ConfigError::invalid(
                "app_session_idle_secs",
                "must be at least 1 and at most app_session_max_secs".to_owned(),
            ));
        }
        Ok(())
    }
}

impl AppConfig {
    /// Whether the session cookie must be `Secure` (sent over HTTPS only).
    pub fn secure_cookies(&self) -> bool {
        self.app_public_url.trim().to_ascii_lowercase().starts_with("https://")
    }

    pub fn session_lifetimes(&self) -> crate::auth::sessions::Lifetimes {
        crate::auth::sessions::Lifetimes {
            idle: std::time::Duration::from_secs(self.app_session_idle_secs),
            absolute: std::time::Duration::from_secs(self.app_session_max_secs),
        }
    }
}
