//! The `devices` table: one logical row per (project, visitor, browser and version, OS and version, device type).
//! The worker writes one row per event into `device_input` (`Null`); `devices_mv` keeps the first and last time
//! each device was seen as min/max states in `devices` (AggregatingMergeTree), which a redelivery cannot change.

use crate::sink::EventTable;
use serde::Serialize;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::sync::Arc;
use tidemark_shared::job::EventJob;
use tidemark_shared::keys::GROUP_DEVICES;
use uuid::Uuid;

/// Field names and order match `queries::DEVICE_INPUT_COLUMNS` (a test checks it).
#[derive(Debug, Clone, Serialize, clickhouse::Row)]
pub struct DeviceInputRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub project_id: Uuid,
    pub device_id: u64,
    pub visitor_id: u64,
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    pub device: String,
    pub ts_ms: u64,
}

/// A stable id for a device: SipHash-1-3 with fixed zero keys over the identifying fields, each length-prefixed
/// so no two field lists hash the same input. Stable across releases and machines: changing it would split every
/// device in two, so it is pinned by a test.
pub fn device_id(project: &Uuid, visitor: u64, agent: &tidemark_shared::job::Agent) -> u64 {
    let mut hasher = SipHasher13::new_with_keys(0, 0);
    hasher.write(project.as_bytes());
    hasher.write(&visitor.to_le_bytes());
    for field in [&agent.browser, &agent.browser_version, &agent.os, &agent.os_version, &agent.device] {
        hasher.write(&(field.len() as u64).to_le_bytes());
        hasher.write(field.as_bytes());
    }
    hasher.finish()
}

impl EventTable for DeviceInputRow {
    const TABLE: &'static str = "device_input";
    const GROUP: &'static str = GROUP_DEVICES;

    /// Devices do not depend on the session.
    fn from_event(event: EventJob, _session_id: u64) -> Option<Self> {
        let agent = Arc::unwrap_or_clone(event.agent);
        Some(Self {
            project_id: event.project_id,
            device_id: device_id(&event.project_id, event.visitor_id, &agent),
            visitor_id: event.visitor_id,
            ts_ms: event.ts_ms.max(0) as u64,
            browser: agent.browser,
            browser_version: agent.browser_version,
            os: agent.os,
            os_version: agent.os_version,
            device: agent.device,
        })
    }
}

pub type DevicesSink = crate::sink::EventTableSink<DeviceInputRow>;

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_shared::job::Agent;

    #[test]
    fn row_columns_match_the_catalog() {
        use clickhouse::Row;
        let ours = DeviceInputRow::COLUMN_NAMES.join(", ");
        let catalog: Vec<&str> = tidemark_shared::queries::DEVICE_INPUT_COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(ours, catalog.join(", "));
    }

    #[test]
    fn device_ids_are_stable_and_field_sensitive() {
        let agent = Agent {
            browser: "Chrome".into(),
            browser_version: "130".into(),
            os: "Linux".into(),
            os_version: String::new(),
            device: "desktop".into(),
        };
        let project = Uuid::from_u128(1);
        // Pinned: a changed hash would split every known device into two.
        assert_eq!(device_id(&project, 42, &agent), device_id(&project, 42, &agent.clone()));
        assert_eq!(device_id(&project, 42, &agent), 17_481_430_715_479_061_762);
        assert_ne!(device_id(&project, 43, &agent), device_id(&project, 42, &agent));
        let moved = Agent { browser: "Chrome1".into(), browser_version: "30".into(), ..agent.clone() };
        assert_ne!(device_id(&project, 42, &moved), device_id(&project, 42, &agent));
    }
}
