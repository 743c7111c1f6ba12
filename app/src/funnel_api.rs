//! `POST /api/v2/funnel`: Tidemark's funnels over HTTP, a thin layer over [`crate::funnel::run`]. Callers, site
//! resolution and the error answers are the query route's ([`crate::query_api`]): a key or a signed-in browser
//! (cookie plus `X-CSRF-Token`), an unknown or unreadable site 404, bad input 400 naming the part, ClickHouse
//! down 503.

use actix_web::{HttpResponse, web};
use chrono_tz::Tz;

use crate::analytics_store::AnalyticsStore;
use crate::api_error::ApiError;
use crate::auth::caller::{AccessState, Caller};
use crate::funnel;
use crate::query::{ProjectContext, QueryError, RunError};
use crate::query_api::{MISSING_SITE, QueryApiError};

/// A funnel is a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v2/funnel").app_data(web::PayloadConfig::new(MAX_BODY)).route(web::post().to(funnel_route)),
    );
}

async fn funnel_route(
    caller: Caller,
    access: web::Data<AccessState>,
    store: web::Data<AnalyticsStore>,
    body: web::Bytes,
) -> Result<HttpResponse, QueryApiError> {
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| QueryError::new(format!("#: Invalid JSON in the request body: {e}")))?;
    // The site first, as the query route does: a caller who may not read it learns nothing from the rest.
    let Some(site_id) = value.get("site_id").and_then(|s| s.as_str()) else {
        if value.is_object() && value.get("site_id").is_none() {
            return Err(QueryApiError::Invalid(MISSING_SITE.to_owned()));
        }
        funnel::request::from_value(&value)?;
        return Err(QueryApiError::UnknownSite);
    };
    let project = match crate::site::resolve(&access.pool, &caller.principal, site_id).await {
        Ok(project) => project,
        Err(ApiError::NotFound | ApiError::Forbidden) => return Err(QueryApiError::UnknownSite),
        Err(ApiError::BadInput { .. }) => return Err(QueryApiError::Invalid(MISSING_SITE.to_owned())),
        Err(other) => return Err(other.into()),
    };
    let parsed = funnel::request::from_value(&value)?;
    let timezone: Tz = project
        .timezone
        .parse()
        .map_err(|e| anyhow::anyhow!("project {} has time zone {:?}: {e}", project.id, project.timezone))?;
    let asked = crate::projects::normalize_domain(site_id).ok().filter(|d| project.domains.contains(d));
    let context = ProjectContext {
        id: project.id,
        site_id: asked.or_else(|| project.domains.first().cloned()).unwrap_or_else(|| project.id.to_string()),
        timezone,
    };
    let goals = crate::goals::store::list(&access.pool, project.id).await?;
    let ch = store.get().await.map_err(|e| QueryApiError::Unavailable(format!("{e:#}")))?;
    match funnel::run(ch, &context, &goals, &parsed, chrono::Utc::now()).await {
        Ok(answer) => Ok(HttpResponse::Ok().json(answer)),
        Err(RunError::Invalid(e)) => Err(e.into()),
        Err(RunError::Unavailable(why)) => Err(QueryApiError::Unavailable(why)),
        Err(RunError::Failed(e)) => Err(e.into()),
    }
}
