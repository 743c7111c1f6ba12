//! Cookieless visitor ids: a keyed hash of (project, IP address, user agent) under a random salt that changes
//! every UTC day. Salts live in PostgreSQL so every hub replica computes the same id; yesterday's salt is kept so
//! a visit that crosses midnight keeps its visitor (the ingest script prefers an ongoing session under
//! yesterday's id). Salts older than yesterday are deleted: after that, nobody can link an IP address to an id.
//!
//! Yesterday's id is only derived during a grace period after midnight ([`midnight_grace`]): a session of
//! yesterday can only still be open then. The rest of the day a request costs one hash, and its jobs one session
//! key in Redis, instead of two.
//!
//! PostgreSQL is never needed at midnight: [`Salts::prepare`] (run at start and every few minutes by
//! [`keep_prepared`]) creates and caches tomorrow's salt a day ahead, and deletes expired ones. When no salt can
//! be had (PostgreSQL down at start), requests get [`SaltUnavailable`], answered 503 with `Retry-After`: the
//! client keeps the event and retries, where a 500 would invite it to give up.

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tidemark_shared::outage::StoreHealth;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// The salts of one day as HMAC keys already set up: keying HMAC-SHA256 costs two of the hash's block
/// compressions, a third of a visitor id's work, so it is done once a day instead of twice per request.
struct SaltPair {
    day: NaiveDate,
    today: HmacSha256,
    yesterday: HmacSha256,
}

pub struct Salts {
    pool: sqlx::PgPool,
    /// The days prepared so far, oldest first: today's and, once [`Salts::prepare`] ran, tomorrow's.
    prepared: RwLock<Vec<SaltPair>>,
    /// How long after midnight (UTC) yesterday's id is still derived.
    grace: chrono::Duration,
    /// When reading a salt last failed: requests in the next [`FAILURE_PAUSE`] are answered at once instead of
    /// each waiting for PostgreSQL's pool to time out.
    failed_at: Mutex<Option<Instant>>,
    /// PostgreSQL's, shared with the tokens and `/readyz`: one line per outage, not one per refused request.
    health: Arc<StoreHealth>,
}

/// How long after a failed salt read requests are refused without trying again.
const FAILURE_PAUSE: Duration = Duration::from_secs(1);

/// How often [`keep_prepared`] makes sure tomorrow's salt is cached: often enough that a PostgreSQL outage of a
/// few hours before midnight still finds it ready.
pub const PREPARE_EVERY: Duration = Duration::from_secs(10 * 60);

/// No salt for the day could be read or created (PostgreSQL unreachable, and nothing prepared).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the daily salt of {day} is not available")]
pub struct SaltUnavailable {
    pub day: NaiveDate,
}

/// The candidate ids of one request: under today's salt, and under yesterday's during the grace period after
/// midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitorIds {
    pub today: u64,
    pub yesterday: Option<u64>,
}

/// How long after midnight a session of yesterday is looked for: four hours, or the session timeout plus ten
/// minutes when that is longer. A session of yesterday still open later than that has had no pause as long as the
/// session timeout since before midnight; it goes on as a new session under today's visitor id. At the default,
/// only a visit of more than four hours across midnight, without a 30-minute pause, is split.
pub fn midnight_grace(session_timeout: Duration) -> Duration {
    Duration::from_secs(4 * 3600).max(session_timeout + Duration::from_secs(10 * 60))
}

