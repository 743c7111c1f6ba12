//! The Redis side of a worker: its consumer group on every shard stream, reads, take-overs of entries left by
//! dead consumers, acks and dead letters.

use crate::dead_letters as dl;
use anyhow::Context;
use redis::Value;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamPendingCountReply, StreamReadReply};
use std::collections::{HashMap, HashSet};
use tidemark_shared::batch;
use tidemark_shared::job::{FIELD_JOB, FIELD_KIND, FIELD_SESSION, FIELD_USER, FIELD_VISITOR};
use tidemark_shared::keys::Keys;

/// Claims the entries this consumer still owns again, without counting a delivery: sets their idle time to
/// ARGV[3] ms (0 to keep them, `claim_idle` to hand them back for any worker to take at once) and their delivery
/// count to the given value. Returns the ids it still owned; entries another consumer took over meanwhile are
/// left alone: they are its job now.
/// KEYS: stream. ARGV: group, consumer, idle ms, then pairs of id and delivery count.
const KEEP_LUA: &str = r#"
local kept = {}
for i = 4, #ARGV, 2 do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'RETRYCOUNT', ARGV[i + 1], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
"#;

/// One job of an entry, whichever its layout.
pub use tidemark_shared::batch::JobView as Job;

/// One stream entry as delivered to this consumer.
#[derive(Debug, Clone)]
pub struct Entry {
    pub shard: u16,
    pub id: String,
    pub fields: HashMap<String, Value>,
    /// How many times the group handed this entry out, this delivery included, not counting deliveries that
    /// ended with their worker alive (see [`Consumer::keep`]): those that may have killed their worker.
    pub deliveries: u64,
}

impl Entry {
    pub fn field(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.field_bytes(name)?).ok()
    }

    /// A field as bytes: job payloads may be binary (`event.v2`).
    pub fn field_bytes(&self, name: &str) -> Option<&[u8]> {
        match self.fields.get(name)? {
            Value::BulkString(bytes) => Some(bytes),
            Value::SimpleString(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    fn is_batch(&self) -> bool {
        self.field(FIELD_KIND) == Some(batch::BATCH_V1)
    }

    /// The jobs the entry holds; an error when the entry itself is malformed (every job of it is then poison).
    pub fn jobs(&self) -> Result<Vec<Job<'_>>, String> {
        if self.is_batch() {
            let assigned = self.field_bytes(batch::FIELD_ASSIGNED).ok_or("batch entry has no assignments field")?;
            let frames = self.field_bytes(batch::FIELD_JOBS).ok_or("batch entry has no jobs field")?;
            return batch::split(assigned, frames);
        }
        Ok(vec![Job {
            kind: self.field(FIELD_KIND).ok_or("entry has no kind field")?,
            session: self.field(FIELD_SESSION).unwrap_or(""),
            visitor: self.field(FIELD_VISITOR).unwrap_or(""),
            user: self.field(FIELD_USER).unwrap_or(""),
            payload: self.field_bytes(FIELD_JOB).ok_or("entry has no job field")?,
        }])
    }

    /// The only group that writes this entry (a redriven dead letter), if any.
    pub fn target_group(&self) -> Option<&str> {
        self.field(crate::dead_letters::FIELD_TARGET_GROUP)
    }

    /// How many jobs the entry holds, without decoding them: to size reads.
    pub fn job_count(&self) -> usize {
        match self.field_bytes(batch::FIELD_ASSIGNED) {
            Some(assigned) if self.is_batch() => batch::count_jobs(assigned).max(1),
            _ => 1,
        }
    }
}

pub struct Consumer {
    client: redis::Client,
    conn: MultiplexedConnection,
    keys: Keys,
    group: &'static str,
    name: String,
    /// Where the next XAUTOCLAIM scan of each shard's pending list starts.
    claim_cursors: Vec<String>,
    keep_script: redis::Script,
}

/// The group's backlog on all shards, from XINFO GROUPS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupLag {
    /// Entries in the streams not yet delivered to the group.
    pub lag: u64,
    /// Entries delivered and not yet acknowledged.
    pub pending: u64,
}

impl Consumer {
    pub async fn connect(redis_url: &str, keys: Keys, group: &'static str, name: String) -> anyhow::Result<Self> {
        let client = tidemark_shared::redis::client(redis_url)?;
        let conn = tidemark_shared::redis::connect(&client).await?;
        let claim_cursors = vec!["0-0".to_owned(); usize::from(keys.shards())];
        let keep_script = redis::Script::new(KEEP_LUA);
        let mut consumer = Self { client, conn, keys, group, name, claim_cursors, keep_script };
        consumer.ensure_groups().await?;
        Ok(consumer)
    }

