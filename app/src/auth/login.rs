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

/// The result of checking an e-mail and password under the throttle.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    Matches,
    /// Wrong e-mail or wrong password.
    Wrong,
    Locked {
        retry_after: Duration,
    },
}

/// Checks a password for an e-mail, counting the attempt in the throttle: the one path that ever verifies a
/// password, for sign-in and for a password change alike.
pub async fn check_password(pool: &PgPool, throttle: &Throttle, email: &str, password: &str) -> anyhow::Result<Check> {
    Ok(check(pool, throttle, email, password).await?.0)
}

async fn check(
    pool: &PgPool,
    throttle: &Throttle,
    email: &str,
    password: &str,
) -> anyhow::Result<(Check, Option<Account>)> {
    let email = users::normalize_email(email);
    if let Gate::Locked { retry_after } = throttle.begin(pool, &email).await? {
        return Ok((Check::Locked { retry_after }, None));
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
            Ok((Check::Matches, Some(account)))
        }
        _ => {
            if throttle.failed(pool, &email).await? {
                return Ok((Check::Locked { retry_after: throttle.lock }, None));
            }
            Ok((Check::Wrong, None))
        }
    }
}

pub async fn login(
    pool: &PgPool,
    throttle: &Throttle,
    lifetimes: Lifetimes,
    email: &str,
    password: &str,
) -> anyhow::Result<Outcome> {
    Ok(match check(pool, throttle, email, password).await? {
        (Check::Matches, Some(account)) => {
            let session = sessions::open(pool, account.id, lifetimes).await?;
            Outcome::SignedIn { account, session }
        }
        (Check::Locked { retry_after }, _) => Outcome::Locked { retry_after },
        _ => Outcome::Refused,
    })
}
