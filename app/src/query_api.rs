//! `POST /api/v2/query`: Plausible's Stats API v2 over HTTP, a thin layer over [`crate::query::run`].
//!
//! The caller is a secret key (`Authorization: Bearer`) or a signed-in browser (cookie plus `X-CSRF-Token`, since
//! this is a POST). `site_id` is a project id or one of its domains; a project the caller may not read is answered
//! exactly like one that does not exist (404), so nobody learns which sites exist. Bad queries are 400 with
//! Plausible's `{"error": ...}`; ClickHouse down is 503. `Accept: text/csv` or `?format=csv` answers the rows as CSV.

use actix_web::http::StatusCode;
use actix_web::http::header::{ACCEPT, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono_tz::Tz;

use crate::analytics_store::AnalyticsStore;
use crate::api_error::ApiError;
use crate::auth::caller::{AccessState, Caller};
use crate::openapi::schemas as doc;
use crate::query::{self, ProjectContext, QueryError, RunError};

/// Plausible's words for a site that does not exist or that the key may not read (Plausible answers 401; a wrong
/// key is already a 401 here, so this one is a 404).
pub const UNKNOWN_SITE: &str = "Invalid API key or site ID. Please make sure you're using a valid API key with access to the site you've requested.";

/// Plausible's words when the body names no site.
pub const MISSING_SITE: &str = "Missing site ID. Please provide the required site_id parameter with your request.";

/// Request bodies larger than this are refused: a query is a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v2/query").app_data(web::PayloadConfig::new(MAX_BODY)).route(web::post().to(query_route)),
    );
}

crate::openapi::api_routes! {
    mounted_by_configure;
    post "/api/v2/query" => query_route,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryApiError {
    #[error("{0}")]
    Invalid(String),
    #[error("{UNKNOWN_SITE}")]
    UnknownSite,
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<QueryError> for QueryApiError {
    fn from(e: QueryError) -> Self {
        QueryApiError::Invalid(e.message)
    }
}

impl From<RunError> for QueryApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Invalid(e) => e.into(),
            RunError::Unavailable(why) => QueryApiError::Unavailable(why),
            RunError::Failed(e) => e.into(),
        }
    }
}

impl From<anyhow::Error> for QueryApiError {
    fn from(e: anyhow::Error) -> Self {
        QueryApiError::Api(ApiError::Internal(e))
    }
}

impl ResponseError for QueryApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            QueryApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            QueryApiError::UnknownSite => StatusCode::NOT_FOUND,
            QueryApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            QueryApiError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            QueryApiError::Api(e) => e.error_response(),
            QueryApiError::Unavailable(why) => {
                tracing::warn!(error = why.as_str(), "ClickHouse is unavailable for a query.");
                HttpResponse::ServiceUnavailable()
                    .insert_header((RETRY_AFTER, "5"))
                    .json(serde_json::json!({ "error": "The analytics store is unavailable; try again shortly." }))
            }
            other => HttpResponse::build(other.status_code()).json(serde_json::json!({ "error": other.to_string() })),
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v2/query",
    tag = "stats",
    summary = "Plausible Stats API v2 query (docs/API-v2.md)",
    params(("format" = Option<String>, Query, description = "`csv` answers the rows as CSV")),
    request_body = doc::QueryRequest,
    responses(
        (status = 200, description = "The rows (as CSV with `Accept: text/csv` or `?format=csv`)", content((doc::QueryAnswer = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Invalid query or missing site_id: Plausible's `{\"error\": ...}`", body = doc::ErrorBody),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "A missing X-CSRF-Token", body = doc::ErrorBody),
        (status = 404, description = "Unknown site, or one the caller may not read", body = doc::ErrorBody),
        (status = 503, description = "ClickHouse unavailable; see Retry-After", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
async fn query_route(
    req: HttpRequest,
    caller: Caller,
    access: web::Data<AccessState>,
    store: web::Data<AnalyticsStore>,
    body: web::Bytes,
) -> Result<HttpResponse, QueryApiError> {
    // The site is checked before the rest of the query, as Plausible's API does: a caller who may not read the
    // site learns nothing from how its query would have been judged.
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| QueryError::new(format!("#: Invalid JSON in the request body: {e}")))?;
    if let Some(site_id) = value.get("site_id").and_then(|s| s.as_str()) {
        let project = readable_site(&access, &caller, site_id).await?;
        let parsed = query::parse_value(&value)?;
        let (context, goals) = engine_context(&access, &project, site_id).await?;
        let ch = store.get().await.map_err(|e| QueryApiError::Unavailable(format!("{e:#}")))?;
        let answer = query::run(ch, &context, &goals, &parsed, chrono::Utc::now()).await?;
        if wants_csv(&req) {
            return Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(answer.to_csv(&parsed)));
        }
        return Ok(HttpResponse::Ok().json(answer));
    }
    if value.is_object() && value.get("site_id").is_none() {
        return Err(QueryApiError::Invalid(MISSING_SITE.to_owned()));
    }
    // A site_id that is not text, or a body that is not an object: the parser names what is wrong.
    query::parse_value(&value)?;
    Err(QueryApiError::UnknownSite)
}

/// The project behind `site_id` if the caller may read it; an unknown site and an unreadable one get the same
/// answer (Plausible's words, 404 here). Shared by every route that takes a Stats API body.
pub async fn readable_site(
    access: &AccessState,
    caller: &Caller,
    site_id: &str,
) -> Result<crate::site::Project, QueryApiError> {
    match crate::site::resolve(&access.pool, &caller.principal, site_id).await {
        Ok(project) => Ok(project),
        Err(ApiError::NotFound | ApiError::Forbidden) => Err(QueryApiError::UnknownSite),
        Err(ApiError::BadInput { .. }) => Err(QueryApiError::Invalid(MISSING_SITE.to_owned())),
        Err(other) => Err(other.into()),
    }
}

/// What the engines need of a readable project: its time zone, the site id their answers echo (the domain asked
/// for, else the project's first, as Plausible echoes it), and its goals.
pub async fn engine_context(
    access: &AccessState,
    project: &crate::site::Project,
    site_id: &str,
) -> Result<(ProjectContext, Vec<crate::goals::Goal>), QueryApiError> {
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
    Ok((context, goals))
}

fn wants_csv(req: &HttpRequest) -> bool {
    let by_accept = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|part| part.trim().starts_with("text/csv")));
    let by_query = url::form_urlencoded::parse(req.query_string().as_bytes()).any(|(k, v)| k == "format" && v == "csv");
    by_accept || by_query
}
