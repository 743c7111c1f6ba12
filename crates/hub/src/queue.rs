//! Appending jobs to the ingest stream. One Lua script per event assigns the session and appends the job in the
//! same round trip, atomically, so workers never race over session boundaries, and refuses to append when the
//! stream is over its length bound (back-pressure instead of trimming unprocessed entries).

use redis::{Pipeline, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tidemark_shared::job::JobKind;
use tidemark_shared::keys::Keys;
use tokio::sync::{mpsc, oneshot};

/// One call per request, so a request is all or nothing: either every job is appended or none is.
/// KEYS: the stream, then for each job its session key under today's and under yesterday's visitor id.
/// ARGV: max stream length (0 skips the check), session ttl ms, then six per job: candidate session id, today's
///       visitor id, yesterday's visitor id, job kind, job JSON, user id to link to the session ("" for none).
/// A session key holds `<session id>` or `<session id>:<user id>` once an identify linked a user: later events of
/// the session then carry that user (field `u`) without the site repeating it.
/// Returns, per job, the entry id, the session id and the visitor id the job was filed under.
const INGEST_LUA: &str = r#"
local n = (#ARGV - 2) / 6
if ARGV[1] ~= '0' and redis.call('XLEN', KEYS[1]) + n > tonumber(ARGV[1]) then
  return redis.error_reply('TMFULL ingest stream is full')
end
local out = {}
for i = 1, n do
  local a = 2 + (i - 1) * 6
  local key, visitor = KEYS[2 * i], ARGV[a + 2]
  local value = redis.call('GET', key)
  if not value and KEYS[2 * i + 1] ~= key then
    local prev = redis.call('GET', KEYS[2 * i + 1])
    if prev then value, key, visitor = prev, KEYS[2 * i + 1], ARGV[a + 3] end
  end
  local sid, uid = ARGV[a + 1], ''
  if value then
    local sep = string.find(value, ':', 1, true)
    if sep then sid, uid = string.sub(value, 1, sep - 1), string.sub(value, sep + 1) else sid = value end
  end
  if ARGV[a + 6] ~= '' then uid = ARGV[a + 6] end
  if uid ~= '' then value = sid .. ':' .. uid else value = sid end
  redis.call('SET', key, value, 'PX', ARGV[2])
  local id
  if uid ~= '' then
    id = redis.call('XADD', KEYS[1], '*', 'k', ARGV[a + 4], 's', sid, 'v', visitor, 'u', uid, 'j', ARGV[a + 5])
  else
    id = redis.call('XADD', KEYS[1], '*', 'k', ARGV[a + 4], 's', sid, 'v', visitor, 'j', ARGV[a + 5])
  end
  out[i] = {id, sid, visitor}
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
    pub visitor_yesterday: u64,
    pub session_candidate: u64,
    pub json: String,
    /// Set by `/v1/identify`: the user the visitor's session belongs to from now on.
    pub link_user: Option<String>,
}

/// Where the script filed a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    pub entry_id: String,
    pub session_id: u64,
    pub visitor_id: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    #[error("the ingest stream is full")]
    Full,
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
}

/// Most jobs one writer sends in one pipeline.
const MAX_COALESCED_JOBS: usize = 512;

/// Appends jobs through a few writer tasks. Each writer takes every request waiting for it and sends them in one
/// pipelined round trip: under load, hundreds of requests share one write instead of paying one each, which is
/// what makes Redis (and the hub's own syscalls) cheap per event. A caller still gets its answer only after Redis
/// answered for its own jobs.
pub struct Queue {
    shared: Arc<Shared>,
    writers: Vec<mpsc::Sender<Pending>>,
    next: AtomicUsize,
}

struct Shared {
    pool: deadpool_redis::Pool,
    keys: Keys,
    script: redis::Script,
    max_stream_len: u64,
    session_ttl_ms: u64,
}

struct Pending {
    jobs: Vec<OutgoingJob>,
    reply: oneshot::Sender<Result<Vec<Filed>, QueueError>>,
}

impl Queue {
    /// Starts one writer per connection the pool may open. Must be called inside a Tokio runtime.
    pub fn new(pool: deadpool_redis::Pool, keys: Keys, max_stream_len: u64, session_ttl_ms: u64) -> Self {
        let writers = pool.status().max_size.max(1);
        let shared =
            Arc::new(Shared { pool, keys, script: redis::Script::new(INGEST_LUA), max_stream_len, session_ttl_ms });
        let writers = (0..writers)
            .map(|_| {
                let (tx, rx) = mpsc::channel(1024);
                tokio::spawn(write_loop(shared.clone(), rx));
                tx
            })
            .collect();
        Self { shared, writers, next: AtomicUsize::new(0) }
    }

