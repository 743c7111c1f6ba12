//! A project's conversion goals over HTTP, in the shape of Plausible's goals: a custom event name or a page path
//! pattern, named by a display name. Reading needs `Action::Read` (viewers, read keys); adding and removing need
//! `Action::ManageGoals` (editors, owners, admin keys).

use crate::api_error::ApiError;
use crate::auth::caller::{AccessState, Caller};
use crate::auth::roles::Action;
use crate::goals::{Goal, GoalKind, input, store};
use crate::projects_api::allow;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/projects/{id}/goals", web::get().to(list))
        .route("/api/v1/projects/{id}/goals", web::post().to(create))
        .route("/api/v1/projects/{id}/goals/{goal}", web::delete().to(delete));
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

async fn list(state: web::Data<AccessState>, caller: Caller, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let project = path.into_inner();
    allow(&state, &caller, project, Action::Read).await?;
    let goals = store::list(&state.pool, project).await?;
    Ok(HttpResponse::Ok().json(goals.iter().map(shown).collect::<Vec<_>>()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGoal {
    event_name: Option<String>,
    page_path: Option<String>,
    display_name: Option<String>,
}

fn is_unique_violation(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::Database(db)) if db.is_unique_violation())
}

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
