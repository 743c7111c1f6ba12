//! From a typed [`Query`] to the SQL statements that answer it.
//!
//! Each statement reads one kind of row and returns, per group, `dims` (the dimension values as text) and `vals`
//! (the quantities its metrics are made of, as Float64): see [`Part`]. The engine merges the parts by their `dims`
//! in Rust, so no statement joins another's groups, and each one keeps to the shapes that are immune to copies of an
//! event: `uniqExact` over `events`, `-Merge` of idempotent states per session over `sessions`, and `LIMIT 1 BY
//! event_id` where a sum over events is needed.

use chrono::Duration;
use chrono_tz::Tz;
use uuid::Uuid;

use super::QueryError;
use super::columns::{self, Bucket, Rows, SESSION_COLUMNS};
use super::model::{Clause, Dimension, Filter, FilterOp, Metric, Query};
use super::range::UtcRange;
use super::sql::Sql;
use crate::goals::Goal;

/// What the engine needs to know about the project besides the query.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub project: Uuid,
    pub tz: Tz,
    pub goals: &'a [Goal],
}

/// What a statement counts. The quantities (`vals`), in order:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// Pageviews and custom events (page leaves excluded): visitors, pageviews, events, visits (distinct sessions).
    Events,
    /// Sessions that started in the range: visits, bounces, summed duration in ms, summed pageviews.
    Sessions,
    /// Page leaves, each once: summed `duration_ms`, count.
    Leaves,
    /// Visitors with the same filters and no dimensions (denominator of `percentage`).
    Total,
    /// Visitors without goal and property filters, no dimensions (denominator of `conversion_rate`).
    ConversionTotal,
    /// Visitors without goal and property filters per group, `event:goal` left out of the group
    /// (denominator of `group_conversion_rate`).
    GroupTotal,
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub part: Part,
    pub sql: Sql,
}

/// The statements of one query over one range.
#[derive(Debug, Clone)]
pub struct Plan {
    pub bucket: Bucket,
    pub statements: Vec<Statement>,
}

/// Plausible's `time`: the bucket that suits the range's length.
pub fn bucket_for(query: &Query, range: &UtcRange) -> Bucket {
    let explicit = query.dimensions.iter().find_map(|d| match d {
        Dimension::TimeHour => Some(Bucket::Hour),
        Dimension::TimeDay => Some(Bucket::Day),
        Dimension::TimeWeek => Some(Bucket::Week),
        Dimension::TimeMonth => Some(Bucket::Month),
        _ => None,
    });
    explicit.unwrap_or_else(|| {
        let span = range.end - range.start;
        if span <= Duration::hours(25) {
            Bucket::Hour
        } else if span <= Duration::days(40) {
            Bucket::Day
        } else if span <= Duration::days(190) {
            Bucket::Week
        } else {
            Bucket::Month
        }
    })
}

/// Whether the query groups by an event dimension: then `visits` counts distinct sessions of the matching events
/// (a session has no single page or name to be grouped under).
pub fn event_grouped(query: &Query) -> bool {
    query.dimensions.iter().any(Dimension::is_event)
}

pub fn plan(ctx: &Context<'_>, query: &Query, range: &UtcRange) -> Result<Plan, QueryError> {
    plan_with_bucket(ctx, query, range, bucket_for(query, range))
}

