//! Accounts: instance admins and project members. Passwords are stored as Argon2id hashes only.

use anyhow::Context;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Serialize;
use sqlx::PgPool;
use std::sync::OnceLock;
use uuid::Uuid;

pub const MIN_PASSWORD: usize = 10;
/// Argon2 runs on its own input only: longer passwords buy nothing and cost the server time.
pub const MAX_PASSWORD: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub is_admin: bool,
}

/// The form every lookup uses, so `Ops@Example.com ` and `ops@example.com` are one account and one throttle.
pub fn normalize_email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

fn check_email(email: &str) -> anyhow::Result<()> {
    anyhow::ensure!(email.contains('@') && email.len() <= 320, "`{email}` is not an email address");
    Ok(())
}

fn check_password(password: &str) -> anyhow::Result<()> {
    let chars = password.chars().count();
    anyhow::ensure!(chars >= MIN_PASSWORD, "the password must be at least {MIN_PASSWORD} characters");
    anyhow::ensure!(chars <= MAX_PASSWORD, "the password must be at most {MAX_PASSWORD} characters");
    Ok(())
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// Checks a password against a stored hash; `None` checks it against a fixed dummy hash with the same
/// parameters, so an unknown e-mail costs the same time as a wrong password. CPU-heavy: call off the async threads.
pub fn password_matches(stored: Option<&str>, password: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not anybody's password").expect("hashing a fixed password"));
    let Ok(parsed) = PasswordHash::new(stored.unwrap_or(dummy)) else { return false };
    let matches = argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    matches && stored.is_some()
}

pub async fn create(pool: &PgPool, email: &str, password: &str, is_admin: bool) -> anyhow::Result<Uuid> {
    let email = email.trim();
    check_email(email)?;
    check_password(password)?;
    let hash = hash_password(password)?;
    insert(pool, email, &hash, is_admin).await
}

async fn insert<'c, E: sqlx::PgExecutor<'c>>(
    executor: E,
    email: &str,
    hash: &str,
    is_admin: bool,
) -> anyhow::Result<Uuid> {
    sqlx::query_scalar("INSERT INTO accounts (email, password_hash, is_admin) VALUES ($1, $2, $3) RETURNING id")
        .bind(email)
        .bind(hash)
        .bind(is_admin)
        .fetch_one(executor)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                anyhow::anyhow!("an account with email {email} exists")
            }
            other => anyhow::Error::from(other),
        })
        .context("creating the account")
}

pub async fn any_admin(pool: &PgPool) -> anyhow::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE is_admin)")
        .fetch_one(pool)
        .await
        .context("looking for an admin")
}

/// The first-run path: creates an admin only while none exists; `Ok(None)` once one does. Two concurrent calls
/// cannot both succeed: they queue on one advisory lock.
pub async fn create_first_admin(pool: &PgPool, email: &str, password: &str) -> anyhow::Result<Option<Uuid>> {
    let email = email.trim();
    check_email(email)?;
    check_password(password)?;
    let hash = hash_password(password)?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tidemark first admin'))").execute(&mut *tx).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE is_admin)")
        .fetch_one(&mut *tx)
        .await
        .context("looking for an admin")?;
    if exists {
        return Ok(None);
    }
    let id = insert(&mut *tx, email, &hash, true).await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// The account and its password hash for a normalized e-mail.
pub async fn find_for_login(pool: &PgPool, email: &str) -> anyhow::Result<Option<(Account, String)>> {
    let row: Option<(Uuid, String, bool, String)> =
        sqlx::query_as("SELECT id, email, is_admin, password_hash FROM accounts WHERE lower(email) = $1")
            .bind(normalize_email(email))
            .fetch_optional(pool)
            .await
            .context("looking up the account")?;
    Ok(row.map(|(id, email, is_admin, hash)| (Account { id, email, is_admin }, hash)))
}

pub async fn get(pool: &PgPool, id: Uuid) -> anyhow::Result<Option<Account>> {
    let row: Option<(Uuid, String, bool)> = sqlx::query_as("SELECT id, email, is_admin FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .context("reading the account")?;
    Ok(row.map(|(id, email, is_admin)| Account { id, email, is_admin }))
}

/// The account id for an e-mail, for the command line (which is the operator: no secrecy needed).
pub async fn id_by_email(pool: &PgPool, email: &str) -> anyhow::Result<Uuid> {
    find_for_login(pool, email).await?.map(|(a, _)| a.id).with_context(|| format!("no account with email {email}"))
}

/// Every account, for instance admins.
pub async fn list(pool: &PgPool) -> anyhow::Result<Vec<Account>> {
    let rows: Vec<(Uuid, String, bool)> = sqlx::query_as("SELECT id, email, is_admin FROM accounts ORDER BY email")
        .fetch_all(pool)
        .await
        .context("listing the accounts")?;
    Ok(rows.into_iter().map(|(id, email, is_admin)| Account { id, email, is_admin }).collect())
}

/// Deletes an account (its memberships and sessions go with it), refusing to delete the last admin. Returns
/// `Ok(false)` when there is no such account.
pub async fn delete(pool: &PgPool, id: Uuid) -> anyhow::Result<Result<bool, LastAdmin>> {
    let mut tx = pool.begin().await?;
    // The same lock as the first-run path: admins are counted by one transaction at a time.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tidemark first admin'))").execute(&mut *tx).await?;
    let deleted: Option<bool> = sqlx::query_scalar("DELETE FROM accounts WHERE id = $1 RETURNING is_admin")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .context("deleting the account")?;
    let Some(was_admin) = deleted else { return Ok(Ok(false)) };
    if was_admin {
        let left: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE is_admin)")
            .fetch_one(&mut *tx)
            .await
            .context("counting the admins")?;
        if !left {
            return Ok(Err(LastAdmin));
        }
    }
    tx.commit().await?;
    Ok(Ok(true))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the last admin cannot be deleted")]
pub struct LastAdmin;

/// Replaces an account's password hash.
pub async fn set_password(pool: &PgPool, id: Uuid, password: &str) -> anyhow::Result<()> {
    check_password(password)?;
    let hash = hash_password(password)?;
    sqlx::query("UPDATE accounts SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(pool)
        .await
        .context("storing the new password")?;
    Ok(())
}
