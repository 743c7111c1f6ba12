//! Login throttling per normalized e-mail: after `max_failures` failed attempts within `window`, the e-mail is
//! locked for `lock`. Rows exist for any e-mail tried, account or not, so a lock reveals nothing about existence.
//! An attempt is counted before the password is checked: parallel guesses cannot slip past the limit.

use anyhow::Context;
use sqlx::PgPool;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    pub max_failures: u32,
    pub window: Duration,
    pub lock: Duration,
}

impl Default for Throttle {
    fn default() -> Self {
        Self { max_failures: 5, window: Duration::from_secs(15 * 60), lock: Duration::from_secs(15 * 60) }
    }
}

/// Whether a password may be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Locked for about this long still.
    Locked {
        retry_after: Duration,
    },
}

impl Throttle {
    /// Counts an attempt for `email` (already normalized) and says whether its password may be checked.
    pub async fn begin(&self, pool: &PgPool, email: &str) -> anyhow::Result<Gate> {
        // A lapsed lock or window starts a fresh count; a live lock leaves the row as it is.
        let (attempts, locked_for): (i32, Option<f64>) = sqlx::query_as(
            "INSERT INTO login_throttle AS t (email, attempts, window_started_at) VALUES ($1, 1, now()) \
             ON CONFLICT (email) DO UPDATE SET \
               attempts = CASE WHEN t.locked_until > now() THEN t.attempts \
                               WHEN t.locked_until IS NOT NULL OR t.window_started_at <= now() - make_interval(secs => $2) \
                                 THEN 1 ELSE t.attempts + 1 END, \
               window_started_at = CASE WHEN t.locked_until > now() THEN t.window_started_at \
                               WHEN t.locked_until IS NOT NULL OR t.window_started_at <= now() - make_interval(secs => $2) \
                                 THEN now() ELSE t.window_started_at END, \
               locked_until = CASE WHEN t.locked_until > now() THEN t.locked_until END \
             RETURNING attempts, extract(epoch FROM (locked_until - now()))::float8",
        )
        .bind(email)
        .bind(self.window.as_secs_f64())
        .fetch_one(pool)
        .await
        .context("counting the login attempt")?;
        if let Some(secs) = locked_for.filter(|s| *s > 0.0) {
            return Ok(Gate::Locked { retry_after: Duration::from_secs_f64(secs.ceil()) });
        }
        if attempts as u32 > self.max_failures {
            // More attempts raced in than the limit allows: lock now rather than check another password.
            self.lock(pool, email).await?;
            return Ok(Gate::Locked { retry_after: self.lock });
        }
        Ok(Gate::Open)
    }

    /// The attempt failed: locks the e-mail once the count reaches the limit. Returns whether it is now locked.
    pub async fn failed(&self, pool: &PgPool, email: &str) -> anyhow::Result<bool> {
        let attempts: Option<i32> = sqlx::query_scalar("SELECT attempts FROM login_throttle WHERE email = $1")
            .bind(email)
            .fetch_optional(pool)
            .await
            .context("reading the login attempts")?;
        if attempts.is_some_and(|n| n as u32 >= self.max_failures) {
            self.lock(pool, email).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The attempt succeeded: the count starts again.
    pub async fn succeeded(&self, pool: &PgPool, email: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM login_throttle WHERE email = $1")
            .bind(email)
            .execute(pool)
            .await
            .context("clearing the login attempts")?;
        Ok(())
    }

    async fn lock(&self, pool: &PgPool, email: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE login_throttle SET locked_until = now() + make_interval(secs => $2) \
             WHERE email = $1 AND (locked_until IS NULL OR locked_until <= now())",
        )
        .bind(email)
        .bind(self.lock.as_secs_f64())
        .execute(pool)
        .await
        .context("locking the e-mail")?;
        Ok(())
    }
}
