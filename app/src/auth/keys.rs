//! Secret API keys for scripts: `tmk_<prefix>_<secret>`. The prefix finds the row; only the SHA-256 of the secret
//! is stored, and it is compared in constant time. A key is shown once, at creation.

use super::roles::{Principal, Scope};
use anyhow::Context;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

const KEY_TAG: &str = "tmk_";
const PREFIX_LEN: usize = 12;
/// 32 letters and digits: about 190 bits, so a fast hash is enough (nothing to brute-force).
const SECRET_LEN: usize = 32;

/// A key just created: the only moment `key` exists outside the client.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedKey {
    pub id: Uuid,
    pub key: String,
    pub project: Uuid,
    pub scope: Scope,
    pub name: String,
}

fn random_text(len: usize) -> String {
    rand::rng().sample_iter(Alphanumeric).take(len).map(char::from).collect()
}

fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Equality whose time does not depend on where the inputs differ (the lengths are public: both are hashes).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Splits a presented key into (prefix, secret), or None when it is not shaped like one of ours.
fn split(key: &str) -> Option<(&str, &str)> {
    let (prefix, secret) = key.strip_prefix(KEY_TAG)?.split_once('_')?;
    let shaped = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (shaped(prefix, PREFIX_LEN) && shaped(secret, SECRET_LEN)).then_some((prefix, secret))
}

pub async fn create(pool: &PgPool, project: Uuid, scope: Scope, name: &str) -> anyhow::Result<CreatedKey> {
    let name = name.trim();
    anyhow::ensure!(name.len() <= 200, "the key name must be at most 200 characters");
    let live: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1 AND deleted_at IS NULL)")
        .bind(project)
        .fetch_one(pool)
        .await
        .context("reading the project")?;
    anyhow::ensure!(live, "no project {project}");
    let prefix = random_text(PREFIX_LEN);
    let secret = random_text(SECRET_LEN);
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO api_keys (project_id, name, prefix, secret_hash, scopes) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(project)
    .bind(name)
    .bind(&prefix)
    .bind(secret_hash(&secret))
    .bind(vec![scope.as_str()])
    .fetch_one(pool)
    .await
    .context("storing the API key")?;
    Ok(CreatedKey { id, key: format!("{KEY_TAG}{prefix}_{secret}"), project, scope, name: name.to_owned() })
}

/// The principal a presented key stands for, or None when it is unknown, revoked, wrong, or its project is gone.
/// Records the use (at most once a minute per key, so reads do not turn into a write each).
pub async fn verify(pool: &PgPool, presented: &str) -> anyhow::Result<Option<Principal>> {
    let Some((prefix, secret)) = split(presented) else { return Ok(None) };
    let row: Option<(Uuid, Uuid, Vec<u8>, Vec<String>)> = sqlx::query_as(
        "SELECT k.id, k.project_id, k.secret_hash, k.scopes FROM api_keys k JOIN projects p ON p.id = k.project_id \
         WHERE k.prefix = $1 AND k.revoked_at IS NULL AND p.deleted_at IS NULL",
    )
    .bind(prefix)
    .fetch_optional(pool)
    .await
    .context("looking up the API key")?;
    let Some((id, project, stored, scopes)) = row else { return Ok(None) };
    if !constant_time_eq(&secret_hash(secret), &stored) {
        return Ok(None);
    }
    let Some(scope) = scopes.first().and_then(|s| Scope::parse(s)) else { return Ok(None) };
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now() \
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(id)
    .execute(pool)
    .await
    .context("recording the key's use")?;
    Ok(Some(Principal::Key { id, project, scope }))
}

/// Revokes a key at once (nothing caches keys); returns whether it was live.
pub async fn revoke(pool: &PgPool, id: Uuid) -> anyhow::Result<bool> {
    let done = sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(pool)
        .await
        .context("revoking the API key")?;
    Ok(done.rows_affected() == 1)
}

/// Revokes a key of one project (the API's path: a key id from another project is "not found").
pub async fn revoke_in_project(pool: &PgPool, project: Uuid, id: Uuid) -> anyhow::Result<bool> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND project_id = $2 AND revoked_at IS NULL")
            .bind(id)
            .bind(project)
            .execute(pool)
            .await
            .context("revoking the API key")?;
    Ok(done.rows_affected() == 1)
}

/// A key as listed to its project's owners: never the secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct KeyInfo {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn list(pool: &PgPool, project: Uuid) -> anyhow::Result<Vec<KeyInfo>> {
    sqlx::query_as(
        "SELECT id, name, prefix, scopes, created_at, last_used_at, revoked_at FROM api_keys \
         WHERE project_id = $1 ORDER BY created_at",
    )
    .bind(project)
    .fetch_all(pool)
    .await
    .context("listing the API keys")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_only_when_well_formed() {
        let key = format!("tmk_{}_{}", "a".repeat(PREFIX_LEN), "B".repeat(SECRET_LEN));
        assert_eq!(split(&key), Some(("a".repeat(PREFIX_LEN).as_str(), "B".repeat(SECRET_LEN).as_str())));
        assert_eq!(split(&key[..key.len() - 1]), None);
        assert_eq!(split(&key.replacen("tmk_", "tm_", 1)), None);
        assert_eq!(split("tmk_"), None);
        assert_eq!(split(""), None);
    }

    #[test]
    fn equality_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
