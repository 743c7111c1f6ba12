//! The ingest endpoints: `POST /v1/event`, `POST /v1/batch` and `POST /v1/identify`.
//!
//! Order of work per request, cheapest refusal first: body size, JSON, token and origin, field checks, rate
//! limit, then the silent drops (excluded networks, prefetches, bots: 202 but not queued, counted by cause),
//! then enrichment and one round trip to Redis.

use crate::body;
use crate::bots::prefetch_reason;
use crate::classifier::{UaClassifier, UaVerdict};
use crate::client_hints::ClientHints;
use crate::client_ip::TrustedProxies;
use crate::error::IngestError;
use crate::geo::{self, GeoDb};
use crate::identity::{Salts, VisitorIds, anonymous_visitor_id};
use crate::metrics as m;
use crate::payload::{
    IncomingBatch, IncomingEvent, IncomingIdentify, Limits, Object, ValidEvent, parse_json, validate, validate_identify,
};
use crate::queue::{OutgoingJob, Queue, QueueError};
use crate::rate_limit::RateLimiter;
use crate::referrers::Referrers;
use crate::tokens::{Project, TokenStore};
use crate::url_parts::page_parts;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use rand::Rng;
use sha2::{Digest, Sha256};
use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use tidemark_shared::job::{Agent, EventJob, Geo, IdentifyV1, JobKind, Utm};
use uuid::Uuid;

pub struct IngestState {
    pub tokens: TokenStore,
    pub salts: Salts,
    pub queue: Queue,
    pub limiter: RateLimiter,
    pub agents: UaClassifier,
    pub geo: Option<GeoDb>,
    pub referrers: Referrers,
    pub proxies: TrustedProxies,
    /// Networks whose traffic is answered but not counted (the CIDR set type is shared with `proxies`).
    pub excluded: TrustedProxies,
    pub limits: Limits,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub max_event_age_ms: i64,
    pub metrics: m::Hot,
}

impl AsRef<TokenStore> for IngestState {
    fn as_ref(&self) -> &TokenStore {
        &self.tokens
    }
}

/// What the request itself tells us, apart from its body. The client IP lives only here, in memory.
struct RequestContext<'a> {
    headers: &'a HeaderMap,
    header_token: Option<&'a str>,
    origin: Option<&'a str>,
    ip: IpAddr,
    user_agent: &'a str,
}

impl<'a> RequestContext<'a> {
    fn new(req: &'a HttpRequest, proxies: &TrustedProxies) -> Self {
        let headers = req.headers();
        let header_token = header_str(headers, header::AUTHORIZATION)
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let peer = req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let user_agent = header_str(headers, header::USER_AGENT).unwrap_or("");
        Self {
            headers,
            header_token,
            origin: header_str(headers, header::ORIGIN),
            ip: proxies.client_ip(peer, headers),
            user_agent: truncate_bytes(user_agent, 512),
        }
    }
}

fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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
        let bytes = body::read(req.headers(), body, state.max_body_bytes).await?;
        let Object(mut event) = parse_json::<Object<IncomingEvent>>(&bytes)?;
        let ctx = RequestContext::new(&req, &state.proxies);
        let project = authorize(&state, &ctx, event.token.take()).await?;
        let valid = validate(event, state.limits, "")?;
        accept_events(&state, &ctx, &project, vec![valid]).await
    }
    .await;
    finish(&state, &req, result, started)
}

pub async fn post_batch(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<IngestState>,
) -> Result<HttpResponse, IngestError> {
    let started = Instant::now();
    let result = async {
        let bytes = body::read(req.headers(), body, state.max_body_bytes).await?;
        let IncomingBatch { token: body_token, events, at } = parse_json(&bytes)?;
        if events.len() > state.max_batch {
            return Err(IngestError::field("events", format!("at most {} events per batch", state.max_batch)));
        }
        let ctx = RequestContext::new(&req, &state.proxies);
        let token = body_token.or_else(|| events.iter().find_map(|e| e.token.clone()));
        let project = authorize(&state, &ctx, token).await?;
        let valid = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| validate(e, state.limits, &format!("{at}[{i}].")))
            .collect::<Result<Vec<_>, _>>()?;
        accept_events(&state, &ctx, &project, valid).await
    }
    .await;
    finish(&state, &req, result, started)
}

