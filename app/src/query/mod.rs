//! The request half of the analytics API: Plausible's Stats API v2 query (`POST /api/v2/query`), parsed and
//! validated into a typed [`Query`].
//!
//! Two steps, each in Plausible's words so a client written for Plausible reads the same errors:
//! - [`request`] checks the JSON against the shape of Plausible's JSON schema and reads it into the model
//!   (`#/metrics/0: Invalid metric "foo"`, `#/pagination/limit: Expected the value to be <= 10000`);
//! - [`validate`] applies the rules that tie parts together (`Metric `conversion_rate` can only be queried with
//!   event:goal filters or dimensions.`).
//!
//! Every failure is a [`QueryError`], answered 400 with its message, which names the part at fault.
//! Time ranges stay symbolic in the query; [`range`] turns them into UTC instants once the project's time zone is
//! known.
//!
//! The engine half: [`run`] (in [`engine`]) answers a validated query for a project. [`plan`] writes the SQL, with
//! dimension expressions from the allow-list in [`columns`] (and [`channel`]) and every value bound ([`sql`]);
//! [`metrics`] defines each metric once; [`labels`] the time buckets; [`answer`] the response in Plausible's
//! shape; [`catalog`] the fixed matrix of planned statements that the compatibility checks run on both
//! ClickHouse versions. Resolving `site_id` and access checks are the caller's (`crate::query_api`).

pub mod answer;
pub mod catalog;
pub mod channel;
pub mod columns;
pub mod engine;
pub mod labels;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod range;
pub mod request;
pub mod sql;
pub mod validate;

pub use answer::QueryAnswer;
pub use engine::{ProjectContext, RunError, run};
pub use model::Query;

/// A query the API refuses: always a 400, the message naming the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub message: String,
}

impl QueryError {
    pub fn new(message: impl Into<String>) -> Self {
        QueryError { message: message.into() }
    }
}

/// Parses and validates a request body.
pub fn parse(body: &[u8]) -> Result<Query, QueryError> {
    let query = request::from_slice(body)?;
    validate::validate(&query)?;
    Ok(query)
}

/// Parses and validates an already decoded JSON value.
pub fn parse_value(value: &serde_json::Value) -> Result<Query, QueryError> {
    let query = request::from_value(value)?;
    validate::validate(&query)?;
    Ok(query)
}

#[cfg(test)]
mod tests;
