//! `POST /api/v2/funnel`: Tidemark's funnels over HTTP, a thin layer over [`crate::funnel::run`]. Callers, site
//! resolution and the error answers are the query route's ([`crate::query_api`]): a key or a signed-in browser
//! (cookie plus `X-CSRF-Token`), an unknown or unreadable site 404, bad input 400 naming the part, ClickHouse
//! down 503.

use actix_web::{HttpResponse, web};

use crate::analytics_store::AnalyticsStore;
use crate::auth::caller::{AccessState, Caller};
use crate::funnel;
use crate::query::QueryError;
use crate::query_api::{MISSING_SITE, QueryApiError, engine_context, readable_site};

/// A funnel is a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

crate::openapi::api_routes! {
    mounted_by_configure;
    post "/api/v2/funnel" => funnel_route,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v2/funnel").app_data(web::PayloadConfig::new(MAX_BODY)).route(web::post().to(funnel_route)),
    );
}

#[utoipa::path(
    post,
    path = "/api/v2/funnel",
    tag = "stats",
    summary = "Funnel: visitors reaching each of 2 to 8 ordered steps within a window (docs/API-v2.md#funnels-tidemarks-extension-not-plausibles)",
    request_body = doc::FunnelRequest,
    responses(
        (status = 200, description = "Visitors, conversion and drop-off per step", body = doc::FunnelAnswer),
        (status = 400, description = "Invalid funnel or missing site_id, naming the part (`#/steps/1/page: ...`)", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not signed in and no valid key", body = crate::openapi::ErrorBody),
        (status = 403, description = "A missing X-CSRF-Token", body = crate::openapi::ErrorBody),
        (status = 404, description = "Unknown site, or one the caller may not read", body = crate::openapi::ErrorBody),
        (status = 503, description = "ClickHouse unavailable; see Retry-After", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
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
    let project = readable_site(&access, &caller, site_id).await?;
    let parsed = funnel::request::from_value(&value)?;
    let (context, goals) = engine_context(&access, &project, site_id).await?;
    let ch = store.get().await.map_err(|e| QueryApiError::Unavailable(format!("{e:#}")))?;
    let answer = funnel::run(ch, &context, &goals, &parsed, chrono::Utc::now()).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Documentation-only shapes of the funnel's body and answer (the handler reads and writes JSON values; the
/// parser in [`crate::funnel::request`] is the authority on what is valid).
mod doc {
    #![allow(dead_code)]
    use utoipa::ToSchema;

    /// One step: exactly one of `page` (a path pattern, `*` within a segment, `**` across), `event` (a custom
    /// event name) or `goal` (a goal's display name).
    #[derive(ToSchema)]
    pub struct FunnelStep {
        pub page: Option<String>,
        pub event: Option<String>,
        pub goal: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct FunnelRequest {
        /// The project id or one of its domains.
        pub site_id: String,
        /// The query API's forms: `7d`, `30d`, `month`, `["2024-01-01", "2024-01-31"]`, ...
        #[schema(value_type = Object)]
        pub date_range: serde_json::Value,
        /// The query API's filters (optional).
        #[schema(value_type = Option<Vec<Object>>)]
        pub filters: Option<serde_json::Value>,
        /// 2 to 8 steps, in order.
        pub steps: Vec<FunnelStep>,
        /// Seconds from the first step (1 to 86400, default 1800), or `"session"` (within one visit).
        #[schema(value_type = Option<Object>)]
        pub window: Option<serde_json::Value>,
    }

    #[derive(ToSchema)]
    pub struct FunnelStepAnswer {
        pub label: String,
        pub visitors: u64,
        /// Percent of the first step's visitors.
        pub conversion_rate: f64,
        /// Percent of the previous step's visitors.
        pub conversion_rate_step: f64,
        pub dropoff: u64,
        pub dropoff_rate: f64,
    }

    #[derive(ToSchema)]
    pub struct FunnelAnswer {
        pub steps: Vec<FunnelStepAnswer>,
        /// `entered` and `completed` visitors.
        #[schema(value_type = Object)]
        pub meta: serde_json::Value,
        /// The funnel as understood: resolved date range, filters, steps, window.
        #[schema(value_type = Object)]
        pub query: serde_json::Value,
    }
}
