//! The hub: Tidemark's ingestion front door. It authenticates the project token, validates and enriches each
//! event, assigns the visitor and session, and appends one job per event to a Redis stream. A 202 means the job is
//! in Redis; nothing is written to ClickHouse here.

pub mod body;
pub mod bots;
pub mod bounded_map;
pub mod classifier;
pub mod client_hints;
pub mod client_ip;
pub mod config;
pub mod error;
pub mod geo;
pub mod geo_index;
pub mod identity;
pub mod ingest;
pub mod inspect;
pub mod metrics;
pub mod payload;
pub mod queue;
pub mod rate_limit;
pub mod referrers;
pub mod startup;
pub mod tokens;
pub mod url_parts;
pub mod user_agent;

pub use config::HubConfig;
pub use startup::{Hub, build};