/// [`plan`] with the time bucket imposed (a comparison uses its main query's bucket).
pub fn plan_with_bucket(
    ctx: &Context<'_>,
    query: &Query,
    range: &UtcRange,
    bucket: Bucket,
) -> Result<Plan, QueryError> {
    let planner = Planner { ctx, range: *range, bucket };
    let dims = &query.dimensions;
    let filters = &query.filters;
    let mut statements = Vec::new();
    let mut add = |part: Part, sql: Sql| statements.push(Statement { part, sql });
    let wants = |ms: &[Metric]| query.metrics.iter().any(|m| ms.contains(m));
    let grouped_by_event = event_grouped(query);

    if wants(&[
        Metric::Visitors,
        Metric::Pageviews,
        Metric::Events,
        Metric::Percentage,
        Metric::ConversionRate,
        Metric::GroupConversionRate,
    ]) || (grouped_by_event && wants(&[Metric::Visits]))
    {
        add(Part::Events, planner.events(dims, filters, EventKinds::Counted)?);
    }
    if wants(&[Metric::BounceRate, Metric::VisitDuration, Metric::ViewsPerVisit])
        || (!grouped_by_event && wants(&[Metric::Visits]))
    {
        add(Part::Sessions, planner.sessions(dims, filters)?);
    }
    if wants(&[Metric::TimeOnPage]) {
        add(Part::Leaves, planner.events(dims, filters, EventKinds::Leaves)?);
    }
    if wants(&[Metric::Percentage]) {
        add(Part::Total, planner.events(&[], filters, EventKinds::Counted)?);
    }
    let without_goals = without_goal_and_prop_filters(filters);
    if wants(&[Metric::ConversionRate]) {
        add(Part::ConversionTotal, planner.events(&[], &without_goals, EventKinds::Counted)?);
    }
    if wants(&[Metric::GroupConversionRate]) {
        let group: Vec<Dimension> = dims.iter().filter(|d| **d != Dimension::EventGoal).cloned().collect();
        add(Part::GroupTotal, planner.events(&group, &without_goals, EventKinds::Counted)?);
    }
    Ok(Plan { bucket, statements })
}

/// The project's first local day with events and how many there are (for the `all` range).
pub fn first_day_sql(ctx: &Context<'_>) -> Sql {
    let mut sql = Sql::new();
    sql.push("SELECT toString(toDate(toTimeZone(min(ts), ").str(ctx.tz.name()).push("))) AS day, count() AS n");
    sql.push(" FROM events WHERE project_id = toUUID(").str(&ctx.project.to_string()).push(")");
    sql
}

/// The `FROM` and `WHERE` of the counted events (pageviews and custom events) of `range` that match `filters`,
/// exactly as the events statement reads them (sessions joined when a `visit:` filter needs them). Funnels
/// (`crate::funnel`) count their steps over these rows, so a filter means the same there as in the query API.
pub fn counted_events(ctx: &Context<'_>, range: &UtcRange, filters: &[Filter]) -> Result<(Sql, Sql), QueryError> {
    let planner = Planner { ctx, range: *range, bucket: Bucket::Day };
    let mut filter = planner.events_where(EventKinds::Counted);
    for f in filters {
        filter.push(" AND ").append(planner.filter(f, Rows::Events)?);
    }
    let from = planner.events_from(&[], filters, &filter.text);
    Ok((from, filter))
}

/// What every visit-metric statement reads of a session (its `vals`).
const ALWAYS_PER_VISIT: [&str; 4] = ["s_first_ms", "s_last_ms", "s_pageviews", "s_interactions"];

