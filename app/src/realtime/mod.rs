//! Realtime: current visitors (distinct visitors with an event in the last five minutes) and a live feed of the
//! project's events over Server-Sent Events.
//!
//! - [`counts`]: the visitors count, one function for every endpoint that shows it.
//! - [`feed`]: the feed's rows, read from ClickHouse `events`, and the cursor that shows each event once.
//! - [`broadcast`]: one shared poller per watched project, bounded queues per subscriber.
//! - [`sse`]: frames and the streaming body.
//!
//! The clock is arrival (`received_at`, set by the hub when it answers 202): "in the last five minutes" means
//! answered in the last five minutes, so a tracker's buffered batch sent late counts as present now (its visitor
//! is), and a client with a wrong clock cannot hide or inflate the count. It is also the clock sessions run on.

pub mod broadcast;
pub mod counts;
pub mod feed;
pub mod sse;

pub use broadcast::Feeds;

use crate::analytics_store::AnalyticsStore;
use crate::api_error::ApiError;
use crate::auth::caller::{AccessState, Caller};
use crate::openapi::schemas as doc;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use serde::Deserialize;
use std::time::Duration;

/// "Current" visitors: an event arrived in this many seconds before now.
pub const WINDOW_SECS: u32 = 300;

/// How far before a window's start the queries still look at `ts`. The hub clamps an event's `ts` to at most
/// `max_event_age_secs` (default one day) before its arrival, so this bound filters nothing out; it lets
/// ClickHouse read only the project's last days (`events` is sorted by project, then day of `ts`). A hub set to
/// accept events older than this would have them missing from realtime (only).
pub const LOOKBACK_SECS: i64 = 2 * 86_400;

/// Longest a realtime query may take before it counts as ClickHouse being unavailable.
const QUERY_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How often a project's poller reads new events: the feed's share of the 202-to-screen delay.
    pub poll_every: Duration,
    /// How often streams get a fresh visitors count.
    pub visitors_every: Duration,
    /// A comment line this often keeps proxies from closing a quiet stream.
    pub heartbeat_every: Duration,
    /// Frames a subscriber may have unread before it is dropped.
    pub queue: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            poll_every: Duration::from_millis(250),
            visitors_every: Duration::from_secs(5),
            heartbeat_every: Duration::from_secs(15),
            queue: 1024,
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v2/realtime")
            .app_data(
                web::QueryConfig::default().error_handler(|err, _| {
                    ApiError::BadInput { field: "query".into(), problem: err.to_string() }.into()
                }),
            )
            .route("/visitors", web::get().to(visitors))
            .route("/stream", web::get().to(stream)),
    );
}

crate::openapi::api_routes! {
    mounted_by_configure;
    get "/api/v2/realtime/visitors" => visitors,
    get "/api/v2/realtime/stream" => stream,
}

pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) async fn with_deadline<T, E>(work: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(QUERY_DEADLINE, work).await {
        Ok(result) => Ok(result?),
        Err(_) => anyhow::bail!("ClickHouse did not answer within {} s", QUERY_DEADLINE.as_secs()),
    }
}

/// The realtime endpoints' errors: the API's, plus ClickHouse being unavailable (503, retry soon).
#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("ClickHouse is unavailable; try again shortly")]
    Unavailable(anyhow::Error),
}

impl ResponseError for RealtimeError {
    fn status_code(&self) -> StatusCode {
        match self {
            RealtimeError::Api(e) => e.status_code(),
            RealtimeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            RealtimeError::Api(e) => e.error_response(),
            RealtimeError::Unavailable(e) => {
                tracing::warn!(error = format!("{e:#}"), "Realtime query failed: ClickHouse unavailable.");
                HttpResponse::ServiceUnavailable()
                    .insert_header(("Retry-After", "5"))
                    .json(serde_json::json!({ "error": self.to_string() }))
            }
        }
    }
}

#[derive(Deserialize)]
struct Params {
    site_id: Option<String>,
}

async fn project_of(
    access: &AccessState,
    caller: &Caller,
    params: &Params,
) -> Result<crate::site::Project, RealtimeError> {
    let site_id = params.site_id.as_deref().unwrap_or("");
    Ok(crate::site::resolve(&access.pool, &caller.principal, site_id).await?)
}

/// `GET /api/v2/realtime/visitors?site_id=…`
#[utoipa::path(
    get,
    path = "/api/v2/realtime/visitors",
    tag = "stats",
    summary = "Current visitors (an event arrived in the last five minutes)",
    params(("site_id" = String, Query, description = "A project id or one of its domains")),
    responses(
        (status = 200, description = "OK", body = doc::RealtimeVisitors),
        (status = 400, description = "Bad input, naming the field", body = doc::BadInputBody),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed", body = doc::ErrorBody),
        (status = 404, description = "Unknown site, or one the caller may not read", body = doc::ErrorBody),
        (status = 503, description = "ClickHouse unavailable; see Retry-After", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn visitors(
    caller: Caller,
    access: web::Data<AccessState>,
    store: web::Data<AnalyticsStore>,
    params: web::Query<Params>,
) -> Result<HttpResponse, RealtimeError> {
    let project = project_of(&access, &caller, &params).await?;
    let now = unix_now();
    let count = async { counts::current_visitors(store.get().await?, project.id, now).await }
        .await
        .map_err(RealtimeError::Unavailable)?;
    let as_of = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(serde_json::json!({
        "visitors": count,
        "window_seconds": WINDOW_SECS,
        "clock": "received_at",
        "as_of": as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })))
}

/// `GET /api/v2/realtime/stream?site_id=…`: `visitors` first, then the project's events as they land.
#[utoipa::path(
    get,
    path = "/api/v2/realtime/stream",
    tag = "stats",
    summary = "Server-Sent Events: `visitors` first, then the project's events as they land",
    params(("site_id" = String, Query, description = "A project id or one of its domains")),
    responses(
        (status = 200, description = "An event stream: `visitors` frames, one frame per event named by its type (`pageview`, a custom name; `event` when not a plain word), `unavailable` while ClickHouse fails, comment heartbeats", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad input, naming the field", body = doc::BadInputBody),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed", body = doc::ErrorBody),
        (status = 404, description = "Unknown site, or one the caller may not read", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn stream(
    caller: Caller,
    access: web::Data<AccessState>,
    feeds: web::Data<Feeds>,
    params: web::Query<Params>,
) -> Result<HttpResponse, RealtimeError> {
    let project = project_of(&access, &caller, &params).await?;
    // ClickHouse down is no reason to refuse the stream: EventSource gives up for good on a non-200 answer, while
    // an open stream is told `unavailable` and resumes by itself.
    let first = match async { counts::current_visitors(feeds.store().get().await?, project.id, unix_now()).await }.await
    {
        Ok(count) => broadcast::visitors_frame(count),
        Err(e) => {
            tracing::warn!(project = %project.id, error = format!("{e:#}"), "Realtime stream opened while ClickHouse fails.");
            broadcast::unavailable_frame()
        }
    };
    let frames = feeds.clone().into_inner().subscribe(project.id, first);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        // nginx buffers responses unless told not to; a buffered stream is no stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .body(sse::SseBody::new(frames, feeds.settings().heartbeat_every)))
}
