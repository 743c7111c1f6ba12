//! Jobs on the ingest stream, defined once for the hub that writes them and the workers that read them.
//!
//! What the hub writes today: one `batch.v1` stream entry per call of its ingest script, holding the jobs of many
//! requests with the session, visitor and user the script assigned to each (the entry's layout is in
//! [`crate::batch`]). A job is `event.v3`, an [`EventJob`] as a MessagePack array ([`EventJob::to_v3`]), or
//! `identify.v1`, an [`IdentifyV1`] as JSON. The MessagePack layouts are about half the bytes of JSON: every job
//! passes through Redis's memory, its append-only file and every worker, and bytes dominate Redis's cost per job.
//!
//! What workers also read: single-job entries, with the fields `k` (the job kind), `s` (the assigned session id,
//! decimal), `v` (the visitor id the script filed it under, decimal), `u` (only when an identify linked the session
//! to a user: that user id) and `j` (the job, encoded as its kind says). Earlier hubs wrote these, and the workers
//! write them when they redrive a dead letter. Earlier hubs also wrote `event.v1`, an [`EventJob`] as JSON, and
//! `event.v2`, the MessagePack layout of `event.v3` without `visitor_kind` and `referrer_name`; workers read all
//! three, no production code writes the older two any more (the test writers are behind the `test-writers`
//! feature, which `tidemark-testkit` turns on). In both layouts the script's session, visitor and user are authoritative over the
//! job's own. A new layout gets a new kind, so workers of different versions can share a stream during a rolling
//! upgrade.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;
use uuid::Uuid;

pub const FIELD_KIND: &str = "k";
pub const FIELD_SESSION: &str = "s";
pub const FIELD_VISITOR: &str = "v";
pub const FIELD_USER: &str = "u";
pub const FIELD_JOB: &str = "j";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JobKind {
    #[serde(rename = "event.v1")]
    EventV1,
    #[serde(rename = "event.v2")]
    EventV2,
    #[serde(rename = "event.v3")]
    EventV3,
    #[serde(rename = "identify.v1")]
    IdentifyV1,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::EventV1 => "event.v1",
            JobKind::EventV2 => "event.v2",
            JobKind::EventV3 => "event.v3",
            JobKind::IdentifyV1 => "identify.v1",
        }
    }

    /// Whether the job is an event (of any layout), which every event table takes.
    pub fn is_event(self) -> bool {
        matches!(self, JobKind::EventV1 | JobKind::EventV2 | JobKind::EventV3)
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "event.v1" => Some(JobKind::EventV1),
            "event.v2" => Some(JobKind::EventV2),
            "event.v3" => Some(JobKind::EventV3),
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

    /// Whether an event of this type may start a session. A page leave only reports on a page already counted:
    /// after its session expired it belongs to no session, and must not make a new one with no pageview.
    pub fn opens_session(self) -> bool {
        matches!(self, EventType::Pageview | EventType::Custom)
    }
}

/// One enriched event: everything the hub knows, and nothing it must not keep (no IP address). Serializes as the
/// `event.v1` JSON, which `worker dead-letters list` prints.
/// Empty strings mean unknown, matching the ClickHouse columns' defaults. In `event.v1` JSON, empty and zero fields
/// were left out (a reader fills in the default), so a reader must accept their absence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventJob {
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
    /// Where `visitor_id` comes from, and so how long it lives.
    #[serde(default, skip_serializing_if = "is_default")]
    pub visitor_kind: VisitorKind,
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
    /// The referrer's name when the classifier knows it (`Google`, `Hacker News`), else empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub referrer_name: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub utm: Utm,
    /// Shared with every other event from the same place and browser: the hub looks both up once per request
    /// (from caches), and copying their strings into each event would cost more than the lookups.
    #[serde(default, skip_serializing_if = "is_default")]
    pub geo: Arc<Geo>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub agent: Arc<Agent>,
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

/// Where an event's visitor id comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VisitorKind {
    /// The cookieless id: a salted hash of (project, IP, user agent) under the day's salt, so it lives one UTC
    /// day. Also what every `event.v1` and `event.v2` job is taken to be.
    #[default]
    Daily,
    /// A hash of the site's own anonymous id (`anonymous_id`): as stable as the site keeps it, across days.
    Anonymous,
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

