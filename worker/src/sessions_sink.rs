//! The `sessions` table. The worker writes one slim row per event into `session_input` (a `Null` table: nothing is
//! stored there); the materialized view `sessions_mv` folds each insert into per-session aggregate states in
//! `sessions` (AggregatingMergeTree). Every state is idempotent (min, max, argMin/argMax on a total order, exact
//! distinct counts of event ids), so a redelivered event changes no answer, merged or not. See docs/CLICKHOUSE.md.
//!
//! Sessions run on the hub's clock: the ingest script slides a session's expiry on each job's arrival, so start,
//! end, duration and the first/last order are taken from the arrival time (`received_ms`), not the client's time.
//! A buffered batch sent late then joins its session at the moment it arrived instead of stretching the session
//! back to when its events happened (the `events` table keeps that client time).

use crate::sink::EventTable;
use serde::Serialize;
use std::sync::Arc;
use tidemark_shared::job::EventJob;
use tidemark_shared::keys::GROUP_SESSIONS;
use uuid::Uuid;

/// The session id the hub files a job under when it joined no live session and may not open one.
pub const NO_SESSION: u64 = 0;

/// Field names and order match `queries::SESSION_INPUT_COLUMNS` (a test checks it).
#[derive(Debug, Clone, Serialize, clickhouse::Row)]
pub struct SessionInputRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub project_id: Uuid,
    pub session_id: u64,
    pub visitor_id: u64,
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// Arrival time (the hub's clock), in ms; the column keeps its first name.
    pub ts_ms: u64,
    /// Event order within the session: time, then bits of the event id, so entry and exit pages are the same
    /// whichever order parts merge in, even for two events in the same millisecond.
    pub ord: u64,
    pub user_id: String,
    pub host: String,
    pub path: String,
    pub referrer: String,
    pub referrer_host: String,
    pub referrer_source: String,
    pub referrer_name: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub utm_term: String,
    pub utm_content: String,
    pub country: String,
    pub region: String,
    pub city: String,
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    pub device: String,
}

/// Time in the high bits, 16 bits of the event id below: a total order that only ties for copies of one event.
pub fn event_order(ts_ms: u64, event_id: &Uuid) -> u64 {
    let id = event_id.as_u128() as u64 & 0xffff;
    (ts_ms << 16) | id
}

impl EventTable for SessionInputRow {
    const TABLE: &'static str = "session_input";
    const GROUP: &'static str = GROUP_SESSIONS;

    /// Session id 0 is the hub's "no session": a page leave (or identify) whose session had expired. It belongs
    /// to no session, and would otherwise fold with every other such job into one fake session 0.
    fn from_event(event: EventJob, session_id: u64) -> Option<Self> {
        if session_id == NO_SESSION {
            return None;
        }
        let geo = Arc::unwrap_or_clone(event.geo);
        let agent = Arc::unwrap_or_clone(event.agent);
        let ts_ms = event.received_ms.max(0) as u64;
        Some(Self {
            project_id: event.project_id,
            session_id,
            visitor_id: event.visitor_id,
            ord: event_order(ts_ms, &event.event_id),
            event_id: event.event_id,
            event_type: event.event_type.as_str(),
            ts_ms,
            user_id: event.user_id,
            host: event.host,
            path: event.path,
            referrer: event.referrer,
            referrer_host: event.referrer_host,
            referrer_source: event.referrer_source,
            referrer_name: event.referrer_name,
            utm_source: event.utm.source,
            utm_medium: event.utm.medium,
            utm_campaign: event.utm.campaign,
            utm_term: event.utm.term,
            utm_content: event.utm.content,
            country: geo.country,
            region: geo.region,
            city: geo.city,
            browser: agent.browser,
            browser_version: agent.browser_version,
            os: agent.os,
            os_version: agent.os_version,
            device: agent.device,
        })
    }
}

pub type SessionsSink = crate::sink::EventTableSink<SessionInputRow>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_columns_match_the_catalog() {
        use clickhouse::Row;
        let ours = SessionInputRow::COLUMN_NAMES.join(", ");
        let catalog: Vec<&str> = tidemark_shared::queries::SESSION_INPUT_COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(ours, catalog.join(", "));
    }

    #[test]
    fn order_follows_time_then_id() {
        let a = Uuid::from_u128(0xffff);
        let b = Uuid::from_u128(0x0001);
        assert!(event_order(1_000, &a) < event_order(1_001, &b));
        assert!(event_order(1_000, &b) < event_order(1_000, &a));
        assert_eq!(event_order(1_700_000_000_000, &a) >> 16, 1_700_000_000_000);
    }
}
