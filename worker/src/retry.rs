//! How long a worker waits before trying a failing insert again, and how long one attempt may take. A leaf: the
//! settings check (`config.rs`) and the engine (`runner.rs`) both reason about the same retry cycle.

use std::time::Duration;

/// Longest pause between two retries of a failing insert: also the longest a recovered ClickHouse waits for the
/// backlog to resume, so it stays short; six attempts a minute per worker is no load on anything.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Bounds on one insert attempt, so a hung server turns into a retry instead of a worker stuck for ever (which
/// would let another worker take the batch over while this one still holds it).
pub const INSERT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
pub const INSERT_END_TIMEOUT: Duration = Duration::from_secs(20);

/// The longest a live worker leaves its entries untouched while retrying: one back-off pause plus one attempt.
pub const RETRY_CYCLE: Duration =
    Duration::from_secs(MAX_BACKOFF.as_secs() + INSERT_SEND_TIMEOUT.as_secs() + INSERT_END_TIMEOUT.as_secs());

/// Exponential back-off with jitter, 200 ms doubling up to [`MAX_BACKOFF`]; the jitter keeps many workers that
/// failed together from retrying in lockstep.
pub fn backoff(failures: u32) -> Duration {
    let cap = MAX_BACKOFF.as_millis() as u64;
    let base = 200u64.saturating_mul(1 << failures.min(8).saturating_sub(1)).min(cap);
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(200));
        assert!(backoff(3) >= Duration::from_millis(400));
        assert!(backoff(50) <= MAX_BACKOFF);
    }
}
