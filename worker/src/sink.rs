//! What a worker writes to: one ClickHouse table per worker kind.

use crate::consumer::Job;
use std::time::Duration;
use tidemark_shared::clickhouse::ClickHouse;

/// Bounds on one insert attempt, so a hung server turns into a retry instead of a worker stuck for ever (which
/// would let another worker take the batch over while this one still holds it).
pub const INSERT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
pub const INSERT_END_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// ClickHouse or the network is down or slow: retry the same entries later.
    #[error("retryable: {0}")]
    Retryable(String),
    /// ClickHouse rejected the data itself: retrying cannot help.
    #[error("rejected: {0}")]
    Permanent(String),
}

impl SinkError {
    /// Sorts a ClickHouse client error: server-side data errors are permanent, the rest (connection refused,
    /// timeouts, server overload, a missing table during a migration) are worth retrying.
    pub fn from_clickhouse(err: clickhouse::error::Error) -> Self {
        use clickhouse::error::Error as E;
        match &err {
            E::BadResponse(text) if is_data_error(text) => SinkError::Permanent(text.clone()),
            _ => SinkError::Retryable(err.to_string()),
        }
    }
}

/// ClickHouse error codes that mean "this data can never be inserted".
fn is_data_error(text: &str) -> bool {
    const DATA_ERRORS: &[u32] = &[6, 27, 38, 41, 53, 69, 70, 72, 117, 128, 131, 190, 252];
    text.split("Code: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|code| code.parse::<u32>().ok())
        .is_some_and(|code| DATA_ERRORS.contains(&code))
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
/// A table fed with one row per event job. The worker kinds differ only in their row type, its table and group.
pub trait EventTable: clickhouse::RowOwned + clickhouse::RowWrite + Send + Sync {
    const TABLE: &'static str;
    const GROUP: &'static str;
    fn from_event(event: tidemark_shared::job::EventJob, session_id: u64) -> Self;
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
        match crate::events_sink::decode_event(job) {
            Ok(Some((event, session))) => Decoded::Row(R::from_event(event, session)),
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

    #[test]
    fn data_errors_are_permanent() {
        assert!(is_data_error("Code: 27, e.displayText() = DB::Exception: Cannot parse input"));
        assert!(!is_data_error("Code: 241, e.displayText() = DB::Exception: Memory limit exceeded"));
        assert!(!is_data_error("connection refused"));
    }
}
