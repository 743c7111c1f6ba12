//! The engine's entry point: [`run`] turns a validated [`Query`] into a [`QueryAnswer`] for a project. The HTTP
//! route, the dashboard, Stats API v1 and MCP all call this; none of them writes SQL.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use tidemark_shared::clickhouse::ClickHouse;
use uuid::Uuid;

use super::QueryError;
use super::answer::{QueryAnswer, ResultRow};
use super::columns::Bucket;
use super::labels;
use super::metrics::{self, Quantities};
use super::model::{DateRange, Dimension, Direction, OrderKey, Query};
use super::plan::{self, Context, Part};
use super::range::{self, UtcRange};
use super::sql::Sql;
use crate::goals::Goal;

/// The project a query reads, as the caller resolved it from `site_id`.
#[derive(Debug, Clone)]
pub struct ProjectContext {
    pub id: Uuid,
    /// What answers echo as `site_id`: the project's first domain, else its id (Plausible echoes the domain).
    pub site_id: String,
    pub timezone: Tz,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The query cannot be answered as asked: 400.
    #[error(transparent)]
    Invalid(#[from] QueryError),
    /// ClickHouse did not answer: 503.
    #[error("ClickHouse is unavailable: {0}")]
    Unavailable(String),
    /// A statement the planner wrote was refused: a bug, 500.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct Group {
    dims: Vec<String>,
    vals: Vec<f64>,
}

/// What one statement returned, by group.
type PartRows = HashMap<Part, Vec<Group>>;

/// Answers `query` for `project`, "now" being `now` (ranges like `7d` and `day` depend on it).
pub async fn run(
    ch: &ClickHouse,
    project: &ProjectContext,
    goals: &[Goal],
    query: &Query,
    now: DateTime<Utc>,
) -> Result<QueryAnswer, RunError> {
    let ctx = Context { project: project.id, tz: project.timezone, goals };
    let stats_start = match query.date_range {
        DateRange::All => first_day(ch, &ctx).await?,
        _ => None,
    };
    let range = range::resolve(&query.date_range, project.timezone, now, stats_start);
    let main = evaluate(ch, &ctx, query, &range, None).await?;
    let bucket = main.bucket;
    let time_labels = time_dimension(query).map(|_| labels::labels(bucket, &range, project.timezone));

    let mut rows = main.rows;
    let comparison = match &query.include.comparisons {
        Some(comparison) => {
            let crange = range::resolve_comparison(&query.date_range, comparison, project.timezone, now, stats_start);
            // The comparison is grouped into the main query's buckets so that labels pair up one to one.
            let other = evaluate(ch, &ctx, query, &crange, Some(bucket)).await?;
            if let Some(labels) = &time_labels {
                add_empty_time_rows(query, &mut rows, labels);
            }
            Some((crange, other.rows))
        }
        None => None,
    };
    sort(query, &mut rows);
    let total_rows = rows.len() as u64;
    let page: Vec<ResultRow> = rows
        .into_iter()
        .skip(query.pagination.offset.min(usize::MAX as u64) as usize)
        .take(query.pagination.limit as usize)
        .collect();
    let mut answer = QueryAnswer::new(project, query, &range, page, total_rows, time_labels.clone());
    if let Some((crange, crows)) = comparison {
        let clabels = labels::labels(bucket, &crange, project.timezone);
        answer.add_comparison(query, &crange, crows, time_labels.as_deref(), &clabels, project.timezone);
    }
    Ok(answer)
}

fn time_dimension(query: &Query) -> Option<usize> {
    query.dimensions.iter().position(Dimension::is_time)
}

struct Evaluated {
    bucket: Bucket,
    rows: Vec<ResultRow>,
}

/// Plans the query over `range` (in `bucket` when given, else the range's own), runs its statements and merges
/// their groups into result rows.
async fn evaluate(
    ch: &ClickHouse,
    ctx: &Context<'_>,
    query: &Query,
    range: &UtcRange,
    bucket: Option<Bucket>,
) -> Result<Evaluated, RunError> {
    let mut planned = plan::plan(ctx, query, range)?;
    if let Some(bucket) = bucket
        && bucket != planned.bucket
    {
        planned = plan::plan_with_bucket(ctx, query, range, bucket)?;
    }
    // The statements are independent: sent together, the answer waits for the slowest, not for their sum.
    let mut running = tokio::task::JoinSet::new();
    for statement in planned.statements.iter().cloned() {
        let client = ch.client.clone();
        running.spawn(async move { (statement.part, fetch(&client, &statement.sql).await) });
    }
    let mut parts: PartRows = HashMap::new();
    while let Some(done) = running.join_next().await {
        let (part, rows) = done.map_err(|e| RunError::Failed(anyhow::anyhow!("a statement's task failed: {e}")))?;
        parts.insert(part, rows?);
    }
    if let Some(i) = time_dimension(query)
        && planned.bucket == Bucket::Week
    {
        let (first, _) = labels::local_days(range, ctx.tz);
        for groups in parts.values_mut() {
            for g in groups.iter_mut() {
                if let Some(label) = g.dims.get_mut(i) {
                    *label = labels::week_label(label, first);
                }
            }
        }
    }
    Ok(Evaluated { bucket: planned.bucket, rows: merge(query, parts) })
}

async fn fetch(client: &clickhouse::Client, sql: &Sql) -> Result<Vec<Group>, RunError> {
    sql.bind(client).fetch_all::<Group>().await.map_err(|e| classify(e, sql))
}

/// Connection failures are the store being down (503); a refused regular expression is the request's fault
/// (ClickHouse's RE2 can refuse what the parser's check let through); anything else is a statement the planner
/// got wrong.
fn classify(err: clickhouse::error::Error, sql: &Sql) -> RunError {
    use clickhouse::error::Error as E;
    match &err {
        E::BadResponse(text) => {
            // 427 CANNOT_COMPILE_REGEXP
            if text.contains("Code: 427") {
                let detail = text
                    .split("cannot compile re2: ")
                    .nth(1)
                    .and_then(|rest| rest.split(". Look at").next())
                    .unwrap_or("it does not compile");
                return RunError::Invalid(QueryError::new(format!(
                    "Invalid filters. A regular expression is not valid RE2 syntax (ClickHouse's `match`): {detail}"
                )));
            }
            RunError::Failed(anyhow::anyhow!("ClickHouse refused a planned statement: {text}\n{}", sql.with_literals()))
        }
        E::Network(_) | E::TimedOut => RunError::Unavailable(err.to_string()),
        _ => RunError::Failed(anyhow::anyhow!("reading a planned statement: {err}")),
    }
}

/// The project's first day with events, for `all`.
async fn first_day(ch: &ClickHouse, ctx: &Context<'_>) -> Result<Option<NaiveDate>, RunError> {
    #[derive(serde::Deserialize, clickhouse::Row)]
    struct First {
        day: String,
        n: u64,
    }
    let sql = plan::first_day_sql(ctx);
    let first: First = sql.bind(&ch.client).fetch_one().await.map_err(|e| classify(e, &sql))?;
    Ok((first.n > 0).then(|| NaiveDate::parse_from_str(&first.day, "%Y-%m-%d").ok()).flatten())
}

/// Joins the statements' groups by their dimension values and computes each metric.
fn merge(query: &Query, mut parts: PartRows) -> Vec<ResultRow> {
    let mut groups: BTreeMap<Vec<String>, Quantities> = BTreeMap::new();
    let single = |parts: &PartRows, part: Part| -> f64 {
        parts.get(&part).and_then(|g| g.first()).and_then(|g| g.vals.first().copied()).unwrap_or(0.0)
    };
    let total_visitors = single(&parts, Part::Total);
    let conversion_total = single(&parts, Part::ConversionTotal);
    let goal_at = query.dimensions.iter().position(|d| *d == Dimension::EventGoal);
    let group_totals: HashMap<Vec<String>, f64> = parts
        .remove(&Part::GroupTotal)
        .unwrap_or_default()
        .into_iter()
        .map(|g| (g.dims, g.vals.first().copied().unwrap_or(0.0)))
        .collect();
    for part in [Part::Events, Part::Sessions, Part::Leaves] {
        for g in parts.remove(&part).unwrap_or_default() {
            let q = groups.entry(g.dims).or_default();
            let v = |i: usize| g.vals.get(i).copied().unwrap_or(0.0);
            match part {
                Part::Events => {
                    (q.visitors, q.pageviews, q.events, q.event_visits) = (v(0), v(1), v(2), v(3));
                }
                Part::Sessions => {
                    (q.visits, q.bounces, q.duration_ms, q.session_pageviews) = (v(0), v(1), v(2), v(3));
                }
                _ => (q.leave_ms, q.leaves) = (v(0), v(1)),
            }
        }
    }
    let event_grouped = plan::event_grouped(query);
    groups
        .into_iter()
        .map(|(dims, mut q)| {
            q.total_visitors = total_visitors;
            q.conversion_total = conversion_total;
            let mut group_key = dims.clone();
            if let Some(i) = goal_at {
                group_key.remove(i);
            }
            q.group_total = group_totals.get(&group_key).copied().unwrap_or(0.0);
            let metrics = query.metrics.iter().map(|m| metrics::value(*m, &q, event_grouped)).collect();
            ResultRow { metrics, dimensions: dims, comparison: None }
        })
        .collect()
}

/// With comparisons, Plausible lists every time bucket of a time series, empty ones included, so that each has a
/// comparison.
fn add_empty_time_rows(query: &Query, rows: &mut Vec<ResultRow>, labels: &[String]) {
    if query.dimensions.len() != 1 {
        return;
    }
    let present: std::collections::HashSet<String> = rows.iter().map(|r| r.dimensions[0].clone()).collect();
    for label in labels.iter().filter(|l| !present.contains(*l)) {
        let metrics = query.metrics.iter().map(|m| metrics::value(*m, &Quantities::default(), false)).collect();
        rows.push(ResultRow { metrics, dimensions: vec![label.clone()], comparison: None });
    }
}

/// The query's order, then the dimension values ascending so that equal rows come in a stable order.
fn sort(query: &Query, rows: &mut [ResultRow]) {
    let order = query.effective_order_by();
    rows.sort_by(|a, b| {
        for entry in &order {
            let ordering = match &entry.key {
                OrderKey::Metric(m) => {
                    let i = query.metrics.iter().position(|x| x == m).unwrap_or(0);
                    metrics::sort_key(&a.metrics[i]).total_cmp(&metrics::sort_key(&b.metrics[i]))
                }
                OrderKey::Dimension(d) => {
                    let i = query.dimensions.iter().position(|x| x == d).unwrap_or(0);
                    a.dimensions.get(i).cmp(&b.dimensions.get(i))
                }
            };
            let ordering = if entry.direction == Direction::Desc { ordering.reverse() } else { ordering };
            if ordering.is_ne() {
                return ordering;
            }
        }
        a.dimensions.cmp(&b.dimensions)
    });
}
