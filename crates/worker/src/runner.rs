//! The consumer engine shared by every worker kind: gather a batch, write it in one insert, acknowledge it.
//! [`Engine::process_batch`] is one step, so tests drain deterministically; [`run`] loops it until shutdown.

use crate::consumer::{Consumer, Entry};
use crate::sink::{Decoded, Sink, SinkError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing arrived within the wait.
    Idle,
    /// `rows` written and acknowledged, `dead` parked in the dead-letter stream, `skipped` acknowledged unwritten.
    Written { rows: usize, dead: usize, skipped: usize },
    /// The write failed and will be retried with the same entries after `retry_in`.
    Retrying { retry_in: Duration, error: String },
}

pub struct EngineSettings {
    pub batch_size: usize,
    pub max_wait: Duration,
}

pub struct Engine<S: Sink> {
    consumer: Consumer,
    sink: S,
    settings: EngineSettings,
    /// Entries read but not yet written: kept across retries so a failing insert never drops them.
    in_flight: Vec<Entry>,
    failures: u32,
}

impl<S: Sink> Engine<S> {
    pub fn new(consumer: Consumer, sink: S, settings: EngineSettings) -> Self {
        Self { consumer, sink, settings, in_flight: Vec::new(), failures: 0 }
    }

    pub fn consumer(&mut self) -> &mut Consumer {
        &mut self.consumer
    }

    pub fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Reads a batch (unless one is already waiting for a retry), writes it and acknowledges it.
    pub async fn process_batch(&mut self) -> anyhow::Result<Outcome> {
        if self.in_flight.is_empty() {
            self.in_flight = self.gather().await?;
            if self.in_flight.is_empty() {
                return Ok(Outcome::Idle);
            }
        }
        self.write_in_flight().await
    }

    /// Fills a batch: blocks for the first entry, then keeps reading until the batch is full or `max_wait`
    /// has passed since the first entry arrived.
    async fn gather(&mut self) -> anyhow::Result<Vec<Entry>> {
        let size = self.settings.batch_size;
        let first_wait = self.settings.max_wait.as_millis().clamp(1, 1000) as u64;
        let mut batch = self.consumer.read(size, first_wait).await?;
        if batch.is_empty() {
            return Ok(batch);
        }
        let deadline = Instant::now() + self.settings.max_wait;
        while batch.len() < size {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let more = self.consumer.read(size - batch.len(), left.as_millis().max(1) as u64).await?;
            if more.is_empty() {
                break;
            }
            batch.extend(more);
        }
        Ok(batch)
    }

    async fn write_in_flight(&mut self) -> anyhow::Result<Outcome> {
        let mut rows = Vec::with_capacity(self.in_flight.len());
        let mut written = Vec::with_capacity(self.in_flight.len());
        let mut poison = Vec::new();
        let mut skipped = Vec::new();
        for entry in &self.in_flight {
            match self.sink.decode(entry) {
                Decoded::Row(row) => {
                    rows.push(row);
                    written.push(entry);
                }
                Decoded::Skip => skipped.push(entry),
                Decoded::Poison(why) => poison.push((entry, why)),
            }
        }

        if !rows.is_empty()
            && let Err(err) = self.sink.write(&rows).await
        {
            match err {
                SinkError::Retryable(error) => {
                    self.failures += 1;
                    let retry_in = backoff(self.failures);
                    if self.failures == 1 || self.failures.is_power_of_two() {
                        tracing::warn!(
                            group = self.sink.group(),
                            entries = self.in_flight.len(),
                            failures = self.failures,
                            error,
                            "Insert failed; retrying."
                        );
                    }
                    return Ok(Outcome::Retrying { retry_in, error });
                }
                SinkError::Permanent(error) => {
                    // Issue 4 narrows this down to the offending entries; until then the whole batch is parked.
                    tracing::error!(
                        group = self.sink.group(),
                        entries = written.len(),
                        error,
                        "ClickHouse rejected a batch; parking it."
                    );
                    poison.extend(written.drain(..).map(|e| (e, error.clone())));
                }
            }
        }

        let dead = poison.len();
        for (entry, why) in &poison {
            self.consumer.dead_letter(entry, why, 1).await?;
        }
        let acked: Vec<&Entry> = written.iter().chain(skipped.iter()).copied().collect();
        self.consumer.ack(&acked).await?;
        let outcome = Outcome::Written { rows: written.len(), dead, skipped: skipped.len() };
        self.in_flight.clear();
        self.failures = 0;
        Ok(outcome)
    }
}

/// Exponential back-off with jitter, 200 ms doubling up to 30 s.
fn backoff(failures: u32) -> Duration {
    let base = 200u64.saturating_mul(1 << failures.min(8).saturating_sub(1)).min(30_000);
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

/// Runs steps until `shutdown` turns true, then finishes the batch in flight (bounded by `grace`) and returns.
pub async fn run<S: Sink>(
    mut engine: Engine<S>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> anyhow::Result<()> {
    let mut redis_failures = 0u32;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match engine.process_batch().await {
            Ok(Outcome::Retrying { retry_in, .. }) => {
                tokio::select! {
                    _ = tokio::time::sleep(retry_in) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Ok(_) => redis_failures = 0,
            Err(err) => {
                redis_failures += 1;
                let wait = backoff(redis_failures);
                if redis_failures == 1 || redis_failures.is_power_of_two() {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        failures = redis_failures,
                        "Stream read or ack failed; retrying."
                    );
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
    if engine.has_in_flight() {
        let deadline = Instant::now() + grace;
        while engine.has_in_flight() && Instant::now() < deadline {
            match engine.process_batch().await {
                Ok(Outcome::Retrying { retry_in, .. }) => {
                    tokio::time::sleep(retry_in.min(deadline - Instant::now())).await
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        if engine.has_in_flight() {
            tracing::warn!("Shut down with a batch unwritten; it stays pending and another worker will reclaim it.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(200));
        assert!(backoff(3) >= Duration::from_millis(400));
        assert!(backoff(50) <= Duration::from_secs(30));
    }
}
