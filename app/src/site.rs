//! `site_id` → project: what every reading endpoint does first. Plausible's clients name a site by its domain;
//! Tidemark also accepts the project id. A project the caller may not read answers exactly like one that does not
//! exist (404), so nobody learns which projects or domains are registered.

use crate::api_error::ApiError;
use crate::auth::roles::{self, Action, Principal};
use anyhow::Context;
use sqlx::PgPool;
use uuid::Uuid;

/// A live project, as reading endpoints need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub domains: Vec<String>,
    /// IANA name; the day boundaries of every answer about the project.
    pub timezone: String,
}

/// The project `site_id` names (its id, or one of its domains), if `principal` may read it.
pub async fn resolve(pool: &PgPool, principal: &Principal, site_id: &str) -> Result<Project, ApiError> {
    resolve_for(pool, principal, site_id, Action::Read).await
}

/// As [`resolve`], for an endpoint that does `action`.
pub async fn resolve_for(
    pool: &PgPool,
    principal: &Principal,
    site_id: &str,
    action: Action,
) -> Result<Project, ApiError> {
    let site_id = site_id.trim();
    if site_id.is_empty() {
        return Err(ApiError::BadInput {
            field: "site_id".into(),
            problem: "site_id is required: the project id or one of its domains".into(),
        });
    }
    // Several projects may list the same domain (a staging copy); the caller gets the oldest one it may read.
    let mut denied = roles::Denied::NotFound;
    for project in candidates(pool, site_id).await? {
        match roles::authorize(pool, principal, project.id, action).await? {
            Ok(()) => return Ok(project),
            // Forbidden (the caller sees the project) wins over NotFound when several projects share a domain.
            Err(roles::Denied::Forbidden) => denied = roles::Denied::Forbidden,
            Err(roles::Denied::NotFound) => {}
        }
    }
    Err(denied.into())
}

async fn candidates(pool: &PgPool, site_id: &str) -> anyhow::Result<Vec<Project>> {
    type Row = (Uuid, String, Vec<String>, String);
    let rows: Vec<Row> = match Uuid::parse_str(site_id) {
        Ok(id) => {
            sqlx::query_as("SELECT id, name, domains, timezone FROM projects WHERE id = $1 AND deleted_at IS NULL")
                .bind(id)
                .fetch_all(pool)
                .await
                .context("reading the project")?
        }
        Err(_) => {
            // Not a domain at all: no project lists it.
            let Ok(domain) = crate::projects::normalize_domain(site_id) else { return Ok(Vec::new()) };
            sqlx::query_as(
                "SELECT id, name, domains, timezone FROM projects WHERE $1 = ANY(domains) AND deleted_at IS NULL \
                 ORDER BY created_at, id",
            )
            .bind(domain)
            .fetch_all(pool)
            .await
            .context("reading the projects of a domain")?
        }
    };
    Ok(rows.into_iter().map(|(id, name, domains, timezone)| Project { id, name, domains, timezone }).collect())
}
