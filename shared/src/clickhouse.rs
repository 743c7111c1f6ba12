//! Connecting to ClickHouse over HTTP in a way that works on 18.16 and on current servers alike.
//!
//! The URL form is `http://USER:PASSWORD@HOST:PORT/DATABASE`. Two server-version quirks are handled here so that
//! SQL files and queries stay portable (see docs/CLICKHOUSE.md):
//! - the client's schema validation uses formats 18.16 lacks, so it is off;
//! - `LowCardinality` needs `allow_experimental_low_cardinality_type=1` on 18.x, a setting current versions reject,
//!   so it is sent only to servers older than 19.

use anyhow::{Context, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    pub fn parse(raw: &str) -> Option<Self> {
        let mut parts = raw.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Self { major, minor })
    }

    /// 18.x knows `LowCardinality` only behind an experimental flag.
    pub fn needs_low_cardinality_flag(self) -> bool {
        self.major < 19
    }
}

/// Where the server is, split out of a `TIDEMARK_CLICKHOUSE_URL`.
#[derive(Clone)]
pub struct Endpoint {
    pub base_url: String,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base_url", &self.base_url)
            .field("user", &self.user)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// `database_override` wins over the URL's path when non-empty.
    pub fn parse(raw: &str, database_override: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(raw).context("ClickHouse URL is not a URL")?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("ClickHouse URL must use http or https");
        }
        let host = url.host_str().context("ClickHouse URL has no host")?;
        let port = url.port_or_known_default().unwrap_or(8123);
        let database = if database_override.is_empty() {
            url.path().trim_matches('/').to_owned()
        } else {
            database_override.to_owned()
        };
        let database = if database.is_empty() { "default".to_owned() } else { database };
        if !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("ClickHouse database name may hold only letters, digits and underscores");
        }
        let user = if url.username().is_empty() { "default" } else { url.username() };
        Ok(Self {
            base_url: format!("{}://{host}:{port}", url.scheme()),
            user: percent_decode(user),
            password: url.password().map(percent_decode).unwrap_or_default(),
            database,
        })
    }
}

fn percent_decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("x={raw}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// A client bound to a database, plus what the server told us about itself.
#[derive(Clone)]
pub struct ClickHouse {
    pub client: clickhouse::Client,
    pub version: ServerVersion,
    pub endpoint: Endpoint,
}

impl ClickHouse {
    /// Connects, asks the server its version and configures the client for it. The database need not exist yet.
    pub async fn connect(endpoint: Endpoint) -> anyhow::Result<Self> {
        let server = server_client(&endpoint);
        let raw: String = server
            .query("SELECT version()")
            .fetch_one()
            .await
            .with_context(|| format!("ClickHouse at {} did not answer", endpoint.base_url))?;
        let version = ServerVersion::parse(&raw).with_context(|| format!("unparseable ClickHouse version {raw}"))?;
        let mut client = server.with_database(endpoint.database.clone());
        if version.needs_low_cardinality_flag() {
            client = client.with_setting("allow_experimental_low_cardinality_type", "1");
        }
        Ok(Self { client, version, endpoint })
    }

    /// A client with no database selected, for `CREATE DATABASE` and `DROP DATABASE`.
    pub fn server(&self) -> clickhouse::Client {
        server_client(&self.endpoint)
    }

    pub async fn create_database(&self) -> anyhow::Result<()> {
        self.server()
            .query(&format!("CREATE DATABASE IF NOT EXISTS {}", self.endpoint.database))
            .execute()
            .await
            .context("creating the ClickHouse database")
    }
}

fn server_client(endpoint: &Endpoint) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(endpoint.base_url.clone())
        .with_user(endpoint.user.clone())
        .with_password(endpoint.password.clone())
        .with_validation(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let old = ServerVersion::parse("18.16.1").unwrap();
        assert!(old.needs_low_cardinality_flag());
        assert!(!ServerVersion::parse("26.9.2.1").unwrap().needs_low_cardinality_flag());
        assert_eq!(ServerVersion::parse("junk"), None);
    }

    #[test]
    fn endpoint_from_url() {
        let e = Endpoint::parse("http://bob:p%40ss@localhost:9123/analytics", "").unwrap();
        assert_eq!(e.base_url, "http://localhost:9123");
        assert_eq!((e.user.as_str(), e.password.as_str()), ("bob", "p@ss"));
        assert_eq!(e.database, "analytics");
        let d = Endpoint::parse("http://localhost:8123", "").unwrap();
        assert_eq!((d.user.as_str(), d.database.as_str()), ("default", "default"));
        assert_eq!(Endpoint::parse("http://h/x", "other").unwrap().database, "other");
        assert!(Endpoint::parse("http://h/bad-name", "").is_err());
        assert!(Endpoint::parse("redis://h/x", "").is_err());
        assert!(!format!("{e:?}").contains("p@ss"));
    }
}
