//! From a queued job to the event every table is fed from. A leaf: the generic table sink (`sink.rs`) and each
//! table's row mapping (`events_sink.rs`, `sessions_sink.rs`, `devices_sink.rs`, `users_sink.rs`) use it, and it uses
//! neither.

use tidemark_shared::batch::JobView;
use tidemark_shared::job::{EventJob, JobKind};

/// The ingest script files session and visitor ids (and a user linked by an identify) beside the job; they are
/// authoritative over the job's own. Every sink decodes through here, so the three tables agree on them.
/// `Ok(None)` is a job of a kind no table takes (an identify).
pub fn decode_event(job: &JobView<'_>) -> Result<Option<(EventJob, u64)>, String> {
    let kind = match JobKind::parse(job.kind) {
        Some(kind) if kind.is_event() => kind,
        Some(_) => return Ok(None),
        None => return Err(format!("unknown job kind `{}`", job.kind)),
    };
    let mut event = EventJob::decode(kind, job.payload)?;
    let session = job.session.parse().map_err(|_| "entry has no valid session id")?;
    if let Ok(visitor) = job.visitor.parse() {
        event.visitor_id = visitor;
    }
    if !job.user.is_empty() {
        event.user_id = job.user.to_owned();
    }
    Ok(Some((event, session)))
}
