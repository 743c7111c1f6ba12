//! The `events` table: one row per event job.

use crate::sink::EventTable;
use serde::Serialize;
use std::sync::Arc;
use tidemark_shared::job::EventJob;
use tidemark_shared::keys::GROUP_EVENTS;
use uuid::Uuid;

/// Field names and order match `queries::EVENT_COLUMNS` (a test checks it).
#[derive(Debug, Clone, Serialize, clickhouse::Row)]
pub struct EventRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub project_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub name: String,
    pub ts: u32,
    pub millis: u16,
    pub received_at: u32,
    pub visitor_id: u64,
    pub session_id: u64,
    pub user_id: String,
    pub url: String,
    pub host: String,
    pub path: String,
    pub title: String,
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
    pub screen_width: u16,
    pub duration_ms: u32,
    pub prop_keys: Vec<String>,
    pub prop_values: Vec<String>,
}

impl EventTable for EventRow {
    const TABLE: &'static str = "events";
    const GROUP: &'static str = GROUP_EVENTS;

    fn from_event(event: EventJob, session_id: u64) -> Option<Self> {
        let geo = Arc::unwrap_or_clone(event.geo);
        let agent = Arc::unwrap_or_clone(event.agent);
        let (prop_keys, prop_values) = event.props.into_iter().unzip();
        Some(Self {
            project_id: event.project_id,
            event_id: event.event_id,
            event_type: event.event_type.as_str(),
            name: event.name,
            ts: (event.ts_ms.max(0) / 1000) as u32,
            millis: (event.ts_ms.max(0) % 1000) as u16,
            received_at: (event.received_ms.max(0) / 1000) as u32,
            visitor_id: event.visitor_id,
            session_id,
            user_id: event.user_id,
            url: event.url,
            host: event.host,
            path: event.path,
            title: event.title,
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
            screen_width: event.screen_width,
            duration_ms: event.duration_ms,
            prop_keys,
            prop_values,
        })
    }
}

pub type EventsSink = crate::sink::EventTableSink<EventRow>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_columns_match_the_catalog() {
        use clickhouse::Row;
        let ours = EventRow::COLUMN_NAMES.join(", ");
        let catalog: Vec<&str> = tidemark_shared::queries::EVENT_COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(ours, catalog.join(", "));
    }
}
