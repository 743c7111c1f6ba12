//! Jobs on the ingest stream, defined once for the hub that writes them and the workers that read them.
//!
//! A stream entry has the fields `k` (the job kind with its version, e.g. `event.v1`), `s` (the session id the
//! hub's ingest script assigned, decimal), `v` (the visitor id the script filed it under, decimal), `u` (only when
//! an identify linked the session to a user: that user id) and `j` (the job as JSON). The script's `s`, `v` and
//! `u` are authoritative over the JSON. A new layout gets a new kind, so workers of different versions can share
//! a stream during a rolling upgrade.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const FIELD_KIND: &str = "k";
pub const FIELD_SESSION: &str = "s";
pub const FIELD_VISITOR: &str = "v";
pub const FIELD_USER: &str = "u";
pub const FIELD_JOB: &str = "j";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    #[serde(rename = "event.v1")]
    EventV1,
    #[serde(rename = "identify.v1")]
    IdentifyV1,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::EventV1 => "event.v1",
            JobKind::IdentifyV1 => "identify.v1",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "event.v1" => Some(JobKind::EventV1),
            "identify.v1" => Some(JobKind::IdentifyV1),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Pageview,
    Pageleave,
    Custom,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Pageview => "pageview",
            EventType::Pageleave => "pageleave",
            EventType::Custom => "custom",
        }
    }
}

/// One enriched event: everything the hub knows, and nothing it must not keep (no IP address).
/// Empty strings mean unknown, matching the ClickHouse columns' defaults. Empty and zero fields are left out of
/// the JSON (a reader fills in the default): every job passes through Redis memory and its append-only file, so
/// bytes not written are the cheapest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventV1 {
    pub project_id: Uuid,
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Event time in Unix milliseconds: the client's clock clamped to the hub's receive time.
    pub ts_ms: i64,
    /// When the hub accepted the event, Unix milliseconds.
    pub received_ms: i64,
    pub visitor_id: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub referrer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub referrer_host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub referrer_source: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub utm: Utm,
    #[serde(default, skip_serializing_if = "is_default")]
    pub geo: Geo,
    #[serde(default, skip_serializing_if = "is_default")]
    pub agent: Agent,
    #[serde(default, skip_serializing_if = "is_default")]
    pub screen_width: u16,
    #[serde(default, skip_serializing_if = "is_default")]
    pub duration_ms: u32,
    /// Flat custom properties, values as strings, in the order the client sent them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub props: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utm {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub medium: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub campaign: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub term: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geo {
    /// ISO 3166-1 alpha-2.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub country: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub city: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub browser: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub browser_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    /// `desktop`, `mobile`, `tablet` or empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device: String,
}

/// Links a visitor to an identified user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentifyV1 {
    pub project_id: Uuid,
    pub visitor_id: u64,
    pub user_id: String,
    pub ts_ms: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<(String, String)>,
}

/// For `skip_serializing_if`: a field at its default carries no information.
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in [JobKind::EventV1, JobKind::IdentifyV1] {
            assert_eq!(JobKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(JobKind::parse("event.v0"), None);
    }

    #[test]
    fn event_round_trips_through_json() {
        let event = EventV1 {
            project_id: Uuid::new_v4(),
            event_id: Uuid::new_v4(),
            event_type: EventType::Custom,
            name: "signup".into(),
            ts_ms: 1_700_000_000_123,
            received_ms: 1_700_000_000_200,
            visitor_id: 42,
            user_id: String::new(),
            url: "https://example.com/a".into(),
            host: "example.com".into(),
            path: "/a".into(),
            title: String::new(),
            referrer: String::new(),
            referrer_host: String::new(),
            referrer_source: "direct".into(),
            utm: Utm::default(),
            geo: Geo::default(),
            agent: Agent::default(),
            screen_width: 1280,
            duration_ms: 0,
            props: vec![("plan".into(), "pro".into())],
        };
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains(r#""type":"custom""#));
        for absent in ["user_id", "title", "referrer", "utm", "geo", "agent", "duration_ms"] {
            assert!(!json.contains(&format!("\"{absent}\"")), "empty {absent} is left out: {json}");
        }
        let back: EventV1 = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }
}
