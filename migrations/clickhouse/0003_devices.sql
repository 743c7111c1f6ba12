-- Devices: one logical row per (project, visitor, browser and version, OS and version, device type), with the
-- first and last time it was seen (see docs/CLICKHOUSE.md, "devices").
--
-- The devices worker inserts one row per event here; device_id is a stable hash of the identifying fields.
CREATE TABLE IF NOT EXISTS device_input
(
    project_id      UUID,
    device_id       UInt64,
    visitor_id      UInt64,
    browser         String,
    browser_version String,
    os              String,
    os_version      String,
    device          String,
    ts_ms           UInt64
)
ENGINE = Null;

-- The identifying columns are functions of device_id (it hashes them); they sit in the sorting key after it, which
-- keeps them out of the aggregation (current servers refuse plain columns outside the key) at no cost in grouping.
-- First/last seen are min/max states, unchanged by a redelivered event. Queries group by the key columns with
-- minMerge/maxMerge, or count uniqExact(device_id).
CREATE TABLE IF NOT EXISTS devices
(
    project_id      UUID,
    device_id       UInt64,
    visitor_id      UInt64,
    browser         String,
    browser_version String,
    os              String,
    os_version      String,
    device          String,
    first_seen_ms   AggregateFunction(min, UInt64),
    last_seen_ms    AggregateFunction(max, UInt64)
)
ENGINE = AggregatingMergeTree()
ORDER BY (project_id, device_id, visitor_id, browser, browser_version, os, os_version, device)
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS devices_mv TO devices
AS SELECT
    project_id,
    device_id,
    visitor_id,
    browser,
    browser_version,
    os,
    os_version,
    device,
    minState(ts_ms) AS first_seen_ms,
    maxState(ts_ms) AS last_seen_ms
FROM device_input
GROUP BY project_id, device_id, visitor_id, browser, browser_version, os, os_version, device;
