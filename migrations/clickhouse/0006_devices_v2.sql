-- Devices, defined so that they mean something across days (see docs/CLICKHOUSE.md, "devices_v2").
--
-- `devices` (0003) hashed the daily cookieless visitor id into its device id, so every device was new every day.
-- A device is now a (browser, OS, device type) under the most stable identity its event has: the user id, else
-- the site's anonymous id, else the daily visitor id ('daily': such a device lives one UTC day). The sorting key
-- changes, which needs a new table. The old `devices`, `device_input` and `devices_mv` stay as they are: workers of
-- this version no longer write them (older workers still running during an upgrade do), nothing reads them, and
-- their rows are not carried over (the identity of a row cannot be recovered from its hash). An operator may drop
-- them once the upgrade is done: DROP TABLE devices_mv, then device_input, then devices.
--
-- The devices worker inserts one row per event here; device_id hashes (project, identity, value, browser, OS,
-- device type).
CREATE TABLE IF NOT EXISTS device_input_v2
(
    project_id      UUID,
    device_id       UInt64,
    identity        String,
    user_id         String,
    visitor_id      UInt64,
    browser         String,
    browser_version String,
    os              String,
    os_version      String,
    device          String,
    -- Arrival time in ms (the hub's clock, as for sessions).
    ts_ms           UInt64,
    -- ts_ms in the high bits, 16 bits of the event id below: a total order for the last versions and visitor.
    ord             UInt64
)
ENGINE = Null;

-- The identifying columns are functions of device_id (it hashes them); they sit in the sorting key after it,
-- which keeps them out of the aggregation (current servers refuse plain columns outside the key) at no cost in
-- grouping. Versions are not identifying (a browser that updates stays one device): the last ones seen are argMax
-- states, as is the last visitor id (a user's device is seen under a new cookieless visitor id every day). Every
-- state is idempotent, so a redelivered event changes nothing.
CREATE TABLE IF NOT EXISTS devices_v2
(
    project_id      UUID,
    device_id       UInt64,
    identity        String,
    user_id         String,
    browser         String,
    os              String,
    device          String,
    visitor_id      AggregateFunction(argMax, UInt64, UInt64),
    browser_version AggregateFunction(argMax, String, UInt64),
    os_version      AggregateFunction(argMax, String, UInt64),
    first_seen_ms   AggregateFunction(min, UInt64),
    last_seen_ms    AggregateFunction(max, UInt64)
)
ENGINE = AggregatingMergeTree()
ORDER BY (project_id, device_id, identity, user_id, browser, os, device)
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS devices_v2_mv TO devices_v2
AS SELECT
    project_id,
    device_id,
    identity,
    user_id,
    browser,
    os,
    device,
    argMaxState(visitor_id, ord) AS visitor_id,
    argMaxState(browser_version, ord) AS browser_version,
    argMaxState(os_version, ord) AS os_version,
    minState(ts_ms) AS first_seen_ms,
    maxState(ts_ms) AS last_seen_ms
FROM device_input_v2
GROUP BY project_id, device_id, identity, user_id, browser, os, device;
