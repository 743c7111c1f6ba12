//! From a valid event to a queued job: the visitor id, the page's parts, the referrer, UTM tags, geo and agent.
//! One clock reading per request: the visitor id's day and the jobs' times agree, even at midnight.

use super::IngestState;
use super::context::RequestContext;
use super::ids::{event_id, new_session_id, shard};
use crate::error::IngestError;
use crate::geo;
use crate::identity::{VisitorIds, anonymous_visitor_id};
use crate::payload::{ValidEvent, ValidIdentify};
use crate::queue::OutgoingJob;
use crate::referrers::Source;
use crate::tokens::Project;
use crate::url_parts::{QueryAllowList, page_parts};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tidemark_shared::job::{Agent, EventJob, Geo, IdentifyV1, JobKind, Utm, VisitorKind};
use url::Url;

/// One `event.v3` job per event, all of one request: they share the visitor (unless an event names its anonymous
/// id), the place, the agent and the shard.
pub(super) async fn event_jobs(
    state: &IngestState,
    ctx: &RequestContext<'_>,
    project: &Project,
    events: Vec<ValidEvent>,
    agent: Arc<Agent>,
) -> Result<Vec<OutgoingJob>, IngestError> {
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    let geo = state.geo.as_ref().map_or_else(geo::unknown_place, |g| g.lookup(ctx.ip));
    let cookieless = cookieless_ids(state, ctx, project, now).await?;
    let shard = shard(state, ctx, project);

    let oldest_ms = now_ms - state.max_event_age_ms;
    // A cookieless visitor id belongs to the UTC day of the salt that made it: its events are dated within that
    // day, so a late batch sent after midnight cannot count its visitor again on the day before.
    let day_start_ms = now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc().timestamp_millis();
    let mut jobs = Vec::with_capacity(events.len());
    for event in events {
        let (visitor_today, visitor_yesterday, visitor_kind, earliest_ms) = match &event.anonymous_id {
            Some(anon) => (anonymous_visitor_id(&project.id, anon), None, VisitorKind::Anonymous, oldest_ms),
            None => (cookieless.today, cookieless.yesterday, VisitorKind::Daily, oldest_ms.max(day_start_ms)),
        };
        let opens_session = event.event_type.opens_session();
        let times = EventTimes { earliest_ms, now_ms };
        let mut enriched = enrich(state, event, project, visitor_today, times, &agent, &geo);
        // Only this loop knows which id the visitor has: the workers' devices and users need to know how long it lives.
        enriched.visitor_kind = visitor_kind;
        jobs.push(OutgoingJob {
            kind: JobKind::EventV3,
            shard,
            project: project.id,
            visitor_today,
            visitor_yesterday,
            session_candidate: opens_session.then(new_session_id),
            payload: enriched.to_v3(),
            link_user: None,
        });
    }
    Ok(jobs)
}

/// The `identify.v1` job that links the visitor's session to a user.
pub(super) async fn identify_job(
    state: &IngestState,
    ctx: &RequestContext<'_>,
    project: &Project,
    valid: ValidIdentify,
) -> Result<OutgoingJob, IngestError> {
    let now = Utc::now();
    let (visitor_today, visitor_yesterday) =
        visitor_ids(state, ctx, project, valid.anonymous_id.as_deref(), now).await?;
    let job = IdentifyV1 {
        project_id: project.id,
        visitor_id: visitor_today,
        user_id: valid.user_id.clone(),
        ts_ms: now.timestamp_millis(),
        traits: valid.traits,
    };
    let payload = serde_json::to_vec(&job).map_err(|e| IngestError::internal(e.into()))?;
    Ok(OutgoingJob {
        kind: JobKind::IdentifyV1,
        shard: shard(state, ctx, project),
        project: project.id,
        visitor_today,
        visitor_yesterday,
        // Linking a user never opens a session: it joins the visitor's live one, if any.
        session_candidate: None,
        payload,
        link_user: Some(valid.user_id),
    })
}

async fn visitor_ids(
    state: &IngestState,
    ctx: &RequestContext<'_>,
    project: &Project,
    anonymous_id: Option<&str>,
    now: DateTime<Utc>,
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
    now: DateTime<Utc>,
) -> Result<VisitorIds, IngestError> {
    state.salts.visitor_ids(now, &project.id, ctx.ip, ctx.user_agent).await.map_err(IngestError::from)
}

fn enrich(
    state: &IngestState,
    event: ValidEvent,
    project: &Project,
    visitor_id: u64,
    times: EventTimes,
    agent: &Arc<Agent>,
    geo: &Arc<Geo>,
) -> EventJob {
    let page = event.url.as_ref().map(page_parts).unwrap_or_default();
    let source =
        state.referrers.classify(event.url.as_ref(), event.referrer.as_ref(), &page.utm_source, &page.utm_medium);
    let event_id = event_id(&project.id, visitor_id, &event);
    let referrer = kept_referrer(event.referrer, &source, &state.query_allowlist);
    EventJob {
        project_id: project.id,
        event_id,
        event_type: event.event_type,
        name: event.name,
        ts_ms: times.event_time(event.ts_ms),
        received_ms: times.now_ms,
        visitor_id,
        visitor_kind: VisitorKind::Daily,
        user_id: event.user_id,
        url: event.url.map(|u| state.query_allowlist.stored(u)).unwrap_or_default(),
        host: page.host,
        path: page.path,
        title: event.title,
        referrer,
        referrer_host: source.host,
        referrer_source: source.source_type.as_str().to_owned(),
        referrer_name: source.name,
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

/// The referrer URL as stored, its query cut like the page's (a search engine's referrer carries the search). A
/// self-referral is not a referrer at all: keep neither the URL nor the host.
fn kept_referrer(referrer: Option<Url>, source: &Source, allow: &QueryAllowList) -> String {
    match referrer {
        Some(url) if !source.host.is_empty() => allow.stored(url),
        _ => String::new(),
    }
}

/// The window an event's own time must fall in.
#[derive(Debug, Clone, Copy)]
struct EventTimes {
    earliest_ms: i64,
    now_ms: i64,
}

impl EventTimes {
    /// Client clocks drift: a time in the future becomes now, a time too far back becomes the earliest allowed.
    fn event_time(self, client_ts_ms: Option<i64>) -> i64 {
        client_ts_ms.unwrap_or(self.now_ms).clamp(self.earliest_ms, self.now_ms)
    }
}
