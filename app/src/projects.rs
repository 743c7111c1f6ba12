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
    create_owned(pool, name, domains, timezone, None).await
}

/// Creates a project and, when `owner` is given, makes that account its owner in the same transaction (a project
/// created over HTTP is never left without one).
pub async fn create_owned(
    pool: &PgPool,
    name: &str,
    domains: &[String],
    timezone: &str,
    owner: Option<Uuid>,
) -> anyhow::Result<CreatedProject> {
    let name = name.trim();
    anyhow::ensure!(!name.is_empty() && name.len() <= 200, "project name must be 1 to 200 characters");
    let domains = normalize_domains(domains)?;
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
    if let Some(owner) = owner {
        sqlx::query("INSERT INTO memberships (project_id, account_id, role) VALUES ($1, $2, 'owner')")
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await
            .context("making the creator the owner")?;
    }
    tx.commit().await?;
    Ok(CreatedProject { id, name: name.to_owned(), domains, timezone, token })
}

/// Most allowed domains per project; the hub compares an origin against each.
pub const MAX_DOMAINS: usize = 100;

/// Normalized, de-duplicated allowed domains, or an error naming the first bad one.
pub fn normalize_domains(raw: &[String]) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(raw.len() <= MAX_DOMAINS, "at most {MAX_DOMAINS} domains");
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for d in raw {
        let d = normalize_domain(d)?;
        anyhow::ensure!(d.len() <= 253, "`{d}` is longer than a host name can be");
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
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

/// A change of a project's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct Change<'a> {
    pub name: Option<&'a str>,
    pub domains: Option<&'a [String]>,
    pub timezone: Option<&'a str>,
}

/// Renames a project, replaces its allowed domains and/or changes its time zone; None when the project is gone.
pub async fn update(pool: &PgPool, id: Uuid, change: &Change<'_>) -> anyhow::Result<Option<Settings>> {
    let name = change.name.map(str::trim);
    if let Some(name) = name {
        anyhow::ensure!(!name.is_empty() && name.len() <= 200, "project name must be 1 to 200 characters");
    }
    let domains = change.domains.map(normalize_domains).transpose()?;
    let timezone = match change.timezone {
        Some(raw) => Some(known_timezone(pool, raw).await?),
        None => None,
    };
    let row: Option<(Uuid, String, Vec<String>, String)> = sqlx::query_as(
        "UPDATE projects SET name = coalesce($2, name), domains = coalesce($3, domains), \
         timezone = coalesce($4, timezone) \
         WHERE id = $1 AND deleted_at IS NULL RETURNING id, name, domains, timezone",
    )
    .bind(id)
    .bind(name)
    .bind(domains)
    .bind(timezone)
    .fetch_optional(pool)
    .await
    .context("updating the project")?;
    Ok(row.map(|(id, name, domains, timezone)| Settings { id, name, domains, timezone }))
}

/// The live ingest tokens of a project, newest first (to show, or to announce when what the hub caches about them changes).
pub async fn live_tokens(pool: &PgPool, id: Uuid) -> anyhow::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT token FROM ingest_tokens WHERE project_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .context("reading the project's tokens")
}

/// Tells running hubs to forget these tokens, the path every token change takes (CLI and API alike). The database
/// is already right: a hub that misses the message forgets the token when its cache entry expires.
/// Bounded by `ANNOUNCE_WAIT`, since a Redis that accepts the connection but never answers would otherwise hold
/// the request (or the command) forever.
pub async fn announce_token_changes(redis_url: &str, key_prefix: &str, tokens: &[String]) {
    let announce = async {
        for token in tokens {
            tidemark_shared::pubsub::announce_token_change(redis_url, key_prefix, token).await?;
        }
        anyhow::Ok(())
    };
    let done =
        tokio::time::timeout(ANNOUNCE_WAIT, announce).await.unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
    if let Err(e) = done {
        tracing::warn!(error = format!("{e:#}"), "Could not announce the token change to the hubs.");
    }
}

/// How long a token change waits for Redis to take its announcement.
pub const ANNOUNCE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Soft-deletes a live project: from this commit on the hub refuses its tokens (they are revoked too) and the API
/// answers 404 for it. Returns the tokens to announce, or None when there was no live project. Its ClickHouse rows
/// are removed by `purge`.
pub async fn delete(pool: &PgPool, id: Uuid) -> anyhow::Result<Option<Vec<String>>> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("UPDATE projects SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("deleting the project")?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    let tokens: Vec<String> = sqlx::query_scalar(
        "UPDATE ingest_tokens SET revoked_at = now() WHERE project_id = $1 AND revoked_at IS NULL RETURNING token",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await
    .context("revoking the project's tokens")?;
    tx.commit().await.context("committing the deletion")?;
    Ok(Some(tokens))
}

/// A project as listed to a caller, with what the caller may do there.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Listed {
    #[serde(flatten)]
    pub settings: Settings,
    /// The account's role (instance admins are owners everywhere); absent for API keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::auth::roles::Role>,
    /// The key's scope; absent for accounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<crate::auth::roles::Scope>,
}

/// The live projects an account may see, by name: its memberships, or every project for an instance admin.
pub async fn list_for_account(pool: &PgPool, account: Uuid, is_admin: bool) -> anyhow::Result<Vec<Listed>> {
    use crate::auth::roles::Role;
    type Row = (Uuid, String, Vec<String>, String, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT p.id, p.name, p.domains, p.timezone, m.role FROM projects p \
         LEFT JOIN memberships m ON m.project_id = p.id AND m.account_id = $1 \
         WHERE p.deleted_at IS NULL AND ($2 OR m.role IS NOT NULL) ORDER BY lower(p.name), p.id",
    )
    .bind(account)
    .bind(is_admin)
    .fetch_all(pool)
    .await
    .context("listing the projects")?;
    Ok(rows
        .into_iter()
        .map(|(id, name, domains, timezone, role)| Listed {
            settings: Settings { id, name, domains, timezone },
            role: if is_admin { Some(Role::Owner) } else { role.as_deref().and_then(Role::parse) },
            scope: None,
        })
        .collect())
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
