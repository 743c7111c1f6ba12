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
    user_id, url, host, path, title, referrer, referrer_host, referrer_source, utm_source, utm_medium, utm_campaign, \
    utm_term, utm_content, country, region, city, browser, browser_version, os, os_version, device, screen_width, \
    duration_ms, prop_keys, prop_values";

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
              host, path, title, referrer, referrer_host, referrer_source, utm_source, utm_medium, utm_campaign, \
              utm_term, utm_content, country, region, city, browser, browser_version, os, os_version, device, \
              screen_width, duration_ms, prop_keys, prop_values FROM events LIMIT 0",
        samples: &[],
    },
    CatalogQuery {
        name: "events.count_for_project",
        sql: "SELECT uniqExact(event_id) FROM events WHERE project_id = ? AND ts >= toDateTime(?, 'UTC') \
              AND ts < toDateTime(?, 'UTC')",
        samples: &["toUUID('00000000-0000-0000-0000-000000000001')", "1700000000", "1800000000"],
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
    fn insert_shape_lists_the_event_columns() {
        let shape = CATALOG.iter().find(|q| q.name == "events.insert_shape").unwrap();
        let flat: String = shape.sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let cols: String = EVENT_COLUMNS.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(&cols));
    }
}
