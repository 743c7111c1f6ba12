//! The app's handle on ClickHouse, connected on first use: the app starts (and serves sign-in, settings and its
//! health page) while ClickHouse is down, and reading surfaces (the query API, realtime, project deletion) answer
//! 503 until it is back.

use tidemark_shared::clickhouse::{ClickHouse, Endpoint};
use tokio::sync::OnceCell;

pub struct AnalyticsStore {
    endpoint: Endpoint,
    connected: OnceCell<ClickHouse>,
}

impl AnalyticsStore {
    pub fn new(endpoint: Endpoint) -> Self {
        AnalyticsStore { endpoint, connected: OnceCell::new() }
    }

    /// The connected client; a failed connection is not remembered, so the next call tries again.
    pub async fn get(&self) -> anyhow::Result<&ClickHouse> {
        self.connected.get_or_try_init(|| ClickHouse::connect(self.endpoint.clone())).await
    }
}
