//! The `devices_v2` table: one logical row per device, a (browser, OS, device type) seen under one identity. The
//! worker writes one row per event into `device_input_v2` (`Null`); `devices_v2_mv` keeps first/last seen, the
//! last visitor and the last browser and OS versions as idempotent states in `devices_v2` (AggregatingMergeTree),
//! which a redelivery cannot change.
//!
//! What makes a device the same across days is its identity, the most stable one the event has:
//! - `user`: the user id (the event's own, or the one an identify linked to its session);
//! - `anonymous`: the site's own anonymous id (`visitor_kind` anonymous: the visitor id hashes it, stable);
//! - `daily`: the cookieless visitor id, which the hub derives under a salt that changes every UTC day. Such a
//!   device lives one day: the same browser tomorrow is another device. This is the price of not storing anything
//!   on the visitor's machine, and why "new devices" only counts stable identities (docs/CLICKHOUSE.md).
//!
//! Versions are not part of a device: a browser that updates itself stays the same device (its last versions are
//! kept as states).

use crate::sessions_sink::event_order;
use crate::sink::EventTable;
use serde::Serialize;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::sync::Arc;
use tidemark_shared::job::{EventJob, VisitorKind};
use tidemark_shared::keys::GROUP_DEVICES;
use uuid::Uuid;

/// Field names and order match `queries::DEVICE_INPUT_COLUMNS` (a test checks it).
#[derive(Debug, Clone, Serialize, clickhouse::Row)]
pub struct DeviceInputRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub project_id: Uuid,
    pub device_id: u64,
    pub identity: &'static str,
    /// The user id for a `user` device, else empty.
    pub user_id: String,
    pub visitor_id: u64,
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    pub device: String,
    /// Arrival time (the hub's clock), as for sessions.
    pub ts_ms: u64,
    pub ord: u64,
}

/// Who a device belongs to: the most stable identity an event has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity<'a> {
    User(&'a str),
    Anonymous(u64),
    Daily(u64),
}

impl<'a> Identity<'a> {
    pub fn of(event: &'a EventJob) -> Self {
        match event.visitor_kind {
            _ if !event.user_id.is_empty() => Identity::User(&event.user_id),
            VisitorKind::Anonymous => Identity::Anonymous(event.visitor_id),
            VisitorKind::Daily => Identity::Daily(event.visitor_id),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Identity::User(_) => "user",
            Identity::Anonymous(_) => "anonymous",
            Identity::Daily(_) => "daily",
        }
    }
}

/// A stable id for a device: SipHash-1-3 with fixed zero keys over the project, the identity (its kind and value)
/// and the browser, OS and device type, each length-prefixed so no two field lists hash the same input. Stable
/// across releases and machines: changing it would split every device in two, so it is pinned by a test.
pub fn device_id(project: &Uuid, identity: Identity<'_>, agent: &tidemark_shared::job::Agent) -> u64 {
    let mut hasher = SipHasher13::new_with_keys(0, 0);
    hasher.write(project.as_bytes());
    let visitor_bytes;
    let value: &[u8] = match identity {
        Identity::User(user) => user.as_bytes(),
        Identity::Anonymous(visitor) | Identity::Daily(visitor) => {
            visitor_bytes = visitor.to_le_bytes();
            &visitor_bytes
        }
    };
    for field in [identity.as_str().as_bytes(), value, agent.browser.as_bytes(), agent.os.as_bytes()]
        .into_iter()
        .chain([agent.device.as_bytes()])
    {
        hasher.write(&(field.len() as u64).to_le_bytes());
        hasher.write(field);
    }
    hasher.finish()
}

impl EventTable for DeviceInputRow {
    const TABLE: &'static str = "device_input_v2";
    const GROUP: &'static str = GROUP_DEVICES;

    /// Devices do not depend on the session: a page leave filed under no session still shows the device.
    fn from_event(event: EventJob, _session_id: u64) -> Option<Self> {
        let identity = Identity::of(&event);
        let device_id = device_id(&event.project_id, identity, &event.agent);
        let identity_name = identity.as_str();
        let ts_ms = event.received_ms.max(0) as u64;
        let user_id = if matches!(identity, Identity::User(_)) { event.user_id } else { String::new() };
        let agent = Arc::unwrap_or_clone(event.agent);
        Some(Self {
            project_id: event.project_id,
            device_id,
            identity: identity_name,
            user_id,
            visitor_id: event.visitor_id,
            browser: agent.browser,
            browser_version: agent.browser_version,
            os: agent.os,
            os_version: agent.os_version,
            device: agent.device,
            ts_ms,
            ord: event_order(ts_ms, &event.event_id),
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
    fn device_ids_are_stable_and_follow_identity_not_versions() {
        let agent = Agent {
            browser: "Chrome".into(),
            browser_version: "130".into(),
            os: "Linux".into(),
            os_version: String::new(),
            device: "desktop".into(),
        };
        let project = Uuid::from_u128(1);
        let id = |identity, agent: &Agent| device_id(&project, identity, agent);
        // Pinned: a changed hash would split every known device into two.
        assert_eq!(id(Identity::User("u-1"), &agent), 16_544_174_874_624_872_206);
        assert_eq!(id(Identity::Anonymous(42), &agent), 7_516_338_656_583_634_889);
        assert_eq!(id(Identity::Daily(42), &agent), 17_459_024_547_114_647_954);
        let updated = Agent { browser_version: "131".into(), os_version: "6.1".into(), ..agent.clone() };
        assert_eq!(
            id(Identity::User("u-1"), &updated),
            id(Identity::User("u-1"), &agent),
            "an update is no new device"
        );
        assert_ne!(id(Identity::Daily(43), &agent), id(Identity::Daily(42), &agent));
        assert_ne!(id(Identity::User("u-2"), &agent), id(Identity::User("u-1"), &agent));
        let moved = Agent { browser: "Chrome1".into(), os: "inux".into(), ..agent.clone() };
        assert_ne!(id(Identity::Daily(42), &moved), id(Identity::Daily(42), &agent));
        let phone = Agent { device: "mobile".into(), ..agent.clone() };
        assert_ne!(id(Identity::Daily(42), &phone), id(Identity::Daily(42), &agent));
    }

    #[test]
    fn the_most_stable_identity_wins() {
        let mut event: EventJob = serde_json::from_value(serde_json::json!({
            "project_id": Uuid::nil(), "event_id": Uuid::nil(), "type": "pageview", "ts_ms": 0, "received_ms": 0,
            "visitor_id": 9
        }))
        .unwrap();
        assert_eq!(Identity::of(&event), Identity::Daily(9));
        event.visitor_kind = VisitorKind::Anonymous;
        assert_eq!(Identity::of(&event), Identity::Anonymous(9));
        event.user_id = "u-1".into();
        assert_eq!(Identity::of(&event), Identity::User("u-1"));
    }
}
