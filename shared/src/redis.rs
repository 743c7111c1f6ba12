//! Redis connections. redis-rs answers "timed out" after 500 ms by default, which breaks blocking stream
//! reads, so every connection here waits as long as the command needs; callers bound their own waits.

use anyhow::Context;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use std::time::Duration;

pub fn client(url: &str) -> anyhow::Result<redis::Client> {
    redis::Client::open(url).context("Redis URL is not valid")
}

pub async fn connect(client: &redis::Client) -> anyhow::Result<MultiplexedConnection> {
    let config =
        AsyncConnectionConfig::new().set_response_timeout(None).set_connection_timeout(Some(Duration::from_secs(5)));
    client.get_multiplexed_async_connection_with_config(&config).await.context("connecting to Redis")
}

/// What in a Redis server's settings can lose events the hub already answered 202, one sentence each, from the
/// values of `CONFIG GET appendonly appendfsync maxmemory-policy` (pairs of name and value).
pub fn durability_risks(settings: &[(String, String)]) -> Vec<String> {
    let get = |name: &str| settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let mut risks = Vec::new();
    if get("appendonly") == Some("no") {
        risks.push("appendonly is no: a Redis restart loses every queued event; set appendonly yes".to_owned());
    } else if get("appendfsync") == Some("everysec") {
        risks.push(
            "appendfsync is everysec: while an fsync is slow Redis holds writes back for up to 2 s after answering, \
             and a crash then loses answered events; set appendfsync no (or always)"
                .to_owned(),
        );
    }
    if let Some(policy) = get("maxmemory-policy").filter(|p| *p != "noeviction") {
        risks.push(format!(
            "maxmemory-policy is {policy}: when Redis fills it may evict the stream itself, losing queued events; set \
             maxmemory-policy noeviction (the hub answers 503 before the stream grows too large)"
        ));
    }
    risks
}

/// Logs [`durability_risks`] of the server behind `conn` at WARN, once at start. Where `CONFIG` is not allowed
/// (managed Redis), says so at INFO: the operator has to check these settings by hand.
pub async fn warn_about_durability(conn: &mut MultiplexedConnection) {
    let mut settings = Vec::new();
    for name in ["appendonly", "appendfsync", "maxmemory-policy"] {
        match redis::cmd("CONFIG").arg("GET").arg(name).query_async::<Vec<String>>(conn).await {
            Ok(pair) => settings.extend(pair.chunks_exact(2).map(|kv| (kv[0].clone(), kv[1].clone()))),
            Err(e) => {
                tracing::info!(
                    error = %e,
                    "Cannot read Redis's durability settings (CONFIG GET refused): make sure it runs appendonly yes, \
                     appendfsync no or always, and maxmemory-policy noeviction."
                );
                return;
            }
        }
    }
    for risk in durability_risks(&settings) {
        tracing::warn!(risk, "Redis can lose accepted events.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn safe_settings_have_no_risk() {
        let safe = settings(&[("appendonly", "yes"), ("appendfsync", "no"), ("maxmemory-policy", "noeviction")]);
        assert!(durability_risks(&safe).is_empty());
    }

    #[test]
    fn each_risky_setting_is_named() {
        let risky =
            settings(&[("appendonly", "yes"), ("appendfsync", "everysec"), ("maxmemory-policy", "allkeys-lru")]);
        let risks = durability_risks(&risky);
        assert_eq!(risks.len(), 2, "{risks:?}");
        assert!(risks[0].starts_with("appendfsync is everysec"), "{risks:?}");
        assert!(risks[1].starts_with("maxmemory-policy is allkeys-lru"), "{risks:?}");
        let off = durability_risks(&settings(&[("appendonly", "no"), ("appendfsync", "everysec")]));
        assert_eq!(off.len(), 1);
        assert!(off[0].starts_with("appendonly is no"));
    }
}
