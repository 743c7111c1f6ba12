//! The ingest endpoints: `POST /v1/event` and `POST /v1/batch`.

use crate::error::IngestError;
use crate::identity::{Salts, anonymous_visitor_id};
use crate::metrics as m;
use crate::payload::{IncomingBatch, IncomingEvent, Limits, ValidEvent, parse_json, validate};
use crate::queue::{OutgoingJob, Queue, QueueError};
use crate::tokens::{Project, TokenStore};
use crate::url_parts::{normalize_host, page_parts};
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use tidemark_shared::job::{Agent, EventV1, Geo, JobKind, Utm};
use uuid::Uuid;

pub struct IngestState {
    pub tokens: TokenStore,
    pub salts: Salts,
    pub queue: Queue,
    pub limits: Limits,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub max_event_age_ms: i64,
}

/// What the request itself tells us, apart from its body.
struct RequestContext {
    header_token: Option<String>,
    origin: Option<String>,
    ip: IpAddr,
    user_agent: String,
}

impl RequestContext {
    fn from(req: &HttpRequest) -> Self {
        let headers = req.headers();
        let header_token = header_str(headers, header::AUTHORIZATION)
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(|t| t.trim().to_owned());
        let ip = req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Self {
            header_token,
            origin: header_str(headers, header::ORIGIN).map(str::to_owned),
            ip,
            user_agent: header_str(headers, header::USER_AGENT).unwrap_or("").chars().take(512).collect(),
        }
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty())
}

pub async fn post_event(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<IngestState>,
) -> Result<HttpResponse, IngestError> {
    let started = Instant::now();
    let result = async {
        let bytes = read_body(&req, body, state.max_body_bytes).await?;
        let mut event: IncomingEvent = parse_json(&bytes)?;
        let ctx = RequestContext::from(&req);
        let project = authorize(&state, &ctx, event.token.take()).await?;
        let valid = validate(event, state.limits, "")?;
        accept(&state, &ctx, &project, vec![valid]).await
    }
    .await;
    finish(&req, result, started)
}

pub async fn post_batch(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<IngestState>,
) -> Result<HttpResponse, IngestError> {
    let started = Instant::now();
    let result = async {
        let bytes = read_body(&req, body, state.max_body_bytes).await?;
        let (body_token, events) = parse_json::<IncomingBatch>(&bytes)?.into_parts();
        if events.len() > state.max_batch {
            return Err(IngestError::field("events", format!("at most {} events per batch", state.max_batch)));
        }
        let ctx = RequestContext::from(&req);
        let token = body_token.or_else(|| events.iter().find_map(|e| e.token.clone()));
        let project = authorize(&state, &ctx, token).await?;
        let valid = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| validate(e, state.limits, &format!("[{i}].")))
            .collect::<Result<Vec<_>, _>>()?;
        accept(&state, &ctx, &project, valid).await
    }
    .await;
    finish(&req, result, started)
}

pub async fn preflight(req: HttpRequest) -> HttpResponse {
    // The preflight carries no token, so it cannot know the project: it allows the method and headers, and the
    // real request is then checked against the project's domains.
    let mut response = HttpResponse::NoContent();
    if let Some(origin) = header_str(req.headers(), header::ORIGIN) {
        response
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "authorization, content-type"))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
            .insert_header((header::VARY, "Origin"));
    }
    response.finish()
}

fn finish(
    req: &HttpRequest,
    result: Result<HttpResponse, IngestError>,
    started: Instant,
) -> Result<HttpResponse, IngestError> {
    metrics::histogram!(m::REQUEST_SECONDS).record(started.elapsed().as_secs_f64());
    match result {
        Ok(mut response) => {
            if let Some(origin) = req.headers().get(header::ORIGIN).cloned() {
                response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                response.headers_mut().insert(header::VARY, header::HeaderValue::from_static("Origin"));
            }
            Ok(response)
        }
        Err(e) => {
            use actix_web::ResponseError;
            metrics::counter!(m::REJECTED, "status" => e.status_code().as_str().to_owned()).increment(1);
            Err(e)
        }
    }
}

