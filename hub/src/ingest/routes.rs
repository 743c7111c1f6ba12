//! The handlers: each reads and parses its body, then walks the steps of [`super`] in order.

use super::IngestState;
use super::authorize::{authorize, authorize_header};
use super::context::RequestContext;
use super::drop_policy::dropped;
use super::enrich::{event_jobs, identify_job};
use super::respond::{accepted, enqueue, finish};
use crate::body;
use crate::client_hints::ClientHints;
use crate::error::IngestError;
use crate::payload::{
    IncomingBatch, IncomingEvent, IncomingIdentify, Object, ValidEvent, parse_json, validate, validate_identify,
};
use crate::tokens::Project;
use actix_web::{HttpRequest, HttpResponse, web};
use std::time::Instant;

pub async fn post_event(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<IngestState>,
) -> Result<HttpResponse, IngestError> {
    let started = Instant::now();
    let result = async {
        let ctx = RequestContext::new(&req, &state.proxies);
        let by_header = authorize_header(&state, &ctx).await?;
        let bytes = body::read(req.headers(), body, state.max_body_bytes).await?;
        let Object(mut event) = parse_json::<Object<IncomingEvent>>(&bytes)?;
        let project = authorize(&state, &ctx, by_header, event.token.take()).await?;
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
        let ctx = RequestContext::new(&req, &state.proxies);
        let by_header = authorize_header(&state, &ctx).await?;
        let bytes = body::read(req.headers(), body, state.max_body_bytes).await?;
        let IncomingBatch { token: body_token, events, at } = parse_json(&bytes)?;
        if events.len() > state.max_batch {
            return Err(IngestError::field("events", format!("at most {} events per batch", state.max_batch)));
        }
        let token = body_token.or_else(|| events.iter().find_map(|e| e.token.clone()));
        let project = authorize(&state, &ctx, by_header, token).await?;
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
        let ctx = RequestContext::new(&req, &state.proxies);
        let by_header = authorize_header(&state, &ctx).await?;
        let bytes = body::read(req.headers(), body, state.max_body_bytes).await?;
        let Object(mut identify) = parse_json::<Object<IncomingIdentify>>(&bytes)?;
        let project = authorize(&state, &ctx, by_header, identify.token.take()).await?;
        let valid = validate_identify(identify, state.limits)?;
        state.limiter.take(&project.id, 1).map_err(|retry_after_secs| IngestError::RateLimited { retry_after_secs })?;
        let verdict = state.agents.classify(ctx.user_agent, &ClientHints::from_headers(ctx.headers));
        if dropped(&state, &ctx, &verdict, 1).is_some() {
            return Ok(accepted(1));
        }
        let job = identify_job(&state, &ctx, &project, valid).await?;
        enqueue(&state, vec![job]).await
    }
    .await;
    finish(&state, &req, result, started)
}

/// The steps after validation that `/v1/event` and `/v1/batch` share.
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
    let verdict = state.agents.classify(ctx.user_agent, &ClientHints::from_headers(ctx.headers));
    if dropped(state, ctx, &verdict, events.len()).is_some() {
        return Ok(accepted(events.len()));
    }
    let jobs = event_jobs(state, ctx, project, events, verdict.agent).await?;
    enqueue(state, jobs).await
}