    pub fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    /// Appends the jobs of one request, all or nothing. Every job must be for the same shard (the hub routes a
    /// request by its visitor), so one script call covers them.
    pub async fn enqueue(&self, jobs: &[OutgoingJob]) -> Result<Vec<Filed>, QueueError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        debug_assert!(jobs.iter().all(|j| j.shard == jobs[0].shard), "one request, one shard");
        let (reply, answer) = oneshot::channel();
        let writer = &self.writers[self.next.fetch_add(1, Ordering::Relaxed) % self.writers.len()];
        let stopped = || QueueError::Unavailable("the enqueue writer stopped".into());
        writer.send(Pending { jobs: jobs.to_vec(), reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub async fn ping(&self) -> bool {
        match self.shared.pool.get().await {
            Ok(mut conn) => redis::cmd("PING").query_async::<String>(&mut *conn).await.is_ok(),
            Err(_) => false,
        }
    }
}

async fn write_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = first.jobs.len();
        let mut batch = vec![first];
        while jobs < MAX_COALESCED_JOBS {
            match rx.try_recv() {
                Ok(more) => {
                    jobs += more.jobs.len();
                    batch.push(more);
                }
                Err(_) => break,
            }
        }
        let results = shared.write(&batch).await;
        for (pending, result) in batch.into_iter().zip(results) {
            // The request may have been abandoned (client gone); its jobs are in Redis either way.
            let _ = pending.reply.send(result);
        }
    }
}

impl Shared {
    /// One result per pending request, in order.
    async fn write(&self, batch: &[Pending]) -> Vec<Result<Vec<Filed>, QueueError>> {
        let mut conn = match self.pool.get().await {
            Ok(conn) => conn,
            Err(e) => return batch.iter().map(|_| Err(QueueError::Unavailable(e.to_string()))).collect(),
        };
        let mut values = match self.run(&mut conn, batch.iter()).await {
            Ok(values) => values,
            Err(e) => return batch.iter().map(|_| Err(e.clone())).collect(),
        };
        let retry: Vec<usize> = (0..batch.len()).filter(|&i| is_noscript(&values[i])).collect();
        let mut retry_error = None;
        if !retry.is_empty() {
            // Redis restarted and forgot the script: load it and redo only the calls that did not run.
            let again = match self.script.load_async(&mut *conn).await {
                Ok(_) => self.run(&mut conn, retry.iter().map(|&i| &batch[i])).await,
                Err(e) => Err(unavailable(e)),
            };
            match again {
                Ok(redone) => {
                    for (&slot, value) in retry.iter().zip(redone) {
                        values[slot] = value;
                    }
                }
                Err(e) => retry_error = Some(e),
            }
        }
        values
            .into_iter()
            .zip(batch)
            .enumerate()
            .map(|(i, (value, pending))| match &retry_error {
                Some(e) if retry.contains(&i) => Err(e.clone()),
                _ => parse_filed(value, pending.jobs.len()),
            })
            .collect()
    }

    async fn run(
        &self,
        conn: &mut deadpool_redis::Connection,
        batch: impl Iterator<Item = &Pending>,
    ) -> Result<Vec<Value>, QueueError> {
        let mut pipe = Pipeline::new();
        pipe.ignore_errors();
        for pending in batch {
            let shard = pending.jobs[0].shard;
            let cmd = pipe.cmd("EVALSHA").arg(self.script.get_hash()).arg(1 + 2 * pending.jobs.len());
            cmd.arg(self.keys.stream(shard));
            for job in &pending.jobs {
                cmd.arg(self.keys.session(shard, &job.project, job.visitor_today)).arg(self.keys.session(
                    shard,
                    &job.project,
                    job.visitor_yesterday,
                ));
            }
            cmd.arg(self.max_stream_len).arg(self.session_ttl_ms);
            for job in &pending.jobs {
                cmd.arg(job.session_candidate)
                    .arg(job.visitor_today)
                    .arg(job.visitor_yesterday)
                    .arg(job.kind.as_str())
                    .arg(&job.json)
                    .arg(job.link_user.as_deref().unwrap_or(""));
            }
        }
        pipe.query_async::<Vec<Value>>(&mut **conn).await.map_err(unavailable)
    }
}

fn unavailable(e: redis::RedisError) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

fn is_noscript(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if e.code() == "NOSCRIPT")
}

fn parse_filed(value: Value, jobs: usize) -> Result<Vec<Filed>, QueueError> {
    match value {
        Value::ServerError(e) if e.code() == "TMFULL" => Err(QueueError::Full),
        Value::ServerError(e) => Err(QueueError::Unavailable(format!("{}: {}", e.code(), e.details().unwrap_or("")))),
        Value::Array(items) if items.len() == jobs => items.into_iter().map(parse_one).collect(),
        other => Err(QueueError::Unavailable(format!("unexpected ingest script reply {other:?}"))),
    }
}

fn parse_one(value: Value) -> Result<Filed, QueueError> {
    let text = |v: &Value| -> Option<String> {
        match v {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        }
    };
    if let Value::Array(items) = &value
        && items.len() == 3
        && let (Some(entry_id), Some(session_id), Some(visitor_id)) = (
            text(&items[0]),
            text(&items[1]).and_then(|s| s.parse().ok()),
            text(&items[2]).and_then(|s| s.parse().ok()),
        )
    {
        return Ok(Filed { entry_id, session_id, visitor_id });
    }
    Err(QueueError::Unavailable(format!("unexpected ingest script reply {value:?}")))
}
