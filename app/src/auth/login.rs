//! Signing in: the throttle, the password check and the session, in the order that leaks nothing. An unknown
//! e-mail runs the same steps as a wrong password (a dummy Argon2 check included) and gets the same answer.

use super::sessions::{self, Lifetimes, NewSession};
use super::throttle::{Gate, Throttle};
use crate::users::{self, Account};
use sqlx::PgPool;
use std::time::Duration;

#[derive(Debug)]
pub enum Outcome {
    SignedIn {
        account: Account,
        session: NewSession,
    },
    /// Wrong e-mail or wrong password: callers must not tell which.
    Refused,
    Locked {
        retry_after: Duration,
    },
}

pub async fn login(
    pool: &PgPool,
    throttle: &Throttle,
    lifetimes: Lifetimes,
    email: &str,
    password: &str,
) -> anyhow::Result<Outcome> {
    let email = users::normalize_email(email);
    if let Gate::Locked { retry_after } = throttle.begin(pool, &email).await? {
        return Ok(Outcome::Locked { retry_after });
    }
    let found = users::find_for_login(pool, &email).await?;
    let (account, hash) = match found {
        Some((account, hash)) => (Some(account), Some(hash)),
        None => (None, None),
    };
    let password = password.to_owned();
    // Argon2 takes tens of milliseconds of CPU: keep it off the threads that serve requests.
    let matches = tokio::task::spawn_blocking(move || {
        password.chars().count() <= users::MAX_PASSWORD && users::password_matches(hash.as_deref(), &password)
    })
    .await?;
    match account {
        Some(account) if matches => {
            throttle.succeeded(pool, &email).await?;
            let session = sessions::open(pool, account.id, lifetimes).await?;
            Ok(Outcome::SignedIn { account, session })
        }
        _ => {
            if throttle.failed(pool, &email).await? {
                return Ok(Outcome::Locked { retry_after: throttle.lock });
            }
            Ok(Outcome::Refused)
        }
    }
}