pub async fn post_identify(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<IngestState>,
) -> Result<HttpResponse, IngestError> {
    let started = Instant::now();
    let result = async {
        let bytes = body::read(req.headers(), body, state.max_body_bytes).await?;
        let Object(mut identify) = parse_json::<Object<IncomingIdentify>>(&bytes)?;
        let ctx = RequestContext::new(&req, &state.proxies);
        let project = authorize(&state, &ctx, identify.token.take()).await?;
        let valid = validate_identify(identify, state.limits)?;
        state.limiter.take(&project.id, 1).map_err(|retry_after_secs| IngestError::RateLimited { retry_after_secs })?;
        let verdict = state.agents.classify(ctx.user_agent, &ClientHints::from_headers(ctx.headers));
        if dropped(&state, &ctx, &verdict, 1).is_some() {
            return Ok(accepted(1));
        }
        // One clock reading per request: the visitor id's day and the job's time agree, even at midnight.
        let now = chrono::Utc::now();
        let (visitor_today, visitor_yesterday) =
            visitor_ids(&state, &ctx, &project, valid.anonymous_id.as_deref(), now).await?;
        let job = IdentifyV1 {
            project_id: project.id,
            visitor_id: visitor_today,
            user_id: valid.user_id.clone(),
            ts_ms: now.timestamp_millis(),
            traits: valid.traits,
        };
        let payload = serde_json::to_vec(&job).map_err(|e| IngestError::internal(e.into()))?;
        let outgoing = OutgoingJob {
            kind: JobKind::IdentifyV1,
            shard: shard(&state, &ctx, &project),
            project: project.id,
            visitor_today,
            visitor_yesterday,
            session_candidate: new_session_id(),
            payload,
            link_user: Some(valid.user_id),
        };
        enqueue(&state, vec![outgoing]).await
    }
    .await;
    finish(&state, &req, result, started)
}

pub async fn preflight(req: HttpRequest) -> HttpResponse {
    // The preflight carries no token, so it cannot know the project: it allows the method and headers, and the
    // real request is then checked against the project's domains.
    let mut response = HttpResponse::NoContent();
    if let Some(origin) = header_str(req.headers(), header::ORIGIN) {
        response
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "authorization, content-type, content-encoding"))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
            .insert_header((header::VARY, "Origin"));
    }
    response.finish()
}

