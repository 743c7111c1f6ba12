//! The ids the hub mints for a job: the event id, the session id candidate, and the shard a visitor's jobs go to.

use super::IngestState;
use super::context::RequestContext;
use crate::tokens::Project;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::hash::Hasher;
use std::net::IpAddr;
use uuid::Uuid;

/// A client-supplied id makes retries idempotent: the same id always maps to the same event id. Without one the
/// hub mints a time-ordered UUID.
pub fn event_id(project: &Uuid, client_id: Option<&str>) -> Uuid {
    match client_id {
        None => Uuid::now_v7(),
        Some(raw) => match Uuid::parse_str(raw) {
            Ok(id) => id,
            Err(_) => {
                let mut hasher = Sha256::new();
                hasher.update(project.as_bytes());
                hasher.update(raw.as_bytes());
                let digest = hasher.finalize();
                Uuid::new_v8(digest[..16].try_into().expect("16 bytes"))
            }
        },
    }
}

/// The session a job starts if its visitor has none open; the queue keeps the visitor's current one otherwise.
pub(super) fn new_session_id() -> u64 {
    rand::rng().random_range(1..u64::MAX)
}

pub(super) fn shard(state: &IngestState, ctx: &RequestContext<'_>, project: &Project) -> u16 {
    state.queue.keys().shard_for(routing_hash(&project.id, ctx.ip, ctx.user_agent))
}

/// Spreads visitors over stream shards. Unkeyed and never stored: it only has to be stable for one visitor.
fn routing_hash(project: &Uuid, ip: IpAddr, user_agent: &str) -> u64 {
    let mut h = siphasher::sip::SipHasher13::new();
    h.write(project.as_bytes());
    match ip {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => h.write(&v6.octets()),
    }
    h.write(user_agent.as_bytes());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_map_to_stable_event_ids() {
        let p = Uuid::from_u128(7);
        assert_eq!(event_id(&p, Some("abc")), event_id(&p, Some("abc")));
        assert_ne!(event_id(&p, Some("abc")), event_id(&p, Some("abd")));
        assert_ne!(event_id(&p, Some("abc")), event_id(&Uuid::from_u128(8), Some("abc")));
        let given = Uuid::new_v4();
        assert_eq!(event_id(&p, Some(&given.to_string())), given);
        assert_ne!(event_id(&p, None), event_id(&p, None));
    }
}
