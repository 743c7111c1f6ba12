//! Configuration loading shared by every service: built-in defaults, then an optional TOML file
//! (`TIDEMARK_CONFIG`, else `tidemark.toml` in the working directory if present), then `TIDEMARK_*` environment
//! variables (`__` separates nested keys). Each service validates its own struct at start-up and fails with a
//! message that names the key.

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

impl ConfigError {
    pub fn invalid(key: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid { key, problem: problem.into() }
    }
}

/// Checks a service runs on its loaded configuration before anything connects.
pub trait Validate {
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Loads `T` from defaults (its `#[serde(default)]`), the optional file and the environment, then validates it.
pub fn load<T: DeserializeOwned + Validate>() -> Result<T, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = config_file() {
        figment = figment.merge(Toml::file_exact(path));
    }
    let config: T = figment
        .merge(Env::prefixed("TIDEMARK_").split("__"))
        .extract()
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    config.validate()?;
    Ok(config)
}

fn config_file() -> Option<PathBuf> {
    match std::env::var_os("TIDEMARK_CONFIG") {
        Some(path) => Some(PathBuf::from(path)),
        None => Some(PathBuf::from("tidemark.toml")).filter(|p| p.exists()),
    }
}

/// Shared checks so every service words the same problem the same way.
pub fn require_url(key: &'static str, value: &str, schemes: &[&str]) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(value).map_err(|e| ConfigError::invalid(key, format!("not a URL ({e})")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError::invalid(key, format!("scheme must be one of {schemes:?}, got `{}`", url.scheme())));
    }
    Ok(url)
}

pub fn require_positive(key: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be greater than 0"));
    }
    Ok(())
}

/// A Redis key prefix goes in front of every key, so it must not contain the hash-tag braces or spaces.
pub fn require_key_prefix(key: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() || value.contains(['{', '}', ' ']) {
        return Err(ConfigError::invalid(key, "must be non-empty, without braces or spaces"));
    }
    Ok(())
}
