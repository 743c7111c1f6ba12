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
        Ok(())
    }
}