async fn read_body(req: &HttpRequest, mut body: web::Payload, limit: usize) -> Result<web::BytesMut, IngestError> {
    let too_large = || IngestError::TooLarge { what: "the request body".into(), limit };
    let declared = header_str(req.headers(), header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut bytes = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| IngestError::BadJson(format!("could not read the body: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

async fn authorize(
    state: &IngestState,
    ctx: &RequestContext,
    body_token: Option<String>,
) -> Result<Arc<Project>, IngestError> {
    let token = ctx.header_token.clone().or(body_token).ok_or(IngestError::MissingToken)?;
    let project = state.tokens.resolve(&token).await?;
    if let Some(origin) = &ctx.origin
        && !project.allows_origin(origin)
    {
        return Err(IngestError::ForbiddenOrigin { origin: origin.chars().take(200).collect() });
    }
    Ok(project)
}

async fn accept(
    state: &IngestState,
    ctx: &RequestContext,
    project: &Project,
    events: Vec<ValidEvent>,
) -> Result<HttpResponse, IngestError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let day = crate::identity::Salts::today();
    let cookieless = state
        .salts
        .visitor_ids(day, &project.id, ctx.ip, &ctx.user_agent)
        .await
        .map_err(|e| IngestError::internal(e.context("deriving the visitor id")))?;
    let routing = routing_hash(&project.id, ctx.ip, &ctx.user_agent);
    let shard = state.queue.keys().shard_for(routing);

    let mut jobs = Vec::with_capacity(events.len());
    for event in events {
        let (visitor_today, visitor_yesterday) = match &event.anonymous_id {
            Some(anon) => {
                let id = anonymous_visitor_id(&project.id, anon);
                (id, id)
            }
            None => (cookieless.today, cookieless.yesterday),
        };
        let enriched = enrich(event, project, visitor_today, now_ms, state.max_event_age_ms);
        let json = serde_json::to_string(&enriched).map_err(|e| IngestError::internal(e.into()))?;
        jobs.push(OutgoingJob {
            kind: JobKind::EventV1,
            shard,
            project: project.id,
            visitor_today,
            visitor_yesterday,
            session_candidate: rand::rng().random_range(1..u64::MAX),
            json,
        });
    }

    match state.queue.enqueue(&jobs).await {
        Ok(filed) => {
            metrics::counter!(m::ACCEPTED).increment(filed.len() as u64);
            Ok(HttpResponse::Accepted().json(serde_json::json!({ "accepted": filed.len() })))
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

fn enrich(event: ValidEvent, project: &Project, visitor_id: u64, now_ms: i64, max_age_ms: i64) -> EventV1 {
    let page = event.url.as_ref().map(page_parts).unwrap_or_default();
    let referrer_host = event.referrer.as_ref().and_then(|r| r.host_str()).map(normalize_host).unwrap_or_default();
    let referrer_source = if referrer_host.is_empty() || referrer_host == page.host { "direct" } else { "referral" };
    let (referrer, referrer_host) = if referrer_source == "direct" {
        (String::new(), String::new())
    } else {
        (event.referrer.map(String::from).unwrap_or_default(), referrer_host)
    };
    // Client clocks drift: a time in the future becomes now, a time too far back becomes the oldest allowed.
    let ts_ms = event.ts_ms.unwrap_or(now_ms).clamp(now_ms - max_age_ms, now_ms);
    EventV1 {
        project_id: project.id,
        event_id: event_id(&project.id, event.client_id.as_deref()),
        event_type: event.event_type,
        name: event.name,
        ts_ms,
        received_ms: now_ms,
        visitor_id,
        user_id: event.user_id,
        url: event.url.map(String::from).unwrap_or_default(),
        host: page.host,
        path: page.path,
        title: event.title,
        referrer,
        referrer_host,
        referrer_source: referrer_source.to_owned(),
        utm: Utm {
            source: page.utm_source,
            medium: page.utm_medium,
            campaign: page.utm_campaign,
            term: page.utm_term,
            content: page.utm_content,
        },
        geo: Geo::default(),
        agent: Agent::default(),
        screen_width: event.screen_width,
        duration_ms: event.duration_ms,
        props: event.props,
    }
}

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
