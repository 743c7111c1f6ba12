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
