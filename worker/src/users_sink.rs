//! The `users` table: one logical row per identified user (project, user id). The worker writes one row into
//! `users_input` (`Null`) per `identify.v1` job and per event that carries a user (its own `user_id`, or the user an
//! identify linked to its session); `users_mv` folds them into idempotent aggregate states in `users`
//! (AggregatingMergeTree): first/last seen, the latest traits, the last visitor, distinct visitors, sessions and
//! events. A redelivered job changes no state. See docs/CLICKHOUSE.md.

use crate::consumer::Job;
use crate::sessions_sink::{NO_SESSION, event_order};
use crate::sink::{Decoded, Sink, SinkError, insert_all};
use serde::Serialize;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use tidemark_shared::clickhouse::ClickHouse;
use tidemark_shared::job::{IdentifyV1, JobKind};
use tidemark_shared::keys::GROUP_USERS;
use uuid::Uuid;

/// Field names and order match `queries::USER_INPUT_COLUMNS` (a test checks it).
#[derive(Debug, Clone, PartialEq, Serialize, clickhouse::Row)]
pub struct UserInputRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub project_id: Uuid,
    pub user_id: String,
    pub visitor_id: u64,
    pub session_id: u64,
    /// The event's id; nil for an identify (it has none, and counts as no event).
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    /// Arrival time (the hub's clock), as for sessions.
    pub ts_ms: u64,
    /// A total order over the user's jobs: the latest traits and the last visitor are the ones of the highest.
    pub ord: u64,
    pub is_identify: u8,
    /// The identify's traits as a JSON object (keys sorted; a repeated key keeps its last value); empty for an
    /// event, and for an identify without traits, which leaves the known traits as they are.
    pub traits: String,
}

impl UserInputRow {
    fn from_identify(identify: IdentifyV1, visitor: Option<u64>, session: u64) -> Self {
        let traits = if identify.traits.is_empty() {
            String::new()
        } else {
            // Sorted here, not by serde_json (whose map order depends on a crate feature): copies of one identify
            // decoded by different worker builds must give the same text.
            let object: std::collections::BTreeMap<String, String> = identify.traits.into_iter().collect();
            serde_json::to_string(&object).expect("a map of strings serializes")
        };
        let ts_ms = identify.ts_ms.max(0) as u64;
        Self {
            project_id: identify.project_id,
            user_id: identify.user_id,
            visitor_id: visitor.unwrap_or(identify.visitor_id),
            session_id: session,
            event_id: Uuid::nil(),
            ord: identify_order(ts_ms, &traits),
            ts_ms,
            is_identify: 1,
            traits,
        }
    }
}

/// Two identifies of one user in the same millisecond are ordered by a hash of their traits, so which traits win
/// cannot depend on the order parts merge in; only copies of one identify tie, and they carry the same traits.
fn identify_order(ts_ms: u64, traits: &str) -> u64 {
    let mut hasher = SipHasher13::new_with_keys(0, 0);
    hasher.write(traits.as_bytes());
    (ts_ms << 16) | (hasher.finish() & 0xffff)
}

pub struct UsersSink {
    ch: ClickHouse,
}

impl UsersSink {
    pub fn new(ch: ClickHouse) -> Self {
        Self { ch }
    }
}

impl Sink for UsersSink {
    type Row = UserInputRow;

    fn group(&self) -> &'static str {
        GROUP_USERS
    }

    fn decode(&self, job: &Job<'_>) -> Decoded<UserInputRow> {
        match decode_user(job) {
            Ok(Some(row)) => Decoded::Row(row),
            Ok(None) => Decoded::Skip,
            Err(why) => Decoded::Poison(why),
        }
    }

    async fn write(&self, rows: &[UserInputRow]) -> Result<(), SinkError> {
        insert_all(&self.ch, "users_input", rows).await
    }
}

/// The user row of a job, `None` for an event without a user. The script's session and visitor win over the job's
/// own, as for every table.
pub fn decode_user(job: &Job<'_>) -> Result<Option<UserInputRow>, String> {
    match JobKind::parse(job.kind) {
        Some(JobKind::IdentifyV1) => {
            let identify: IdentifyV1 =
                serde_json::from_slice(job.payload).map_err(|e| format!("undecodable identify.v1 job: {e}"))?;
            if identify.user_id.is_empty() {
                return Err("an identify.v1 job has no user id".into());
            }
            let session = job.session.parse().unwrap_or(NO_SESSION);
            Ok(Some(UserInputRow::from_identify(identify, job.visitor.parse().ok(), session)))
        }
        _ => {
            let Some((event, session)) = crate::decode::decode_event(job)? else { return Ok(None) };
            if event.user_id.is_empty() {
                return Ok(None);
            }
            let ts_ms = event.received_ms.max(0) as u64;
            Ok(Some(UserInputRow {
                project_id: event.project_id,
                user_id: event.user_id,
                visitor_id: event.visitor_id,
                session_id: session,
                ord: event_order(ts_ms, &event.event_id),
                event_id: event.event_id,
                ts_ms,
                is_identify: 0,
                traits: String::new(),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_columns_match_the_catalog() {
        use clickhouse::Row;
        let ours = UserInputRow::COLUMN_NAMES.join(", ");
        let catalog: Vec<&str> = tidemark_shared::queries::USER_INPUT_COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(ours, catalog.join(", "));
    }

    #[test]
    fn identify_traits_become_one_json_object_and_the_script_wins() {
        let identify = IdentifyV1 {
            project_id: Uuid::from_u128(1),
            visitor_id: 5,
            user_id: "u-1".into(),
            ts_ms: 1_000,
            traits: vec![
                ("plan".into(), "pro".into()),
                ("name".into(), "Ada \"A\"".into()),
                ("plan".into(), "team".into()),
            ],
        };
        let payload = serde_json::to_vec(&identify).unwrap();
        let job = Job { kind: "identify.v1", session: "77", visitor: "9", user: "u-1", payload: &payload };
        let row = decode_user(&job).unwrap().unwrap();
        assert_eq!(row.traits, r#"{"name":"Ada \"A\"","plan":"team"}"#);
        assert_eq!((row.visitor_id, row.session_id, row.is_identify, row.ts_ms), (9, 77, 1, 1_000));
        assert_eq!(row.ord >> 16, 1_000);
        let bare = IdentifyV1 { traits: vec![], ..identify };
        let payload = serde_json::to_vec(&bare).unwrap();
        let row = decode_user(&Job { payload: &payload, session: "0", ..job }).unwrap().unwrap();
        assert_eq!((row.traits.as_str(), row.session_id), ("", 0));
        assert!(decode_user(&Job { payload: b"{", ..job }).is_err());
    }
}
