//! The dead-letter streams (`tm:{s<n>}:dead`, one per shard): what a worker parks there, and what an operator does
//! with it (`worker dead-letters list|redrive|delete`).
//!
//! A dead letter names the group that gave up on it. Redriving appends its job to the ingest stream of the same
//! shard (the same hash tag, so one Redis Cluster slot) with that group as the entry's target (`g`): every other
//! group acknowledges it unwritten, so only the table that missed the job gets it, and the others count nothing
//! twice. The stream is bounded ([`crate::WorkerConfig::dead_letter_max_len`] and `dead_letter_max_age_secs`).

use redis::Value;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamRangeReply;
use std::time::Duration;
use tidemark_shared::job::{EventJob, FIELD_JOB, FIELD_KIND, FIELD_SESSION, FIELD_USER, FIELD_VISITOR, JobKind};
use tidemark_shared::keys::Keys;

/// The group that gave up on the job.
pub const FIELD_GROUP: &str = "group";
/// The id of the ingest entry the job came from.
pub const FIELD_ENTRY: &str = "entry";
/// The job's index in a `batch.v1` entry (absent for a single-job entry and for an entry parked whole).
pub const FIELD_JOB_INDEX: &str = "job";
pub const FIELD_ERROR: &str = "error";
/// Deliveries of the entry that ended without the worker surviving an attempt (see `consumer.rs`).
pub const FIELD_DELIVERIES: &str = "deliveries";
pub const FIELD_CONSUMER: &str = "consumer";
/// On an ingest entry: the only group that writes it (a redriven dead letter); the other groups acknowledge it
/// unwritten.
pub const FIELD_TARGET_GROUP: &str = "g";

/// The dead letter's own fields; the rest are the parked job's (or the parked entry's) own.
const METADATA: &[&str] = &[FIELD_GROUP, FIELD_ENTRY, FIELD_JOB_INDEX, FIELD_ERROR, FIELD_DELIVERIES, FIELD_CONSUMER];

#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub shard: u16,
    pub id: String,
    pub fields: Vec<(String, Vec<u8>)>,
}

impl DeadLetter {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.bytes(name).and_then(|b| std::str::from_utf8(b).ok())
    }

    fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }

    pub fn group(&self) -> &str {
        self.field(FIELD_GROUP).unwrap_or("")
    }

    /// One JSON object for `worker dead-letters list`: the metadata, the job's assignments, and the job itself
    /// decoded when it is an event (else its bytes, as text or hex).
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        out.insert("shard".into(), self.shard.into());
        out.insert("id".into(), self.id.clone().into());
        if let Some(ms) = self.id.split('-').next().and_then(|ms| ms.parse::<u64>().ok()) {
            out.insert("at_ms".into(), ms.into());
        }
        for name in METADATA {
            if let Some(value) = self.field(name) {
                let number = value.parse::<u64>().ok().filter(|_| matches!(*name, FIELD_JOB_INDEX | FIELD_DELIVERIES));
                out.insert((*name).into(), number.map_or_else(|| value.into(), Into::into));
            }
        }
        for (field, name) in [(FIELD_KIND, "kind"), (FIELD_SESSION, "session"), (FIELD_VISITOR, "visitor")] {
            if let Some(value) = self.field(field) {
                out.insert(name.into(), value.into());
            }
        }
        if let Some(user) = self.field(FIELD_USER) {
            out.insert("user".into(), user.into());
        }
        if let Some(payload) = self.bytes(FIELD_JOB) {
            let event = self
                .field(FIELD_KIND)
                .and_then(JobKind::parse)
                .filter(|kind| kind.is_event())
                .and_then(|kind| EventJob::decode(kind, payload).ok())
                .and_then(|event| serde_json::to_value(event).ok());
            match (event, std::str::from_utf8(payload)) {
                (Some(event), _) => out.insert("event".into(), event),
                (None, Ok(text)) => out.insert("payload".into(), text.into()),
                (None, Err(_)) => out.insert("payload_hex".into(), hex::encode(payload).into()),
            };
        }
        serde_json::Value::Object(out)
    }
}

