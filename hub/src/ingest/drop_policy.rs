//! Traffic answered 202 but not queued: excluded networks, prefetches and bots. Dropped traffic gets the same
//! answer as counted traffic, so a bot learns nothing from it.

use super::IngestState;
use super::context::RequestContext;
use crate::bots::prefetch_reason;
use crate::classifier::UaVerdict;
use crate::metrics as m;

/// The cause, counted in metrics, or `None` when the events are to be queued. Bots also carry their reason.
pub(super) fn dropped(
    state: &IngestState,
    ctx: &RequestContext<'_>,
    verdict: &UaVerdict,
    events: usize,
) -> Option<&'static str> {
    let n = events as u64;
    if state.excluded.trusts(ctx.ip) {
        metrics::counter!(m::DROPPED, "cause" => "excluded", "reason" => "").increment(n);
        return Some("excluded");
    }
    if let Some(kind) = prefetch_reason(ctx.headers) {
        metrics::counter!(m::DROPPED, "cause" => "prefetch", "reason" => kind).increment(n);
        return Some("prefetch");
    }
    if let Some(reason) = verdict.bot {
        metrics::counter!(m::DROPPED, "cause" => "bot", "reason" => reason.as_str()).increment(n);
        return Some("bot");
    }
    None
}