    /// Opens a new connection and makes sure the groups exist. A multiplexed connection whose server went away
    /// stays broken (every command answers "broken pipe"), so after a failed command the engine calls this
    /// instead of retrying on the dead connection; a Redis restarted on the same data is read again at once.
    pub async fn reconnect(&mut self) -> anyhow::Result<()> {
        self.conn = tidemark_shared::redis::connect(&self.client).await?;
        self.ensure_groups().await
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn group(&self) -> &'static str {
        self.group
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn connection(&mut self) -> &mut MultiplexedConnection {
        &mut self.conn
    }

    /// Creates the group on every shard stream, reading from the very first entry: events the hub accepted
    /// before any worker ever ran are not skipped.
    pub async fn ensure_groups(&mut self) -> anyhow::Result<()> {
        for (_, stream) in self.keys.streams() {
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&stream)
                .arg(self.group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut self.conn)
                .await;
            match created {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(e).with_context(|| format!("creating consumer group {} on {stream}", self.group)),
            }
        }
        Ok(())
    }

    /// Reads up to `count` new entries across all shards, waiting at most `block_ms` when there are none.
    pub async fn read(&mut self, count: usize, block_ms: u64) -> redis::RedisResult<Vec<Entry>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(self.group).arg(&self.name).arg("COUNT").arg(count);
        if block_ms > 0 {
            cmd.arg("BLOCK").arg(block_ms);
        }
        cmd.arg("STREAMS");
        for (_, stream) in self.keys.streams() {
            cmd.arg(stream);
        }
        for _ in 0..self.keys.shards() {
            cmd.arg(">");
        }
        let reply: Option<StreamReadReply> = cmd.query_async(&mut self.conn).await?;
        Ok(self.entries(reply.map(|r| r.keys).unwrap_or_default()))
    }

    fn entries(&self, keys: Vec<redis::streams::StreamKey>) -> Vec<Entry> {
        let mut out = Vec::new();
        for key in keys {
            let shard = self.shard_of(&key.key);
            out.extend(key.ids.into_iter().map(|id| Entry { shard, id: id.id, fields: id.map, deliveries: 1 }));
        }
        out
    }

    fn shard_of(&self, stream: &str) -> u16 {
        self.keys.streams().find(|(_, s)| s == stream).map(|(n, _)| n).unwrap_or(0)
    }

    /// Takes over up to `count` entries that other consumers (dead ones, as a live worker touches its entries far
    /// more often than `min_idle_ms`) left pending that long, with their delivery counts (this delivery included).
    pub async fn claim_stale(&mut self, min_idle_ms: u64, count: usize) -> redis::RedisResult<Vec<Entry>> {
        let mut out = Vec::new();
        for shard in 0..self.keys.shards() {
            if out.len() >= count {
                break;
            }
            let stream = self.keys.stream(shard);
            let cursor = &self.claim_cursors[usize::from(shard)];
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&stream)
                .arg(self.group)
                .arg(&self.name)
                .arg(min_idle_ms)
                .arg(cursor)
                .arg("COUNT")
                .arg(count - out.len())
                .query_async(&mut self.conn)
                .await?;
            self.claim_cursors[usize::from(shard)] = reply.next_stream_id;
            if reply.claimed.is_empty() {
                continue;
            }
            let deliveries = self.delivery_counts(&stream, &reply.claimed).await?;
            out.extend(reply.claimed.into_iter().map(|id| Entry {
                shard,
                deliveries: deliveries.get(&id.id).copied().unwrap_or(1),
                id: id.id,
                fields: id.map,
            }));
        }
        Ok(out)
    }

    async fn delivery_counts(
        &mut self,
        stream: &str,
        claimed: &[redis::streams::StreamId],
    ) -> redis::RedisResult<HashMap<String, u64>> {
        let (first, last) = match (claimed.first(), claimed.last()) {
            (Some(first), Some(last)) => (first.id.clone(), last.id.clone()),
            _ => return Ok(HashMap::new()),
        };
        let reply: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(stream)
            .arg(self.group)
            .arg(first)
            .arg(last)
            .arg(claimed.len() * 2 + 16)
            .arg(&self.name)
            .query_async(&mut self.conn)
            .await?;
        Ok(reply.ids.into_iter().map(|p| (p.id, p.times_delivered as u64)).collect())
    }

    /// Tells the group this consumer is still working on `entries` (so nobody takes them over while an insert is
    /// being retried) and returns the ids it still owns; the others were taken over and are no longer ours.
    ///
    /// A worker calls this after an insert attempt failed for ClickHouse's reasons: it survived the attempt, so
    /// this delivery is not held against the entries. Redis counts a delivery each time it hands an entry out,
    /// whatever became of it; `max_deliveries` is there to catch entries that kill their workers, and an outage
    /// with restarts must not look like that. So the count is set back to what it was before this delivery.
    pub async fn keep(&mut self, entries: &[Entry]) -> redis::RedisResult<HashSet<String>> {
        self.reclaim(entries, 0).await
    }

    /// Hands `entries` back to the group on a graceful stop: still pending (nothing is lost), idle `idle_ms` so the
    /// next worker takes them over at once, and this delivery not counted.
    pub async fn release(&mut self, entries: &[Entry], idle_ms: u64) -> redis::RedisResult<HashSet<String>> {
        self.reclaim(entries, idle_ms).await
    }

    async fn reclaim(&mut self, entries: &[Entry], idle_ms: u64) -> redis::RedisResult<HashSet<String>> {
        let mut kept = HashSet::new();
        for shard in 0..self.keys.shards() {
            let ours: Vec<&Entry> = entries.iter().filter(|e| e.shard == shard).collect();
            for chunk in ours.chunks(1000) {
                let mut invocation = self.keep_script.key(self.keys.stream(shard));
                invocation.arg(self.group).arg(&self.name).arg(idle_ms);
                for entry in chunk {
                    invocation.arg(&entry.id).arg(entry.deliveries.saturating_sub(1));
                }
                let ours: Vec<String> = invocation.invoke_async(&mut self.conn).await?;
                kept.extend(ours);
            }
        }
        Ok(kept)
    }

    /// The group's lag and pending count summed over the shards.
    pub async fn lag(&mut self) -> redis::RedisResult<GroupLag> {
        group_lag(&mut self.conn, &self.keys, self.group).await
    }

    /// Acknowledges entries, one XACK per shard, in one round trip.
    pub async fn ack(&mut self, entries: &[&Entry]) -> redis::RedisResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for shard in 0..self.keys.shards() {
            let ids: Vec<&str> = entries.iter().filter(|e| e.shard == shard).map(|e| e.id.as_str()).collect();
            if !ids.is_empty() {
                pipe.cmd("XACK").arg(self.keys.stream(shard)).arg(self.group).arg(ids).ignore();
            }
        }
        pipe.query_async::<()>(&mut self.conn).await
    }

    /// Parks jobs of `entry` in the dead-letter stream, one dead letter per job with its error, and acknowledges
    /// the entry, atomically (its other jobs are written). A job is named by its index in [`Entry::jobs`]; `None`
    /// parks the entry's raw fields, for an entry that cannot be split into jobs.
    /// The dead-letter stream keeps its newest `max_len` dead letters.
    pub async fn dead_letter(
        &mut self,
        entry: &Entry,
        parked: &[(Option<usize>, String)],
        max_len: u64,
    ) -> redis::RedisResult<()> {
        let jobs = entry.jobs().unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (index, error) in parked {
            let xadd = pipe.cmd("XADD").arg(self.keys.dead_letters(entry.shard)).arg("MAXLEN").arg(max_len).arg("*");
            xadd.arg(dl::FIELD_GROUP).arg(self.group).arg(dl::FIELD_ENTRY).arg(&entry.id);
            xadd.arg(dl::FIELD_ERROR).arg(error).arg(dl::FIELD_DELIVERIES).arg(entry.deliveries);
            xadd.arg(dl::FIELD_CONSUMER).arg(&self.name);
            match index.and_then(|i| jobs.get(i).map(|job| (i, job))) {
                Some((i, job)) => {
                    if entry.is_batch() {
                        xadd.arg(dl::FIELD_JOB_INDEX).arg(i);
                    }
                    xadd.arg(FIELD_KIND).arg(job.kind);
                    for (field, value) in
                        [(FIELD_SESSION, job.session), (FIELD_VISITOR, job.visitor), (FIELD_USER, job.user)]
                    {
                        if !value.is_empty() {
                            xadd.arg(field).arg(value);
                        }
                    }
                    xadd.arg(FIELD_JOB).arg(job.payload);
                }
                None => {
                    for (field, value) in &entry.fields {
                        if let Value::BulkString(bytes) = value {
                            xadd.arg(field).arg(bytes.as_slice());
                        }
                    }
                }
            }
            xadd.ignore();
        }
        pipe.cmd("XACK").arg(self.keys.stream(entry.shard)).arg(self.group).arg(&entry.id).ignore();
        pipe.query_async::<()>(&mut self.conn).await
    }
}

/// A group's lag and pending count summed over the shards (XINFO GROUPS; `lag` needs Redis 7). A shard where the
/// group does not exist yet counts as zero: callers that wait for a drain create the group first.
pub async fn group_lag(conn: &mut MultiplexedConnection, keys: &Keys, group: &str) -> redis::RedisResult<GroupLag> {
    let mut total = GroupLag::default();
    for (_, stream) in keys.streams() {
        let groups: Vec<HashMap<String, Value>> =
            redis::cmd("XINFO").arg("GROUPS").arg(&stream).query_async(conn).await?;
        let text = |v: &Value| redis::from_redis_value::<String>(v.clone()).ok();
        let number = |v: Option<&Value>| v.and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok()).unwrap_or(0);
        if let Some(info) = groups.iter().find(|g| g.get("name").and_then(text).is_some_and(|n| n == group)) {
            total.lag += number(info.get("lag"));
            total.pending += number(info.get("pending"));
        }
    }
    Ok(total)
}
