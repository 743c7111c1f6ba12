//! Redis pub/sub channels between services. Messages are hints that make caches fresh sooner; every cache still
//! expires on its own, so a lost message only delays an update by one cache lifetime.

/// The app publishes a token here when it revokes or rotates it; every hub drops it from its cache at once.
/// The payload `*` means "drop every cached token".
pub fn token_channel(prefix: &str) -> String {
    format!("{prefix}:tokens:changed")
}

pub async fn announce_token_change(redis_url: &str, prefix: &str, token: &str) -> anyhow::Result<u64> {
    let client = crate::redis::client(redis_url)?;
    let mut conn = crate::redis::connect(&client).await?;
    let receivers: u64 = redis::cmd("PUBLISH").arg(token_channel(prefix)).arg(token).query_async(&mut conn).await?;
    Ok(receivers)
}
