-- The referrer's name (`Google`, `Hacker News`), which the hub's classifier computes and `event.v3` jobs carry.
--
-- 18.16 has no `ADD COLUMN IF NOT EXISTS`: the migration runner counts an `ADD COLUMN` whose column is already
-- there as done, so this file can run again after an interruption (`ch_migrations::column_already_added`).
--
-- Upgrade order: run this migration, then upgrade the workers (they write `referrer_name`: against the old schema
-- their inserts are refused and retried, nothing is lost), then the hubs (only `event.v3` jobs carry the name).
ALTER TABLE events ADD COLUMN referrer_name String AFTER referrer_source;

ALTER TABLE session_input ADD COLUMN referrer_name String AFTER referrer_source;

ALTER TABLE sessions ADD COLUMN referrer_name AggregateFunction(argMin, String, UInt64) AFTER referrer_source;

-- 18.16 cannot alter a view's query, so the sessions view is replaced: the new one first, then the old one dropped.
-- While both exist, each insert into `session_input` feeds both and lands in `sessions` twice. Every state is
-- idempotent (min, max, argMin/argMax over a total order, uniqExact of event ids), so the second copy changes no
-- answer: rows fed to both views count once. Rows the old view wrote have an empty `referrer_name` state (no value
-- at all), so a session that spans the upgrade takes its name from its first event written after it.
CREATE MATERIALIZED VIEW IF NOT EXISTS sessions_mv_v2 TO sessions
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
    argMinState(referrer_name, ord) AS referrer_name,
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

DROP TABLE IF EXISTS sessions_mv;
