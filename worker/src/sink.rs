//! What a worker writes to: one ClickHouse table per worker kind.

use crate::consumer::Job;
use crate::retry::{INSERT_END_TIMEOUT, INSERT_SEND_TIMEOUT};
use tidemark_shared::clickhouse::ClickHouse;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// ClickHouse or the network is down, slow or overloaded: retry the same rows later, unchanged.
    #[error("retryable: {0}")]
    Retryable(String),
    /// ClickHouse refuses the insert for a reason no row can cause (a missing table or column during a rolling
    /// upgrade, permissions, an error code this worker does not know): retry later, and tell an operator.
    #[error("refused: {0}")]
    Systemic(String),
    /// ClickHouse rejected the data: some row of the insert may never be writable. The engine splits the insert to
    /// find out which, and whether every row fails alike (then it is systemic after all).
    #[error("rejected: {0}")]
    Rejected(String),
}

impl SinkError {
    /// Sorts a ClickHouse client error by the server's error code; anything without one (connection refused,
    /// timeouts, a cut response) is retryable.
    pub fn from_clickhouse(err: clickhouse::error::Error) -> Self {
        use clickhouse::error::Error as E;
        match &err {
            E::BadResponse(text) => match error_code(text) {
                Some(code) if OVERLOAD_CODES.contains(&code) => SinkError::Retryable(text.clone()),
                Some(code) if DATA_CODES.contains(&code) => SinkError::Rejected(text.clone()),
                Some(_) => SinkError::Systemic(text.clone()),
                None => SinkError::Retryable(text.clone()),
            },
            _ => SinkError::Retryable(err.to_string()),
        }
    }

    pub fn text(&self) -> &str {
        match self {
            SinkError::Retryable(t) | SinkError::Systemic(t) | SinkError::Rejected(t) => t,
        }
    }
}

/// The server is busy, short of memory or its replication is: the same insert succeeds later. Splitting it would
/// make things worse (each smaller insert is another part: 252 is "too many parts").
/// 3 UNEXPECTED_END_OF_FILE, 159 TIMEOUT_EXCEEDED, 160 TOO_SLOW, 164 READONLY, 173 CANNOT_ALLOCATE_MEMORY,
/// 198 DNS_ERROR, 202 TOO_MANY_SIMULTANEOUS_QUERIES, 203 NO_FREE_CONNECTION, 209 SOCKET_TIMEOUT,
/// 210 NETWORK_ERROR, 236 ABORTED, 241 MEMORY_LIMIT_EXCEEDED, 242 TABLE_IS_READ_ONLY, 252 TOO_MANY_PARTS,
/// 285 TOO_FEW_LIVE_REPLICAS, 286 UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE, 319 UNKNOWN_STATUS_OF_INSERT,
/// 394 QUERY_WAS_CANCELLED, 425 SYSTEM_ERROR, 439 CANNOT_SCHEDULE_TASK, 999 KEEPER_EXCEPTION,
/// 1000 POCO_EXCEPTION.
const OVERLOAD_CODES: &[u32] =
    &[3, 159, 160, 164, 173, 198, 202, 203, 209, 210, 236, 241, 242, 252, 285, 286, 319, 394, 425, 439, 999, 1000];

/// The data itself is refused (a value that does not parse or fit, a `throwIf` in a view): a row's fault when only
/// some rows fail. 6 CANNOT_PARSE_TEXT, 26 CANNOT_PARSE_QUOTED_STRING, 27 CANNOT_PARSE_INPUT_ASSERTION_FAILED,
/// 32 ATTEMPT_TO_READ_AFTER_EOF, 33 CANNOT_READ_ALL_DATA, 38 CANNOT_PARSE_DATE, 41 CANNOT_PARSE_DATETIME,
/// 53 TYPE_MISMATCH, 69 ARGUMENT_OUT_OF_BOUND, 70 CANNOT_CONVERT_TYPE, 72 CANNOT_PARSE_NUMBER, 117 INCORRECT_DATA,
/// 128 TOO_LARGE_ARRAY_SIZE, 131 TOO_LARGE_STRING_SIZE, 190 SIZES_OF_ARRAYS_DOESNT_MATCH,
/// 395 FUNCTION_THROW_IF_VALUE_IS_NON_ZERO. Every other code (16 NO_SUCH_COLUMN_IN_TABLE, 47 UNKNOWN_IDENTIFIER,
/// 60 UNKNOWN_TABLE, 46 UNKNOWN_FUNCTION, 81 UNKNOWN_DATABASE, 497 ACCESS_DENIED, ...) is systemic.
const DATA_CODES: &[u32] = &[6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 128, 131, 190, 395];

