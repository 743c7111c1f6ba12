//! Appending jobs to the ingest stream. One Lua script per event assigns the session and appends the job in the
//! same round trip, atomically, so workers never race over session boundaries, and refuses to append when the
//! stream is over its length bound (back-pressure instead of trimming unprocessed entries).

use redis::{Pipeline, Value};
use tidemark_shared::job::JobKind;
use tidemark_shared::keys::Keys;

/// KEYS: stream, session key under today's visitor id, session key under yesterday's.
/// ARGV: max stream length (0 skips the check), session ttl ms, candidate session id, today's visitor id,
///       yesterday's visitor id, job kind, job JSON, user id to link to the session ("" for none).
/// The session key holds `<session id>` or `<session id>:<user id>` once an identify linked a user: later events
/// of the session then carry that user (field `u`) without the site repeating it.
/// Returns the entry id, the session id and the visitor id the job was filed under.
const INGEST_LUA: &str = r#"
if ARGV[1] ~= '0' and redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return redis.error_reply('TMFULL ingest stream is full')
end
local key, visitor = KEYS[2], ARGV[4]
local value = redis.call('GET', key)
if not value and KEYS[3] ~= KEYS[2] then
  local prev = redis.call('GET', KEYS[3])
  if prev then value, key, visitor = prev, KEYS[3], ARGV[5] end
end
local sid, uid = ARGV[3], ''
if value then
  local sep = string.find(value, ':', 1, true)
  if sep then sid, uid = string.sub(value, 1, sep - 1), string.sub(value, sep + 1) else sid = value end
end
if ARGV[8] ~= '' then uid = ARGV[8] end
if uid ~= '' then value = sid .. ':' .. uid else value = sid end
redis.call('SET', key, value, 'PX', ARGV[2])
local id
if uid ~= '' then
  id = redis.call('XADD', KEYS[1], '*', 'k', ARGV[6], 's', sid, 'v', visitor, 'u', uid, 'j', ARGV[7])
else
  id = redis.call('XADD', KEYS[1], '*', 'k', ARGV[6], 's', sid, 'v', visitor, 'j', ARGV[7])
end
return {id, sid, visitor}
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

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the ingest stream is full")]
    Full,
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
}

pub struct Queue {
    pool: deadpool_redis::Pool,
    keys: Keys,
    script: redis::Script,
    max_stream_len: u64,
    session_ttl_ms: u64,
}

impl Queue {
    pub fn new(pool: deadpool_redis::Pool, keys: Keys, max_stream_len: u64, session_ttl_ms: u64) -> Self {
        Self { pool, keys, script: redis::Script::new(INGEST_LUA), max_stream_len, session_ttl_ms }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Appends every job in one round trip. All or nothing as far as the caller can tell: on an error some jobs
    /// may be in the stream, which is why the answer is then a retryable 503 and clients send event ids.
    pub async fn enqueue(&self, jobs: &[OutgoingJob]) -> Result<Vec<Filed>, QueueError> {
        let mut conn = self.pool.get().await.map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let mut results = self.run(&mut conn, jobs).await?;
        if results.iter().any(is_noscript) {
            // Redis restarted and forgot the script: load it and redo only the calls that did not run.
            self.script.load_async(&mut *conn).await.map_err(unavailable)?;
            let retry: Vec<usize> = (0..jobs.len()).filter(|&i| is_noscript(&results[i])).collect();
            let again: Vec<OutgoingJob> = retry.iter().map(|&i| jobs[i].clone()).collect();
            for (slot, value) in retry.into_iter().zip(self.run(&mut conn, &again).await?) {
                results[slot] = value;
            }
        }
        results.into_iter().map(parse_filed).collect()
    }

    async fn run(&self, conn: &mut deadpool_redis::Connection, jobs: &[OutgoingJob]) -> Result<Vec<Value>, QueueError> {
        let mut pipe = Pipeline::with_capacity(jobs.len());
        pipe.ignore_errors();
        for (i, job) in jobs.iter().enumerate() {
            // One length check per shard and request is enough: a batch may overshoot the bound by its own size.
            let check = if jobs[..i].iter().any(|j| j.shard == job.shard) { 0 } else { self.max_stream_len };
            pipe.cmd("EVALSHA")
                .arg(self.script.get_hash())
                .arg(3)
                .arg(self.keys.stream(job.shard))
                .arg(self.keys.session(job.shard, &job.project, job.visitor_today))
                .arg(self.keys.session(job.shard, &job.project, job.visitor_yesterday))
                .arg(check)
                .arg(self.session_ttl_ms)
                .arg(job.session_candidate)
                .arg(job.visitor_today)
                .arg(job.visitor_yesterday)
                .arg(job.kind.as_str())
                .arg(&job.json)
                .arg(job.link_user.as_deref().unwrap_or(""));
        }
        pipe.query_async::<Vec<Value>>(&mut **conn).await.map_err(unavailable)
    }

    pub async fn ping(&self) -> bool {
        match self.pool.get().await {
            Ok(mut conn) => redis::cmd("PING").query_async::<String>(&mut *conn).await.is_ok(),
            Err(_) => false,
        }
    }
}

fn unavailable(e: redis::RedisError) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

fn is_noscript(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if e.code() == "NOSCRIPT")
}

fn parse_filed(value: Value) -> Result<Filed, QueueError> {
    match value {
        Value::ServerError(e) if e.code() == "TMFULL" => Err(QueueError::Full),
        Value::ServerError(e) => Err(QueueError::Unavailable(format!("{}: {}", e.code(), e.details().unwrap_or("")))),
        Value::Array(items) if items.len() == 3 => {
            let text = |v: &Value| -> Option<String> {
                match v {
                    Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
                    Value::SimpleString(s) => Some(s.clone()),
                    _ => None,
                }
            };
            let entry_id = text(&items[0]);
            let session_id = text(&items[1]).and_then(|s| s.parse().ok());
            let visitor_id = text(&items[2]).and_then(|s| s.parse().ok());
            match (entry_id, session_id, visitor_id) {
                (Some(entry_id), Some(session_id), Some(visitor_id)) => Ok(Filed { entry_id, session_id, visitor_id }),
                _ => Err(QueueError::Unavailable("unexpected ingest script reply".into())),
            }
        }
        other => Err(QueueError::Unavailable(format!("unexpected ingest script reply {other:?}"))),
    }
}
