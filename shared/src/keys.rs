//! Redis key names. Every key starts with a configurable prefix (tests use a random one) and carries a
//! `{hash tag}` naming its shard, so all keys of one shard live in one Redis Cluster slot: the hub's ingest script
//! touches a session key and a stream in one call, which Redis Cluster only allows within a slot.
//!
//! Layout for shard `n` of prefix `tm`:
//! - `tm:{s<n>}:events`: the ingest stream, read by the consumer groups in [`GROUPS`].
//! - `tm:{s<n>}:dead`: the dead-letter stream for entries a worker gave up on.
//! - `tm:{s<n>}:sess:<project>:<visitor>`: the visitor's current session id, expiring after inactivity.

/// One consumer group per ClickHouse table fed from the ingest stream.
pub const GROUP_EVENTS: &str = "events";
pub const GROUP_SESSIONS: &str = "sessions";
pub const GROUP_DEVICES: &str = "devices";
pub const GROUP_USERS: &str = "users";
/// Every group that must see every entry. Entries are trimmed only once all of these processed them, so a group
/// is listed here only when its worker exists: a listed group whose worker never runs holds the stream until the
/// hub's `max_stream_bytes` back-pressure answers 503 (run all four worker kinds).
pub const GROUPS: &[&str] = &[GROUP_EVENTS, GROUP_SESSIONS, GROUP_DEVICES, GROUP_USERS];

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    shards: u16,
}

impl Keys {
    pub fn new(prefix: impl Into<String>, shards: u16) -> Self {
        Self { prefix: prefix.into(), shards: shards.max(1) }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// The shard for a routing hash; the hub routes by a hash of the visitor so a visitor's session key and
    /// events stay in one slot.
    pub fn shard_for(&self, routing_hash: u64) -> u16 {
        (routing_hash % u64::from(self.shards)) as u16
    }

    pub fn stream(&self, shard: u16) -> String {
        format!("{}:{{s{shard}}}:events", self.prefix)
    }

    pub fn dead_letters(&self, shard: u16) -> String {
        format!("{}:{{s{shard}}}:dead", self.prefix)
    }

    /// Everything of a session key (`tm:{s<n>}:sess:<project>:<visitor>`) before the visitor: the same for every job of one request, so the hub formats
    /// it once and appends each visitor with [`push_visitor`].
    pub fn session_prefix(&self, shard: u16, project: &uuid::Uuid) -> String {
        format!("{}:{{s{shard}}}:sess:{}:", self.prefix, project.simple())
    }

    pub fn streams(&self) -> impl Iterator<Item = (u16, String)> + '_ {
        (0..self.shards).map(|s| (s, self.stream(s)))
    }
}

/// Appends a visitor id as a session key ends: 16 lower-case hex digits.
pub fn push_visitor(key: &mut String, visitor: u64) {
    use std::fmt::Write;
    let _ = write!(key, "{visitor:016x}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_shard_share_a_hash_tag() {
        let keys = Keys::new("tm", 4);
        let p = uuid::Uuid::nil();
        assert_eq!(keys.stream(2), "tm:{s2}:events");
        assert_eq!(keys.dead_letters(2), "tm:{s2}:dead");
        let mut session = keys.session_prefix(2, &p);
        push_visitor(&mut session, 0xab);
        assert_eq!(session, "tm:{s2}:sess:00000000000000000000000000000000:00000000000000ab");
        assert_eq!(keys.shard_for(7), 3);
    }

    #[test]
    fn at_least_one_shard() {
        assert_eq!(Keys::new("tm", 0).shards(), 1);
    }
}
