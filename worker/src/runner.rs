//! The consumer engine shared by every worker kind: gather a batch, write it in one insert, acknowledge it.
//! [`Engine::process_batch`] is one step, so tests drain deterministically; [`run`] loops it until shutdown.
//!
//! What can go wrong, and what the engine does about it:
//! - ClickHouse or the network is down: the batch stays in memory *and* pending in Redis, and the same entries are
//!   retried with exponential back-off and jitter. Before each retry the engine refreshes its claim on them, so no
//!   other worker takes them over while this one is alive.
//! - ClickHouse rejects the data: the batch is split in halves until the rejected entries are isolated; the rest is
//!   written and only the rejected entries go to the dead-letter stream, with the server's error.
//! - A consumer died holding entries: after `claim_idle` another worker takes them over (XAUTOCLAIM). An entry that
//!   has been handed out more than `max_deliveries` times (it keeps killing its consumers) is dead-lettered.

use crate::consumer::{Consumer, Entry};
use crate::metrics as m;
use crate::sink::{Decoded, Sink, SinkError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Longest pause between two retries of a failing insert: also the longest a recovered ClickHouse waits for the
/// backlog to resume, so it stays short; six attempts a minute per worker is no load on anything.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing arrived within the wait.
    Idle,
    /// `rows` written and acknowledged, `dead` parked in the dead-letter stream, `skipped` acknowledged unwritten.
    Written { rows: usize, dead: usize, skipped: usize },
    /// The write failed and will be retried with the entries not yet written after `retry_in`.
    Retrying { retry_in: Duration, error: String },
}

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub batch_size: usize,
    pub max_wait: Duration,
}

impl EngineSettings {
    pub fn from_config(config: &crate::WorkerConfig) -> Self {
        Self { batch_size: config.batch_size, max_wait: Duration::from_millis(config.batch_max_wait_ms) }
    }
}

/// How the engine treats entries other consumers left behind; see [`Engine::with_recovery`].
#[derive(Debug, Clone)]
pub struct Recovery {
    /// Entries idle this long in another consumer's pending list are taken over.
    pub claim_idle: Duration,
    /// Deliveries after which an entry is dead-lettered instead of tried again.
    pub max_deliveries: u64,
}

impl Default for Recovery {
    fn default() -> Self {
        let defaults = crate::WorkerConfig::default();
        Self::from_config(&defaults)
    }
}

impl Recovery {
    pub fn from_config(config: &crate::WorkerConfig) -> Self {
        Self { claim_idle: Duration::from_millis(config.claim_idle_ms), max_deliveries: config.max_deliveries }
    }
}

/// Running totals of one engine, for the periodic summary line, tests and the benchmark.
#[derive(Debug, Default)]
pub struct Stats {
    pub batches: AtomicU64,
    pub rows: AtomicU64,
    pub inserts: AtomicU64,
    pub retries: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub reclaimed: AtomicU64,
}

impl Stats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

pub struct Engine<S: Sink> {
    consumer: Consumer,
    sink: S,
    settings: EngineSettings,
    recovery: Recovery,
    /// Entries read but not yet written: kept across retries so a failing insert never drops them.
    in_flight: Vec<Entry>,
    failures: u32,
    stats: Arc<Stats>,
    /// Set by [`run`]: once true, a batch being gathered stops waiting for more entries and is written at once.
    stop: Option<watch::Receiver<bool>>,
    /// Jobs per entry in the last read, to turn a batch size in jobs into a read count in entries.
    jobs_per_entry: f64,
}

/// The longest single blocking read: between reads the engine notices a shutdown, so SIGTERM is not kept waiting
/// for a partly filled batch's `max_wait`. (Cancelling a blocked XREADGROUP instead could lose its reply, leaving
/// entries pending until another worker's claim idle time.)
const READ_SLICE: Duration = Duration::from_millis(250);

/// How a batch's rows fared, by index into the rows.
struct WriteReport {
    written: Vec<bool>,
    rejected: Vec<(usize, String)>,
    /// Set when the server or network failed: the rows neither written nor rejected are retried.
    retry: Option<String>,
}

