//! The consumer engine shared by every worker kind: gather a batch, write it in one insert, acknowledge it.
//! [`Engine::process_batch`] is one step, so tests drain deterministically; [`run`] loops it until shutdown.
//!
//! What can go wrong, and what the engine does about it:
//! - ClickHouse or the network is down or overloaded (too many parts, out of memory): the batch stays in memory
//!   *and* pending in Redis, and the same entries are retried with exponential back-off and jitter. Before each
//!   retry the engine refreshes its claim on them, so no other worker takes them over while this one is alive.
//!   When ClickHouse did not answer at all (refused, reset, timed out), [`run`] asks it `SELECT 1` every
//!   [`PROBE_EVERY`] during the pause and retries as soon as it answers: a restarted server gets the backlog
//!   within about a second, while an overloaded one (it answers, with an error code) keeps its back-off.
//! - Redis is down: [`run`] opens a new connection at least once a second and carries on where it stopped.
//! - ClickHouse rejects the data: the batch is split in halves until the rejected rows are isolated; the rest is
//!   written and only rows rejected while other rows of the batch were written go to the dead-letter stream.
//! - ClickHouse refuses every row alike (a missing column during a rolling upgrade, a broken materialized view):
//!   no row is to blame. The engine stops splitting, keeps the batch, backs off, and logs an ERROR once per streak.
//! - A consumer died holding entries: after `claim_idle` another worker takes them over (XAUTOCLAIM). An entry that
//!   has been handed out more than `max_deliveries` times without a worker surviving it is dead-lettered.
//! - A graceful stop with a batch unwritten hands it back uncounted, for the next worker to take at once.

use crate::consumer::{Consumer, Entry};
use crate::metrics as m;
use crate::retry::backoff;
use crate::sink::{Decoded, Sink, SinkError, error_code};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tidemark_shared::outage::StoreHealth;
use tokio::sync::watch;
use tokio::time::Instant;

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

/// How the engine treats entries other consumers left behind, and where it parks what it gives up on; see
/// [`Engine::with_recovery`].
#[derive(Debug, Clone)]
pub struct Recovery {
    /// Entries idle this long in another consumer's pending list are taken over.
    pub claim_idle: Duration,
    /// Deliveries after which an entry is dead-lettered instead of tried again.
    pub max_deliveries: u64,
    /// The dead-letter stream of a shard keeps at most this many dead letters, the newest.
    pub dead_letter_max_len: u64,
}

impl Default for Recovery {
    fn default() -> Self {
        let defaults = crate::WorkerConfig::default();
        Self::from_config(&defaults)
    }
}

impl Recovery {
    pub fn from_config(config: &crate::WorkerConfig) -> Self {
        Self {
            claim_idle: Duration::from_millis(config.claim_idle_ms),
            max_deliveries: config.max_deliveries,
            dead_letter_max_len: config.dead_letter_max_len,
        }
    }
}

/// What an engine knows of its stores, for logs, metrics and the worker's `/readyz`: Redis fails in [`run`]'s
/// reads and acks, ClickHouse when an insert gets no answer at all (an answer with an error code means the server
/// is up).
#[derive(Clone)]
pub struct Health {
    pub redis: Arc<StoreHealth>,
    pub clickhouse: Arc<StoreHealth>,
}

impl Health {
    /// A store failing for `alert_after` is logged as an ERROR (the first failure is a WARN).
    pub fn new(group: &'static str, alert_after: Duration) -> Self {
        let store = |name| Arc::new(StoreHealth::new("worker", name, alert_after).for_group(group));
        Self { redis: store("redis"), clickhouse: store("clickhouse") }
    }

