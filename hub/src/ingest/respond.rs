//! The last steps: the jobs go to Redis in one round trip, and the answer says how many were accepted.

use super::IngestState;
use super::cors::allow_origin;
use crate::error::IngestError;
use crate::metrics as m;
use crate::queue::{OutgoingJob, QueueError};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use std::time::Instant;

/// A 202 means every job is in the stream; anything short of that is a 503 the client retries.
pub(super) async fn enqueue(state: &IngestState, jobs: Vec<OutgoingJob>) -> Result<HttpResponse, IngestError> {
    match state.queue.enqueue(jobs).await {
        Ok(appended) => {
            state.metrics.accepted.increment(appended as u64);
            Ok(accepted(appended))
        }
        Err(QueueError::Full) => {
            metrics::counter!(m::ENQUEUE_ERRORS, "cause" => "full").increment(1);
            Err(IngestError::Unavailable { retry_after_secs: 10 })
        }
        Err(QueueError::Unavailable(why)) => {
            metrics::counter!(m::ENQUEUE_ERRORS, "cause" => "redis").increment(1);
            tracing::warn!(error = why, "Could not enqueue events.");
            Err(IngestError::Unavailable { retry_after_secs: 2 })
        }
    }
}

pub(super) fn accepted(n: usize) -> HttpResponse {
    // Written out rather than built as a JSON value: this is every ingest request's answer, and most accept one.
    let mut response = HttpResponse::Accepted();
    response.content_type(header::ContentType::json());
    if n == 1 { response.body(r#"{"accepted":1}"#) } else { response.body(format!("{{\"accepted\":{n}}}")) }
}

/// Every handler's answer passes here: its latency and refusals are counted, and an accepted cross-origin request
/// gets its CORS header.
pub(super) fn finish(
    state: &IngestState,
    req: &HttpRequest,
    result: Result<HttpResponse, IngestError>,
    started: Instant,
) -> Result<HttpResponse, IngestError> {
    state.metrics.request_seconds.record(started.elapsed().as_secs_f64());
    match result {
        Ok(mut response) => {
            allow_origin(req, &mut response);
            Ok(response)
        }
        Err(e) => {
            use actix_web::ResponseError;
            metrics::counter!(m::REJECTED, "status" => e.status_code().as_str().to_owned()).increment(1);
            Err(e)
        }
    }
}
