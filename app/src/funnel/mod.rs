//! Funnels (Tidemark's extension of the analytics API): how many visitors completed each of 2 to 8 ordered steps
//! within a window. [`request`] reads the body; [`sql`] writes the one statement (ClickHouse's `windowFunnel` per
//! visitor over the same rows, range and filters as the query API's events statement); [`run`] answers it.

pub mod request;
pub mod sql;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tidemark_shared::clickhouse::ClickHouse;

use crate::goals::Goal;
use crate::query::answer::iso;
use crate::query::model::DateRange;
use crate::query::plan::Context;
use crate::query::{ProjectContext, QueryError, RunError, range};
pub use request::{Funnel, Step, Window};

#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct Reached {
    steps: Vec<u64>,
}

/// Answers `funnel` for `project`, "now" being `now`.
pub async fn run(
    ch: &ClickHouse,
    project: &ProjectContext,
    goals: &[Goal],
    funnel: &Funnel,
    now: DateTime<Utc>,
) -> Result<Value, RunError> {
    let ctx = Context { project: project.id, tz: project.timezone, goals };
    // `all` starts at the project's first day with events, as in the query API.
    let stats_start = match funnel.date_range {
        DateRange::All => first_day(ch, &ctx).await?,
        _ => None,
    };
    let range = range::resolve(&funnel.date_range, project.timezone, now, stats_start);
    let statement = sql::funnel_sql(&ctx, &range, funnel)?;
    let reached: Reached = statement.bind(&ch.client).fetch_one().await.map_err(|e| classify(e, &statement))?;
    Ok(answer(project, funnel, &range, &reached.steps))
}

async fn first_day(ch: &ClickHouse, ctx: &Context<'_>) -> Result<Option<chrono::NaiveDate>, RunError> {
    #[derive(serde::Deserialize, clickhouse::Row)]
    struct First {
        day: String,
        n: u64,
    }
    let sql = crate::query::plan::first_day_sql(ctx);
    let first: First = sql.bind(&ch.client).fetch_one().await.map_err(|e| classify(e, &sql))?;
    Ok((first.n > 0).then(|| chrono::NaiveDate::parse_from_str(&first.day, "%Y-%m-%d").ok()).flatten())
}

fn classify(err: clickhouse::error::Error, sql: &crate::query::sql::Sql) -> RunError {
    use clickhouse::error::Error as E;
    match &err {
        E::BadResponse(text) if text.contains("Code: 427") => RunError::Invalid(QueryError::new(
            "#/filters: A regular expression is not valid RE2 syntax (ClickHouse's `match`).",
        )),
        E::BadResponse(text) => {
            RunError::Failed(anyhow::anyhow!("ClickHouse refused a funnel statement: {text}\n{}", sql.with_literals()))
        }
        E::Network(_) | E::TimedOut => RunError::Unavailable(err.to_string()),
        _ => RunError::Failed(anyhow::anyhow!("reading a funnel: {err}")),
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { (part as f64 * 10_000.0 / whole as f64).round() / 100.0 }
}

/// `{"steps": [...], "meta": {...}, "query": {...}}`; `reached[i]` is how many visitors completed step `i + 1`.
fn answer(project: &ProjectContext, funnel: &Funnel, range: &range::UtcRange, reached: &[u64]) -> Value {
    let first = reached.first().copied().unwrap_or(0);
    let steps: Vec<Value> = funnel
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let visitors = reached.get(i).copied().unwrap_or(0);
            let previous = if i == 0 { visitors } else { reached.get(i - 1).copied().unwrap_or(0) };
            let dropoff = previous.saturating_sub(visitors);
            json!({
                "label": step.label(),
                "visitors": visitors,
                "conversion_rate": percent(visitors, first),
                "conversion_rate_step": percent(visitors, previous),
                "dropoff": dropoff,
                "dropoff_rate": percent(dropoff, previous),
            })
        })
        .collect();
    let tz = project.timezone;
    json!({
        "steps": steps,
        "meta": {
            "entered": first,
            "completed": reached.get(funnel.steps.len().saturating_sub(1)).copied().unwrap_or(0),
        },
        "query": {
            "site_id": project.site_id,
            "date_range": [iso(range.start, tz), iso(range.end - Duration::seconds(1), tz)],
            "filters": funnel.filters_json,
            "steps": funnel.steps.iter().map(Step::to_json).collect::<Vec<_>>(),
            "window": funnel.window.to_json(),
        },
    })
}
