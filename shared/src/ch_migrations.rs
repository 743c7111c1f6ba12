//! A small versioned runner for the ClickHouse schema.
//!
//! Files in `migrations/clickhouse/` are named `NNNN_what.sql` and hold one statement, or several each ended by a
//! line that ends in `;`. The runner creates the database, applies in order what the ledger table
//! `tidemark_migrations` (`queries::LEDGER_DDL`) does not list yet, and records each file after all its statements succeeded. Statements
//! use `IF NOT EXISTS` so a file interrupted half-way can run again. A file changed after it was applied is an
//! error: the schema would no longer match its history.

use crate::clickhouse::ClickHouse;
use anyhow::{Context, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/ch_migrations.rs"));
}

#[derive(Debug, Clone)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    pub fn statements(&self) -> Vec<String> {
        split_statements(self.sql)
    }
}

/// The migrations compiled into this binary, in order.
pub fn embedded() -> Vec<Migration> {
    embedded::EMBEDDED
        .iter()
        .map(|(name, sql)| Migration {
            version: name
                .split('_')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("ClickHouse migration {name} must start with a number")),
            name,
            sql,
        })
        .collect()
}

/// Splits a file into statements at lines ending in `;`; comment-only pieces are dropped.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            push_statement(&mut statements, &current);
            current.clear();
        }
    }
    push_statement(&mut statements, &current);
    statements
}

fn push_statement(statements: &mut Vec<String>, raw: &str) {
    let has_code = raw.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with("--")
    });
    if has_code {
        let trimmed = raw.trim().trim_end_matches(';').trim_end();
        statements.push(trimmed.to_owned());
    }
}

/// 18.16 has no `ADD COLUMN IF NOT EXISTS`: when an `ADD COLUMN` finds its column there (an earlier run of the same
/// file stopped after it), the statement's outcome is already in place. Both versions word the error alike (18.16
/// with code 44, current versions 15). `scripts/ch_compat.py` applies the same rule.
pub fn column_already_added(statement: &str, error: &str) -> bool {
    let code: String = statement
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    code.starts_with("ALTER TABLE")
        && code.contains(" ADD COLUMN ")
        && error.contains("column with this name already exists")
}

#[derive(Debug, Deserialize, clickhouse::Row)]
struct Applied {
    version: u32,
    checksum: String,
}

/// Applies what is missing; returns the names applied now.
pub async fn migrate(ch: &ClickHouse) -> anyhow::Result<Vec<&'static str>> {
    ch.create_database().await?;
    ch.client.query(crate::queries::LEDGER_DDL).execute().await.context("creating the migration ledger")?;
    let applied: Vec<Applied> = ch
        .client
        .query(crate::queries::by_name("migrations.ledger_read").sql)
        .fetch_all()
        .await
        .context("reading the migration ledger")?;

    let mut done = Vec::new();
    for migration in embedded() {
        if let Some(prior) = applied.iter().find(|a| a.version == migration.version) {
            if prior.checksum != migration.checksum() {
                bail!(
                    "ClickHouse migration {} changed after it was applied; add a new migration instead",
                    migration.name
                );
            }
            continue;
        }
        for (i, statement) in migration.statements().iter().enumerate() {
            match ch.client.query(statement).execute().await {
                Err(e) if column_already_added(statement, &e.to_string()) => {}
                result => {
                    result.with_context(|| format!("ClickHouse migration {} statement {}", migration.name, i + 1))?
                }
            }
        }
        ch.client
            .query(crate::queries::by_name("migrations.ledger_record").sql)
            .bind(migration.version)
            .bind(migration.name)
            .bind(migration.checksum())
            .execute()
            .await
            .with_context(|| format!("recording ClickHouse migration {}", migration.name))?;
        tracing::info!(migration = migration.name, "Applied ClickHouse migration.");
        done.push(migration.name);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_added_column_found_present_counts_as_done() {
        let add = "-- why\nALTER TABLE events\n    ADD COLUMN referrer_name String AFTER referrer_source";
        let present = "Code: 44, e.displayText() = DB::Exception: Cannot add column referrer_name: column with this name \
                       already exists";
        assert!(column_already_added(add, present));
        assert!(column_already_added(
            add,
            "Code: 15. DB::Exception: Cannot add column `x`: column with this name already exists. (DUPLICATE_COLUMN)"
        ));
        assert!(!column_already_added(add, "Code: 60. DB::Exception: Table events doesn't exist"));
        assert!(!column_already_added("SELECT 'column with this name already exists'", present));
    }

    #[test]
    fn splits_on_lines_ending_in_semicolons() {
        let sql = "-- header\nCREATE TABLE a (x String DEFAULT ';')\nENGINE = Log;\n\n-- about one\nSELECT 1;\nSELECT 2;\n-- trailing note\n";
        assert_eq!(
            split_statements(sql),
            vec![
                "-- header\nCREATE TABLE a (x String DEFAULT ';')\nENGINE = Log",
                "-- about one\nSELECT 1",
                "SELECT 2"
            ]
        );
    }

    #[test]
    fn embedded_migrations_are_numbered_in_order() {
        let all = embedded();
        assert!(!all.is_empty());
        assert!(all.windows(2).all(|w| w[0].version < w[1].version), "versions must be unique and ascending");
    }
}
