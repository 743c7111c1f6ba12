//! The ids the hub mints for a job: the event id, the session id candidate, and the shard a visitor's jobs go to.

use super::IngestState;
use super::context::RequestContext;
use crate::payload::ValidEvent;
use crate::tokens::Project;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::hash::Hasher;
use std::net::IpAddr;
use uuid::Uuid;

/// The event's id, which makes copies of one event invisible (the tables fold rows by it).
///
/// A client-supplied `id` wins: the same id always maps to the same event id. Without one, an event that carries
/// its own time (`ts`, which Tidemark's tracker always sends) gets an id derived from who sent it and what it says:
/// a request retried after a 503, which Redis may have appended before the answer was lost (a writer timeout),
/// repeats the same id, so the copy stays invisible. Two events alike in every field down to the millisecond are
/// one event. Only an event with neither gets a fresh time-ordered id: the hub cannot tell a retry of it from a
/// repeat.
pub fn event_id(project: &Uuid, visitor_id: u64, event: &ValidEvent) -> Uuid {
    if let Some(raw) = event.client_id.as_deref() {
        return Uuid::parse_str(raw).unwrap_or_else(|_| {
            let mut hasher = Sha256::new();
            hasher.update(project.as_bytes());
            hasher.update(raw.as_bytes());
            v8(hasher)
        });
    }
    let Some(ts_ms) = event.ts_ms else { return Uuid::now_v7() };
    let mut hasher = Sha256::new();
    hasher.update(b"tidemark-event\0");
    hasher.update(project.as_bytes());
    hasher.update(visitor_id.to_be_bytes());
    hasher.update(ts_ms.to_be_bytes());
    hasher.update(event.event_type.as_str().as_bytes());
    let url = event.url.as_ref().map_or("", |u| u.as_str());
    let referrer = event.referrer.as_ref().map_or("", |u| u.as_str());
    for field in [event.name.as_str(), url, referrer, event.title.as_str(), event.user_id.as_str()] {
        length_prefixed(&mut hasher, field);
    }
    for (key, value) in &event.props {
        length_prefixed(&mut hasher, key);
        length_prefixed(&mut hasher, value);
    }
    hasher.update(event.duration_ms.to_be_bytes());
    v8(hasher)
}

/// Each field with its length first, so that no two different events hash the same bytes ("ab" + "c" against
/// "a" + "bc").
fn length_prefixed(hasher: &mut Sha256, field: &str) {
    hasher.update((field.len() as u64).to_be_bytes());
    hasher.update(field.as_bytes());
}

fn v8(hasher: Sha256) -> Uuid {
    let digest = hasher.finalize();
    Uuid::new_v8(digest[..16].try_into().expect("16 bytes"))
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

    fn event(client_id: Option<&str>, ts_ms: Option<i64>) -> ValidEvent {
        ValidEvent {
            event_type: tidemark_shared::job::EventType::Pageview,
            name: String::new(),
            url: Some(url::Url::parse("https://a.io/pricing").unwrap()),
            referrer: None,
            title: "Pricing".into(),
            props: vec![("plan".into(), "pro".into())],
            ts_ms,
            client_id: client_id.map(str::to_owned),
            user_id: String::new(),
            anonymous_id: None,
            duration_ms: 0,
            screen_width: 1280,
        }
    }

    #[test]
    fn client_ids_map_to_stable_event_ids() {
        let p = Uuid::from_u128(7);
        let id = |project: &Uuid, client: Option<&str>| event_id(project, 1, &event(client, None));
        assert_eq!(id(&p, Some("abc")), id(&p, Some("abc")));
        assert_ne!(id(&p, Some("abc")), id(&p, Some("abd")));
        assert_ne!(id(&p, Some("abc")), id(&Uuid::from_u128(8), Some("abc")));
        let given = Uuid::new_v4();
        assert_eq!(id(&p, Some(&given.to_string())), given);
        assert_ne!(id(&p, None), id(&p, None), "no id and no time: a fresh id each time");
    }

    #[test]
    fn a_retried_event_with_a_time_keeps_its_id() {
        let p = Uuid::from_u128(7);
        let sent = event(None, Some(1_764_000_000_123));
        assert_eq!(event_id(&p, 42, &sent), event_id(&p, 42, &sent.clone()), "the retry is the same event");
        assert_ne!(event_id(&p, 43, &sent), event_id(&p, 42, &sent), "another visitor's event");
        let later = event(None, Some(1_764_000_000_124));
        assert_ne!(event_id(&p, 42, &later), event_id(&p, 42, &sent), "a millisecond apart: another event");
        let mut other_prop = sent.clone();
        other_prop.props[0].1 = "free".into();
        assert_ne!(event_id(&p, 42, &other_prop), event_id(&p, 42, &sent));
        let mut shifted = sent.clone();
        shifted.title = "Pric".into();
        shifted.props[0].0 = "ingplan".into();
        assert_ne!(event_id(&p, 42, &shifted), event_id(&p, 42, &sent), "field bounds count");
    }
}