fn finish(
    state: &IngestState,
    req: &HttpRequest,
    result: Result<HttpResponse, IngestError>,
    started: Instant,
) -> Result<HttpResponse, IngestError> {
    state.metrics.request_seconds.record(started.elapsed().as_secs_f64());
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

async fn authorize(
    state: &IngestState,
    ctx: &RequestContext<'_>,
    body_token: Option<String>,
) -> Result<Arc<Project>, IngestError> {
    let token = ctx.header_token.or(body_token.as_deref()).ok_or(IngestError::MissingToken)?;
    let project = state.tokens.resolve(token).await?;
    if let Some(origin) = ctx.origin
        && !project.allows_origin(origin)
    {
        return Err(IngestError::ForbiddenOrigin { origin: origin.chars().take(200).collect() });
    }
    Ok(project)
}

/// Traffic answered 202 but not queued: the cause, counted in metrics. Bots also carry their reason.
fn dropped(state: &IngestState, ctx: &RequestContext<'_>, verdict: &UaVerdict, events: usize) -> Option<&'static str> {
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

fn accepted(n: usize) -> HttpResponse {
    // Written out rather than built as a JSON value: this is every ingest request's answer, and most accept one.
    let mut response = HttpResponse::Accepted();
    response.content_type(header::ContentType::json());
    if n == 1 { response.body(r#"{"accepted":1}"#) } else { response.body(format!("{{\"accepted\":{n}}}")) }
}

async fn accept_events(
    state: &IngestState,
    ctx: &RequestContext<'_>,
    project: &Project,
    events: Vec<ValidEvent>,
) -> Result<HttpResponse, IngestError> {
    state
        .limiter
        .take(&project.id, events.len() as u32)
        .map_err(|retry_after_secs| IngestError::RateLimited { retry_after_secs })?;
    if events.is_empty() {
        return Ok(accepted(0));
    }
    // Dropped traffic gets the same answer as counted traffic, so a bot learns nothing from it.
    let verdict = state.agents.classify(ctx.user_agent, &ClientHints::from_headers(ctx.headers));
    if dropped(state, ctx, &verdict, events.len()).is_some() {
        return Ok(accepted(events.len()));
    }

    // One clock reading per request: the visitor id's day and the events' times agree, even at midnight.
    let now = chrono::Utc::now();
    let now_ms = now.timestamp_millis();
    let agent = verdict.agent;
    let geo = state.geo.as_ref().map_or_else(geo::unknown_place, |g| g.lookup(ctx.ip));
    let cookieless = cookieless_ids(state, ctx, project, now).await?;
    let shard = shard(state, ctx, project);

    let mut jobs = Vec::with_capacity(events.len());
    for event in events {
        let (visitor_today, visitor_yesterday) = match &event.anonymous_id {
            Some(anon) => (anonymous_visitor_id(&project.id, anon), None),
            None => (cookieless.today, cookieless.yesterday),
        };
        let enriched = enrich(state, event, project, visitor_today, now_ms, &agent, &geo);
        jobs.push(OutgoingJob {
            kind: JobKind::EventV2,
            shard,
            project: project.id,
            visitor_today,
            visitor_yesterday,
            session_candidate: new_session_id(),
            payload: enriched.to_v2(),
            link_user: None,
        });
    }
    enqueue(state, jobs).await
}

async fn visitor_ids(
    state: &IngestState,
    ctx: &RequestContext<'_>,
    project: &Project,
    anonymous_id: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(u64, Option<u64>), IngestError> {
    if let Some(anon) = anonymous_id {
        return Ok((anonymous_visitor_id(&project.id, anon), None));
    }
    let VisitorIds { today, yesterday } = cookieless_ids(state, ctx, project, now).await?;
    Ok((today, yesterday))
}

async fn cookieless_ids(
    state: &IngestState,
    ctx: &RequestContext<'_>,
    project: &Project,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<VisitorIds, IngestError> {
    state
        .salts
        .visitor_ids(now, &project.id, ctx.ip, ctx.user_agent)
        .await
        .map_err(|e| IngestError::internal(e.context("deriving the visitor id")))
}

async fn enqueue(state: &IngestState, jobs: Vec<OutgoingJob>) -> Result<HttpResponse, IngestError> {
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

fn enrich(
    state: &IngestState,
    event: ValidEvent,
    project: &Project,
    visitor_id: u64,
    now_ms: i64,
    agent: &Arc<Agent>,
    geo: &Arc<Geo>,
) -> EventJob {
    let page = event.url.as_ref().map(page_parts).unwrap_or_default();
    let source =
        state.referrers.classify(event.url.as_ref(), event.referrer.as_ref(), &page.utm_source, &page.utm_medium);
    // A self-referral is not a referrer at all: keep neither the URL nor the host.
    let referrer =
        if source.host.is_empty() { String::new() } else { event.referrer.map(String::from).unwrap_or_default() };
    // Client clocks drift: a time in the future becomes now, a time too far back becomes the oldest allowed.
    let ts_ms = event.ts_ms.unwrap_or(now_ms).clamp(now_ms - state.max_event_age_ms, now_ms);
    EventJob {
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
        referrer_host: source.host,
        referrer_source: source.source_type.as_str().to_owned(),
        utm: Utm {
            source: page.utm_source,
            medium: page.utm_medium,
            campaign: page.utm_campaign,
            term: page.utm_term,
            content: page.utm_content,
        },
        geo: geo.clone(),
        agent: agent.clone(),
        screen_width: event.screen_width,
        duration_ms: event.duration_ms,
        props: event.props,
    }
}

fn new_session_id() -> u64 {
    rand::rng().random_range(1..u64::MAX)
}

fn shard(state: &IngestState, ctx: &RequestContext<'_>, project: &Project) -> u16 {
    state.queue.keys().shard_for(routing_hash(&project.id, ctx.ip, ctx.user_agent))
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

    #[test]
    fn long_agents_are_cut_on_a_char_boundary() {
        let ua = "é".repeat(300);
        assert!(truncate_bytes(&ua, 512).len() <= 512);
        assert_eq!(truncate_bytes("short", 512), "short");
    }
}
