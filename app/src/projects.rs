//! Projects and their ingest tokens.

use anyhow::Context;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CreatedProject {
    pub id: Uuid,
    pub name: String,
    pub domains: Vec<String>,
    /// IANA name; day boundaries of every answer about the project.
    pub timezone: String,
    pub token: String,
}

/// Public ingest tokens: `tm_` and 24 random letters and digits (about 143 bits).
pub fn new_token() -> String {
    let body: String = rand::rng().sample_iter(Alphanumeric).take(24).map(char::from).collect();
    format!("tm_{body}")
}

/// A domain as the hub compares it: a bare lower-case host, whatever the operator typed.
pub fn normalize_domain(raw: &str) -> anyhow::Result<String> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") { raw.to_owned() } else { format!("http://{raw}") };
    let url = url::Url::parse(&with_scheme).with_context(|| format!("`{raw}` is not a domain"))?;
    let host = url.host_str().with_context(|| format!("`{raw}` has no host"))?;
    Ok(host.trim_end_matches('.').to_ascii_lowercase())
}

/// The time zone as PostgreSQL names it (`europe/berlin` becomes `Europe/Berlin`), or an error naming it.
pub async fn known_timezone(pool: &PgPool, raw: &str) -> anyhow::Result<String> {
    let raw = raw.trim();
    let found: Option<String> =
        sqlx::query_scalar("SELECT name FROM pg_timezone_names WHERE lower(name) = lower($1) ORDER BY name LIMIT 1")
            .bind(raw)
            .fetch_optional(pool)
            .await
            .context("reading the time zone names")?;
    found.with_context(|| format!("`{raw}` is not an IANA time zone (for example Europe/Berlin or UTC)"))
}

pub async fn create(pool: &PgPool, name: &str, domains: &[String], timezone: &str) -> anyhow::Result<CreatedProject> {
    let name = name.trim();
    anyhow::ensure!(!name.is_empty() && name.len() <= 200, "project name must be 1 to 200 characters");
    let domains = domains.iter().map(|d| normalize_domain(d)).collect::<anyhow::Result<Vec<_>>>()?;
    let timezone = known_timezone(pool, timezone).await?;
    let mut tx = pool.begin().await?;
    let id: Uuid =
        sqlx::query_scalar("INSERT INTO projects (name, domains, timezone) VALUES ($1, $2, $3) RETURNING id")
            .bind(name)
            .bind(&domains)
            .bind(&timezone)
            .fetch_one(&mut *tx)
            .await
            .context("inserting the project")?;
    let token = new_token();
    sqlx::query("INSERT INTO ingest_tokens (token, project_id) VALUES ($1, $2)")
        .bind(&token)
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("inserting the ingest token")?;
    tx.commit().await?;
    Ok(CreatedProject { id, name: name.to_owned(), domains, timezone, token })
}

/// Revokes a token; returns whether it was live. Hubs drop it from their caches when the app announces it.
pub async fn revoke_token(pool: &PgPool, token: &str) -> anyhow::Result<bool> {
    let done = sqlx::query("UPDATE ingest_tokens SET revoked_at = now() WHERE token = $1 AND revoked_at IS NULL")
        .bind(token)
        .execute(pool)
        .await
        .context("revoking the token")?;
    Ok(done.rows_affected() == 1)
}

/// Issues a new token for a project and revokes its previous ones, in one transaction; returns the new token and
/// the revoked ones (to announce).
pub async fn rotate_token(pool: &PgPool, project: Uuid) -> anyhow::Result<(String, Vec<String>)> {
    let mut tx = pool.begin().await?;
    let revoked: Vec<String> = sqlx::query_scalar(
        "UPDATE ingest_tokens SET revoked_at = now() WHERE project_id = $1 AND revoked_at IS NULL RETURNING token",
    )
    .bind(project)
    .fetch_all(&mut *tx)
    .await
    .context("revoking the old tokens")?;
    let token = new_token();
    sqlx::query("INSERT INTO ingest_tokens (token, project_id) VALUES ($1, $2)")
        .bind(&token)
        .bind(project)
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => anyhow::anyhow!("no project {project}"),
            other => anyhow::Error::from(other),
        })?;
    tx.commit().await?;
    Ok((token, revoked))
}

/// The oldest live project with a live token, if any (the demo project `just up` prints).
pub async fn first(pool: &PgPool) -> anyhow::Result<Option<CreatedProject>> {
    let row: Option<(Uuid, String, Vec<String>, String, String)> = sqlx::query_as(
        "SELECT p.id, p.name, p.domains, p.timezone, t.token FROM projects p JOIN ingest_tokens t ON t.project_id = p.id \
         WHERE p.deleted_at IS NULL AND t.revoked_at IS NULL ORDER BY p.created_at, t.created_at LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, name, domains, timezone, token)| CreatedProject { id, name, domains, timezone, token }))
}

/// A project's settings as the API shows them (no token: tokens are listed by their own endpoint).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Settings {
    pub id: Uuid,
    pub name: String,
    pub domains: Vec<String>,
    pub timezone: String,
}

/// A live project's settings.
pub async fn get(pool: &PgPool, id: Uuid) -> anyhow::Result<Option<Settings>> {
    let row: Option<(Uuid, String, Vec<String>, String)> =
        sqlx::query_as("SELECT id, name, domains, timezone FROM projects WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_optional(pool)
            .await
            .context("reading the project")?;
    Ok(row.map(|(id, name, domains, timezone)| Settings { id, name, domains, timezone }))
}

/// Renames a project and/or changes its time zone; None when the project is gone.
pub async fn update(
    pool: &PgPool,
    id: Uuid,
    name: Option<&str>,
    timezone: Option<&str>,
) -> anyhow::Result<Option<Settings>> {
    let name = name.map(str::trim);
    if let Some(name) = name {
        anyhow::ensure!(!name.is_empty() && name.len() <= 200, "project name must be 1 to 200 characters");
    }
    let timezone = match timezone {
        Some(raw) => Some(known_timezone(pool, raw).await?),
        None => None,
    };
    let row: Option<(Uuid, String, Vec<String>, String)> = sqlx::query_as(
        "UPDATE projects SET name = coalesce($2, name), timezone = coalesce($3, timezone) \
         WHERE id = $1 AND deleted_at IS NULL RETURNING id, name, domains, timezone",
    )
    .bind(id)
    .bind(name)
    .bind(timezone)
    .fetch_optional(pool)
    .await
    .context("updating the project")?;
    Ok(row.map(|(id, name, domains, timezone)| Settings { id, name, domains, timezone }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_look_like_tokens() {
        let t = new_token();
        assert!(t.starts_with("tm_") && t.len() == 27);
        assert_ne!(t, new_token());
    }

    #[test]
    fn domains_are_bare_hosts() {
        assert_eq!(normalize_domain("Example.COM").unwrap(), "example.com");
        assert_eq!(normalize_domain("https://www.example.com/path").unwrap(), "www.example.com");
        assert_eq!(normalize_domain("localhost:3000").unwrap(), "localhost");
        assert!(normalize_domain("").is_err());
    }
}
