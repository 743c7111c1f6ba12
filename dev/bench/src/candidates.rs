//! Candidate storage for the app's queries, measured by `just bench app` against the production tables. None of
//! this is a migration: the bench creates it in its own database, beside the tables `app migrate` creates, and fills
//! it through materialized views from the same inserts the workers make. Every statement runs on 18.16 and on
//! current ClickHouse (`bench-app sql-catalog` feeds them to `scripts/ch_compat.py`).
//!
//! - `c_sessions_slim`: the sessions table with only cheap idempotent states. Bounce needs "exactly one pageview and
//!   no custom event", which min and max of the pageviews' order give (one pageview: first = last) without the
//!   `uniqExact` hash sets of every event id that `sessions` merges per session. Read by session-id range, which
//!   is a time range once the hub mints ids as `start second << 32 | random` (`history.rs`).
//! - `c_rollup_exact`: per (project, dimension, UTC day, value) `uniqExactState` of visitor and event ids: exact and
//!   idempotent (a redelivered event adds an id already in the set).
//! - `c_rollup_hll`: the same with `uniqState` (adaptive sampling): cheaper, approximate; its error is measured.

/// (name, statement) in the order they must run.
pub const DDL: &[(&str, &str)] = &[
    (
        "candidates.sessions_slim",
        "CREATE TABLE IF NOT EXISTS c_sessions_slim
(
    project_id      UUID,
    session_id      UInt64,
    month           Date,
    visitor_id      AggregateFunction(max, UInt64),
    start_ms        AggregateFunction(min, UInt64),
    end_ms          AggregateFunction(max, UInt64),
    first_pageview  AggregateFunction(minIf, UInt64, UInt8),
    last_pageview   AggregateFunction(maxIf, UInt64, UInt8),
    last_custom     AggregateFunction(maxIf, UInt64, UInt8),
    entry_page      AggregateFunction(argMinIf, String, UInt64, UInt8),
    exit_page       AggregateFunction(argMaxIf, String, UInt64, UInt8),
    referrer        AggregateFunction(argMin, String, UInt64),
    referrer_name   AggregateFunction(argMin, String, UInt64),
    utm_source      AggregateFunction(argMin, String, UInt64),
    country         AggregateFunction(argMin, String, UInt64),
    region          AggregateFunction(argMin, String, UInt64),
    city            AggregateFunction(argMin, String, UInt64),
    browser         AggregateFunction(argMin, String, UInt64),
    os              AggregateFunction(argMin, String, UInt64),
    device          AggregateFunction(argMin, String, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(month)
ORDER BY (project_id, session_id)
SETTINGS index_granularity = 8192",
    ),
    (
        "candidates.sessions_slim_mv",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS c_sessions_slim_mv TO c_sessions_slim
AS SELECT
    project_id,
    session_id,
    toStartOfMonth(toDateTime(intDiv(min(ts_ms), 1000), 'UTC')) AS month,
    maxState(visitor_id) AS visitor_id,
    minState(ts_ms) AS start_ms,
    maxState(ts_ms) AS end_ms,
    minIfState(ord, type = 'pageview') AS first_pageview,
    maxIfState(ord, type = 'pageview') AS last_pageview,
    maxIfState(ord, type = 'custom') AS last_custom,
    argMinIfState(path, ord, type = 'pageview') AS entry_page,
    argMaxIfState(path, ord, type = 'pageview') AS exit_page,
    argMinState(referrer, ord) AS referrer,
    argMinState(referrer_name, ord) AS referrer_name,
    argMinState(utm_source, ord) AS utm_source,
    argMinState(country, ord) AS country,
    argMinState(region, ord) AS region,
    argMinState(city, ord) AS city,
    argMinState(browser, ord) AS browser,
    argMinState(os, ord) AS os,
    argMinState(device, ord) AS device
FROM session_input
GROUP BY project_id, session_id",
    ),
    ("candidates.rollup_exact", ROLLUP_EXACT),
    ("candidates.rollup_exact_mv", ROLLUP_EXACT_MV),
    ("candidates.rollup_hll", ROLLUP_HLL),
    ("candidates.rollup_hll_mv", ROLLUP_HLL_MV),
];

// `all` rows count every event (the overview and time series), `page` rows the pageviews of a path, `event` rows the
// custom events of a name. UTC days: a project in another timezone needs hourly rows (24 times as many).
const ROLLUP_EXACT: &str = "CREATE TABLE IF NOT EXISTS c_rollup_exact
(
    project_id UUID,
    dim        String,
    day        Date,
    value      String,
    visitors   AggregateFunction(uniqExact, UInt64),
    pageviews  AggregateFunction(uniqExactIf, UUID, UInt8),
    events     AggregateFunction(uniqExact, UUID)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, dim, day, value)
SETTINGS index_granularity = 8192";

const ROLLUP_EXACT_MV: &str = "CREATE MATERIALIZED VIEW IF NOT EXISTS c_rollup_exact_mv TO c_rollup_exact
AS SELECT
    project_id,
    tupleElement(d, 1) AS dim,
    toDate(ts) AS day,
    tupleElement(d, 2) AS value,
    uniqExactState(visitor_id) AS visitors,
    uniqExactIfState(event_id, type = 'pageview') AS pageviews,
    uniqExactState(event_id) AS events
FROM events
ARRAY JOIN [('all', ''), (if(type = 'pageview', 'page', ''), path), (if(type = 'custom', 'event', ''), name)] AS d
WHERE tupleElement(d, 1) != ''
GROUP BY project_id, dim, day, value";

const ROLLUP_HLL: &str = "CREATE TABLE IF NOT EXISTS c_rollup_hll
(
    project_id UUID,
    dim        String,
    day        Date,
    value      String,
    visitors   AggregateFunction(uniq, UInt64),
    pageviews  AggregateFunction(uniqIf, UUID, UInt8),
    events     AggregateFunction(uniq, UUID)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, dim, day, value)
SETTINGS index_granularity = 8192";

const ROLLUP_HLL_MV: &str = "CREATE MATERIALIZED VIEW IF NOT EXISTS c_rollup_hll_mv TO c_rollup_hll
AS SELECT
    project_id,
    tupleElement(d, 1) AS dim,
    toDate(ts) AS day,
    tupleElement(d, 2) AS value,
    uniqState(visitor_id) AS visitors,
    uniqIfState(event_id, type = 'pageview') AS pageviews,
    uniqState(event_id) AS events
FROM events
ARRAY JOIN [('all', ''), (if(type = 'pageview', 'page', ''), path), (if(type = 'custom', 'event', ''), name)] AS d
WHERE tupleElement(d, 1) != ''
GROUP BY project_id, dim, day, value";

/// Closed days of visits: per (project, dimension, UTC day of the session's start, value) the exact visitor set and
/// the visit counts, computed by a job from the sessions of days that can no longer change, not by a view (a
/// session's bounce and duration are only known once it is over). The job recomputes whole days from the
/// idempotent sessions table and the newest computation replaces the older one (`computed_at`), so running it again,
/// or after redelivered rows, gives the same rows. Reads take `FINAL`; the open day comes from the sessions table.
pub const VISITS_DAILY: &str = "CREATE TABLE IF NOT EXISTS c_visits_daily
(
    project_id  UUID,
    dim         String,
    day         Date,
    value       String,
    computed_at DateTime('UTC'),
    visitors    AggregateFunction(uniqExact, UInt64),
    visits      UInt64,
    bounces     UInt64,
    duration_ms UInt64
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, dim, day, value)
SETTINGS index_granularity = 8192";

/// The job's statement for the days whose sessions started in [from, to) (midnights, ms) of one project.
pub fn close_days(project: &uuid::Uuid, from_ms: i64, to_ms: i64) -> String {
    let month = chrono::DateTime::from_timestamp_millis(from_ms).expect("in range").format("%Y-%m-01");
    let (low, high) = (((from_ms / 1000) as u64) << 32, ((to_ms / 1000) as u64) << 32);
    format!(
        "INSERT INTO c_visits_daily (project_id, dim, day, value, computed_at, visitors, visits, bounces, duration_ms)
SELECT toUUID('{project}'), tupleElement(d, 1) AS dim, toDate(toDateTime(intDiv(first_ms, 1000), 'UTC')) AS day,
    tupleElement(d, 2) AS value, now(), uniqExactState(vid), count(), countIf(bounce), sum(last_ms - first_ms)
FROM
(
    SELECT session_id, maxMerge(visitor_id) AS vid, minMerge(start_ms) AS first_ms, maxMerge(end_ms) AS last_ms,
        minIfMerge(first_pageview) AS fpv, maxIfMerge(last_pageview) AS lpv,
        (fpv != 0 AND fpv = lpv AND maxIfMerge(last_custom) = 0) AS bounce,
        argMinIfMerge(entry_page) AS v_entry, argMaxIfMerge(exit_page) AS v_exit, argMinMerge(referrer_name) AS v_source,
        argMinMerge(referrer) AS v_referrer, argMinMerge(utm_source) AS v_utm_source, argMinMerge(country) AS v_country,
        argMinMerge(region) AS v_region, argMinMerge(city) AS v_city, argMinMerge(browser) AS v_browser,
        argMinMerge(os) AS v_os, argMinMerge(device) AS v_device
    FROM c_sessions_slim
    WHERE project_id = toUUID('{project}') AND month >= toDate('{month}') AND session_id >= {low} AND session_id < {high}
    GROUP BY session_id
    HAVING first_ms >= {from_ms} AND first_ms < {to_ms}
) AS s
ARRAY JOIN [('all', ''), ('entry_pages', v_entry), ('exit_pages', v_exit), ('sources', v_source),
    ('referrers', v_referrer), ('utm_sources', v_utm_source), ('countries', v_country), ('regions', v_region),
    ('cities', v_city), ('browsers', v_browser), ('os', v_os), ('devices', v_device)] AS d
GROUP BY dim, day, value"
    )
}
