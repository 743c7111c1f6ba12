//! Every SQL statement the services send to ClickHouse, named, with sample bindings. Tests run each one on the
//! ClickHouse 18.16 server here, and `app sql-catalog` prints them for `just test-compat`, which runs them on the
//! current ClickHouse engine through chdb: a query that only one version accepts fails the build.

/// A query as sent, with `?` placeholders, and the sample values `app sql-catalog` binds for the compatibility run.
#[derive(Debug, Clone, Copy)]
pub struct CatalogQuery {
    pub name: &'static str,
    pub sql: &'static str,
    /// SQL literals, one per `?`, in order.
    pub samples: &'static [&'static str],
}

impl CatalogQuery {
    /// The statement with its sample literals in place of the placeholders.
    pub fn with_samples(&self) -> String {
        let mut out = String::with_capacity(self.sql.len() + 64);
        let mut samples = self.samples.iter();
        for ch in self.sql.chars() {
            if ch == '?' {
                out.push_str(samples.next().expect("a sample for every placeholder"));
            } else {
                out.push(ch);
            }
        }
        assert!(samples.next().is_none(), "more samples than placeholders in {}", self.name);
        out
    }
}

/// Columns the events worker writes, in the order of its row type.
pub const EVENT_COLUMNS: &str = "project_id, event_id, type, name, ts, millis, received_at, visitor_id, session_id, \
    user_id, url, host, path, title, referrer, referrer_host, referrer_source, referrer_name, utm_source, utm_medium, \
    utm_campaign, utm_term, utm_content, country, region, city, browser, browser_version, os, os_version, device, screen_width, \
    duration_ms, prop_keys, prop_values";

/// Columns the sessions worker writes into `session_input`, in the order of its row type.
pub const SESSION_INPUT_COLUMNS: &str = "project_id, session_id, visitor_id, event_id, type, ts_ms, ord, user_id, host, \
    path, referrer, referrer_host, referrer_source, referrer_name, utm_source, utm_medium, utm_campaign, utm_term, \
    utm_content, country, region, city, browser, browser_version, os, os_version, device";

/// Columns the devices worker writes into `device_input_v2`, in the order of its row type.
pub const DEVICE_INPUT_COLUMNS: &str = "project_id, device_id, identity, user_id, visitor_id, browser, browser_version, \
    os, os_version, device, ts_ms, ord";

/// Columns the users worker writes into `users_input`, in the order of its row type.
pub const USER_INPUT_COLUMNS: &str =
    "project_id, user_id, visitor_id, session_id, event_id, ts_ms, ord, is_identify, traits";

/// The ClickHouse migration runner's ledger (see `ch_migrations`).
pub const LEDGER_DDL: &str = "CREATE TABLE IF NOT EXISTS tidemark_migrations (version UInt32, name String, \
    checksum String, applied_at DateTime('UTC')) ENGINE = MergeTree() ORDER BY version";

