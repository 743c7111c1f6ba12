//! The ingest endpoints: `POST /v1/event`, `POST /v1/batch` and `POST /v1/identify`.
//!
//! An event's path through the hub, one module per step, cheapest refusal first:
//! 1. [`routes`]: the handlers read the body (size limit, gzip) and parse the JSON.
//! 2. [`context`]: what the request itself says apart from its body: token header, origin, client IP, user agent.
//! 3. [`authorize`]: the token names a project, and the origin is one of its domains.
//! 4. field checks ([`crate::payload`]), then the project's rate limit.
//! 5. [`drop_policy`]: excluded networks, prefetches and bots are answered 202 but not queued, counted by cause.
//! 6. [`enrich`]: visitor id, page parts, referrer, UTM, geo and agent turn a valid event into a job.
//! 7. [`ids`]: the event id, the session id candidate and the shard a visitor's jobs go to.
//! 8. [`respond`]: one round trip to Redis, then the 202 (or 503) with its CORS header ([`cors`]).

mod authorize;
mod context;
mod cors;
mod drop_policy;
mod enrich;
mod ids;
mod respond;
mod routes;

use crate::classifier::UaClassifier;
use crate::client_ip::TrustedProxies;
use crate::geo::GeoDb;
use crate::identity::Salts;
use crate::metrics as m;
use crate::payload::Limits;
use crate::queue::Queue;
use crate::rate_limit::RateLimiter;
use crate::referrers::Referrers;
use crate::tokens::TokenStore;

pub use cors::preflight;
pub use ids::event_id;
pub use routes::{post_batch, post_event, post_identify};

pub struct IngestState {
    pub tokens: TokenStore,
    pub salts: Salts,
    pub queue: Queue,
    pub limiter: RateLimiter,
    pub agents: UaClassifier,
    pub geo: Option<GeoDb>,
    pub referrers: Referrers,
    pub proxies: TrustedProxies,
    /// Networks whose traffic is answered but not counted (the CIDR set type is shared with `proxies`).
    pub excluded: TrustedProxies,
    pub limits: Limits,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub max_event_age_ms: i64,
    /// Which query parameters stored URLs and referrers keep.
    pub query_allowlist: crate::url_parts::QueryAllowList,
    pub metrics: m::Hot,
}

impl AsRef<TokenStore> for IngestState {
    fn as_ref(&self) -> &TokenStore {
        &self.tokens
    }
}

impl AsRef<Salts> for IngestState {
    fn as_ref(&self) -> &Salts {
        &self.salts
    }
}
