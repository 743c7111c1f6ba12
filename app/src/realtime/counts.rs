//! Current visitors: distinct visitors with an event that arrived in the last five minutes. One function, so the
//! v2 endpoint, the SSE stream and Plausible's v1 `GET /api/v1/stats/realtime/visitors` (a bare number) give the
//! same answer.

use super::{LOOKBACK_SECS, WINDOW_SECS, with_deadline};
use anyhow::Context;
use tidemark_shared::clickhouse::ClickHouse;
use tidemark_shared::queries;
use uuid::Uuid;

/// Distinct `visitor_id`s of `project` whose events arrived (`received_at`, the hub's clock) in the
/// [`WINDOW_SECS`] before `now` (Unix seconds). `uniqExact` of the id: a redelivered copy of an event adds nothing.
pub async fn current_visitors(ch: &ClickHouse, project: Uuid, now: i64) -> anyhow::Result<u64> {
    let since = now - i64::from(WINDOW_SECS);
    let query = ch
        .client
        .query(queries::by_name("realtime.visitors").sql)
        .bind(since)
        .bind(project.to_string())
        .bind(since - LOOKBACK_SECS);
    with_deadline(query.fetch_one::<u64>()).await.context("counting current visitors")
}
