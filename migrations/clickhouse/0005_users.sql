-- Users: one logical row per identified user (project, user id), fed by `identify.v1` jobs and by every event that
-- carries a user (see docs/CLICKHOUSE.md, "users"). Before this table, identify traits answered 202 were dropped
-- by every worker.
--
-- The users worker inserts one row per such job here. A Null table stores nothing: it only feeds the view.
CREATE TABLE IF NOT EXISTS users_input
(
    project_id  UUID,
    user_id     String,
    visitor_id  UInt64,
    session_id  UInt64,
    -- The event's id; the nil UUID for an identify (counted as no event).
    event_id    UUID,
    -- Arrival time in ms (the hub's clock, as for sessions).
    ts_ms       UInt64,
    -- ts_ms in the high bits, 16 bits of the event id (or of a hash of the traits) below: a total order.
    ord         UInt64,
    is_identify UInt8,
    -- The identify's traits as a JSON object; '' for events and for an identify without traits.
    traits      String
)
ENGINE = Null;

-- Every column is an idempotent aggregate state (min/max, argMax over the total order `ord`, exact distinct
-- counts), so a redelivered job changes nothing and any number of unmerged parts read the same. Queries read
-- with GROUP BY user_id and -Merge (catalog: `users.list`). Not partitioned: one row per user, a small table.
CREATE TABLE IF NOT EXISTS users
(
    project_id      UUID,
    user_id         String,
    first_seen_ms   AggregateFunction(min, UInt64),
    last_seen_ms    AggregateFunction(max, UInt64),
    traits          AggregateFunction(argMaxIf, String, UInt64, UInt8),
    last_visitor_id AggregateFunction(argMax, UInt64, UInt64),
    visitors        AggregateFunction(uniqExact, UInt64),
    sessions        AggregateFunction(uniqExactIf, UInt64, UInt8),
    events          AggregateFunction(uniqExactIf, UUID, UInt8)
)
ENGINE = AggregatingMergeTree()
ORDER BY (project_id, user_id)
SETTINGS index_granularity = 8192;

-- Traits: the latest identify that carried any replaces the whole object (keys are not merged across identifies).
CREATE MATERIALIZED VIEW IF NOT EXISTS users_mv TO users
AS SELECT
    project_id,
    user_id,
    minState(ts_ms) AS first_seen_ms,
    maxState(ts_ms) AS last_seen_ms,
    argMaxIfState(traits, ord, is_identify = 1 AND traits != '') AS traits,
    argMaxState(visitor_id, ord) AS last_visitor_id,
    uniqExactState(visitor_id) AS visitors,
    uniqExactIfState(session_id, session_id != 0) AS sessions,
    uniqExactIfState(event_id, is_identify = 0) AS events
FROM users_input
GROUP BY project_id, user_id;
