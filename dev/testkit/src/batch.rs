//! `batch.v1` entries written without the hub, for tests and benchmarks that fill a stream directly. The hub's
//! ingest script writes the real ones ([`tidemark_shared::batch`] describes the layout); everything a reader needs
//! is re-exported here, so a test imports one module.

pub use tidemark_shared::batch::*;
use tidemark_shared::job::{EventJob, FIELD_KIND, JobKind};

/// Appends one record to a batch's `s` field, as the hub's script writes it.
pub fn assign_job(assigned: &mut Vec<u8>, session: u64, visitor: u64, user: &str) {
    assigned.extend_from_slice(format!("{session} {visitor} {} {user}\n", user.len()).as_bytes());
}

/// The `s` and `j` fields of a batch of events, as the hub's script files them: `(event, session id)` pairs, each
/// under the event's own visitor id, as `event.v3` jobs (what the hub writes).
pub fn encode_events(events: &[(EventJob, u64)]) -> (Vec<u8>, Vec<u8>) {
    encode_events_as(JobKind::EventV3, events)
}

/// [`encode_events`] in the layout earlier hubs wrote (`event.v2`), for tests of entries queued before an upgrade.
pub fn encode_events_v2(events: &[(EventJob, u64)]) -> (Vec<u8>, Vec<u8>) {
    encode_events_as(JobKind::EventV2, events)
}

fn encode_events_as(kind: JobKind, events: &[(EventJob, u64)]) -> (Vec<u8>, Vec<u8>) {
    let (mut assigned, mut frames) = (Vec::new(), Vec::new());
    for (event, session) in events {
        let payload = if kind == JobKind::EventV2 { event.to_v2() } else { event.to_v3() };
        frame_job(&mut frames, kind.as_str(), &payload);
        assign_job(&mut assigned, *session, event.visitor_id, "");
    }
    (assigned, frames)
}

/// The `XADD` of one batch entry.
pub fn xadd(stream: &str, assigned: &[u8], frames: &[u8]) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("*").arg(FIELD_KIND).arg(BATCH_V1);
    cmd.arg(FIELD_ASSIGNED).arg(assigned).arg(FIELD_JOBS).arg(frames);
    cmd
}
