//! Project tokens: looked up in PostgreSQL and cached in process, so the hot path rarely leaves memory.
//!
//! Two caches, because they fail differently under attack. Known tokens are few (one or two per project) and are
//! never pushed out by anything. Unknown tokens are cached briefly, so a client repeating a bad token costs one
//! query, in a bounded map that evicts its oldest entries: a flood of random tokens churns that map only.
//! A flood of *new* random tokens would still cost a query each, so lookups of tokens in neither cache draw from
//! one budget per hub ([`TokenStore::new`]); past it the hub answers 503 with `Retry-After` (a real client keeps
//! its events and retries) instead of passing the flood on to PostgreSQL.
//!
//! A revocation can race a lookup: the lookup reads the token as valid, the revocation is announced and applied
//! (nothing cached yet), then the lookup caches what it read, which would keep a revoked token alive for a TTL.
//! Every invalidation bumps a generation; a lookup caches its answer only if no invalidation happened meanwhile.

use crate::error::IngestError;
use crate::rate_limit::RateLimiter;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tidemark_shared::outage::StoreHealth;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: Uuid,
    /// Hosts allowed as browser origins; empty allows any origin.
    pub domains: Vec<String>,
}

impl Project {
    /// An origin is allowed when its host is a listed domain or a subdomain of one.
    pub fn allows_origin(&self, origin: &str) -> bool {
        if self.domains.is_empty() {
            return true;
        }
        let Some(host) = url::Url::parse(origin).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase)) else {
            return false;
        };
        self.domains.iter().any(|d| {
            let d = d.trim().trim_start_matches("*.").to_ascii_lowercase();
            host == d || host.strip_suffix(&d).is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

/// Most unknown tokens remembered; about 100 bytes each.
pub const MAX_UNKNOWN_TOKENS: usize = 50_000;

/// Unknown tokens in arrival order, so the oldest go first when the map is full or their time is up.
struct UnknownTokens {
    seen: HashMap<String, Instant>,
    order: VecDeque<(String, Instant)>,
    capacity: usize,
    ttl: Duration,
}

impl UnknownTokens {
    fn new(capacity: usize, ttl: Duration) -> Self {
        Self { seen: HashMap::new(), order: VecDeque::new(), capacity, ttl }
    }

    fn contains(&mut self, token: &str, now: Instant) -> bool {
        self.expire(now);
        self.seen.contains_key(token)
    }

    fn insert(&mut self, token: &str, now: Instant) {
        self.expire(now);
        while self.seen.len() >= self.capacity {
            let Some((oldest, at)) = self.order.pop_front() else { break };
            self.forget_if(&oldest, at);
        }
        self.seen.insert(token.to_owned(), now);
        self.order.push_back((token.to_owned(), now));
    }

    fn expire(&mut self, now: Instant) {
        while let Some((_, at)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            let (token, at) = self.order.pop_front().expect("front exists");
            self.forget_if(&token, at);
        }
    }

    /// Drops `token` unless it was seen again after `at` (then a later entry in `order` stands for it).
    fn forget_if(&mut self, token: &str, at: Instant) {
        if self.seen.get(token) == Some(&at) {
            self.seen.remove(token);
        }
    }

    fn remove(&mut self, token: &str) {
        self.seen.remove(token);
    }

    fn clear(&mut self) {
        self.seen.clear();
        self.order.clear();
    }

    fn len(&self) -> usize {
        self.seen.len()
    }
}

pub struct TokenStore {
    pool: sqlx::PgPool,
    ttl: Duration,
    known: RwLock<HashMap<String, (Arc<Project>, Instant)>>,
    unknown: Mutex<UnknownTokens>,
    /// Bumped by every invalidation; see the module comment.
    generation: AtomicU64,
    /// Database lookups of tokens in neither cache, per second, for the whole hub.
    lookups: RateLimiter,
    /// PostgreSQL's, shared with the salts and `/readyz`: one line per outage, not one per failed lookup.
    health: Arc<StoreHealth>,
}

/// Tokens are short, URL-safe strings; anything else is rejected without a lookup.
pub fn plausible_token(token: &str) -> bool {
    (8..=128).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl TokenStore {
    /// `lookups_per_sec` bounds the queries for tokens in neither cache (bursts of up to twice that); 0 disables
    /// the bound.
    pub fn new(pool: sqlx::PgPool, ttl: Duration, lookups_per_sec: u32) -> Self {
        Self {
            pool,
            ttl,
            known: RwLock::new(HashMap::new()),
            unknown: Mutex::new(UnknownTokens::new(MAX_UNKNOWN_TOKENS, ttl.min(Duration::from_secs(10)))),
            generation: AtomicU64::new(0),
            lookups: RateLimiter::new(lookups_per_sec, lookups_per_sec.saturating_mul(2)),
            health: Arc::new(StoreHealth::new(
                "hub",
                "postgres",
                Duration::from_secs(tidemark_shared::outage::DEFAULT_ALERT_SECS),
            )),
        }
    }

    /// Reports PostgreSQL's failures to `health` (the hub's) instead of the store's own.
    pub fn reporting_to(mut self, health: Arc<StoreHealth>) -> Self {
        self.health = health;
        self
    }

    pub fn health(&self) -> &Arc<StoreHealth> {
        &self.health
    }

    pub async fn resolve(&self, token: &str) -> Result<Arc<Project>, IngestError> {
        if !plausible_token(token) {
            return Err(IngestError::BadToken);
        }
        if let Some((project, at)) = self.known.read().expect("token cache lock").get(token)
            && at.elapsed() < self.ttl
        {
            return Ok(project.clone());
        }
        if self.unknown.lock().expect("token cache lock").contains(token, Instant::now()) {
            return Err(IngestError::BadToken);
        }
        if let Err(retry_after_secs) = self.lookups.take(&Uuid::nil(), 1) {
            return Err(IngestError::Unavailable { retry_after_secs });
        }
        let generation = self.generation();
        let project = self.lookup(token).await?;
        self.remember(token, project.clone(), generation);
        project.ok_or(IngestError::BadToken)
    }

    /// The invalidation generation a lookup starts under; pass it to [`TokenStore::remember`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches a lookup's answer, unless an invalidation happened since `generation` was read: the answer may then
    /// be older than the revocation, and the next request asks again.
    pub fn remember(&self, token: &str, project: Option<Arc<Project>>, generation: u64) {
        let now = Instant::now();
        match project {
            Some(project) => {
                let mut known = self.known.write().expect("token cache lock");
                if self.generation() == generation {
                    known.insert(token.to_owned(), (project, now));
                }
            }
            None => {
                let mut unknown = self.unknown.lock().expect("token cache lock");
                if self.generation() == generation {
                    unknown.insert(token, now);
                }
            }
        }
    }

    /// Whether `token` is cached as valid (for tests and diagnostics).
    pub fn is_cached(&self, token: &str) -> bool {
        self.known.read().expect("token cache lock").contains_key(token)
    }

    /// How many unknown tokens are remembered (for tests and diagnostics).
    pub fn unknown_len(&self) -> usize {
        self.unknown.lock().expect("token cache lock").len()
    }

    /// Forgets a token at once (revocation or rotation announced by the app).
    pub fn invalidate(&self, token: &str) {
        // Bumped under the write lock, so a lookup either sees the new generation or inserts before the removal.
        let mut known = self.known.write().expect("token cache lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        known.remove(token);
        drop(known);
        self.unknown.lock().expect("token cache lock").remove(token);
    }

    async fn lookup(&self, token: &str) -> Result<Option<Arc<Project>>, IngestError> {
        let row: Result<Option<(Uuid, Vec<String>)>, sqlx::Error> = sqlx::query_as(
            "SELECT p.id, p.domains FROM ingest_tokens t JOIN projects p ON p.id = t.project_id \
             WHERE t.token = $1 AND t.revoked_at IS NULL AND p.deleted_at IS NULL",
        )
        .bind(token)
        .fetch_optional(&self.pool)
        .await;
        self.health.record(&row);
        let row = row.map_err(|_| IngestError::Unavailable { retry_after_secs: 5 })?;
        Ok(row.map(|(id, domains)| Arc::new(Project { id, domains })))
    }

    pub fn invalidate_all(&self) {
        let mut known = self.known.write().expect("token cache lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        known.clear();
        drop(known);
        self.unknown.lock().expect("token cache lock").clear();
    }

    pub async fn ping(&self) -> bool {
        let answer = sqlx::query("SELECT 1").execute(&self.pool).await;
        self.health.record(&answer);
        answer.is_ok()
    }
}

/// Listens for revoked or rotated tokens announced by the app and drops them from `store`'s cache. Runs until the
/// process ends, reconnecting with a pause when Redis goes away; after each (re)connect the whole cache is dropped,
/// since announcements made while disconnected were missed.
pub async fn follow_invalidations<S: AsRef<TokenStore>>(redis_url: String, prefix: String, store: Arc<S>) {
    use futures_util::StreamExt;
    let channel = tidemark_shared::pubsub::token_channel(&prefix);
    loop {
        let subscribed = async {
            let client = tidemark_shared::redis::client(&redis_url)?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            anyhow::Ok(pubsub)
        }
        .await;
        match subscribed {
            Ok(mut pubsub) => {
                store.as_ref().as_ref().invalidate_all();
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    match message.get_payload::<String>() {
                        Ok(token) if token == "*" => store.as_ref().as_ref().invalidate_all(),
                        Ok(token) => store.as_ref().as_ref().invalidate(&token),
                        Err(_) => store.as_ref().as_ref().invalidate_all(),
                    }
                }
                tracing::warn!("Token invalidation channel closed; resubscribing.");
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "Cannot follow token invalidations yet; retrying."),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_domains_and_subdomains() {
        let p = Project { id: Uuid::nil(), domains: vec!["example.com".into()] };
        assert!(p.allows_origin("https://example.com"));
        assert!(p.allows_origin("https://www.example.com:8443"));
        assert!(!p.allows_origin("https://badexample.com"));
        assert!(!p.allows_origin("https://example.com.evil.io"));
        assert!(!p.allows_origin("null"));
        assert!(Project { id: Uuid::nil(), domains: vec![] }.allows_origin("https://any.io"));
    }

    proptest::proptest! {
        #[test]
        fn only_short_url_safe_tokens_are_looked_up(token in "\\PC{0,140}") {
            let plausible = plausible_token(&token);
            let shaped = (8..=128).contains(&token.len())
                && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            proptest::prop_assert_eq!(plausible, shaped);
        }

        #[test]
        fn origin_checks_never_panic(origin in "\\PC{0,80}", domain in "[a-z.*-]{0,20}") {
            let p = Project { id: Uuid::nil(), domains: vec![domain] };
            let _ = p.allows_origin(&origin);
        }
    }

    #[test]
    fn unknown_tokens_are_bounded_and_the_oldest_go_first() {
        let t0 = Instant::now();
        let mut unknown = UnknownTokens::new(3, Duration::from_secs(10));
        for (i, token) in ["a", "b", "c"].iter().enumerate() {
            unknown.insert(token, t0 + Duration::from_millis(i as u64));
        }
        unknown.insert("d", t0 + Duration::from_millis(5));
        assert_eq!(unknown.len(), 3);
        assert!(!unknown.contains("a", t0 + Duration::from_millis(6)), "the oldest made room");
        assert!(unknown.contains("b", t0 + Duration::from_millis(6)));
        assert!(unknown.contains("d", t0 + Duration::from_millis(6)));
        // Seen again: the older record of "b" must not evict the newer one.
        unknown.insert("b", t0 + Duration::from_secs(5));
        assert!(unknown.contains("b", t0 + Duration::from_secs(12)), "renewed at 5 s, alive at 12 s");
        assert!(!unknown.contains("d", t0 + Duration::from_secs(12)), "aged out");
        assert_eq!(unknown.len(), 1);
    }

    fn store(lookups_per_sec: u32) -> TokenStore {
        // Never queried by these tests: nothing listens on port 1.
        let pool = tidemark_shared::postgres::connect_lazy("postgres://postgres@127.0.0.1:1/x", 1).unwrap();
        TokenStore::new(pool, Duration::from_secs(60), lookups_per_sec)
    }

    #[tokio::test]
    async fn a_lookup_racing_a_revocation_does_not_cache_the_revoked_token() {
        let tokens = store(10);
        let project = Arc::new(Project { id: Uuid::from_u128(7), domains: vec![] });
        let before = tokens.generation();
        // The lookup read the token as valid; the revocation arrives before it caches the answer.
        tokens.invalidate("tm_revokedtoken");
        tokens.remember("tm_revokedtoken", Some(project.clone()), before);
        assert!(!tokens.is_cached("tm_revokedtoken"), "a revoked token must not come back from a stale lookup");
        // Without an invalidation in between, the answer is cached.
        tokens.remember("tm_validtoken1", Some(project), tokens.generation());
        assert!(tokens.is_cached("tm_validtoken1"));
    }

    #[tokio::test]
    async fn unknown_tokens_never_push_out_known_ones_and_lookups_have_a_budget() {
        let env = tidemark_testkit::test_env().await;
        let tokens = TokenStore::new(env.pg.clone(), Duration::from_secs(60), 5);
        let project = Arc::new(Project { id: Uuid::from_u128(8), domains: vec![] });
        tokens.remember("tm_validtoken1", Some(project), tokens.generation());
        for i in 0..(MAX_UNKNOWN_TOKENS + 10) {
            tokens.remember(&format!("tm_guess{i:08}"), None, tokens.generation());
        }
        assert_eq!(tokens.unknown_len(), MAX_UNKNOWN_TOKENS);
        assert!(tokens.is_cached("tm_validtoken1"), "a flood of bad tokens clears nothing valid");
        assert_eq!(tokens.resolve("tm_validtoken1").await.unwrap().id, Uuid::from_u128(8));
        assert!(matches!(tokens.resolve("tm_guess00000042").await, Err(IngestError::BadToken)), "cached as unknown");
        // Tokens in neither cache cost a query each, from a budget of 10 (twice the rate of 5/s); then a 503
        // without a query.
        let mut answers = Vec::new();
        for i in 0..12 {
            answers.push(tokens.resolve(&format!("tm_newtoken{i:04}")).await);
        }
        let looked_up = answers.iter().filter(|a| matches!(a, Err(IngestError::BadToken))).count();
        let refused = answers.iter().filter(|a| matches!(a, Err(IngestError::Unavailable { .. }))).count();
        assert_eq!((looked_up, refused), (10, 2), "{answers:?}");
    }

    #[test]
    fn token_shape() {
        assert!(plausible_token("tm_abcdefgh1234"));
        assert!(!plausible_token("short"));
        assert!(!plausible_token("tm_abc def ghi"));
        assert!(!plausible_token(&"x".repeat(129)));
    }
}
