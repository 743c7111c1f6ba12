-- One row per accepted event, every enriched field. No IP address exists here or anywhere in ClickHouse.
--
-- Duplicates: a redelivered stream entry can be inserted twice (a worker killed after its insert and before its
-- ack). ReplacingMergeTree keyed on the event id folds such rows together at merge time, and the app's queries
-- count distinct event ids, so a duplicate is never visible (see docs/CLICKHOUSE.md).
CREATE TABLE IF NOT EXISTS events
(
    project_id      UUID,
    event_id        UUID,
    type            LowCardinality(String),
    name            String,
    ts              DateTime('UTC'),
    -- Milliseconds within `ts`: orders events of one session that share a second.
    millis          UInt16,
    received_at     DateTime('UTC'),
    visitor_id      UInt64,
    session_id      UInt64,
    user_id         String,
    url             String,
    host            LowCardinality(String),
    path            String,
    title           String,
    referrer        String,
    referrer_host   String,
    referrer_source LowCardinality(String),
    utm_source      String,
    utm_medium      String,
    utm_campaign    String,
    utm_term        String,
    utm_content     String,
    country         LowCardinality(String),
    region          LowCardinality(String),
    city            String,
    browser         LowCardinality(String),
    browser_version LowCardinality(String),
    os              LowCardinality(String),
    os_version      LowCardinality(String),
    device          LowCardinality(String),
    screen_width    UInt16,
    duration_ms     UInt32,
    prop_keys       Array(String),
    prop_values     Array(String)
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (project_id, toDate(ts), event_id)
SETTINGS index_granularity = 8192;
