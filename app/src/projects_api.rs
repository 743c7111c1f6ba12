//! Projects over HTTP: list, create, settings (name, allowed domains, IANA time zone), the ingest token (read,
//! rotate) and deletion. Every endpoint on one project goes through `roles::authorize`.

use crate::analytics_store::AnalyticsStore;
use crate::api_error::ApiError;
use crate::auth::caller::{AccessState, Caller};
use crate::auth::roles::{self, Action, Principal, Role};
use crate::control::Control;
use crate::openapi::schemas as doc;
use crate::{projects, purge};
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use uuid::Uuid;

pub fn routes(cfg: &mut web::ServiceConfig) {
    register(cfg);
}

crate::openapi::api_routes! {
    get "/api/v1/projects" => list,
    post "/api/v1/projects" => create,
    get "/api/v1/projects/{id}" => get,
    patch "/api/v1/projects/{id}" => update,
    delete "/api/v1/projects/{id}" => delete,
    get "/api/v1/projects/{id}/token" => token,
    post "/api/v1/projects/{id}/token" => rotate_token,
}

pub(crate) async fn allow(state: &AccessState, caller: &Caller, project: Uuid, action: Action) -> Result<(), ApiError> {
    roles::authorize(&state.pool, &caller.principal, project, action).await?.map_err(ApiError::from)
}

fn bad(field: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::BadInput { field: field.into(), problem: problem.to_string() }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let len = name.trim().len();
    if len == 0 || len > 200 {
        return Err(bad("name", "must be 1 to 200 characters"));
    }
    Ok(())
}

async fn check_timezone(state: &AccessState, raw: &str) -> Result<String, ApiError> {
    projects::known_timezone(&state.pool, raw).await.map_err(|e| bad("timezone", e))
}

