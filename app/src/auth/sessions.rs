//! Server-side sessions. The cookie holds 32 random bytes (hex); the table holds their SHA-256, the account, a
//! CSRF token and two times: a session ends `idle` after its last use or `absolute` after sign-in, whichever
//! comes first.

use super::keys::constant_time_eq;
use anyhow::Context;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

pub const COOKIE: &str = "tidemark_session";

#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub idle: Duration,
    pub absolute: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self { idle: Duration::from_secs(30 * 60), absolute: Duration::from_secs(12 * 3600) }
    }
}

/// A session just opened: `id` goes into the cookie, `csrf` to the client's script.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub csrf: String,
}

/// A live session, found from its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub account: Uuid,
    pub is_admin: bool,
    pub csrf: String,
}

impl Live {
    /// Whether a request's `X-CSRF-Token` header matches this session's token.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        constant_time_eq(presented.as_bytes(), self.csrf.as_bytes())
    }
}

fn id_hash(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

pub async fn open(pool: &PgPool, account: Uuid, lifetimes: Lifetimes) -> anyhow::Result<NewSession> {
    // Sign-in is rare: a good moment to drop sessions nobody can use any more.
    sqlx::query(
        "DELETE FROM sessions WHERE last_seen_at < now() - make_interval(secs => $1) \
         OR created_at < now() - make_interval(secs => $2)",
    )
    .bind(lifetimes.idle.as_secs_f64())
    .bind(lifetimes.absolute.as_secs_f64())
    .execute(pool)
    .await
    .context("deleting expired sessions")?;
    let session =
        NewSession { id: hex::encode(rand::random::<[u8; 32]>()), csrf: hex::encode(rand::random::<[u8; 32]>()) };
    sqlx::query("INSERT INTO sessions (id_hash, account_id, csrf_token) VALUES ($1, $2, $3)")
        .bind(id_hash(&session.id))
        .bind(account)
        .bind(&session.csrf)
        .execute(pool)
        .await
        .context("opening the session")?;
    Ok(session)
}

/// The live session behind a cookie value, touching its last use; None when unknown or expired.
pub async fn find(pool: &PgPool, id: &str, lifetimes: Lifetimes) -> anyhow::Result<Option<Live>> {
    let row: Option<(Uuid, bool, String)> = sqlx::query_as(
        "UPDATE sessions s SET last_seen_at = now() FROM accounts a \
         WHERE s.id_hash = $1 AND a.id = s.account_id \
           AND s.last_seen_at >= now() - make_interval(secs => $2) \
           AND s.created_at >= now() - make_interval(secs => $3) \
         RETURNING s.account_id, a.is_admin, s.csrf_token",
    )
    .bind(id_hash(id))
    .bind(lifetimes.idle.as_secs_f64())
    .bind(lifetimes.absolute.as_secs_f64())
    .fetch_optional(pool)
    .await
    .context("reading the session")?;
    Ok(row.map(|(account, is_admin, csrf)| Live { account, is_admin, csrf }))
}

/// Ends a session; returns whether it existed.
pub async fn close(pool: &PgPool, id: &str) -> anyhow::Result<bool> {
    let done = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash(id))
        .execute(pool)
        .await
        .context("closing the session")?;
    Ok(done.rows_affected() == 1)
}

/// Ends every session of an account but `keep` (after a password change).
pub async fn close_others(pool: &PgPool, account: Uuid, keep: &str) -> anyhow::Result<u64> {
    let done = sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND id_hash <> $2")
        .bind(account)
        .bind(id_hash(keep))
        .execute(pool)
        .await
        .context("closing the account's sessions")?;
    Ok(done.rows_affected())
}