    /// Whether both stores work, and the JSON naming each.
    pub fn readiness(&self) -> (bool, String) {
        tidemark_shared::outage::readiness(&[("redis", self.redis.is_up()), ("clickhouse", self.clickhouse.is_up())])
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
    /// Attempts where ClickHouse refused every row alike.
    pub systemic: AtomicU64,
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
    /// Set while ClickHouse refuses every row: the next retry first tops the batch up with new entries, so a lone
    /// bad row gets neighbours to tell it apart from a refusing table.
    systemic: bool,
    health: Health,
    /// Asks ClickHouse whether it answers again while a retry waits; see [`Engine::with_probe`].
    probe: Option<clickhouse::Client>,
}

/// Longest pause between two attempts to reach a failing Redis.
const REDIS_RETRY_CAP: Duration = Duration::from_secs(1);

/// How often an unreachable ClickHouse is asked whether it is back while a retry waits: the backlog resumes within
/// about this long of the server answering, however long the back-off pause.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Longest wait for one probe's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Most jobs an entry is taken to hold when sizing reads: the hub's script files at most 64 jobs per call (one
/// request of more makes one bigger entry). A read asks for at most `batch_size / 64` entries, so even after a
/// quiet period (one job per entry) a burst of full entries fills a batch to at most twice `batch_size`.
const FULL_ENTRY_JOBS: usize = 64;

/// Rows tried alone when the whole batch and both its halves were rejected with the same error: if they are
/// rejected too, the table refuses everything.
const PROBES: usize = 3;

/// The longest single blocking read: between reads the engine notices a shutdown, so SIGTERM is not kept waiting
/// for a partly filled batch's `max_wait`. (Cancelling a blocked XREADGROUP instead could lose its reply, leaving
/// entries pending until another worker's claim idle time.)
const READ_SLICE: Duration = Duration::from_millis(250);

/// How a batch's rows fared, by index into the rows.
struct WriteReport {
    written: Vec<bool>,
    rejected: Vec<(usize, String)>,
    /// Set when the rows neither written nor rejected are to be retried.
    retry: Option<Retry>,
}

enum Retry {
    /// ClickHouse or the network is down or overloaded.
    Outage(String),
    /// ClickHouse refuses every row alike: the table's fault, not the data's.
    Systemic(String),
}

impl Retry {
    fn of(error: SinkError) -> Self {
        match error {
            SinkError::Systemic(e) | SinkError::Rejected(e) => Retry::Systemic(e),
            SinkError::Retryable(e) => Retry::Outage(e),
        }
    }
}

impl<S: Sink> Engine<S> {
    pub fn new(consumer: Consumer, sink: S, settings: EngineSettings) -> Self {
        let alert_after = Duration::from_secs(tidemark_shared::outage::DEFAULT_ALERT_SECS);
        let health = Health::new(sink.group(), alert_after);
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
            systemic: false,
            health,
            probe: None,
        }
    }

