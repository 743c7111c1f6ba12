-- Sessions: one logical row per session, built from events by aggregation so that redelivered events change
-- nothing (see docs/CLICKHOUSE.md, "sessions").
--
-- The sessions worker inserts one slim row per event here. A Null table stores nothing: it only feeds the view.
CREATE TABLE IF NOT EXISTS session_input
(
    project_id      UUID,
    session_id      UInt64,
    visitor_id      UInt64,
    event_id        UUID,
    type            String,
    ts_ms           UInt64,
    -- ts_ms in the high bits and 16 bits of the event id below: a total order for first/last, stable under merges.
    ord             UInt64,
    user_id         String,
    host            String,
    path            String,
    referrer        String,
    referrer_host   String,
    referrer_source String,
    utm_source      String,
    utm_medium      String,
    utm_campaign    String,
    utm_term        String,
    utm_content     String,
    country         String,
    region          String,
    city            String,
    browser         String,
    browser_version String,
    os              String,
    os_version      String,
    device          String
)
ENGINE = Null;

-- Every column is an idempotent aggregate state: min/max, argMin/argMax over the total order `ord`, and exact
-- distinct counts of event ids. Adding a copy of an event already counted changes none of them, so any number of
-- unmerged parts and any redelivery give the same answer. Queries read with GROUP BY session_id and -Merge.
-- `month` (of the earliest event in the insert) only partitions the data.
CREATE TABLE IF NOT EXISTS sessions
(
    project_id      UUID,
    session_id      UInt64,
    month           Date,
    visitor_id      AggregateFunction(max, UInt64),
    user_id         AggregateFunction(argMaxIf, String, UInt64, UInt8),
    start_ms        AggregateFunction(min, UInt64),
    end_ms          AggregateFunction(max, UInt64),
    events          AggregateFunction(uniqExact, UUID),
    pageviews       AggregateFunction(uniqExactIf, UUID, UInt8),
    interactions    AggregateFunction(uniqExactIf, UUID, UInt8),
    entry_page      AggregateFunction(argMinIf, String, UInt64, UInt8),
    exit_page       AggregateFunction(argMaxIf, String, UInt64, UInt8),
    host            AggregateFunction(argMin, String, UInt64),
    referrer        AggregateFunction(argMin, String, UInt64),
    referrer_host   AggregateFunction(argMin, String, UInt64),
    referrer_source AggregateFunction(argMin, String, UInt64),
    utm_source      AggregateFunction(argMin, String, UInt64),
    utm_medium      AggregateFunction(argMin, String, UInt64),
    utm_campaign    AggregateFunction(argMin, String, UInt64),
    utm_term        AggregateFunction(argMin, String, UInt64),
    utm_content     AggregateFunction(argMin, String, UInt64),
    country         AggregateFunction(argMin, String, UInt64),
    region          AggregateFunction(argMin, String, UInt64),
    city            AggregateFunction(argMin, String, UInt64),
    browser         AggregateFunction(argMin, String, UInt64),
    browser_version AggregateFunction(argMin, String, UInt64),
    os              AggregateFunction(argMin, String, UInt64),
    os_version      AggregateFunction(argMin, String, UInt64),
    device          AggregateFunction(argMin, String, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(month)
ORDER BY (project_id, session_id)
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS sessions_mv TO sessions
AS SELECT
    project_id,
    session_id,
    toStartOfMonth(toDateTime(intDiv(min(ts_ms), 1000), 'UTC')) AS month,
    maxState(visitor_id) AS visitor_id,
    argMaxIfState(user_id, ord, user_id != '') AS user_id,
    minState(ts_ms) AS start_ms,
    maxState(ts_ms) AS end_ms,
    uniqExactState(event_id) AS events,
    uniqExactIfState(event_id, type = 'pageview') AS pageviews,
    uniqExactIfState(event_id, type = 'custom') AS interactions,
    argMinIfState(path, ord, type = 'pageview') AS entry_page,
    argMaxIfState(path, ord, type = 'pageview') AS exit_page,
    argMinState(host, ord) AS host,
    argMinState(referrer, ord) AS referrer,
    argMinState(referrer_host, ord) AS referrer_host,
    argMinState(referrer_source, ord) AS referrer_source,
    argMinState(utm_source, ord) AS utm_source,
    argMinState(utm_medium, ord) AS utm_medium,
    argMinState(utm_campaign, ord) AS utm_campaign,
    argMinState(utm_term, ord) AS utm_term,
    argMinState(utm_content, ord) AS utm_content,
    argMinState(country, ord) AS country,
    argMinState(region, ord) AS region,
    argMinState(city, ord) AS city,
    argMinState(browser, ord) AS browser,
    argMinState(browser_version, ord) AS browser_version,
    argMinState(os, ord) AS os,
    argMinState(os_version, ord) AS os_version,
    argMinState(device, ord) AS device
FROM session_input
GROUP BY project_id, session_id;