pub const CATALOG: &[CatalogQuery] = &[
    CatalogQuery { name: "migrations.ledger_ddl", sql: LEDGER_DDL, samples: &[] },
    CatalogQuery {
        name: "migrations.ledger_read",
        sql: "SELECT version, any(checksum) AS checksum FROM tidemark_migrations GROUP BY version",
        samples: &[],
    },
    CatalogQuery {
        name: "migrations.ledger_record",
        sql: "INSERT INTO tidemark_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, now())",
        samples: &["1", "'0001_example.sql'", "'abc'"],
    },
    CatalogQuery {
        name: "events.insert_shape",
        sql: "SELECT project_id, event_id, type, name, ts, millis, received_at, visitor_id, session_id, user_id, url, \
              host, path, title, referrer, referrer_host, referrer_source, referrer_name, utm_source, utm_medium, \
              utm_campaign, utm_term, utm_content, country, region, city, browser, browser_version, os, os_version, \
              device, screen_width, duration_ms, prop_keys, prop_values FROM events LIMIT 0",
        samples: &[],
    },
    CatalogQuery {
        name: "events.count_for_project",
        sql: "SELECT uniqExact(event_id) FROM events WHERE project_id = ? AND ts >= toDateTime(?, 'UTC') \
              AND ts < toDateTime(?, 'UTC')",
        samples: &["toUUID('00000000-0000-0000-0000-000000000001')", "1700000000", "1800000000"],
    },
    // What the workers write through (`LIMIT 0` proves the columns exist with these names on both versions).
    CatalogQuery {
        name: "sessions.insert_shape",
        sql: "SELECT project_id, session_id, visitor_id, event_id, type, ts_ms, ord, user_id, host, path, referrer, \
              referrer_host, referrer_source, referrer_name, utm_source, utm_medium, utm_campaign, utm_term, \
              utm_content, country, region, city, browser, browser_version, os, os_version, device FROM session_input \
              LIMIT 0",
        samples: &[],
    },
    CatalogQuery {
        name: "devices.insert_shape",
        sql: "SELECT project_id, device_id, identity, user_id, visitor_id, browser, browser_version, os, os_version, \
              device, ts_ms, ord FROM device_input_v2 LIMIT 0",
        samples: &[],
    },
    CatalogQuery {
        name: "users.insert_shape",
        sql: "SELECT project_id, user_id, visitor_id, session_id, event_id, ts_ms, ord, is_identify, traits \
              FROM users_input LIMIT 0",
        samples: &[],
    },
    // The app's query shapes. Each one is immune to duplicates left by redelivery: the events table is counted by
    // distinct event id (or read FINAL), sessions and devices are read through their idempotent aggregate states.
    // Bindings: project id as text, then the range as Unix seconds (events) or milliseconds (sessions, devices).
    CatalogQuery {
        name: "events.totals",
        sql: "SELECT uniqExactIf(event_id, type = 'pageview') AS pageviews, uniqExact(visitor_id) AS visitors, \
              uniqExactIf(session_id, session_id != 0) AS sessions, uniqExact(event_id) AS events FROM events \
              WHERE project_id = toUUID(?) AND ts >= toDateTime(?, 'UTC') AND ts < toDateTime(?, 'UTC')",
        samples: &["'00000000-0000-0000-0000-000000000001'", "1700000000", "1800000000"],
    },
    CatalogQuery {
        name: "events.top_pages",
        sql: "SELECT path, uniqExact(event_id) AS pageviews, uniqExact(visitor_id) AS visitors FROM events \
              WHERE project_id = toUUID(?) AND type = 'pageview' AND ts >= toDateTime(?, 'UTC') \
              AND ts < toDateTime(?, 'UTC') GROUP BY path ORDER BY pageviews DESC, path LIMIT ?",
        samples: &["'00000000-0000-0000-0000-000000000001'", "1700000000", "1800000000", "10"],
    },
    CatalogQuery {
        name: "events.hourly",
        sql: "SELECT toStartOfHour(ts) AS hour, uniqExactIf(event_id, type = 'pageview') AS pageviews, \
              uniqExact(visitor_id) AS visitors FROM events WHERE project_id = toUUID(?) \
              AND ts >= toDateTime(?, 'UTC') AND ts < toDateTime(?, 'UTC') GROUP BY hour ORDER BY hour",
        samples: &["'00000000-0000-0000-0000-000000000001'", "1700000000", "1800000000"],
    },
    CatalogQuery {
        name: "events.recent",
        sql: "SELECT toString(event_id) AS id, type AS kind, name, path, ts, millis FROM events FINAL \
              WHERE project_id = toUUID(?) AND ts >= toDateTime(?, 'UTC') ORDER BY ts DESC, millis DESC, id LIMIT ?",
        samples: &["'00000000-0000-0000-0000-000000000001'", "1700000000", "50"],
    },
    CatalogQuery {
        name: "sessions.list",
        sql: "SELECT session_id, maxMerge(visitor_id) AS visitor, argMaxIfMerge(user_id) AS user, \
              minMerge(start_ms) AS first_ms, maxMerge(end_ms) AS last_ms, intDiv(last_ms - first_ms, 1000) AS duration_s, \
              uniqExactMerge(events) AS n_events, uniqExactIfMerge(pageviews) AS n_pageviews, \
              uniqExactIfMerge(interactions) AS n_interactions, n_pageviews = 1 AND n_interactions = 0 AS bounce, \
              argMinIfMerge(entry_page) AS entry_path, argMaxIfMerge(exit_page) AS exit_path, \
              argMinMerge(referrer_host) AS first_referrer_host, argMinMerge(referrer_source) AS first_source, \
              argMinMerge(referrer_name) AS first_referrer_name, argMinMerge(utm_source) AS first_utm_source, argMinMerge(utm_campaign) AS first_utm_campaign, \
              argMinMerge(country) AS first_country, argMinMerge(browser) AS first_browser, \
              argMinMerge(os) AS first_os, argMinMerge(device) AS first_device FROM sessions \
              WHERE project_id = toUUID(?) GROUP BY session_id HAVING first_ms >= ? AND first_ms < ? \
              ORDER BY first_ms, session_id LIMIT ?",
        samples: &["'00000000-0000-0000-0000-000000000001'", "1700000000000", "1800000000000", "100"],
    },
    CatalogQuery {
        name: "sessions.summary",
        sql: "SELECT count() AS sessions, countIf(n_pageviews = 1 AND n_interactions = 0) AS bounces, \
              countIf(n_pageviews = 1 AND n_interactions = 0) / count() AS bounce_rate, \
              avg(intDiv(last_ms - first_ms, 1000)) AS avg_duration_s FROM (SELECT session_id, \
              minMerge(start_ms) AS first_ms, maxMerge(end_ms) AS last_ms, uniqExactIfMerge(pageviews) AS n_pageviews, \
              uniqExactIfMerge(interactions) AS n_interactions FROM sessions WHERE project_id = toUUID(?) \
              GROUP BY session_id HAVING first_ms >= ? AND first_ms < ?) AS s",
        samples: &["'00000000-0000-0000-0000-000000000001'", "1700000000000", "1800000000000"],
    },
    CatalogQuery {
        name: "sessions.entry_pages",
        sql: "SELECT entry_path, count() AS sessions FROM (SELECT session_id, minMerge(start_ms) AS first_ms, \
              argMinIfMerge(entry_page) AS entry_path FROM sessions WHERE project_id = toUUID(?) GROUP BY session_id \
              HAVING first_ms >= ? AND first_ms < ?) AS s WHERE entry_path != '' \
              GROUP BY entry_path ORDER BY sessions DESC, entry_path LIMIT ?",
        samples: &["'00000000-0000-0000-0000-000000000001'", "1700000000000", "1800000000000", "10"],
    },
    CatalogQuery {
        name: "sessions.exit_pages",
        sql: "SELECT exit_path, count() AS sessions FROM (SELECT session_id, minMerge(start_ms) AS first_ms, \
              argMaxIfMerge(exit_page) AS exit_path FROM sessions WHERE project_id = toUUID(?) GROUP BY session_id \
              HAVING first_ms >= ? AND first_ms < ?) AS s WHERE exit_path != '' \
              GROUP BY exit_path ORDER BY sessions DESC, exit_path LIMIT ?",
        samples: &["'00000000-0000-0000-0000-000000000001'", "1700000000000", "1800000000000", "10"],
    },
    CatalogQuery {
        name: "sessions.sources",
        sql: "SELECT first_source, first_referrer_name, first_referrer_host, count() AS sessions FROM (SELECT \
              session_id, minMerge(start_ms) AS first_ms, argMinMerge(referrer_source) AS first_source, \
              argMinMerge(referrer_name) AS first_referrer_name, argMinMerge(referrer_host) AS first_referrer_host \
              FROM sessions WHERE project_id = toUUID(?) GROUP BY session_id HAVING first_ms >= ? AND first_ms < ?) \
              AS s GROUP BY first_source, first_referrer_name, first_referrer_host \
              ORDER BY sessions DESC, first_source, first_referrer_name, first_referrer_host LIMIT ?",
        samples: &["'00000000-0000-0000-0000-000000000001'", "1700000000000", "1800000000000", "10"],
    },
    // Devices (`devices_v2`): a device is a (browser, OS, device type) under one identity, `user`, `anonymous` or
    // `daily` (see docs/CLICKHOUSE.md). Only `user` and `anonymous` devices can be followed across days.
    CatalogQuery {
        name: "devices.list",
        sql: "SELECT device_id, identity, user_id, argMaxMerge(visitor_id) AS last_visitor, browser, \
              argMaxMerge(browser_version) AS last_browser_version, os, argMaxMerge(os_version) AS last_os_version, \
              device, minMerge(first_seen_ms) AS first_ms, maxMerge(last_seen_ms) AS last_ms FROM devices_v2 \
              WHERE project_id = toUUID(?) GROUP BY device_id, identity, user_id, browser, os, device \
              ORDER BY first_ms, device_id LIMIT ?",
        samples: &["'00000000-0000-0000-0000-000000000001'", "100"],
    },
    // Devices seen in the range (any identity), by device type.
    CatalogQuery {
        name: "devices.by_type",
        sql: "SELECT device, count() AS n_devices FROM (SELECT device_id, device, minMerge(first_seen_ms) AS first_ms, \
              maxMerge(last_seen_ms) AS last_ms FROM devices_v2 WHERE project_id = toUUID(?) GROUP BY device_id, device \
              HAVING last_ms >= ? AND first_ms < ?) AS d GROUP BY device ORDER BY n_devices DESC, device",
        samples: &["'00000000-0000-0000-0000-000000000001'", "1700000000000", "1800000000000"],
    },
    // Devices seen in the range, by identity: a `daily` device is one browser on one UTC day, so over a range of
    // several days the same machine counts once a day.
    CatalogQuery {
        name: "devices.seen",
        sql: "SELECT identity, count() AS n_devices FROM (SELECT device_id, identity, \
              minMerge(first_seen_ms) AS first_ms, maxMerge(last_seen_ms) AS last_ms FROM devices_v2 \
              WHERE project_id = toUUID(?) GROUP BY device_id, identity HAVING last_ms >= ? AND first_ms < ?) AS d \
              GROUP BY identity ORDER BY identity",
        samples: &["'00000000-0000-0000-0000-000000000001'", "1700000000000", "1800000000000"],
    },
    // New devices: first seen in the range, counted only for identities that outlive a day. A `daily` device is
    // new every day by construction, so counting it would call every returning cookieless visitor new.
    CatalogQuery {
        name: "devices.new",
        sql: "SELECT count() AS n_devices FROM (SELECT device_id, minMerge(first_seen_ms) AS first_ms FROM devices_v2 \
              WHERE project_id = toUUID(?) AND identity != 'daily' GROUP BY device_id \
              HAVING first_ms >= ? AND first_ms < ?) AS d",
        samples: &["'00000000-0000-0000-0000-000000000001'", "1700000000000", "1800000000000"],
    },
    // Identified users, most recently seen first. `traits` is the latest identify's traits as a JSON object text
    // ('' when no identify carried any); `last_visitor` is the visitor id of the user's latest job.
    CatalogQuery {
        name: "users.list",
        sql: "SELECT user_id, minMerge(first_seen_ms) AS first_ms, maxMerge(last_seen_ms) AS last_ms, \
              argMaxIfMerge(traits) AS latest_traits, argMaxMerge(last_visitor_id) AS last_visitor, \
              uniqExactMerge(visitors) AS n_visitors, uniqExactIfMerge(sessions) AS n_sessions, \
              uniqExactIfMerge(events) AS n_events FROM users WHERE project_id = toUUID(?) GROUP BY user_id \
              HAVING last_ms >= ? AND first_ms < ? ORDER BY last_ms DESC, user_id LIMIT ?",
        samples: &["'00000000-0000-0000-0000-000000000001'", "1700000000000", "1800000000000", "100"],
    },
    // Deleting a project (app/src/purge.rs): the tables present (an operator may have dropped the old `devices`),
    // then one asynchronous mutation per table that holds project rows. Bindings: the project id as text.
    CatalogQuery {
        name: "projects.purge_tables",
        sql: "SELECT name FROM system.tables WHERE database = currentDatabase()",
        samples: &[],
    },
    CatalogQuery {
        name: "projects.purge_events",
        sql: "ALTER TABLE events DELETE WHERE project_id = toUUID(?)",
        samples: &["'00000000-0000-0000-0000-000000000001'"],
    },
    CatalogQuery {
        name: "projects.purge_sessions",
        sql: "ALTER TABLE sessions DELETE WHERE project_id = toUUID(?)",
        samples: &["'00000000-0000-0000-0000-000000000001'"],
    },
    CatalogQuery {
        name: "projects.purge_devices_v2",
        sql: "ALTER TABLE devices_v2 DELETE WHERE project_id = toUUID(?)",
        samples: &["'00000000-0000-0000-0000-000000000001'"],
    },
    CatalogQuery {
        name: "projects.purge_users",
        sql: "ALTER TABLE users DELETE WHERE project_id = toUUID(?)",
        samples: &["'00000000-0000-0000-0000-000000000001'"],
    },
    CatalogQuery {
        name: "projects.purge_devices",
        sql: "ALTER TABLE devices DELETE WHERE project_id = toUUID(?)",
        samples: &["'00000000-0000-0000-0000-000000000001'"],
    },
    // Realtime (app/src/realtime): the clock is arrival (`received_at`, the hub's), so an event counts from the
    // moment it was answered 202 whatever time its client claimed. The `ts` bound is no filter (the hub clamps `ts`
    // to at most `max_event_age_secs` before arrival) but lets the sorting key skip the project's older days.
    // `PREWHERE received_at` reads the arrival column alone over those days and the other columns only where it
    // matches: at 10M events (one project, 90 days) the feed query went from 100 to 37 ms p50 (docs/BENCHMARKS.md).
    // Bindings: the window's start (Unix seconds), the project id as text, the `ts` bound (then the row limit).
    CatalogQuery {
        name: "realtime.visitors",
        sql: "SELECT uniqExact(visitor_id) AS visitors FROM events PREWHERE received_at >= toDateTime(?, 'UTC') \
              WHERE project_id = toUUID(?) AND ts >= toDateTime(?, 'UTC')",
        samples: &["1700000000", "'00000000-0000-0000-0000-000000000001'", "1699800000"],
    },
    // The live feed: events that arrived since the poller's floor, newest first, each event id once (a redelivered
    // copy not yet merged away is the same id). No visitor, session or user id is read.
    CatalogQuery {
        name: "realtime.feed",
        sql: "SELECT toString(event_id) AS id, type, name, toUInt32(ts) AS ts_s, millis, \
              toUInt32(received_at) AS received_s, path, host, referrer_source, referrer_name, country, region, city, \
              browser, os, device FROM events PREWHERE received_at >= toDateTime(?, 'UTC') WHERE project_id = toUUID(?) \
              AND ts >= toDateTime(?, 'UTC') ORDER BY received_s DESC, ts_s DESC, millis DESC, id \
              LIMIT 1 BY id LIMIT ?",
        samples: &["1700000000", "'00000000-0000-0000-0000-000000000001'", "1699800000", "500"],
    },
];

/// A catalog query by name; the services take their SQL from here so the compatibility run checks what runs.
pub fn by_name(name: &str) -> &'static CatalogQuery {
    CATALOG.iter().find(|q| q.name == name).unwrap_or_else(|| panic!("no catalog query named {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fill_every_placeholder() {
        for query in CATALOG {
            let sql = query.with_samples();
            assert!(!sql.contains('?'), "{} keeps a placeholder", query.name);
        }
    }

    #[test]
    fn insert_shapes_list_the_worker_columns() {
        for (name, columns) in [
            ("events.insert_shape", EVENT_COLUMNS),
            ("sessions.insert_shape", SESSION_INPUT_COLUMNS),
            ("devices.insert_shape", DEVICE_INPUT_COLUMNS),
            ("users.insert_shape", USER_INPUT_COLUMNS),
        ] {
            let flat: String = by_name(name).sql.split_whitespace().collect::<Vec<_>>().join(" ");
            let cols: String = columns.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(flat.contains(&cols), "{name}");
        }
    }
}
