//! The live feed's source: the `events` table itself, so the feed shows exactly what the API counts (an event
//! appears once a worker has inserted it, the moment it counts).
//!
//! The cursor is the arrival second (`received_at`), but a second is not a safe boundary: a worker can insert a
//! batch holding second `T` after another batch with `T` (or later) was already read, since batches of several
//! workers and shards, and retried inserts, land in any order. So each poll reads again the [`OVERLAP_SECS`]
//! before the newest arrival seen, and the cursor remembers which event ids of that span it has shown: a late row
//! is shown when it lands, a row read twice (or a redelivered copy, the same id) is shown once. A row inserted more
//! than [`OVERLAP_SECS`] after the newest arrival the feed had seen (a worker stalled that long) is counted by the
//! API but not shown in the feed.

use super::{LOOKBACK_SECS, with_deadline};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tidemark_shared::clickhouse::ClickHouse;
use tidemark_shared::queries;
use uuid::Uuid;

/// How far behind the newest arrival seen each poll reads again, for rows inserted late.
pub const OVERLAP_SECS: i64 = 30;
/// Most rows one poll reads (the newest). A site busier than this per poll gets a thinned feed.
pub const POLL_LIMIT: u64 = 500;

/// A row of `realtime.feed`: an event, with nothing that identifies a visitor.
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub ts_s: i64,
    pub millis: u16,
    pub received_s: i64,
    pub path: String,
    pub host: String,
    pub referrer_source: String,
    pub referrer_name: String,
    pub country: String,
    pub region: String,
    pub city: String,
    pub browser: String,
    pub os: String,
    pub device: String,
}

/// What a subscriber receives for an event (the SSE `data`).
#[derive(Debug, Clone, Serialize)]
pub struct FeedEvent {
    /// When it happened (the client's time, clamped by the hub), RFC 3339 in UTC with milliseconds.
    pub time: String,
    /// When the hub received it (whole seconds): the clock of the visitors count.
    pub received_at: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub path: String,
    pub host: String,
    pub referrer_source: String,
    pub referrer_name: String,
    pub country: String,
    pub region: String,
    pub city: String,
    pub browser: String,
    pub os: String,
    pub device: String,
}

impl From<Row> for FeedEvent {
    fn from(row: Row) -> Self {
        let time =
            chrono::DateTime::from_timestamp(row.ts_s, u32::from(row.millis.min(999)) * 1_000_000).unwrap_or_default();
        let received = chrono::DateTime::from_timestamp(row.received_s, 0).unwrap_or_default();
        FeedEvent {
            time: time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            received_at: received.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            kind: row.kind,
            name: row.name,
            path: row.path,
            host: row.host,
            referrer_source: row.referrer_source,
            referrer_name: row.referrer_name,
            country: row.country,
            region: row.region,
            city: row.city,
            browser: row.browser,
            os: row.os,
            device: row.device,
        }
    }
}

/// Which rows a project's feed has shown.
#[derive(Debug)]
pub struct Cursor {
    /// Rows that arrived before this second existed before the feed started: they are history, not news.
    started_s: i64,
    /// The newest arrival second seen; polls read from `newest_s - OVERLAP_SECS`.
    newest_s: i64,
    /// Event ids read in the overlap span, with their arrival second (to forget them once outside it).
    shown: HashMap<String, i64>,
}

impl Cursor {
    pub fn starting_at(now_s: i64) -> Self {
        Cursor { started_s: now_s, newest_s: now_s, shown: HashMap::new() }
    }

    /// The arrival second the next poll reads from.
    pub fn floor(&self) -> i64 {
        self.newest_s - OVERLAP_SECS
    }

    /// Takes a poll's rows (any order, copies allowed) and returns the ones not shown yet, oldest first.
    pub fn accept(&mut self, rows: Vec<Row>) -> Vec<Row> {
        let mut fresh = Vec::new();
        for row in rows {
            if self.shown.contains_key(&row.id) {
                continue;
            }
            self.shown.insert(row.id.clone(), row.received_s);
            self.newest_s = self.newest_s.max(row.received_s);
            if row.received_s >= self.started_s {
                fresh.push(row);
            }
        }
        let floor = self.floor();
        self.shown.retain(|_, received_s| *received_s >= floor);
        fresh.sort_by(|a, b| (a.received_s, a.ts_s, a.millis, &a.id).cmp(&(b.received_s, b.ts_s, b.millis, &b.id)));
        fresh
    }

    /// Ids remembered (bounded by the rows of [`OVERLAP_SECS`]); for tests.
    pub fn remembered(&self) -> usize {
        self.shown.len()
    }
}

/// The newest rows of `project` that arrived at or after `floor_s`, each id once.
pub async fn fetch(ch: &ClickHouse, project: Uuid, floor_s: i64) -> anyhow::Result<Vec<Row>> {
    let query = ch
        .client
        .query(queries::by_name("realtime.feed").sql)
        .bind(floor_s)
        .bind(project.to_string())
        .bind(floor_s - LOOKBACK_SECS)
        .bind(POLL_LIMIT);
    let bytes = with_deadline(async {
        let mut cursor = query.fetch_bytes("JSONEachRow")?;
        cursor.collect().await
    })
    .await
    .context("reading the live feed")?;
    // Stored strings are bytes; a page path that is not UTF-8 is shown with replacement characters.
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).with_context(|| format!("a feed row ClickHouse sent: {line}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, received_s: i64) -> Row {
        Row {
            id: id.into(),
            kind: "pageview".into(),
            name: "pageview".into(),
            ts_s: received_s,
            millis: 0,
            received_s,
            path: "/".into(),
            host: "h".into(),
            referrer_source: String::new(),
            referrer_name: String::new(),
            country: String::new(),
            region: String::new(),
            city: String::new(),
            browser: String::new(),
            os: String::new(),
            device: String::new(),
        }
    }

    fn ids(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn a_row_inserted_late_with_a_second_already_read_is_shown_once() {
        let mut cursor = Cursor::starting_at(100);
        assert_eq!(ids(&cursor.accept(vec![row("a", 101), row("b", 102)])), ["a", "b"]);
        // The next poll reads the overlap again: `a` and `b` are not news; `c` (second 101, inserted late) is.
        assert!(cursor.floor() <= 101);
        assert_eq!(ids(&cursor.accept(vec![row("b", 102), row("c", 101), row("a", 101), row("c", 101)])), ["c"]);
        assert_eq!(ids(&cursor.accept(vec![row("a", 101), row("b", 102), row("c", 101)])), Vec::<&str>::new());
    }

    #[test]
    fn history_before_the_start_is_not_news_and_memory_stays_within_the_overlap() {
        let mut cursor = Cursor::starting_at(1_000);
        assert!(cursor.accept(vec![row("old", 999)]).is_empty());
        for s in 0..200 {
            cursor.accept(vec![row(&format!("e{s}"), 1_000 + s)]);
        }
        assert!(cursor.remembered() <= OVERLAP_SECS as usize + 1, "{}", cursor.remembered());
    }
}
