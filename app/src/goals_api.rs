//! A project's conversion goals over HTTP, in the shape of Plausible's goals: a custom event name or a page path
//! pattern, named by a display name. Reading needs `Action::Read` (viewers, read keys); adding and removing need
//! `Action::ManageGoals` (editors, owners, admin keys).

use crate::api_error::ApiError;
use crate::auth::caller::{AccessState, Caller};
use crate::auth::roles::Action;
use crate::goals::{Goal, GoalKind, input, store};
use crate::openapi::schemas as doc;
use crate::projects_api::allow;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub fn routes(cfg: &mut web::ServiceConfig) {
    register(cfg);
}

crate::openapi::api_routes! {
    get "/api/v1/projects/{id}/goals" => list,
    post "/api/v1/projects/{id}/goals" => create,
    delete "/api/v1/projects/{id}/goals/{goal}" => delete,
}

/// A goal as the API shows it: `{"id", "display_name", "goal_type": "event"|"page", "event_name"|"page_path"}`.
#[derive(Serialize)]
struct Shown<'a> {
    id: i64,
    display_name: &'a str,
    #[serde(flatten)]
    kind: &'a GoalKind,
}

fn shown(goal: &Goal) -> Shown<'_> {
    Shown { id: goal.id, display_name: &goal.display_name, kind: &goal.kind }
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/goals",
    operation_id = "goal_list",
    tag = "goals",
    summary = "A project's goals",
    params(("id" = Uuid, Path, description = "Project id")),
    responses(
        (status = 200, description = "OK", body = Vec<doc::ShownGoal>),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project (or not visible to the caller)", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn list(state: web::Data<AccessState>, caller: Caller, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let project = path.into_inner();
    allow(&state, &caller, project, Action::Read).await?;
    let goals = store::list(&state.pool, project).await?;
    Ok(HttpResponse::Ok().json(goals.iter().map(shown).collect::<Vec<_>>()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
/// Exactly one of `event_name` and `page_path`; `display_name` defaults to the event name or `Visit <path>`.
struct NewGoal {
    event_name: Option<String>,
    page_path: Option<String>,
    display_name: Option<String>,
}

fn is_unique_violation(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::Database(db)) if db.is_unique_violation())
}

#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/goals",
    operation_id = "goal_create",
    tag = "goals",
    summary = "Add a goal: a custom event name or a page path pattern",
    params(("id" = Uuid, Path, description = "Project id")),
    request_body = NewGoal,
    responses(
        (status = 201, description = "Created", body = doc::ShownGoal),
        (status = 400, description = "Bad input, naming the field", body = doc::BadInputBody),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project (or not visible to the caller)", body = doc::ErrorBody),
        (status = 409, description = "A goal with this display name exists", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
async fn create(
    state: web::Data<AccessState>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: web::Json<NewGoal>,
) -> Result<HttpResponse, ApiError> {
    let project = path.into_inner();
    allow(&state, &caller, project, Action::ManageGoals).await?;
    let (kind, display_name) =
        input::new_goal(body.event_name.as_deref(), body.page_path.as_deref(), body.display_name.as_deref())
            .map_err(|e| ApiError::BadInput { field: e.field.into(), problem: e.problem })?;
    match store::create(&state.pool, project, kind, Some(&display_name)).await {
        Ok(goal) => Ok(HttpResponse::Created().json(shown(&goal))),
        Err(e) if is_unique_violation(&e) => Err(ApiError::Conflict(format!(
            "display_name: the project already has a goal named `{display_name}` (give another display_name)"
        ))),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}/goals/{goal}",
    operation_id = "goal_delete",
    tag = "goals",
    summary = "Remove a goal",
    params(("id" = Uuid, Path, description = "Project id"), ("goal" = i64, Path, description = "Goal id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project or goal", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
async fn delete(
    state: web::Data<AccessState>,
    caller: Caller,
    path: web::Path<(Uuid, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (project, goal) = path.into_inner();
    allow(&state, &caller, project, Action::ManageGoals).await?;
    if !store::delete(&state.pool, project, goal).await? {
        return Err(ApiError::NotFound);
    }
    Ok(HttpResponse::NoContent().finish())
}