/// `event.v3`, what the hub writes: every field of an [`EventJob`] in declaration order, nested structs flattened,
/// as one MessagePack array; uuids are pairs of 64-bit integers, the event type and the visitor kind small
/// integers. Positional, so no field is ever skipped: adding, removing or reordering a field makes a new kind.
/// Only decoded outside tests: `EventJob::to_v3` writes the layout itself, and a test holds it to what serde
/// would write.
#[derive(Deserialize)]
#[cfg_attr(any(test, feature = "test-writers"), derive(Serialize))]
struct EventV3<'a> {
    project_id: (u64, u64),
    event_id: (u64, u64),
    event_type: u8,
    #[serde(borrow)]
    name: Cow<'a, str>,
    ts_ms: i64,
    received_ms: i64,
    visitor_id: u64,
    visitor_kind: u8,
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(borrow)]
    host: Cow<'a, str>,
    #[serde(borrow)]
    path: Cow<'a, str>,
    #[serde(borrow)]
    title: Cow<'a, str>,
    #[serde(borrow)]
    referrer: Cow<'a, str>,
    #[serde(borrow)]
    referrer_host: Cow<'a, str>,
    #[serde(borrow)]
    referrer_source: Cow<'a, str>,
    #[serde(borrow)]
    referrer_name: Cow<'a, str>,
    #[serde(borrow)]
    utm: [Cow<'a, str>; 5],
    #[serde(borrow)]
    geo: [Cow<'a, str>; 3],
    #[serde(borrow)]
    agent: [Cow<'a, str>; 5],
    screen_width: u16,
    duration_ms: u32,
    #[serde(borrow)]
    props: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// `event.v2`, what earlier hubs wrote: `event.v3` without `visitor_kind` and `referrer_name`. Workers still read
/// it (entries queued before an upgrade, dead letters); only tests write it.
#[derive(Deserialize)]
#[cfg_attr(any(test, feature = "test-writers"), derive(Serialize))]
struct EventV2<'a> {
    project_id: (u64, u64),
    event_id: (u64, u64),
    event_type: u8,
    #[serde(borrow)]
    name: Cow<'a, str>,
    ts_ms: i64,
    received_ms: i64,
    visitor_id: u64,
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(borrow)]
    host: Cow<'a, str>,
    #[serde(borrow)]
    path: Cow<'a, str>,
    #[serde(borrow)]
    title: Cow<'a, str>,
    #[serde(borrow)]
    referrer: Cow<'a, str>,
    #[serde(borrow)]
    referrer_host: Cow<'a, str>,
    #[serde(borrow)]
    referrer_source: Cow<'a, str>,
    #[serde(borrow)]
    utm: [Cow<'a, str>; 5],
    #[serde(borrow)]
    geo: [Cow<'a, str>; 3],
    #[serde(borrow)]
    agent: [Cow<'a, str>; 5],
    screen_width: u16,
    duration_ms: u32,
    #[serde(borrow)]
    props: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> From<EventV2<'a>> for EventV3<'a> {
    /// A `v2` job knew neither: its visitor is taken as a daily one and its referrer as unnamed.
    fn from(v2: EventV2<'a>) -> Self {
        EventV3 {
            project_id: v2.project_id,
            event_id: v2.event_id,
            event_type: v2.event_type,
            name: v2.name,
            ts_ms: v2.ts_ms,
            received_ms: v2.received_ms,
            visitor_id: v2.visitor_id,
            visitor_kind: VisitorKind::Daily.code(),
            user_id: v2.user_id,
            url: v2.url,
            host: v2.host,
            path: v2.path,
            title: v2.title,
            referrer: v2.referrer,
            referrer_host: v2.referrer_host,
            referrer_source: v2.referrer_source,
            referrer_name: Cow::Borrowed(""),
            utm: v2.utm,
            geo: v2.geo,
            agent: v2.agent,
            screen_width: v2.screen_width,
            duration_ms: v2.duration_ms,
            props: v2.props,
        }
    }
}

impl EventType {
    fn code(self) -> u8 {
        match self {
            EventType::Pageview => 0,
            EventType::Pageleave => 1,
            EventType::Custom => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        [EventType::Pageview, EventType::Pageleave, EventType::Custom].get(usize::from(code)).copied()
    }
}

impl VisitorKind {
    pub fn code(self) -> u8 {
        match self {
            VisitorKind::Daily => 0,
            VisitorKind::Anonymous => 1,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        [VisitorKind::Daily, VisitorKind::Anonymous].get(usize::from(code)).copied()
    }
}

/// Top-level fields of [`EventV3`].
const V3_FIELDS: usize = 23;

// MessagePack writers for `to_v3`. Writing to a Vec cannot fail.
fn array(out: &mut Vec<u8>, len: usize) {
    rmp::encode::write_array_len(out, len as u32).expect("writing to a Vec");
}

fn uint(out: &mut Vec<u8>, n: u64) {
    rmp::encode::write_uint(out, n).expect("writing to a Vec");
}

fn sint(out: &mut Vec<u8>, n: i64) {
    rmp::encode::write_sint(out, n).expect("writing to a Vec");
}

fn text(out: &mut Vec<u8>, s: &str) {
    rmp::encode::write_str(out, s).expect("writing to a Vec");
}

impl EventJob {
    /// The job as `event.v3`: the layout of [`EventV3`], written field by field. Byte for byte what rmp-serde
    /// makes of an `EventV3` (a test holds them equal), without serde's per-field calls: this runs for every event
    /// the hub accepts.
    pub fn to_v3(&self) -> Vec<u8> {
        let strings = [&self.name, &self.user_id, &self.url, &self.host, &self.path, &self.title, &self.referrer]
            .into_iter()
            .chain([&self.referrer_host, &self.referrer_source, &self.referrer_name])
            .map(|s| s.len())
            .sum::<usize>()
            + [&self.utm.source, &self.utm.medium, &self.utm.campaign, &self.utm.term, &self.utm.content]
                .into_iter()
                .chain([&self.geo.country, &self.geo.region, &self.geo.city])
                .chain([&self.agent.browser, &self.agent.browser_version, &self.agent.os])
                .chain([&self.agent.os_version, &self.agent.device])
                .map(|s| s.len())
                .sum::<usize>();
        let props = self.props.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>();
        // Sized up front (at most 5 bytes of header a string, 9 a number): growing from empty would copy the
        // buffer half a dozen times per event.
        let mut out = Vec::with_capacity(strings + props + 23 * 5 + 13 * 9);
        let w = &mut out;
        let (p_hi, p_lo) = self.project_id.as_u64_pair();
        let (e_hi, e_lo) = self.event_id.as_u64_pair();
        array(w, V3_FIELDS);
        array(w, 2);
        uint(w, p_hi);
        uint(w, p_lo);
        array(w, 2);
        uint(w, e_hi);
        uint(w, e_lo);
        uint(w, u64::from(self.event_type.code()));
        text(w, &self.name);
        sint(w, self.ts_ms);
        sint(w, self.received_ms);
        uint(w, self.visitor_id);
        uint(w, u64::from(self.visitor_kind.code()));
        for field in [&self.user_id, &self.url, &self.host, &self.path, &self.title, &self.referrer] {
            text(w, field);
        }
        for field in [&self.referrer_host, &self.referrer_source, &self.referrer_name] {
            text(w, field);
        }
        array(w, 5);
        for field in [&self.utm.source, &self.utm.medium, &self.utm.campaign, &self.utm.term, &self.utm.content] {
            text(w, field);
        }
        array(w, 3);
        for field in [&self.geo.country, &self.geo.region, &self.geo.city] {
            text(w, field);
        }
        array(w, 5);
        let a = &self.agent;
        for field in [&a.browser, &a.browser_version, &a.os, &a.os_version, &a.device] {
            text(w, field);
        }
        uint(w, u64::from(self.screen_width));
        uint(w, u64::from(self.duration_ms));
        array(w, self.props.len());
        for (key, value) in &self.props {
            array(w, 2);
            text(w, key);
            text(w, value);
        }
        out
    }

    /// The job as `event.v2`, the layout earlier hubs wrote, for tests of entries queued before an upgrade. It
    /// cannot hold `visitor_kind` or `referrer_name`.
    #[cfg(any(test, feature = "test-writers"))]
    pub fn to_v2(&self) -> Vec<u8> {
        let v3 = self.as_v3();
        let v2 = EventV2 {
            project_id: v3.project_id,
            event_id: v3.event_id,
            event_type: v3.event_type,
            name: v3.name,
            ts_ms: v3.ts_ms,
            received_ms: v3.received_ms,
            visitor_id: v3.visitor_id,
            user_id: v3.user_id,
            url: v3.url,
            host: v3.host,
            path: v3.path,
            title: v3.title,
            referrer: v3.referrer,
            referrer_host: v3.referrer_host,
            referrer_source: v3.referrer_source,
            utm: v3.utm,
            geo: v3.geo,
            agent: v3.agent,
            screen_width: v3.screen_width,
            duration_ms: v3.duration_ms,
            props: v3.props,
        };
        rmp_serde::to_vec(&v2).expect("writing to a Vec")
    }

    /// The event as its `event.v3` wire struct, borrowing its strings (what serde would write; see `to_v3`).
    #[cfg(any(test, feature = "test-writers"))]
    fn as_v3(&self) -> EventV3<'_> {
        fn b(s: &str) -> Cow<'_, str> {
            Cow::Borrowed(s)
        }
        let (e, a) = (self, &self.agent);
        EventV3 {
            project_id: e.project_id.as_u64_pair(),
            event_id: e.event_id.as_u64_pair(),
            event_type: e.event_type.code(),
            name: b(&e.name),
            ts_ms: e.ts_ms,
            received_ms: e.received_ms,
            visitor_id: e.visitor_id,
            visitor_kind: e.visitor_kind.code(),
            user_id: b(&e.user_id),
            url: b(&e.url),
            host: b(&e.host),
            path: b(&e.path),
            title: b(&e.title),
            referrer: b(&e.referrer),
            referrer_host: b(&e.referrer_host),
            referrer_source: b(&e.referrer_source),
            referrer_name: b(&e.referrer_name),
            utm: [&e.utm.source, &e.utm.medium, &e.utm.campaign, &e.utm.term, &e.utm.content].map(|s| b(s)),
            geo: [&e.geo.country, &e.geo.region, &e.geo.city].map(|s| b(s)),
            agent: [&a.browser, &a.browser_version, &a.os, &a.os_version, &a.device].map(|s| b(s)),
            screen_width: e.screen_width,
            duration_ms: e.duration_ms,
            props: e.props.iter().map(|(k, v)| (b(k), b(v))).collect(),
        }
    }

    /// Decodes a job of `kind` (`event.v1`, `event.v2` or `event.v3`).
    pub fn decode(kind: JobKind, bytes: &[u8]) -> Result<Self, String> {
        match kind {
            JobKind::EventV1 => serde_json::from_slice(bytes).map_err(|e| format!("undecodable event.v1 job: {e}")),
            JobKind::EventV2 => {
                let wire: EventV2<'_> =
                    rmp_serde::from_slice(bytes).map_err(|e| format!("undecodable event.v2 job: {e}"))?;
                Self::from_wire(wire.into())
            }
            JobKind::EventV3 => {
                Self::from_wire(rmp_serde::from_slice(bytes).map_err(|e| format!("undecodable event.v3 job: {e}"))?)
            }
            other => Err(format!("a {} job is not an event", other.as_str())),
        }
    }

    fn from_wire(wire: EventV3<'_>) -> Result<Self, String> {
        let o = Cow::into_owned;
        let [source, medium, campaign, term, content] = wire.utm;
        let [country, region, city] = wire.geo;
        let [browser, browser_version, os, os_version, device] = wire.agent;
        Ok(Self {
            project_id: Uuid::from_u64_pair(wire.project_id.0, wire.project_id.1),
            event_id: Uuid::from_u64_pair(wire.event_id.0, wire.event_id.1),
            event_type: EventType::from_code(wire.event_type)
                .ok_or_else(|| format!("unknown event type code {}", wire.event_type))?,
            name: o(wire.name),
            ts_ms: wire.ts_ms,
            received_ms: wire.received_ms,
            visitor_id: wire.visitor_id,
            visitor_kind: VisitorKind::from_code(wire.visitor_kind)
                .ok_or_else(|| format!("unknown visitor kind code {}", wire.visitor_kind))?,
            user_id: o(wire.user_id),
            url: o(wire.url),
            host: o(wire.host),
            path: o(wire.path),
            title: o(wire.title),
            referrer: o(wire.referrer),
            referrer_host: o(wire.referrer_host),
            referrer_source: o(wire.referrer_source),
            referrer_name: o(wire.referrer_name),
            utm: Utm {
                source: o(source),
                medium: o(medium),
                campaign: o(campaign),
                term: o(term),
                content: o(content),
            },
            geo: Arc::new(Geo { country: o(country), region: o(region), city: o(city) }),
            agent: Arc::new(Agent {
                browser: o(browser),
                browser_version: o(browser_version),
                os: o(os),
                os_version: o(os_version),
                device: o(device),
            }),
            screen_width: wire.screen_width,
            duration_ms: wire.duration_ms,
            props: wire.props.into_iter().map(|(k, v)| (o(k), o(v))).collect(),
        })
    }
}

/// For `skip_serializing_if`: a field at its default carries no information.
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_writer_matches_rmp_serde_byte_for_byte() {
        let long = "x".repeat(300);
        let event = EventJob {
            project_id: Uuid::from_u128(u128::MAX - 1),
            event_id: Uuid::from_u128(5),
            event_type: EventType::Custom,
            name: "a".repeat(31),
            ts_ms: -1,
            received_ms: i64::MAX,
            visitor_id: 0,
            visitor_kind: VisitorKind::Anonymous,
            user_id: "b".repeat(32),
            url: long.clone(),
            host: "é".repeat(100),
            path: "/".into(),
            title: "t".repeat(70_000),
            referrer: String::new(),
            referrer_host: String::new(),
            referrer_source: "direct".into(),
            referrer_name: "c".repeat(256),
            utm: Utm { source: "s".into(), ..Default::default() },
            geo: Arc::new(Geo { country: "DE".into(), region: String::new(), city: "München".into() }),
            agent: Default::default(),
            screen_width: u16::MAX,
            duration_ms: u32::MAX,
            props: (0..20).map(|i| (format!("k{i}"), long[..i * 10].to_owned())).collect(),
        };
        let by_serde = |e: &EventJob| rmp_serde::to_vec(&e.as_v3()).unwrap();
        assert_eq!(event.to_v3(), by_serde(&event));
        let small = EventJob {
            props: vec![],
            ts_ms: 127,
            received_ms: 128,
            screen_width: 0,
            visitor_kind: VisitorKind::Daily,
            ..event
        };
        assert_eq!(small.to_v3(), by_serde(&small));
        assert_eq!(EventJob::decode(JobKind::EventV3, &small.to_v3()).unwrap(), small);
    }

    #[test]
    fn v2_jobs_decode_as_daily_visitors_with_unnamed_referrers() {
        let event = EventJob {
            visitor_kind: VisitorKind::Anonymous,
            referrer_name: "Google".into(),
            ..sample("https://www.example.com/")
        };
        let v2 = event.to_v2();
        let back = EventJob::decode(JobKind::EventV2, &v2).unwrap();
        assert_eq!(back, EventJob { visitor_kind: VisitorKind::Daily, referrer_name: String::new(), ..event.clone() });
        assert!(EventJob::decode(JobKind::EventV3, &v2).is_err(), "a v2 job is not a v3 job");
        assert!(EventJob::decode(JobKind::EventV2, &event.to_v3()).is_err(), "a v3 job is not a v2 job");
        let mut wire = event.as_v3();
        wire.visitor_kind = 9;
        let unknown_kind = rmp_serde::to_vec(&wire).unwrap();
        assert!(EventJob::decode(JobKind::EventV3, &unknown_kind).unwrap_err().contains("visitor kind"));
    }

    fn sample(url: &str) -> EventJob {
        EventJob {
            project_id: Uuid::new_v4(),
            event_id: Uuid::new_v4(),
            event_type: EventType::Pageview,
            name: String::new(),
            ts_ms: 1_700_000_000_123,
            received_ms: 1_700_000_000_200,
            visitor_id: 42,
            visitor_kind: VisitorKind::Daily,
            user_id: String::new(),
            url: url.into(),
            host: "www.example.com".into(),
            path: "/".into(),
            title: String::new(),
            referrer: "https://www.google.com/".into(),
            referrer_host: "www.google.com".into(),
            referrer_source: "search".into(),
            referrer_name: String::new(),
            utm: Utm::default(),
            geo: Default::default(),
            agent: Default::default(),
            screen_width: 1280,
            duration_ms: 0,
            props: vec![],
        }
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [JobKind::EventV1, JobKind::EventV2, JobKind::EventV3, JobKind::IdentifyV1] {
            assert_eq!(JobKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(JobKind::parse("event.v0"), None);
    }

    #[test]
    fn event_round_trips_through_json() {
        let event = EventJob {
            project_id: Uuid::new_v4(),
            event_id: Uuid::new_v4(),
            event_type: EventType::Custom,
            name: "signup".into(),
            ts_ms: 1_700_000_000_123,
            received_ms: 1_700_000_000_200,
            visitor_id: 42,
            visitor_kind: VisitorKind::Daily,
            user_id: String::new(),
            url: "https://example.com/a".into(),
            host: "example.com".into(),
            path: "/a".into(),
            title: String::new(),
            referrer: String::new(),
            referrer_host: String::new(),
            referrer_source: "direct".into(),
            referrer_name: String::new(),
            utm: Utm::default(),
            geo: Default::default(),
            agent: Default::default(),
            screen_width: 1280,
            duration_ms: 0,
            props: vec![("plan".into(), "pro".into())],
        };
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains(r#""type":"custom""#));
        for absent in
            ["visitor_kind", "referrer_name", "user_id", "title", "referrer", "utm", "geo", "agent", "duration_ms"]
        {
            assert!(!json.contains(&format!("\"{absent}\"")), "empty {absent} is left out: {json}");
        }
        let back: EventJob = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn event_round_trips_through_v3_in_about_half_the_bytes() {
        let full = |s: &str| s.to_owned();
        let event = EventJob {
            project_id: Uuid::new_v4(),
            event_id: Uuid::now_v7(),
            event_type: EventType::Pageleave,
            name: full("checkout"),
            ts_ms: 1_700_000_000_123,
            received_ms: 1_700_000_000_200,
            visitor_id: u64::MAX - 7,
            visitor_kind: VisitorKind::Anonymous,
            user_id: full("user-42"),
            url: full("https://www.example.com/pricing?utm_source=newsletter&utm_medium=email"),
            host: full("www.example.com"),
            path: full("/pricing"),
            title: full("Pricing · Tidemark \"fair\" plans"),
            referrer: full("https://news.ycombinator.com/item?id=1"),
            referrer_host: full("news.ycombinator.com"),
            referrer_source: full("social"),
            referrer_name: full("Hacker News"),
            utm: Utm {
                source: full("newsletter"),
                medium: full("email"),
                campaign: full("fall"),
                term: full("t"),
                content: full("c"),
            },
            geo: Arc::new(Geo { country: full("DE"), region: full("Bavaria"), city: full("München") }),
            agent: Arc::new(Agent {
                browser: full("Firefox"),
                browser_version: full("132"),
                os: full("Linux"),
                os_version: full(""),
                device: full("desktop"),
            }),
            screen_width: 1920,
            duration_ms: 65_000,
            props: vec![(full("plan"), full("pro")), (full("ab"), full("1"))],
        };
        let v3 = event.to_v3();
        assert_eq!(EventJob::decode(JobKind::EventV3, &v3).unwrap(), event);
        let v1 = serde_json::to_vec(&event).unwrap();
        assert_eq!(EventJob::decode(JobKind::EventV1, &v1).unwrap(), event);
        assert!(v3.len() * 10 < v1.len() * 7, "v3 {} bytes, v1 {} bytes", v3.len(), v1.len());
        assert!(EventJob::decode(JobKind::EventV3, &v3[..v3.len() - 1]).is_err(), "a cut job is refused");
        assert!(EventJob::decode(JobKind::IdentifyV1, &v3).is_err());
    }
}
