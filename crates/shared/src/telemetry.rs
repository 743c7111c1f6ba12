//! Logging set-up shared by the binaries: `RUST_LOG` filters, `TIDEMARK_LOG_FORMAT=json` for machine-readable lines.

use tracing_subscriber::EnvFilter;

pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("TIDEMARK_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let result = if json { builder.json().try_init() } else { builder.try_init() };
    // A second init (tests, embedded use) keeps the first subscriber.
    let _ = result;
}
