//! The Redis side of a worker: its consumer group on every shard stream, reads, acks and dead letters.

use anyhow::Context;
use redis::Value;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use std::collections::HashMap;
use tidemark_shared::keys::Keys;

/// One stream entry as delivered to this consumer.
#[derive(Debug, Clone)]
pub struct Entry {
    pub shard: u16,
    pub id: String,
    pub fields: HashMap<String, Value>,
}

impl Entry {
    pub fn field(&self, name: &str) -> Option<&str> {
        match self.fields.get(name)? {
            Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
            Value::SimpleString(s) => Some(s),
            _ => None,
        }
    }
}

pub struct Consumer {
    conn: MultiplexedConnection,
    keys: Keys,
    group: &'static str,
    name: String,
}

impl Consumer {
    pub async fn connect(redis_url: &str, keys: Keys, group: &'static str, name: String) -> anyhow::Result<Self> {
        let client = tidemark_shared::redis::client(redis_url)?;
        let conn = tidemark_shared::redis::connect(&client).await?;
        let mut consumer = Self { conn, keys, group, name };
        consumer.ensure_groups().await?;
        Ok(consumer)
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
            out.extend(key.ids.into_iter().map(|id| Entry { shard, id: id.id, fields: id.map }));
        }
        out
    }

    fn shard_of(&self, stream: &str) -> u16 {
        self.keys.streams().find(|(_, s)| s == stream).map(|(n, _)| n).unwrap_or(0)
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

    /// Parks an entry with its error in the dead-letter stream and acknowledges it, atomically.
    pub async fn dead_letter(&mut self, entry: &Entry, error: &str, deliveries: u64) -> redis::RedisResult<()> {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(self.keys.dead_letters(entry.shard)).arg("*");
        xadd.arg("group").arg(self.group).arg("entry").arg(&entry.id);
        xadd.arg("error").arg(error).arg("deliveries").arg(deliveries).arg("consumer").arg(&self.name);
        for (field, value) in &entry.fields {
            if let Value::BulkString(bytes) = value {
                xadd.arg(field).arg(bytes.as_slice());
            }
        }
        redis::pipe()
            .atomic()
            .add_command(xadd)
            .ignore()
            .cmd("XACK")
            .arg(self.keys.stream(entry.shard))
            .arg(self.group)
            .arg(&entry.id)
            .ignore()
            .query_async::<()>(&mut self.conn)
            .await
    }
}
