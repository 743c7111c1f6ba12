//! The planner's generated SQL catalogue (`tidemark_app::query::catalog`) run on the ClickHouse 18.16 server here,
//! against the migrated schema; `just test-compat` runs the same statements on current ClickHouse through chdb.

use tidemark_testkit::test_env;

#[tokio::test]
async fn every_planned_statement_runs_on_this_server() {
    let env = test_env().await;
    let mut failures = Vec::new();
    let entries = tidemark_app::query::catalog::catalog();
    for (name, sql) in &entries {
        if let Err(e) = sql.bind(&env.ch.client).execute().await {
            failures.push(format!("{name}: {e}\n{}", sql.with_literals()));
        }
    }
    assert!(failures.is_empty(), "{} of {} failed:\n{}", failures.len(), entries.len(), failures.join("\n\n"));
}