/// Which dead letters a command touches: the ids given (any shard), or all; of one group or all; at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub group: Option<String>,
    pub ids: Vec<String>,
    pub limit: usize,
}

/// The selected dead letters, oldest first per shard.
pub async fn list(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    which: &Selection,
) -> redis::RedisResult<Vec<DeadLetter>> {
    let wanted = |d: &DeadLetter| which.group.as_deref().is_none_or(|g| d.group() == g);
    let mut out = Vec::new();
    for shard in 0..keys.shards() {
        let stream = keys.dead_letters(shard);
        if !which.ids.is_empty() {
            for id in &which.ids {
                let reply: StreamRangeReply =
                    redis::cmd("XRANGE").arg(&stream).arg(id).arg(id).query_async(conn).await?;
                out.extend(letters(shard, reply).into_iter().filter(wanted));
            }
            continue;
        }
        let mut start = "-".to_owned();
        while out.len() < which.limit {
            let reply: StreamRangeReply =
                redis::cmd("XRANGE").arg(&stream).arg(&start).arg("+").arg("COUNT").arg(500).query_async(conn).await?;
            let page = letters(shard, reply);
            let Some(last) = page.last() else { break };
            start = format!("({}", last.id);
            out.extend(page.into_iter().filter(wanted));
        }
    }
    out.truncate(which.limit);
    Ok(out)
}

fn letters(shard: u16, reply: StreamRangeReply) -> Vec<DeadLetter> {
    reply
        .ids
        .into_iter()
        .map(|id| {
            let fields = id
                .map
                .into_iter()
                .filter_map(|(k, v)| match v {
                    Value::BulkString(bytes) => Some((k, bytes)),
                    Value::SimpleString(s) => Some((k, s.into_bytes())),
                    _ => None,
                })
                .collect();
            DeadLetter { shard, id: id.id, fields }
        })
        .collect()
}

/// Appends the dead letter's job to its shard's ingest stream for the group that failed it, and removes the dead
/// letter, in one transaction; returns the new entry's id.
pub async fn redrive(conn: &mut MultiplexedConnection, keys: &Keys, letter: &DeadLetter) -> redis::RedisResult<String> {
    let group = letter.group();
    if group.is_empty() || letter.bytes(FIELD_KIND).is_none() {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "not a dead letter a worker wrote",
            letter.id.clone(),
        )));
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    let xadd = pipe.cmd("XADD").arg(keys.stream(letter.shard)).arg("*");
    for (field, value) in &letter.fields {
        if !METADATA.contains(&field.as_str()) && field != FIELD_TARGET_GROUP {
            xadd.arg(field).arg(value.as_slice());
        }
    }
    xadd.arg(FIELD_TARGET_GROUP).arg(group);
    pipe.cmd("XDEL").arg(keys.dead_letters(letter.shard)).arg(&letter.id).ignore();
    let (id,): (String,) = pipe.query_async(conn).await?;
    Ok(id)
}

pub async fn delete(conn: &mut MultiplexedConnection, keys: &Keys, letter: &DeadLetter) -> redis::RedisResult<()> {
    redis::cmd("XDEL").arg(keys.dead_letters(letter.shard)).arg(&letter.id).query_async(conn).await
}

/// Dead letters on all shards.
pub async fn count(conn: &mut MultiplexedConnection, keys: &Keys) -> redis::RedisResult<u64> {
    let mut total = 0;
    for shard in 0..keys.shards() {
        let n: u64 = redis::cmd("XLEN").arg(keys.dead_letters(shard)).query_async(conn).await?;
        total += n;
    }
    Ok(total)
}

/// Removes dead letters older than `max_age` on every shard; returns how many.
pub async fn trim_older_than(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    max_age: Duration,
) -> redis::RedisResult<u64> {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let min_id = format!("{}-0", now_ms.saturating_sub(max_age.as_millis()));
    let mut removed = 0;
    for shard in 0..keys.shards() {
        let n: u64 =
            redis::cmd("XTRIM").arg(keys.dead_letters(shard)).arg("MINID").arg(&min_id).query_async(conn).await?;
        removed += n;
    }
    Ok(removed)
}
