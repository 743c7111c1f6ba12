//! Admin users. Passwords are stored as Argon2id hashes only.

use anyhow::Context;
use argon2::password_hash::{PasswordHasher, SaltString};
use sqlx::PgPool;
use uuid::Uuid;

pub const MIN_PASSWORD: usize = 10;

pub async fn create(pool: &PgPool, email: &str, password: &str) -> anyhow::Result<Uuid> {
    let email = email.trim();
    anyhow::ensure!(email.contains('@') && email.len() <= 320, "`{email}` is not an email address");
    anyhow::ensure!(
        password.chars().count() >= MIN_PASSWORD,
        "the password must be at least {MIN_PASSWORD} characters"
    );
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string();
    sqlx::query_scalar("INSERT INTO admin_users (email, password_hash) VALUES ($1, $2) RETURNING id")
        .bind(email)
        .bind(hash)
        .fetch_one(pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                anyhow::anyhow!("an admin with email {email} exists")
            }
            other => anyhow::Error::from(other),
        })
        .context("creating the admin user")
}
