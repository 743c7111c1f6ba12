//! The hub: Tidemark's ingestion front door. It authenticates the project token, validates and enriches each
//! event, assigns the visitor and session, and appends one job per event to a Redis stream. A 202 means the job is
//! in Redis; nothing is written to ClickHouse here.
//!
//! Modules are listed in the order an event meets them; [`ingest`] walks the steps.

// Start-up: settings, then the server and its shared state.
pub mod config;
pub mod startup;
// The endpoints and the steps of an event's path, in order.
pub mod ingest;
// The request body within its size limit (gzip too).
pub mod body;
// What clients send: parsed first, checked once the project is known, errors naming the field.
pub mod payload;
// Which address the request came from, behind trusted proxies.
pub mod client_ip;
// Project tokens, cached from PostgreSQL.
pub mod tokens;
// Per-project token buckets.
pub mod rate_limit;
// User agent and client hints to browser, OS, device and bot verdict, cached.
pub mod classifier;
// Browser, OS and device from the User-Agent string.
pub mod user_agent;
// Sec-CH-UA headers, and how they refine a parsed agent.
pub mod client_hints;
// Whether a user agent is a person browsing, and prefetch requests.
pub mod bots;
// Country, region and city of the client IP.
pub mod geo;
// The IPv4 ranges of a geo database, for fast lookups.
pub mod geo_index;
// Cookieless visitor ids under a daily salt.
pub mod identity;
// Host, path and UTM tags of page and referrer URLs.
pub mod url_parts;
// The traffic source of a visit: search, social, email, referral...
pub mod referrers;
// Appending jobs to the Redis stream, sessions assigned in the same script.
pub mod queue;
// Every way a request can fail, and its HTTP status.
pub mod error;
// Prometheus counters and histograms.
pub mod metrics;
// The bounded in-process caches behind the classifier and geo.
pub mod bounded_map;
// `hub inspect-ua`: the classifier's verdict for user agents an operator pastes.
pub mod inspect;

pub use config::HubConfig;
pub use startup::{Hub, build};