    pub fn with_recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }

    /// Reports to `health` (shared with the worker's `/readyz`) instead of the engine's own.
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Lets [`run`] ask ClickHouse (`SELECT 1`, no database needed) whether it is back while a retry after an
    /// unanswered insert waits, and retry at once when it is. Without it the retry waits its whole back-off pause
    /// (up to [`crate::retry::MAX_BACKOFF`]).
    pub fn with_probe(mut self, endpoint: &tidemark_shared::clickhouse::Endpoint) -> Self {
        let client = clickhouse::Client::default()
            .with_url(endpoint.base_url.clone())
            .with_user(endpoint.user.clone())
            .with_password(endpoint.password.clone())
            .with_validation(false);
        self.probe = Some(client);
        self
    }

    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Whether ClickHouse answers a trivial query now.
    async fn clickhouse_answers(&self) -> bool {
        let Some(client) = &self.probe else { return false };
        let query = client.query("SELECT 1").fetch_one::<u8>();
        matches!(tokio::time::timeout(PROBE_TIMEOUT, query).await, Ok(Ok(1)))
    }

    /// Waits `pause` before a retry, or less: when the last attempt got no answer at all and ClickHouse answers a
    /// probe, or when `shutdown` changes.
    async fn pause_before_retry(&self, pause: Duration, error: &str, shutdown: &mut watch::Receiver<bool>) {
        let deadline = Instant::now() + pause;
        let probing = self.probe.is_some() && unanswered(error);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let nap = if probing { left.min(PROBE_EVERY) } else { left };
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = shutdown.changed() => return,
            }
            if probing {
                self.health.clickhouse.check_alert();
                if self.clickhouse_answers().await {
                    return;
                }
            }
        }
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
            let held: usize = self.in_flight.iter().map(Entry::job_count).sum();
            if self.systemic && held < self.settings.batch_size {
                let mut batch = std::mem::take(&mut self.in_flight);
                let read = self.read_into(&mut batch, self.settings.batch_size - held, Duration::ZERO).await;
                self.in_flight = batch;
                read?;
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
        let mut batch = Vec::new();
        let (mut jobs, mut dead) = (0, 0);
        // Entries others left, in slices sized like reads, until the batch is full or none is left idle enough.
        for _ in 0..64 {
            let claimed = self.consumer.claim_stale(claim_idle, self.entries_for(size - jobs)).await?;
            if claimed.is_empty() {
                break;
            }
            let held: usize = claimed.iter().map(Entry::job_count).sum();
            self.jobs_per_entry = (held as f64 / claimed.len() as f64).max(1.0);
            bump(&self.stats.reclaimed, claimed.len() as u64);
            metrics::counter!(m::RECLAIMED, "group" => self.sink.group()).increment(claimed.len() as u64);
            tracing::info!(group = self.sink.group(), entries = claimed.len(), "Took over entries a consumer left.");
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
                break;
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
    /// last reads held (a hub files one entry per write, one job at low load, dozens under load), but never more
    /// than full entries would fill a batch with, as the last read says nothing certain about the next.
    fn entries_for(&self, jobs: usize) -> usize {
        let estimate = (jobs as f64 / self.jobs_per_entry).ceil() as usize;
        estimate.clamp(1, self.settings.batch_size.div_ceil(FULL_ENTRY_JOBS).max(1))
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
        let group = self.sink.group();
        for (i, entry) in self.in_flight.iter().enumerate() {
            if entry.target_group().is_some_and(|target| target != group) {
                skipped += entry.job_count();
                continue;
            }
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
        let clickhouse_was_down = !self.health.clickhouse.is_up();
        match &report.retry {
            Some(Retry::Outage(error)) if unanswered(error) => self.health.clickhouse.failed(error),
            // Any answer, even a refusal, means the server is there.
            _ if !rows.is_empty() => self.health.clickhouse.succeeded(),
            _ => {}
        }
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
        bump(&self.stats.rows, written as u64);
        metrics::counter!(m::ROWS, "group" => group).increment(written as u64);

        if let Some(retry) = report.retry {
            let mut keep = done.iter();
            self.in_flight.retain(|_| !keep.next().copied().unwrap_or(false));
            self.failures += 1;
            bump(&self.stats.retries, 1);
            metrics::counter!(m::RETRIES, "group" => group).increment(1);
            let retry_in = backoff(self.failures);
            // This worker survived the attempt: the delivery is not held against the entries (see `keep`).
            self.consumer.keep(&self.in_flight).await?;
            let entries = self.in_flight.len();
            let error = match retry {
                Retry::Systemic(error) => {
                    bump(&self.stats.systemic, 1);
                    metrics::counter!(m::SYSTEMIC, "group" => group).increment(1);
                    if !self.systemic {
                        tracing::error!(
                            group,
                            entries,
                            retry_in_ms = retry_in.as_millis() as u64,
                            error,
                            "ClickHouse refuses every row of the batch alike (schema, view or permissions?); keeping \
                             it and retrying. Nothing is dead-lettered until rows are written again."
                        );
                    }
                    self.systemic = true;
                    error
                }
                Retry::Outage(error) => {
                    // An unanswered insert is the store's outage, logged by its health. An overload: the first
                    // failure and then only at powers of two, so hours of it log a few dozen lines.
                    if !unanswered(&error) && (self.failures == 1 || self.failures.is_power_of_two()) {
                        tracing::warn!(
                            group,
                            entries,
                            failures = self.failures,
                            retry_in_ms = retry_in.as_millis() as u64,
                            error,
                            "Insert failed; keeping the batch and retrying."
                        );
                    }
                    error
                }
            };
            return Ok(Outcome::Retrying { retry_in, error });
        }

        if self.systemic {
            tracing::info!(group, failures = self.failures, "ClickHouse accepts the rows again.");
            self.systemic = false;
        }
        if self.failures > 0 && !clickhouse_was_down {
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
    ///
    /// A row is only blamed when other rows of the batch were written. When the whole batch, both its halves and a
    /// few rows tried alone are all rejected with the same error, the table refuses everything (a broken view, a
    /// schema out of step): splitting further would only dead-letter good data one row at a time, so the batch is
    /// kept for a retry instead. Overloads and outages are retried whole: splitting them makes more parts.
    async fn write_isolating(&mut self, rows: &[S::Row]) -> WriteReport {
        let n = rows.len();
        let mut report = WriteReport { written: vec![false; n], rejected: Vec::new(), retry: None };
        if n == 0 {
            return report;
        }
        let first = match self.insert(rows).await {
            Ok(()) => {
                report.written.iter_mut().for_each(|w| *w = true);
                return report;
            }
            Err(SinkError::Rejected(error)) if n > 1 => error,
            Err(error) => {
                report.retry = Some(Retry::of(error));
                return report;
            }
        };
        let code = error_code(&first);
        // Rejected halves longer than one row, to split further.
        let mut ranges = Vec::new();
        let mut alike = true;
        let mid = n / 2;
        for (start, end) in [(0, mid), (mid, n)] {
            match self.insert(&rows[start..end]).await {
                Ok(()) => {
                    report.written[start..end].iter_mut().for_each(|w| *w = true);
                    alike = false;
                }
                Err(SinkError::Rejected(error)) => {
                    alike &= error_code(&error) == code;
                    if end - start == 1 {
                        report.rejected.push((start, error));
                    } else {
                        ranges.push((start, end));
                    }
                }
                Err(error) => {
                    report.retry = Some(Retry::of(error));
                    return report;
                }
            }
        }
        if alike {
            for _ in 0..PROBES.min(n) {
                let row = rand::random_range(0..n);
                match self.insert(&rows[row..row + 1]).await {
                    Ok(()) => {
                        report.written[row] = true;
                        alike = false;
                        break;
                    }
                    Err(SinkError::Rejected(error)) if error_code(&error) == code => {}
                    Err(SinkError::Rejected(_)) => {
                        alike = false;
                        break;
                    }
                    Err(error) => {
                        report.retry = Some(Retry::of(error));
                        return report;
                    }
                }
            }
            if alike {
                report.rejected.clear();
                report.retry = Some(Retry::Systemic(first));
                return report;
            }
        }
        // Split the rejected halves, first half first (the stack pops from the end).
        let mut ranges: Vec<(usize, usize)> = ranges
            .iter()
            .rev()
            .flat_map(|&(start, end)| {
                let mid = start + (end - start) / 2;
                [(mid, end), (start, mid)]
            })
            .collect();
        while let Some((start, end)) = ranges.pop() {
            if end - start == 1 && report.written[start] {
                continue;
            }
            match self.insert(&rows[start..end]).await {
                Ok(()) => report.written[start..end].iter_mut().for_each(|w| *w = true),
                Err(SinkError::Rejected(error)) if end - start == 1 => report.rejected.push((start, error)),
                Err(SinkError::Rejected(_)) => {
                    let mid = start + (end - start) / 2;
                    ranges.push((mid, end));
                    ranges.push((start, mid));
                }
                Err(error) => {
                    report.retry = Some(Retry::of(error));
                    break;
                }
            }
        }
        // A probe may have written a row later rejected within a range: it is in ClickHouse, so not parked.
        report.rejected.retain(|(row, _)| !report.written[*row]);
        if !report.written.iter().any(|w| *w) {
            report.rejected.clear();
            report.retry.get_or_insert(Retry::Systemic(first));
        }
        report
    }

    /// One insert attempt, counted and timed.
    async fn insert(&mut self, rows: &[S::Row]) -> Result<(), SinkError> {
        let started = Instant::now();
        let result = self.sink.write(rows).await;
        bump(&self.stats.inserts, 1);
        metrics::histogram!(m::INSERT_SECONDS, "group" => self.sink.group()).record(started.elapsed().as_secs_f64());
        result
    }

    /// Parks jobs of `entry` and acknowledges it; returns the dead letters written.
    async fn park(&mut self, entry: &Entry, jobs: &[(Option<usize>, String)]) -> redis::RedisResult<usize> {
        self.consumer.dead_letter(entry, jobs, self.recovery.dead_letter_max_len).await?;
        bump(&self.stats.dead_lettered, jobs.len() as u64);
        metrics::counter!(m::DEAD_LETTERED, "group" => self.sink.group()).increment(jobs.len() as u64);
        Ok(jobs.len())
    }
}

/// An insert error with no ClickHouse error code: the server did not answer (refused, reset, timed out, a proxy's
/// 502). One with a code came from a live server (overloaded, or refusing) and is not helped by asking it again
/// sooner.
fn unanswered(error: &str) -> bool {
    error_code(error).is_none()
}

/// Runs steps until `shutdown` turns true, then finishes the batch in flight (bounded by `grace`) and returns.
pub async fn run<S: Sink>(
    mut engine: Engine<S>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> anyhow::Result<()> {
    engine.stop = Some(shutdown.clone());
    let group = engine.sink.group();
    let redis = engine.health.redis.clone();
    let mut redis_failures = 0u32;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let step = engine.process_batch().await;
        if step.is_ok() {
            redis.succeeded();
            redis_failures = 0;
        }
        match step {
            Ok(Outcome::Retrying { retry_in, error }) => {
                engine.pause_before_retry(retry_in, &error, &mut shutdown).await;
            }
            Ok(_) => {}
            Err(err) => {
                // Every step error is Redis's: ClickHouse's are outcomes.
                redis_failures += 1;
                redis.failed(&format!("{err:#}"));
                // Short pauses: a reconnect attempt costs Redis nothing, and a restarted Redis is read within
                // about a second.
                let wait = backoff(redis_failures).min(REDIS_RETRY_CAP);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
                if let Err(e) = engine.consumer.reconnect().await {
                    tracing::debug!(group, error = format!("{e:#}"), "Reconnecting to Redis failed; retrying.");
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
            let idle = engine.recovery.claim_idle.as_millis() as u64;
            let handed_back = engine.consumer.release(&engine.in_flight, idle).await;
            tracing::warn!(
                group = engine.sink.group(),
                entries = engine.in_flight.len(),
                handed_back = handed_back.is_ok(),
                "Shut down with a batch unwritten; it stays pending, handed back uncounted for the next worker."
            );
        }
    }
    Ok(())
}