impl Salts {
    pub fn new(pool: sqlx::PgPool, grace: Duration) -> Self {
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::days(1));
        let alert_after = Duration::from_secs(tidemark_shared::outage::DEFAULT_ALERT_SECS);
        let health = Arc::new(StoreHealth::new("hub", "postgres", alert_after));
        Self { pool, prepared: RwLock::new(Vec::new()), grace, failed_at: Mutex::new(None), health }
    }

    /// Reports PostgreSQL's failures to `health` (the hub's) instead of the salts' own.
    pub fn reporting_to(mut self, health: Arc<StoreHealth>) -> Self {
        self.health = health;
        self
    }

    /// Caches the salts of `now`'s day and of the next one (creating them in PostgreSQL if no replica has yet),
    /// and deletes the salts older than yesterday. Called ahead of time, so midnight needs no database.
    pub async fn prepare(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        let today = now.date_naive();
        let tomorrow = today.succ_opt().context("date overflow")?;
        for day in [today, tomorrow] {
            if !self.has(day) {
                let pair = self.load(day).await?;
                self.keep(pair);
            }
        }
        let yesterday = today.pred_opt().context("date underflow")?;
        sqlx::query("DELETE FROM daily_salts WHERE day < $1")
            .bind(yesterday)
            .execute(&self.pool)
            .await
            .context("deleting expired salts")?;
        Ok(())
    }

    fn has(&self, day: NaiveDate) -> bool {
        self.prepared.read().expect("salt lock").iter().any(|p| p.day == day)
    }

    /// Adds a day's keys and keeps the two latest days: today's and tomorrow's once prepared; ids of a past day
    /// are never computed again.
    fn keep(&self, pair: SaltPair) {
        let mut prepared = self.prepared.write().expect("salt lock");
        prepared.retain(|p| p.day != pair.day);
        prepared.push(pair);
        prepared.sort_by_key(|p| p.day);
        let surplus = prepared.len().saturating_sub(2);
        prepared.drain(..surplus);
    }

    /// Candidate visitor ids for a request at `now`.
    pub async fn visitor_ids(
        &self,
        now: DateTime<Utc>,
        project: &Uuid,
        ip: IpAddr,
        user_agent: &str,
    ) -> Result<VisitorIds, SaltUnavailable> {
        let day = now.date_naive();
        let after_midnight = now - day.and_time(chrono::NaiveTime::MIN).and_utc();
        let in_grace = after_midnight < self.grace;
        let ids = |pair: &SaltPair| VisitorIds {
            today: visitor_id_under(&pair.today, project, ip, user_agent),
            yesterday: in_grace.then(|| visitor_id_under(&pair.yesterday, project, ip, user_agent)),
        };
        if let Some(pair) = self.prepared.read().expect("salt lock").iter().find(|p| p.day == day) {
            return Ok(ids(pair));
        }
        let unavailable = SaltUnavailable { day };
        if self.failed_at.lock().expect("salt failure lock").is_some_and(|at| at.elapsed() < FAILURE_PAUSE) {
            return Err(unavailable);
        }
        match self.load(day).await {
            Ok(pair) => {
                self.health.succeeded();
                let found = ids(&pair);
                self.keep(pair);
                Ok(found)
            }
            Err(e) => {
                *self.failed_at.lock().expect("salt failure lock") = Some(Instant::now());
                // Requests get 503 until PostgreSQL is back; the outage is logged once, by its health.
                self.health.failed(&format!("{e:#}: no daily salt for {day}"));
                Err(unavailable)
            }
        }
    }

    async fn load(&self, day: NaiveDate) -> anyhow::Result<SaltPair> {
        let yesterday = day.pred_opt().context("date underflow")?;
        Ok(SaltPair { day, today: salt_key(&self.salt(day).await?), yesterday: salt_key(&self.salt(yesterday).await?) })
    }

    /// The salt of `day`, created by whichever replica asks first.
    async fn salt(&self, day: NaiveDate) -> anyhow::Result<[u8; 32]> {
        let mut fresh = [0u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        sqlx::query("INSERT INTO daily_salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING")
            .bind(day)
            .bind(&fresh[..])
            .execute(&self.pool)
            .await
            .context("creating the daily salt")?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT salt FROM daily_salts WHERE day = $1")
            .bind(day)
            .fetch_one(&self.pool)
            .await
            .context("reading the daily salt")?;
        stored.try_into().map_err(|_| anyhow::anyhow!("daily salt of {day} is not 32 bytes"))
    }
}

/// Prepares tomorrow's salt at start and every [`PREPARE_EVERY`], until the process ends. A failure is reported
/// to PostgreSQL's health (logged once per outage) and retried 10 s later; today's keys stay cached meanwhile.
pub async fn keep_prepared(salts: std::sync::Arc<impl AsRef<Salts>>) {
    loop {
        let salts = salts.as_ref().as_ref();
        let prepared = salts.prepare(Utc::now()).await.map_err(|e| format!("{e:#}: preparing tomorrow's salt"));
        salts.health.record(&prepared);
        tokio::time::sleep(if prepared.is_ok() { PREPARE_EVERY } else { Duration::from_secs(10) }).await;
    }
}

fn salt_key(salt: &[u8; 32]) -> HmacSha256 {
    HmacSha256::new_from_slice(salt).expect("HMAC takes any key length")
}

fn visitor_id_under(key: &HmacSha256, project: &Uuid, ip: IpAddr, user_agent: &str) -> u64 {
    let mut mac = key.clone();
    mac.update(project.as_bytes());
    match ip {
        IpAddr::V4(v4) => mac.update(&v4.octets()),
        IpAddr::V6(v6) => mac.update(&v6.octets()),
    }
    mac.update(user_agent.as_bytes());
    let out = mac.finalize().into_bytes();
    u64::from_be_bytes(out[..8].try_into().expect("8 bytes"))
}

/// A site that opted into storage sends its own id; it is hashed per project so it cannot be joined across projects.
pub fn anonymous_visitor_id(project: &Uuid, anonymous_id: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(b"tidemark-anonymous-id\0");
    hasher.update(project.as_bytes());
    hasher.update(anonymous_id.as_bytes());
    let out = hasher.finalize();
    u64::from_be_bytes(out[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed_visitor_id(salt: &[u8; 32], project: &Uuid, ip: IpAddr, user_agent: &str) -> u64 {
        visitor_id_under(&salt_key(salt), project, ip, user_agent)
    }

    #[test]
    fn ids_differ_by_salt_project_ip_and_agent() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let (p, q) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let other: IpAddr = "203.0.113.10".parse().unwrap();
        let base = keyed_visitor_id(&a, &p, ip, "UA");
        assert_eq!(base, keyed_visitor_id(&a, &p, ip, "UA"));
        assert_ne!(base, keyed_visitor_id(&b, &p, ip, "UA"));
        assert_ne!(base, keyed_visitor_id(&a, &q, ip, "UA"));
        assert_ne!(base, keyed_visitor_id(&a, &p, other, "UA"));
        assert_ne!(base, keyed_visitor_id(&a, &p, ip, "UA2"));
        assert_ne!(anonymous_visitor_id(&p, "x"), anonymous_visitor_id(&q, "x"));
    }
}
