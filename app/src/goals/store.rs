//! Goals in PostgreSQL: the reads the planner needs and the writes the control plane builds its API on.

use super::{Goal, GoalKind};
use anyhow::Context;
use sqlx::PgPool;
use uuid::Uuid;

type GoalRow = (i64, String, Option<String>, Option<String>);

fn from_row((id, display_name, event_name, page_path): GoalRow) -> anyhow::Result<Goal> {
    let kind = match (event_name, page_path) {
        (Some(event_name), None) => GoalKind::Event { event_name },
        (None, Some(page_path)) => GoalKind::Page { page_path },
        _ => anyhow::bail!("goal {id} has neither or both of event_name and page_path"),
    };
    Ok(Goal { id, display_name, kind })
}

/// Every goal of a project, oldest first (the order answers list them in).
pub async fn list(pool: &PgPool, project: Uuid) -> anyhow::Result<Vec<Goal>> {
    let rows: Vec<GoalRow> =
        sqlx::query_as("SELECT id, display_name, event_name, page_path FROM goals WHERE project_id = $1 ORDER BY id")
            .bind(project)
            .fetch_all(pool)
            .await
            .context("reading the project's goals")?;
    rows.into_iter().map(from_row).collect()
}

/// Adds a goal; `display_name` defaults to Plausible's. Fails if the project already has a goal of that name.
pub async fn create(pool: &PgPool, project: Uuid, kind: GoalKind, display_name: Option<&str>) -> anyhow::Result<Goal> {
    let display_name = display_name.map(str::to_owned).unwrap_or_else(|| Goal::default_display_name(&kind));
    let (event_name, page_path) = match &kind {
        GoalKind::Event { event_name } => (Some(event_name.as_str()), None),
        GoalKind::Page { page_path } => (None, Some(page_path.as_str())),
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO goals (project_id, event_name, page_path, display_name) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(project)
    .bind(event_name)
    .bind(page_path)
    .bind(&display_name)
    .fetch_one(pool)
    .await
    .context("inserting the goal")?;
    Ok(Goal { id, display_name, kind })
}

/// Removes a goal of the project; false when it had no such goal.
pub async fn delete(pool: &PgPool, project: Uuid, id: i64) -> anyhow::Result<bool> {
    let done = sqlx::query("DELETE FROM goals WHERE project_id = $1 AND id = $2")
        .bind(project)
        .bind(id)
        .execute(pool)
        .await
        .context("deleting the goal")?;
    Ok(done.rows_affected() == 1)
}