impl<S: Sink> Engine<S> {
    pub fn new(consumer: Consumer, sink: S, settings: EngineSettings) -> Self {
        Self {
            consumer,
            sink,
            settings,
            recovery: Recovery::default(),
            in_flight: Vec::new(),
            failures: 0,
            stats: Arc::default(),
            stop: None,
            jobs_per_entry: 16.0,
        }
    }

    pub fn with_recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }

    pub fn consumer(&mut self) -> &mut Consumer {
        &mut self.consumer
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    pub fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Reads a batch (unless one is already waiting for a retry), writes it and acknowledges it.
    pub async fn process_batch(&mut self) -> anyhow::Result<Outcome> {
        let mut dead = 0;
        if self.in_flight.is_empty() {
            let (batch, gave_up) = self.gather().await?;
            self.in_flight = batch;
            dead = gave_up;
            if self.in_flight.is_empty() {
                return Ok(if dead > 0 { Outcome::Written { rows: 0, dead, skipped: 0 } } else { Outcome::Idle });
            }
        } else if self.failures > 0 {
            // A retry: keep our claim fresh, and drop what another worker took over while we were waiting.
            let ours = self.consumer.keep(&self.in_flight).await?;
            self.in_flight.retain(|e| ours.contains(&e.id));
            if self.in_flight.is_empty() {
                self.failures = 0;
                return Ok(Outcome::Written { rows: 0, dead: 0, skipped: 0 });
            }
        }
        let mut outcome = self.write_in_flight().await?;
        if let Outcome::Written { dead: d, .. } = &mut outcome {
            *d += dead;
        }
        Ok(outcome)
    }

    /// Fills a batch of about `batch_size` jobs: first entries other consumers abandoned, then new ones. Blocks for
    /// the first entry, then keeps reading until the batch is full or `max_wait` has passed since the first entry
    /// arrived. Returns the batch and how many jobs of abandoned entries were dead-lettered for too many deliveries.
    async fn gather(&mut self) -> anyhow::Result<(Vec<Entry>, usize)> {
        let size = self.settings.batch_size;
        let claim_idle = self.recovery.claim_idle.as_millis() as u64;
        let claimed = self.consumer.claim_stale(claim_idle, self.entries_for(size)).await?;
        let mut batch = Vec::with_capacity(self.entries_for(size).min(10_000));
        let (mut jobs, mut dead) = (0, 0);
        if !claimed.is_empty() {
            bump(&self.stats.reclaimed, claimed.len() as u64);
            metrics::counter!(m::RECLAIMED, "group" => self.sink.group()).increment(claimed.len() as u64);
            tracing::info!(group = self.sink.group(), entries = claimed.len(), "Took over entries a consumer left.");
        }
        for entry in claimed {
            if entry.deliveries > self.recovery.max_deliveries {
                let why = format!(
                    "gave up after {} deliveries: every consumer holding it stopped before acknowledging it",
                    entry.deliveries - 1
                );
                let every_job: Vec<(Option<usize>, String)> = match entry.jobs() {
                    Ok(all) => (0..all.len()).map(|i| (Some(i), why.clone())).collect(),
                    Err(_) => vec![(None, why)],
                };
                dead += self.park(&entry, &every_job).await?;
            } else {
                jobs += entry.job_count();
                batch.push(entry);
            }
        }
        if jobs >= size {
            return Ok((batch, dead));
        }
        let first_wait = if batch.is_empty() { self.settings.max_wait.min(READ_SLICE * 2) } else { Duration::ZERO };
        jobs += self.read_into(&mut batch, size - jobs, first_wait).await?;
        if batch.is_empty() {
            return Ok((batch, dead));
        }
        let deadline = Instant::now() + self.settings.max_wait;
        while jobs < size && !self.stopping() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            jobs += self.read_into(&mut batch, size - jobs, left.min(READ_SLICE).max(Duration::from_millis(1))).await?;
        }
        Ok((batch, dead))
    }

    /// Stream reads count entries and a batch counts jobs: how many entries hold about `jobs` jobs, from what the
    /// last reads held (a hub files one entry per write, one job at low load, dozens under load).
    fn entries_for(&self, jobs: usize) -> usize {
        ((jobs as f64 / self.jobs_per_entry).ceil() as usize).clamp(1, jobs.max(1))
    }

    /// Reads entries holding up to about `jobs` jobs into `batch`; returns the jobs read.
    async fn read_into(&mut self, batch: &mut Vec<Entry>, jobs: usize, block: Duration) -> anyhow::Result<usize> {
        let entries = self.consumer.read(self.entries_for(jobs), block.as_millis() as u64).await?;
        let read: usize = entries.iter().map(Entry::job_count).sum();
        if !entries.is_empty() {
            self.jobs_per_entry = (read as f64 / entries.len() as f64).max(1.0);
        }
        batch.extend(entries);
        Ok(read)
    }

    async fn write_in_flight(&mut self) -> anyhow::Result<Outcome> {
        let mut rows = Vec::with_capacity(self.in_flight.len());
        // `origin[r]` is (entry index in `in_flight`, job index in the entry) of `rows[r]`.
        let mut origin = Vec::with_capacity(self.in_flight.len());
        // Per entry, the jobs to park with their errors: a job index, or None for an entry that cannot be split.
        let mut parked: Vec<Vec<(Option<usize>, String)>> = vec![Vec::new(); self.in_flight.len()];
        let mut skipped = 0;
        for (i, entry) in self.in_flight.iter().enumerate() {
            match entry.jobs() {
                Err(why) => parked[i].push((None, format!("undecodable: {why}"))),
                Ok(jobs) => {
                    for (j, job) in jobs.iter().enumerate() {
                        match self.sink.decode(job) {
                            Decoded::Row(row) => {
                                rows.push(row);
                                origin.push((i, j));
                            }
                            Decoded::Skip => skipped += 1,
                            Decoded::Poison(why) => parked[i].push((Some(j), format!("undecodable: {why}"))),
                        }
                    }
                }
            }
        }

        let report = self.write_isolating(&rows).await;
        // Per entry, its rows neither written nor rejected: an entry with none left is done.
        let mut unwritten = vec![0usize; self.in_flight.len()];
        for (row, ok) in report.written.iter().enumerate() {
            if !ok {
                unwritten[origin[row].0] += 1;
            }
        }
        for (row, error) in &report.rejected {
            let (i, j) = origin[*row];
            unwritten[i] -= 1;
            parked[i].push((Some(j), format!("rejected by ClickHouse: {error}")));
        }
        if !report.rejected.is_empty() {
            tracing::warn!(
                group = self.sink.group(),
                jobs = report.rejected.len(),
                error = report.rejected[0].1,
                "ClickHouse rejected jobs; moving them to the dead-letter stream."
            );
        }
        let done: Vec<bool> = unwritten.iter().map(|&n| n == 0).collect();
        let written = report.written.iter().filter(|ok| **ok).count();
        // Entries with parked jobs are acknowledged with their dead letters, atomically; the rest in one round trip.
        let clean: Vec<&Entry> = self
            .in_flight
            .iter()
            .enumerate()
            .filter(|(i, _)| done[*i] && parked[*i].is_empty())
            .map(|(_, e)| e)
            .collect();
        self.consumer.ack(&clean).await?;
        let mut dead = 0;
        for (i, jobs) in parked.iter().enumerate() {
            if done[i] && !jobs.is_empty() {
                let entry = self.in_flight[i].clone();
                dead += self.park(&entry, jobs).await?;
            }
        }
        let group = self.sink.group();
        bump(&self.stats.rows, written as u64);
        metrics::counter!(m::ROWS, "group" => group).increment(written as u64);

        if let Some(error) = report.retry {
            let mut keep = done.iter();
            self.in_flight.retain(|_| !keep.next().copied().unwrap_or(false));
            self.failures += 1;
            bump(&self.stats.retries, 1);
            metrics::counter!(m::RETRIES, "group" => group).increment(1);
            let retry_in = backoff(self.failures);
            // First failure and then only at powers of two: an outage of hours logs a few dozen lines, not millions.
            if self.failures == 1 || self.failures.is_power_of_two() {
                tracing::warn!(
                    group,
                    entries = self.in_flight.len(),
                    failures = self.failures,
                    retry_in_ms = retry_in.as_millis() as u64,
                    error,
                    "Insert failed; keeping the batch and retrying."
                );
            }
            return Ok(Outcome::Retrying { retry_in, error });
        }

        if self.failures > 0 {
            tracing::info!(group, failures = self.failures, "Insert succeeded after retrying.");
        }
        let outcome = Outcome::Written { rows: written, dead, skipped };
        bump(&self.stats.batches, 1);
        metrics::counter!(m::BATCHES, "group" => group).increment(1);
        metrics::histogram!(m::BATCH_ROWS, "group" => group).record(written as f64);
        self.in_flight.clear();
        self.failures = 0;
        Ok(outcome)
    }

    /// Writes `rows` in one insert; when ClickHouse rejects the data, splits the rows in halves until every rejected
    /// row stands alone, so one bad entry costs about 2·log2(batch) extra inserts and holds nothing else back.
    async fn write_isolating(&mut self, rows: &[S::Row]) -> WriteReport {
        let mut report = WriteReport { written: vec![false; rows.len()], rejected: Vec::new(), retry: None };
        // A stack of row ranges still to write, as (start, end).
        let mut ranges: Vec<(usize, usize)> = if rows.is_empty() { Vec::new() } else { vec![(0, rows.len())] };
        let group = self.sink.group();
        while let Some((start, end)) = ranges.pop() {
            let range = start..end;
            let started = Instant::now();
            let result = self.sink.write(&rows[range.clone()]).await;
            bump(&self.stats.inserts, 1);
            metrics::histogram!(m::INSERT_SECONDS, "group" => group).record(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => report.written[range].iter_mut().for_each(|w| *w = true),
                Err(SinkError::Permanent(error)) if range.len() == 1 => report.rejected.push((range.start, error)),
                Err(SinkError::Permanent(_)) => {
                    let mid = start + range.len() / 2;
                    ranges.push((mid, end));
                    ranges.push((start, mid));
                }
                Err(SinkError::Retryable(error)) => {
                    report.retry = Some(error);
                    break;
                }
            }
        }
        report
    }

    /// Parks jobs of `entry` and acknowledges it; returns the dead letters written.
    async fn park(&mut self, entry: &Entry, jobs: &[(Option<usize>, String)]) -> redis::RedisResult<usize> {
        self.consumer.dead_letter(entry, jobs, entry.deliveries).await?;
        bump(&self.stats.dead_lettered, jobs.len() as u64);
        metrics::counter!(m::DEAD_LETTERED, "group" => self.sink.group()).increment(jobs.len() as u64);
        Ok(jobs.len())
    }
}

/// Exponential back-off with jitter, 200 ms doubling up to [`MAX_BACKOFF`]; the jitter keeps many workers that
/// failed together from retrying in lockstep.
fn backoff(failures: u32) -> Duration {
    let cap = MAX_BACKOFF.as_millis() as u64;
    let base = 200u64.saturating_mul(1 << failures.min(8).saturating_sub(1)).min(cap);
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

/// Runs steps until `shutdown` turns true, then finishes the batch in flight (bounded by `grace`) and returns.
pub async fn run<S: Sink>(
    mut engine: Engine<S>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> anyhow::Result<()> {
    engine.stop = Some(shutdown.clone());
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
                    tokio::time::sleep(retry_in.min(deadline.saturating_duration_since(Instant::now()))).await
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        if engine.has_in_flight() {
            tracing::warn!("Shut down with a batch unwritten; it stays pending and another worker will take it over.");
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
        assert!(backoff(50) <= super::MAX_BACKOFF);
    }
}
