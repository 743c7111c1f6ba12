//! Appending jobs to the ingest stream. A Lua script assigns each job its session and appends the jobs in the same
//! round trip, atomically, so workers never race over session boundaries, and refuses the call when the stream is
//! over its memory bound (back-pressure instead of trimming unprocessed entries).
//!
//! Each HTTP worker thread has its own writer task and Redis connection. The writer takes every request waiting
//! on its thread and files them all with one script call, so one stream entry, per stream shard (and per
//! [`MAX_JOBS_PER_ENTRY`] jobs): under load, dozens of requests share one round trip, one script invocation and
//! one entry, and a request never wakes another thread. A caller still gets its
//! answer only after Redis answered for its own jobs.

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Pipeline, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tidemark_shared::batch;
use tidemark_shared::job::JobKind;
use tidemark_shared::keys::{self, Keys};
use tidemark_shared::outage::StoreHealth;
use tokio::sync::{mpsc, oneshot};

/// One call files many requests as one `batch.v1` stream entry ([`tidemark_shared::batch`]): the jobs, framed by
/// the hub, and the session, visitor and user the script assigned to each. Redis's cost per entry is several times
/// its cost per byte, so one entry per call instead of one per job is most of what makes a job cheap to queue.
/// `#!lua` (script flags, Redis 7+) makes Redis refuse the whole call up front when it is out of memory, instead
/// of failing halfway through. Every request of a call is appended or none is: a call is one entry. Back-pressure
/// bounds the stream's memory (Redis's own estimate, `MEMORY USAGE` sampling a few nodes: O(1) in the stream's
/// length), which is what a full queue costs, however many jobs its entries hold.
/// KEYS: the stream, then for each job its session key under today's visitor id, followed by the one under
///       yesterday's when the job has one (after midnight, see [`crate::identity::midnight_grace`]).
/// ARGV: max stream bytes (0 skips the check), session ttl ms, the framed jobs of every request, then
///       per request its job count followed by four per job: candidate session id (0: the job may join a live
///       session but not open one, and gets session 0 when there is none), today's visitor id,
///       yesterday's visitor id ("" for none: then the job has one key), user id to link to the session ("" for
///       none).
/// A session key holds `<session id>` or `<session id>:<user id>` once an identify linked a user: later events of
/// the session then carry that user without the site repeating it.
/// Returns, per request, the number of jobs appended, or -1 when the stream had no room for them.
const INGEST_LUA: &str = r#"#!lua
local out = {}
if ARGV[1] ~= '0' and (redis.call('MEMORY', 'USAGE', KEYS[1], 'SAMPLES', '4') or 0) >= tonumber(ARGV[1]) then
  local a = 4
  while a <= #ARGV do
    out[#out + 1] = -1
    a = a + 1 + 4 * tonumber(ARGV[a])
  end
  return out
end
local ttl, assigned, a, k = ARGV[2], {}, 4, 2
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, n do
    local key, visitor, yesterday = KEYS[k], ARGV[a + 1], ARGV[a + 2]
    -- GETEX reads a live session and slides its window in one command: a visitor's later events, most of the
    -- traffic, cost one session command instead of a read and a write.
    local value = redis.call('GETEX', key, 'PX', ttl)
    if yesterday ~= '' then
      k = k + 1
      if not value then
        value = redis.call('GETEX', KEYS[k], 'PX', ttl)
        if value then key, visitor = KEYS[k], yesterday end
      end
    end
    local sid, uid, link = ARGV[a], '', ARGV[a + 3]
    if value then
      local sep = string.find(value, ':', 1, true)
      if sep then sid, uid = string.sub(value, 1, sep - 1), string.sub(value, sep + 1) else sid = value end
    end
    -- Candidate '0': the job may join a live session but never opens one (its session stays 0).
    local opens = value or sid ~= '0'
    if link ~= '' and link ~= uid then
      uid = link
      if opens then redis.call('SET', key, sid .. ':' .. uid, 'PX', ttl) end
    elseif not value and opens then
      redis.call('SET', key, sid, 'PX', ttl)
    end
    -- A Lua number turns into text through sprintf: most jobs have no user, and their length is written as is.
    local ulen = uid == '' and '0' or tostring(#uid)
    assigned[#assigned + 1] = sid .. ' ' .. visitor .. ' ' .. ulen .. ' ' .. uid .. '\n'
    a, k = a + 4, k + 1
  end
  out[#out + 1] = n
end
if #assigned > 0 then
  redis.call('XADD', KEYS[1], '*', 'k', 'batch.v1', 's', table.concat(assigned), 'j', ARGV[3])
end
return out
"#;

/// One job ready to append.
#[derive(Debug, Clone)]
pub struct OutgoingJob {
    pub kind: JobKind,
    pub shard: u16,
    pub project: uuid::Uuid,
    pub visitor_today: u64,
    /// Set only after midnight, while a session of yesterday may still be open.
    pub visitor_yesterday: Option<u64>,
    /// The session id to open when the visitor has none live; `None` for a job that must not open one (a page
    /// leave, an identify): it joins a live session or gets session 0.
    pub session_candidate: Option<u64>,
    /// The job encoded as its kind says.
    pub payload: Vec<u8>,
    /// Set by `/v1/identify`: the user the visitor's session belongs to from now on.
    pub link_user: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    #[error("the ingest stream is full")]
    Full,
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
}

/// Most requests one writer files in one round trip; a request holds at most `max_batch` jobs.
const MAX_COALESCED_REQUESTS: usize = 256;

/// Most jobs in one stream entry, unless a single request holds more. It bounds the work a worker redoes when it
/// retries an entry; past a few dozen jobs an entry saves Redis nothing more.
pub const MAX_JOBS_PER_ENTRY: usize = 64;

/// How long a writer waits for Redis to answer. Long enough for a busy Redis (an fsync stall), short enough that
/// clients get their 503 and retry elsewhere instead of hanging.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Queue {
    shared: Arc<Shared>,
    /// Tells this queue's writers apart from another queue's on the same thread (tests run several hubs).
    id: u64,
}

struct Shared {
    client: redis::Client,
    /// For readiness checks only; writers keep their own connections.
    ping_pool: deadpool_redis::Pool,
    keys: Keys,
    script: redis::Script,
    max_stream_bytes: u64,
    session_ttl_ms: u64,
    /// Every write and readiness check reports here: one line per outage, not one per failed request.
    health: Arc<StoreHealth>,
}

struct Pending {
    jobs: Vec<OutgoingJob>,
    reply: oneshot::Sender<Result<usize, QueueError>>,
}

thread_local! {
    /// The writer of each queue on this thread.
    static WRITERS: RefCell<Vec<(u64, mpsc::UnboundedSender<Pending>)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_QUEUE_ID: AtomicU64 = AtomicU64::new(0);

impl Queue {
    /// Connects lazily: writers open their connection on first use, so a hub starts while Redis is down and
    /// answers 503 until it is back.
    pub fn connect(redis_url: &str, keys: Keys, max_stream_bytes: u64, session_ttl_ms: u64) -> anyhow::Result<Self> {
        let client = tidemark_shared::redis::client(redis_url)?;
        let mut ping = deadpool_redis::Config::from_url(redis_url);
        ping.pool = Some(deadpool_redis::PoolConfig::new(2));
        let ping_pool = ping.create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
        let shared = Shared {
            client,
            ping_pool,
            keys,
            script: redis::Script::new(INGEST_LUA),
            max_stream_bytes,
            session_ttl_ms,
            health: Arc::new(StoreHealth::new("hub", "redis", default_alert())),
        };
        Ok(Self { shared: Arc::new(shared), id: NEXT_QUEUE_ID.fetch_add(1, Ordering::Relaxed) })
    }

    /// Reports to `health` (the hub's, shared with `/readyz`) instead of the queue's own. Before the first enqueue.
    pub fn reporting_to(mut self, health: Arc<StoreHealth>) -> Self {
        Arc::get_mut(&mut self.shared).expect("set before the queue is shared").health = health;
        self
    }

    pub fn health(&self) -> &Arc<StoreHealth> {
        &self.shared.health
    }

    pub fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    /// Appends the jobs of one request, all or nothing, and returns how many were appended. Every job must be for
    /// the same shard (the hub routes a request by its visitor).
    pub async fn enqueue(&self, jobs: Vec<OutgoingJob>) -> Result<usize, QueueError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        debug_assert!(jobs.iter().all(|j| j.shard == jobs[0].shard), "one request, one shard");
        let (reply, answer) = oneshot::channel();
        self.send_to_local_writer(Pending { jobs, reply });
        answer.await.map_err(|_| QueueError::Unavailable("the enqueue writer stopped".into()))?
    }

    pub async fn ping(&self) -> bool {
        let answer = match self.shared.ping_pool.get().await {
            Ok(mut conn) => redis::cmd("PING").query_async::<String>(&mut *conn).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        self.shared.health.record(&answer);
        answer.is_ok()
    }

    /// Hands the request to this thread's writer, starting one if the thread has none (or its last one ended with
    /// the runtime it ran on).
    fn send_to_local_writer(&self, pending: Pending) {
        WRITERS.with_borrow_mut(|writers| {
            writers.retain(|(_, tx)| !tx.is_closed());
            let tx = match writers.iter().find(|(id, _)| *id == self.id) {
                Some((_, tx)) => tx,
                None => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    spawn_here(write_loop(self.shared.clone(), rx));
                    writers.push((self.id, tx));
                    &writers.last().expect("just pushed").1
                }
            };
            // A send fails only if the writer ended since `retain`; dropping `pending` then answers the caller
            // "writer stopped" through its closed reply channel.
            let _ = tx.send(pending);
        });
    }
}

/// Runs the writer on the calling thread: on an actix worker thread that is its local task set. Outside actix
/// (tests driving the queue from a plain Tokio runtime) any runtime thread will do.
fn spawn_here(writer: impl Future<Output = ()> + Send + 'static) {
    if actix_web::rt::System::try_current().is_some() {
        actix_web::rt::spawn(writer);
    } else {
        tokio::spawn(writer);
    }
}

async fn write_loop(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut conn = None;
    let mut batch = Vec::with_capacity(MAX_COALESCED_REQUESTS);
    while rx.recv_many(&mut batch, MAX_COALESCED_REQUESTS).await > 0 {
        let results = shared.write(&mut conn, &batch).await;
        for (pending, result) in batch.drain(..).zip(results) {
            // The request may have been abandoned (client gone); its jobs are in Redis either way.
            let _ = pending.reply.send(result);
        }
    }
}

impl Shared {
    /// One result per pending request, in order. Drops the connection on a transport error so the next batch
    /// reconnects.
    async fn write(
        &self,
        conn: &mut Option<MultiplexedConnection>,
        batch: &[Pending],
    ) -> Vec<Result<usize, QueueError>> {
        let fail = |e: &QueueError| {
            self.health.failed(e);
            batch.iter().map(|_| Err(e.clone())).collect()
        };
        if conn.is_none() {
            match self.open().await {
                Ok(opened) => *conn = Some(opened),
                Err(e) => return fail(&e),
            }
        }
        let live = conn.as_mut().expect("opened above");
        match self.file(live, batch).await {
            Ok(results) => {
                self.health.succeeded();
                results
            }
            Err(e) => {
                *conn = None;
                fail(&e)
            }
        }
    }

    async fn open(&self) -> Result<MultiplexedConnection, QueueError> {
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_secs(2)));
        self.client.get_multiplexed_async_connection_with_config(&config).await.map_err(unavailable)
    }

    /// Files the batch with one script call per shard. Err only for a transport failure.
    async fn file(
        &self,
        conn: &mut MultiplexedConnection,
        batch: &[Pending],
    ) -> Result<Vec<Result<usize, QueueError>>, QueueError> {
        let mut by_shard: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, pending) in batch.iter().enumerate() {
            by_shard.entry(pending.jobs[0].shard).or_default().push(i);
        }
        // One script call, so one stream entry, per shard and per MAX_JOBS_PER_ENTRY jobs (a request is never split).
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
        for (shard, members) in by_shard {
            let mut jobs = 0;
            for i in members {
                let n = batch[i].jobs.len();
                match groups.last_mut() {
                    Some((s, group)) if *s == shard && jobs + n <= MAX_JOBS_PER_ENTRY => group.push(i),
                    _ => {
                        groups.push((shard, vec![i]));
                        jobs = 0;
                    }
                }
                jobs += n;
            }
        }
        let mut replies = self.run(conn, batch, &groups).await?;
        let unknown: Vec<usize> = (0..groups.len()).filter(|&g| is_noscript(&replies[g])).collect();
        if !unknown.is_empty() {
            // Redis restarted and forgot the script: load it and redo only the calls that did not run.
            self.script.load_async(conn).await.map_err(unavailable)?;
            let again: Vec<(u16, Vec<usize>)> = unknown.iter().map(|&g| groups[g].clone()).collect();
            for (&g, reply) in unknown.iter().zip(self.run(conn, batch, &again).await?) {
                replies[g] = reply;
            }
        }
        let mut results: Vec<Result<usize, QueueError>> =
            batch.iter().map(|_| Err(QueueError::Unavailable("no reply".into()))).collect();
        for ((_, members), reply) in groups.iter().zip(replies) {
            for (&i, result) in members.iter().zip(per_request(reply, members.len())) {
                results[i] = result.and_then(|appended| match appended {
                    n if n == batch[i].jobs.len() as i64 => Ok(batch[i].jobs.len()),
                    -1 => Err(QueueError::Full),
                    n => Err(QueueError::Unavailable(format!("the ingest script appended {n} jobs"))),
                });
            }
        }
        Ok(results)
    }

    /// Sends one script call per group in one pipeline; a call's own error comes back as its reply value.
    async fn run(
        &self,
        conn: &mut MultiplexedConnection,
        batch: &[Pending],
        groups: &[(u16, Vec<usize>)],
    ) -> Result<Vec<Value>, QueueError> {
        let mut pipe = Pipeline::with_capacity(groups.len());
        pipe.ignore_errors();
        let mut frames = Vec::new();
        for (shard, members) in groups {
            let requests = members.iter().map(|&i| &batch[i]);
            let session_keys: usize =
                requests.clone().flat_map(|p| &p.jobs).map(|j| 1 + usize::from(j.visitor_yesterday.is_some())).sum();
            let cmd = pipe.cmd("EVALSHA").arg(self.script.get_hash()).arg(1 + session_keys);
            cmd.arg(self.keys.stream(*shard));
            let mut key = String::new();
            for pending in requests.clone() {
                let prefix = self.keys.session_prefix(*shard, &pending.jobs[0].project);
                for job in &pending.jobs {
                    for visitor in std::iter::once(job.visitor_today).chain(job.visitor_yesterday) {
                        key.clear();
                        key.push_str(&prefix);
                        keys::push_visitor(&mut key, visitor);
                        cmd.arg(&key);
                    }
                }
            }
            frames.clear();
            for job in requests.clone().flat_map(|p| &p.jobs) {
                batch::frame_job(&mut frames, job.kind.as_str(), &job.payload);
            }
            cmd.arg(self.max_stream_bytes).arg(self.session_ttl_ms).arg(&frames);
            for pending in requests {
                cmd.arg(pending.jobs.len());
                for job in &pending.jobs {
                    cmd.arg(job.session_candidate.unwrap_or(0)).arg(job.visitor_today);
                    match job.visitor_yesterday {
                        Some(visitor) => cmd.arg(visitor),
                        None => cmd.arg(""),
                    };
                    cmd.arg(job.link_user.as_deref().unwrap_or(""));
                }
            }
        }
        pipe.query_async::<Vec<Value>>(conn).await.map_err(unavailable)
    }
}

fn default_alert() -> Duration {
    Duration::from_secs(tidemark_shared::outage::DEFAULT_ALERT_SECS)
}

fn unavailable(e: redis::RedisError) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

fn is_noscript(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if e.code() == "NOSCRIPT")
}

/// Splits one script reply into the appended counts of its `requests` requests.
fn per_request(reply: Value, requests: usize) -> Vec<Result<i64, QueueError>> {
    match reply {
        Value::Array(items) if items.len() == requests => items
            .into_iter()
            .map(|item| match item {
                Value::Int(n) => Ok(n),
                other => Err(QueueError::Unavailable(format!("unexpected ingest script reply {other:?}"))),
            })
            .collect(),
        Value::ServerError(e) => {
            let why = format!("{}: {}", e.code(), e.details().unwrap_or(""));
            (0..requests).map(|_| Err(QueueError::Unavailable(why.clone()))).collect()
        }
        other => {
            let why = format!("unexpected ingest script reply {other:?}");
            (0..requests).map(|_| Err(QueueError::Unavailable(why.clone()))).collect()
        }
    }
}