/// Whether `text` names `alias` as a whole identifier (`s_os` is not named by `s_os_version`).
fn mentions(text: &str, alias: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(alias).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + alias.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Plausible's denominators drop the top-level goal and custom property filters.
fn without_goal_and_prop_filters(filters: &[Filter]) -> Vec<Filter> {
    filters
        .iter()
        .filter(|f| !matches!(f.dimension(), Some(Dimension::EventGoal) | Some(Dimension::EventProp(_))))
        .cloned()
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKinds {
    /// Pageviews and custom events: what visitors, pageviews and events count.
    Counted,
    /// Page leaves: what time on page averages.
    Leaves,
}

struct Planner<'a> {
    ctx: &'a Context<'a>,
    range: UtcRange,
    bucket: Bucket,
}

impl Planner<'_> {
    fn tz(&self) -> &str {
        self.ctx.tz.name()
    }

    /// `project_id`, the range on the event's time, and the kinds of events counted.
    fn events_where(&self, kinds: EventKinds) -> Sql {
        let mut sql = Sql::new();
        sql.push("project_id = toUUID(").str(&self.ctx.project.to_string()).push(")");
        sql.push(" AND ts >= toDateTime(").uint(self.range.start.timestamp().max(0) as u64).push(", 'UTC')");
        sql.push(" AND ts < toDateTime(").uint(self.range.end.timestamp().max(0) as u64).push(", 'UTC')");
        sql.push(match kinds {
            EventKinds::Counted => " AND type IN ('pageview', 'custom')",
            EventKinds::Leaves => " AND type = 'pageleave'",
        });
        sql
    }

    /// One row per session of the project, its states merged; with `started_in_range`, only sessions that began
    /// in the range (a visit belongs to the period it started in), else those still alive at its start.
    /// Only the columns that `uses` (the text that reads the rows) mentions are merged, besides the start and
    /// end: merging a state costs, and most queries read two or three of the twenty-odd.
    fn session_rows(&self, started_in_range: bool, uses: &str) -> Sql {
        let mut sql = Sql::new();
        sql.push("SELECT session_id");
        for (alias, expr) in SESSION_COLUMNS {
            let always = if started_in_range { ALWAYS_PER_VISIT.as_slice() } else { ["s_last_ms"].as_slice() };
            if always.contains(&alias) || mentions(uses, alias) {
                sql.push(&format!(", {expr} AS {alias}"));
            }
        }
        sql.push(" FROM sessions WHERE project_id = toUUID(").str(&self.ctx.project.to_string()).push(")");
        sql.push(" GROUP BY session_id");
        let start_ms = self.range.start.timestamp_millis().max(0) as u64;
        if started_in_range {
            sql.push(" HAVING s_first_ms >= ").uint(start_ms);
            sql.push(" AND s_first_ms < ").uint(self.range.end.timestamp_millis().max(0) as u64);
        } else {
            // Sessions joined to events in the range: an event's time never exceeds its arrival (the hub clamps
            // it), so its session was still seen at or after the range's start. A late batch can arrive long after
            // the range ends, so there is no safe upper bound.
            sql.push(" HAVING s_last_ms >= ").uint(start_ms);
        }
        sql
    }

    fn dimension(&self, dimension: &Dimension, rows: Rows) -> Sql {
        columns::expression(dimension, rows, self.tz(), self.bucket, self.ctx.goals)
    }

    fn dimensions(&self, dims: &[Dimension], rows: Rows) -> Vec<Sql> {
        dims.iter().map(|d| self.dimension(d, rows)).collect()
    }

    /// `SELECT dims, vals FROM (SELECT <d0> AS d0, ..., [d0, ...] AS dims, [<vals>] AS vals FROM <from> WHERE
    /// <where> GROUP BY d0, ...) AS q`
    fn grouped(&self, dims: Vec<Sql>, vals: &str, from: Sql, filter: Sql) -> Sql {
        let mut sql = Sql::new();
        sql.push("SELECT dims, vals FROM (SELECT ");
        let names: Vec<String> = (0..dims.len()).map(|i| format!("d{i}")).collect();
        for (i, expr) in dims.into_iter().enumerate() {
            sql.append(expr).push(&format!(" AS d{i}, "));
        }
        if names.is_empty() {
            sql.push("emptyArrayString() AS dims, ");
        } else {
            sql.push(&format!("[{}] AS dims, ", names.join(", ")));
        }
        sql.push(&format!("[{vals}] AS vals FROM "));
        sql.append(from).push(" WHERE ").append(filter);
        if !names.is_empty() {
            sql.push(&format!(" GROUP BY {}", names.join(", ")));
        }
        sql.push(") AS q");
        sql
    }

    fn needs_session_join(dims: &[Dimension], filters: &[Filter]) -> bool {
        dims.iter().any(columns::from_session)
            || filters.iter().flat_map(Filter::leaves).any(|(f, _)| f.dimension().is_some_and(columns::from_session))
    }

    fn events_from(&self, dims: &[Dimension], filters: &[Filter], uses: &str) -> Sql {
        let mut from = Sql::new();
        from.push("events");
        if Self::needs_session_join(dims, filters) {
            from.push(" ANY LEFT JOIN (").append(self.session_rows(false, uses)).push(") AS s USING session_id");
        }
        from
    }

    fn events(&self, dims: &[Dimension], filters: &[Filter], kinds: EventKinds) -> Result<Sql, QueryError> {
        let mut filter = self.events_where(kinds);
        for f in filters {
            filter.push(" AND ").append(self.filter(f, Rows::Events)?);
        }
        let exprs = self.dimensions(dims, Rows::Events);
        let uses = exprs.iter().map(|e| e.text.as_str()).chain([filter.text.as_str()]).collect::<Vec<_>>().join(" ");
        match kinds {
            EventKinds::Counted => Ok(self.grouped(
                exprs,
                "toFloat64(uniqExact(visitor_id)), toFloat64(uniqExactIf(event_id, type = 'pageview')), \
                 toFloat64(uniqExact(event_id)), toFloat64(uniqExactIf(session_id, session_id != 0))",
                self.events_from(dims, filters, &uses),
                filter,
            )),
            EventKinds::Leaves => {
                // A sum over events must see each event once: copies left by redelivery are dropped first.
                let mut inner = Sql::new();
                inner.push("(SELECT event_id, duration_ms");
                for (i, expr) in exprs.into_iter().enumerate() {
                    inner.push(", ").append(expr).push(&format!(" AS l{i}"));
                }
                inner.push(" FROM ").append(self.events_from(dims, filters, &uses)).push(" WHERE ").append(filter);
                inner.push(" LIMIT 1 BY event_id) AS l");
                // The dimensions were computed inside; the outer query only regroups them.
                let passthrough = (0..dims.len()).map(|i| Sql::from_text(&format!("l{i}"))).collect();
                Ok(self.grouped(
                    passthrough,
                    "toFloat64(sum(duration_ms)), toFloat64(count())",
                    inner,
                    Sql::from_text("1"),
                ))
            }
        }
    }

    fn sessions(&self, dims: &[Dimension], filters: &[Filter]) -> Result<Sql, QueryError> {
        let mut filter = Sql::from_text("1");
        for f in filters {
            filter.push(" AND ").append(self.filter(f, Rows::Sessions)?);
        }
        let exprs = self.dimensions(dims, Rows::Sessions);
        let uses = exprs.iter().map(|e| e.text.as_str()).chain([filter.text.as_str()]).collect::<Vec<_>>().join(" ");
        let mut from = Sql::new();
        from.push("(").append(self.session_rows(true, &uses)).push(") AS s");
        Ok(self.grouped(
            exprs,
            "toFloat64(count()), toFloat64(countIf(s_pageviews = 1 AND s_interactions = 0)), \
             toFloat64(sum(s_last_ms - s_first_ms)), toFloat64(sum(s_pageviews))",
            from,
            filter,
        ))
    }

    fn filter(&self, filter: &Filter, rows: Rows) -> Result<Sql, QueryError> {
        let mut sql = Sql::new();
        let only_events = filter.leaves().iter().all(|(f, _)| f.dimension().is_some_and(Dimension::is_event));
        if rows == Rows::Sessions && only_events {
            // Plausible's rule: a visit matches event filters when it had an event in the range that matches them
            // (the whole subtree is judged per event: `is_not` and `not` both mean "had an event that is not").
            sql.push("session_id IN (SELECT session_id FROM events WHERE ");
            sql.append(self.events_where(EventKinds::Counted)).push(" AND ");
            sql.append(self.filter(filter, Rows::Events)?).push(")");
            return Ok(sql);
        }
        match filter {
            Filter::And(children) | Filter::Or(children) => {
                let joiner = if matches!(filter, Filter::And(_)) { " AND " } else { " OR " };
                sql.push("(");
                for (i, child) in children.iter().enumerate() {
                    if i > 0 {
                        sql.push(joiner);
                    }
                    sql.append(self.filter(child, rows)?);
                }
                sql.push(")");
            }
            Filter::Not(child) => {
                sql.push("NOT (").append(self.filter(child, rows)?).push(")");
            }
            Filter::Leaf { .. } => {
                sql.append(self.leaf(filter, rows)?);
            }
        }
        Ok(sql)
    }

    fn leaf(&self, filter: &Filter, rows: Rows) -> Result<Sql, QueryError> {
        let Filter::Leaf { op, dimension, clauses, case_sensitive } = filter else {
            unreachable!("leaf() is called on leaves only")
        };
        let texts: Vec<String> = clauses
            .iter()
            .map(|c| match c {
                Clause::Text(s) => s.clone(),
                Clause::Int(n) => n.to_string(),
            })
            .collect();
        if *dimension == Dimension::EventGoal {
            return self.goal_leaf(*op, &texts, *case_sensitive);
        }
        let expr = self.dimension(dimension, rows);
        let mut sql = Sql::new();
        let negated = matches!(op, FilterOp::IsNot | FilterOp::ContainsNot | FilterOp::MatchesNot);
        if negated {
            sql.push("NOT ");
        }
        sql.push("(");
        match op {
            FilterOp::Is | FilterOp::IsNot => {
                if *case_sensitive {
                    sql.append(expr).push(" IN (");
                    for (i, t) in texts.iter().enumerate() {
                        sql.push(if i > 0 { ", " } else { "" }).str(t);
                    }
                } else {
                    sql.push("lowerUTF8(").append(expr).push(") IN (");
                    for (i, t) in texts.iter().enumerate() {
                        sql.push(if i > 0 { ", " } else { "" }).str(&t.to_lowercase());
                    }
                }
                sql.push(")");
            }
            FilterOp::Contains | FilterOp::ContainsNot | FilterOp::Matches | FilterOp::MatchesNot => {
                let function = match (op.is_regex(), case_sensitive) {
                    (true, _) => "match(",
                    (false, true) => "position(",
                    (false, false) => "positionCaseInsensitiveUTF8(",
                };
                let tail = if op.is_regex() { ")" } else { ") > 0" };
                for (i, t) in texts.iter().enumerate() {
                    sql.push(if i > 0 { " OR " } else { "" }).push(function).append(expr.clone()).push(", ");
                    sql.str(t).push(tail);
                }
            }
        }
        sql.push(")");
        Ok(sql)
    }

    /// `event:goal` filters name goals by display name (`is`) or part of it (`contains`); an event matches when it
    /// completes any of them. Naming a goal the project does not have is an error, as in Plausible.
    fn goal_leaf(&self, op: FilterOp, names: &[String], case_sensitive: bool) -> Result<Sql, QueryError> {
        let norm = |s: &str| if case_sensitive { s.to_owned() } else { s.to_lowercase() };
        let mut matched: Vec<&Goal> = Vec::new();
        for name in names {
            let wanted = norm(name);
            let hits: Vec<&Goal> = self
                .ctx
                .goals
                .iter()
                .filter(|g| match op {
                    FilterOp::Contains => norm(&g.display_name).contains(&wanted),
                    _ => norm(&g.display_name) == wanted,
                })
                .collect();
            if hits.is_empty() && op == FilterOp::Is {
                return Err(QueryError::new(format!(
                    "Invalid filters. The goal `{name}` is not configured for this site. Find out how to configure \
                     goals here: https://plausible.io/docs/stats-api#filtering-by-goals"
                )));
            }
            matched.extend(hits);
        }
        let mut sql = Sql::new();
        if matched.is_empty() {
            sql.push("0");
            return Ok(sql);
        }
        sql.push("(");
        for (i, goal) in matched.iter().enumerate() {
            sql.push(if i > 0 { " OR " } else { "" }).append(columns::goal_condition(goal));
        }
        sql.push(")");
        Ok(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn mentions_whole_identifiers_only() {
        assert!(mentions("s_os AS d0", "s_os"));
        assert!(!mentions("s_os_version", "s_os"));
        assert!(!mentions("xs_os", "s_os"));
        assert!(mentions("if(s_os = '', 1, s_os)", "s_os"));
    }
}
