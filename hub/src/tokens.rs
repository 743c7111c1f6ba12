//! Project tokens: looked up in PostgreSQL and cached in process, so the hot path rarely leaves memory.
//! Unknown tokens are cached too (briefly), so a flood of bad tokens cannot hammer the database.

use crate::error::IngestError;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
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

type Entry = (Option<Arc<Project>>, Instant);

pub struct TokenStore {
    pool: sqlx::PgPool,
    ttl: Duration,
    negative_ttl: Duration,
    cache: RwLock<HashMap<String, Entry>>,
}

/// Tokens are short, URL-safe strings; anything else is rejected without a lookup.
pub fn plausible_token(token: &str) -> bool {
    (8..=128).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl TokenStore {
    pub fn new(pool: sqlx::PgPool, ttl: Duration) -> Self {
        Self { pool, ttl, negative_ttl: ttl.min(Duration::from_secs(10)), cache: RwLock::new(HashMap::new()) }
    }

    pub async fn resolve(&self, token: &str) -> Result<Arc<Project>, IngestError> {
        if !plausible_token(token) {
            return Err(IngestError::BadToken);
        }
        if let Some((project, at)) = self.cache.read().expect("token cache lock").get(token) {
            let ttl = if project.is_some() { self.ttl } else { self.negative_ttl };
            if at.elapsed() < ttl {
                return project.clone().ok_or(IngestError::BadToken);
            }
        }
        let project = self.lookup(token).await?;
        let mut cache = self.cache.write().expect("token cache lock");
        if cache.len() > 100_000 {
            // Bounded memory under a token-guessing flood; valid tokens are re-fetched on their next use.
            cache.clear();
        }
        cache.insert(token.to_owned(), (project.clone(), Instant::now()));
        project.ok_or(IngestError::BadToken)
    }

    /// Forgets a token at once (revocation or rotation announced by the app).
    pub fn invalidate(&self, token: &str) {
        self.cache.write().expect("token cache lock").remove(token);
    }

    async fn lookup(&self, token: &str) -> Result<Option<Arc<Project>>, IngestError> {
        let row: Option<(Uuid, Vec<String>)> = sqlx::query_as(
            "SELECT p.id, p.domains FROM ingest_tokens t JOIN projects p ON p.id = t.project_id \
             WHERE t.token = $1 AND t.revoked_at IS NULL AND p.deleted_at IS NULL",
        )
        .bind(token)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "Token store unreachable.");
            IngestError::Unavailable { retry_after_secs: 5 }
        })?;
        Ok(row.map(|(id, domains)| Arc::new(Project { id, domains })))
    }

    pub fn invalidate_all(&self) {
        self.cache.write().expect("token cache lock").clear();
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
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
    fn token_shape() {
        assert!(plausible_token("tm_abcdefgh1234"));
        assert!(!plausible_token("short"));
        assert!(!plausible_token("tm_abc def ghi"));
        assert!(!plausible_token(&"x".repeat(129)));
    }
}