/// The projects the caller may see: an account's memberships (every project for an instance admin) with its role,
/// or a key's own project with the key's scope.
#[utoipa::path(
    get,
    path = "/api/v1/projects",
    operation_id = "project_list",
    tag = "projects",
    summary = "The projects the caller may see",
    responses(
        (status = 200, description = "OK", body = Vec<doc::ListedProject>),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn list(state: web::Data<AccessState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let listed = match caller.principal {
        Principal::Account { id, is_admin } => projects::list_for_account(&state.pool, id, is_admin).await?,
        Principal::Key { project, scope, .. } => projects::get(&state.pool, project)
            .await?
            .map(|settings| projects::Listed { settings, role: None, scope: Some(scope) })
            .into_iter()
            .collect(),
    };
    Ok(HttpResponse::Ok().json(listed))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewProject {
    name: String,
    #[serde(default)]
    domains: Vec<String>,
    timezone: Option<String>,
}

/// Any signed-in account may create a project and becomes its owner, as on Plausible (any user adds sites) and
/// Umami (any non-view-only user adds websites): accounts exist only because an instance admin made them, so
/// this opens nothing to strangers. Keys belong to one project and cannot create others.
#[utoipa::path(
    post,
    path = "/api/v1/projects",
    operation_id = "project_create",
    tag = "projects",
    summary = "Create a project (accounts; the creator becomes its owner)",
    request_body = NewProject,
    responses(
        (status = 201, description = "Created; `Location` names it", body = doc::CreatedProject),
        (status = 400, description = "Bad input, naming the field", body = doc::BadInputBody),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Keys cannot create projects (or a missing X-CSRF-Token)", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
async fn create(
    state: web::Data<AccessState>,
    caller: Caller,
    body: web::Json<NewProject>,
) -> Result<HttpResponse, ApiError> {
    let Principal::Account { id: account, .. } = caller.principal else {
        return Err(ApiError::Forbidden);
    };
    check_name(&body.name)?;
    let domains = projects::normalize_domains(&body.domains).map_err(|e| bad("domains", e))?;
    let timezone = check_timezone(&state, body.timezone.as_deref().unwrap_or("UTC")).await?;
    let created = projects::create_owned(&state.pool, &body.name, &domains, &timezone, Some(account)).await?;
    Ok(HttpResponse::Created().insert_header(("Location", format!("/api/v1/projects/{}", created.id))).json(
        serde_json::json!({
            "id": created.id,
            "name": created.name,
            "domains": created.domains,
            "timezone": created.timezone,
            "token": created.token,
            "role": Role::Owner,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}",
    operation_id = "project_get",
    tag = "projects",
    summary = "A project's settings",
    params(("id" = Uuid, Path, description = "Project id")),
    responses(
        (status = 200, description = "OK", body = doc::ProjectSettings),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project (or not visible to the caller)", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn get(state: web::Data<AccessState>, caller: Caller, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let project = path.into_inner();
    allow(&state, &caller, project, Action::Read).await?;
    let settings = projects::get(&state.pool, project).await?.ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(settings))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    name: Option<String>,
    /// Replaces the list; `[]` allows every origin.
    domains: Option<Vec<String>>,
    timezone: Option<String>,
}

#[utoipa::path(
    patch,
    path = "/api/v1/projects/{id}",
    operation_id = "project_update",
    tag = "projects",
    summary = "Change a project's name, domains or time zone",
    params(("id" = Uuid, Path, description = "Project id")),
    request_body = SettingsChange,
    responses(
        (status = 200, description = "OK", body = doc::ProjectSettings),
        (status = 400, description = "Bad input, naming the field", body = doc::BadInputBody),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project (or not visible to the caller)", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
async fn update(
    state: web::Data<AccessState>,
    control: web::Data<Control>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: web::Json<SettingsChange>,
) -> Result<HttpResponse, ApiError> {
    let project = path.into_inner();
    allow(&state, &caller, project, Action::EditSettings).await?;
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    let domains = match &body.domains {
        Some(raw) => Some(projects::normalize_domains(raw).map_err(|e| bad("domains", e))?),
        None => None,
    };
    let timezone = match &body.timezone {
        Some(raw) => Some(check_timezone(&state, raw).await?),
        None => None,
    };
    let change =
        projects::Change { name: body.name.as_deref(), domains: domains.as_deref(), timezone: timezone.as_deref() };
    let settings = projects::update(&state.pool, project, &change).await?.ok_or(ApiError::NotFound)?;
    if domains.is_some() {
        // Hubs cache a token with its project's domains: make them read the new list now.
        control.announce(&projects::live_tokens(&state.pool, project).await?).await;
    }
    Ok(HttpResponse::Ok().json(settings))
}

/// The ingest token for the tracker snippet. It is public (every page that embeds the snippet shows it), so
/// whoever may read the project may read it.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/token",
    operation_id = "project_token",
    tag = "projects",
    summary = "The project's ingest token (public: the tracker snippet shows it)",
    params(("id" = Uuid, Path, description = "Project id")),
    responses(
        (status = 200, description = "OK", body = doc::ProjectToken),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project (or not visible to the caller)", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn token(state: web::Data<AccessState>, caller: Caller, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let project = path.into_inner();
    allow(&state, &caller, project, Action::Read).await?;
    let token = projects::live_tokens(&state.pool, project).await?.into_iter().next();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "project": project, "token": token })))
}

/// Issues a new ingest token and revokes the old ones, the same path as `app token rotate`: the database first,
/// then the announcement that makes running hubs drop the old tokens from their caches. Owners only (keys never):
/// the old snippet stops working everywhere.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/token",
    operation_id = "project_rotate_token",
    tag = "projects",
    summary = "Issue a new ingest token and revoke the old ones",
    params(("id" = Uuid, Path, description = "Project id")),
    responses(
        (status = 200, description = "OK", body = doc::RotatedToken),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project (or not visible to the caller)", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
async fn rotate_token(
    state: web::Data<AccessState>,
    control: web::Data<Control>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let project = path.into_inner();
    allow(&state, &caller, project, Action::ManageKeys).await?;
    let (token, revoked) = projects::rotate_token(&state.pool, project).await?;
    control.announce(&revoked).await;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(serde_json::json!({
        "project": project,
        "token": token,
        "revoked": revoked.len(),
    })))
}

/// How long a deletion waits for ClickHouse to accept the purge before answering `"purge": "pending"`.
const PURGE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Deletes a project (owners only). PostgreSQL first, so the hub refuses its tokens and the API forgets it even
/// when ClickHouse is down; then the ClickHouse rows go by asynchronous mutations. When ClickHouse cannot take
/// them now, the purge stays pending and the app retries it (see `purge`). Answers 202: rows disappear when the
/// mutations finish.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}",
    operation_id = "project_delete",
    tag = "projects",
    summary = "Delete a project (owners); its ClickHouse rows are purged asynchronously",
    params(("id" = Uuid, Path, description = "Project id")),
    responses(
        (status = 202, description = "Deleted; the purge goes on", body = doc::ProjectDeleted),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project (or not visible to the caller)", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
async fn delete(
    state: web::Data<AccessState>,
    control: web::Data<Control>,
    analytics: web::Data<AnalyticsStore>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let project = path.into_inner();
    allow(&state, &caller, project, Action::DeleteProject).await?;
    let tokens = projects::delete(&state.pool, project).await?.ok_or(ApiError::NotFound)?;
    control.announce(&tokens).await;
    // Bounded: a ClickHouse that does not answer must not hold the answer (the purge is retried later anyway).
    let issue = async { purge::issue(analytics.get().await?, project).await };
    let issued = tokio::time::timeout(PURGE_WAIT, issue).await.unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
    let purge = match issued {
        Ok(()) => "started",
        Err(e) => {
            tracing::warn!(%project, error = format!("{e:#}"), "Project deleted; its ClickHouse rows will be purged later.");
            "pending"
        }
    };
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "id": project, "deleted": true, "purge": purge })))
}