/// The code of a ClickHouse error body: `Code: 252, e.displayText() = ...` (18.16) or `Code: 252. DB::Exception:
/// ...` (current versions).
pub fn error_code(text: &str) -> Option<u32> {
    let rest = text.split("Code: ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// A decoded job ready for a table, or the reason it can never be written.
pub enum Decoded<R> {
    Row(R),
    /// A job this table does not take (another kind): acknowledged without a write.
    Skip,
    Poison(String),
}

#[allow(async_fn_in_trait)]
pub trait Sink {
    type Row: Send;
    /// The consumer group this sink reads with.
    fn group(&self) -> &'static str;
    fn decode(&self, job: &Job<'_>) -> Decoded<Self::Row>;
    /// Writes all rows in one insert.
    async fn write(&self, rows: &[Self::Row]) -> Result<(), SinkError>;
}

/// Writes `rows` to `table` as one insert (one block, one part per partition).
/// A table fed with at most one row per event job. The worker kinds differ only in their row type, its table and
/// group.
pub trait EventTable: clickhouse::RowOwned + clickhouse::RowWrite + Send + Sync + Sized {
    const TABLE: &'static str;
    const GROUP: &'static str;
    /// The event's row, or `None` when this table takes nothing of it (the job is acknowledged without a write).
    fn from_event(event: tidemark_shared::job::EventJob, session_id: u64) -> Option<Self>;
}

/// The sink of every worker kind: decode the event job, build the kind's row, insert the batch into its table.
pub struct EventTableSink<R> {
    ch: ClickHouse,
    rows: std::marker::PhantomData<fn() -> R>,
}

impl<R> EventTableSink<R> {
    pub fn new(ch: ClickHouse) -> Self {
        Self { ch, rows: std::marker::PhantomData }
    }
}

impl<R: EventTable> Sink for EventTableSink<R> {
    type Row = R;

    fn group(&self) -> &'static str {
        R::GROUP
    }

    fn decode(&self, job: &Job<'_>) -> Decoded<R> {
        match crate::decode::decode_event(job) {
            Ok(Some((event, session))) => R::from_event(event, session).map_or(Decoded::Skip, Decoded::Row),
            Ok(None) => Decoded::Skip,
            Err(why) => Decoded::Poison(why),
        }
    }

    async fn write(&self, rows: &[R]) -> Result<(), SinkError> {
        insert_all(&self.ch, R::TABLE, rows).await
    }
}

pub async fn insert_all<R>(ch: &ClickHouse, table: &str, rows: &[R]) -> Result<(), SinkError>
where
    R: clickhouse::RowOwned + clickhouse::RowWrite,
{
    let insert = ch.client.insert::<R>(table).await.map_err(SinkError::from_clickhouse)?;
    let mut insert = insert.with_timeouts(Some(INSERT_SEND_TIMEOUT), Some(INSERT_END_TIMEOUT));
    for row in rows {
        insert.write(row).await.map_err(SinkError::from_clickhouse)?;
    }
    insert.end().await.map_err(SinkError::from_clickhouse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sort(text: &str) -> &'static str {
        match SinkError::from_clickhouse(clickhouse::error::Error::BadResponse(text.into())) {
            SinkError::Retryable(_) => "retry",
            SinkError::Systemic(_) => "systemic",
            SinkError::Rejected(_) => "rejected",
        }
    }

    #[test]
    fn errors_are_sorted_by_code() {
        assert_eq!(sort("Code: 27, e.displayText() = DB::Exception: Cannot parse input"), "rejected");
        assert_eq!(sort("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)"), "retry");
        assert_eq!(sort("Code: 241, e.displayText() = DB::Exception: Memory limit exceeded"), "retry");
        assert_eq!(sort("Code: 16. DB::Exception: No such column title in table events"), "systemic");
        assert_eq!(sort("Code: 60, e.displayText() = DB::Exception: Table t.events doesn't exist."), "systemic");
        assert_eq!(sort("Code: 4242. DB::Exception: something new"), "systemic");
        assert_eq!(sort("502 Bad Gateway"), "retry");
        assert_eq!(error_code("Code: 252, e.displayText()"), Some(252));
        assert_eq!(error_code("connection refused"), None);
    }
}
