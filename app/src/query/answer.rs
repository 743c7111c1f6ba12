//! The answer in Plausible's shape (`query_result.ex`): `{"results": [...], "meta": {...}, "query": {...}}`.
//! `query` echoes the normalized query (the domain as `site_id`, the range as the two instants it resolved to, the
//! order actually applied); `meta` has its keys sorted, as Plausible's.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::engine::ProjectContext;
use super::metrics::{self, Quantities};
use super::model::{Clause, ComparisonMode, Direction, Filter, OrderKey, Query};
use super::range::UtcRange;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRow {
    pub metrics: Vec<Value>,
    pub dimensions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<ComparisonRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparisonRow {
    pub dimensions: Vec<String>,
    pub metrics: Vec<Value>,
    pub change: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryAnswer {
    pub results: Vec<ResultRow>,
    pub meta: Map<String, Value>,
    pub query: Map<String, Value>,
}

/// An instant on the project's clock, ISO 8601 with its offset (`Z` for a UTC project, as Elixir writes it).
pub fn iso(instant: DateTime<Utc>, tz: Tz) -> String {
    let local = instant.with_timezone(&tz);
    if matches!(tz, chrono_tz::UTC | chrono_tz::Etc::UTC) {
        local.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        local.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// The first and the last second of a range, as Plausible echoes ranges.
fn range_json(range: &UtcRange, tz: Tz) -> Value {
    json!([iso(range.start, tz), iso(range.end - Duration::seconds(1), tz)])
}

pub fn filter_json(filter: &Filter) -> Value {
    match filter {
        Filter::Leaf { op, dimension, clauses, case_sensitive } => {
            let clauses: Vec<Value> = clauses
                .iter()
                .map(|c| match c {
                    Clause::Text(s) => Value::from(s.as_str()),
                    Clause::Int(n) => Value::from(*n),
                })
                .collect();
            let mut leaf = vec![json!(op.name()), json!(dimension.name()), Value::Array(clauses)];
            if !case_sensitive {
                leaf.push(json!({ "case_sensitive": false }));
            }
            Value::Array(leaf)
        }
        Filter::And(children) => json!(["and", children.iter().map(filter_json).collect::<Vec<_>>()]),
        Filter::Or(children) => json!(["or", children.iter().map(filter_json).collect::<Vec<_>>()]),
        Filter::Not(child) => json!(["not", filter_json(child)]),
    }
}

fn include_json(query: &Query) -> Value {
    let include = &query.include;
    let mut out = Map::new();
    if include.imports {
        out.insert("imports".into(), json!(true));
    }
    if include.time_labels {
        out.insert("time_labels".into(), json!(true));
    }
    if include.total_rows {
        out.insert("total_rows".into(), json!(true));
    }
    if let Some(c) = &include.comparisons {
        let mut comparison = Map::new();
        match &c.mode {
            ComparisonMode::PreviousPeriod => {
                comparison.insert("mode".into(), json!("previous_period"));
            }
            ComparisonMode::YearOverYear => {
                comparison.insert("mode".into(), json!("year_over_year"));
            }
            ComparisonMode::Custom { from, to } => {
                comparison.insert("mode".into(), json!("custom"));
                comparison.insert("date_range".into(), json!([from.to_string(), to.to_string()]));
            }
        }
        if c.match_day_of_week {
            comparison.insert("match_day_of_week".into(), json!(true));
        }
        out.insert("comparisons".into(), Value::Object(comparison));
    }
    Value::Object(out)
}

impl QueryAnswer {
    pub fn new(
        project: &ProjectContext,
        query: &Query,
        range: &UtcRange,
        results: Vec<ResultRow>,
        total_rows: u64,
        time_labels: Option<Vec<String>>,
    ) -> QueryAnswer {
        let tz = project.timezone;
        let mut meta = Map::new();
        if query.include.imports {
            // Tidemark has no imported data.
            meta.insert("imports_included".into(), json!(false));
        }
        if query.metrics.contains(&super::model::Metric::ScrollDepth) {
            let warning = json!({
                "code": "no_scroll_depth_data",
                "warning": "Tidemark's tracker does not record scroll depth yet, so scroll_depth is null."
            });
            meta.insert("metric_warnings".into(), json!({ "scroll_depth": warning }));
        }
        if query.include.time_labels
            && let Some(labels) = time_labels
        {
            meta.insert("time_labels".into(), json!(labels));
        }
        if query.include.total_rows {
            meta.insert("total_rows".into(), json!(total_rows));
        }
        let order_by: Vec<Value> = query
            .effective_order_by()
            .iter()
            .map(|o| {
                let key = match &o.key {
                    OrderKey::Metric(m) => m.name().to_owned(),
                    OrderKey::Dimension(d) => d.name(),
                };
                json!([key, if o.direction == Direction::Asc { "asc" } else { "desc" }])
            })
            .collect();
        let mut echo = Map::new();
        echo.insert("site_id".into(), json!(project.site_id));
        echo.insert("metrics".into(), json!(query.metrics.iter().map(|m| m.name()).collect::<Vec<_>>()));
        echo.insert("date_range".into(), range_json(range, tz));
        echo.insert("filters".into(), Value::Array(query.filters.iter().map(filter_json).collect()));
        echo.insert("dimensions".into(), json!(query.dimensions.iter().map(|d| d.name()).collect::<Vec<_>>()));
        echo.insert("order_by".into(), Value::Array(order_by));
        echo.insert("include".into(), include_json(query));
        echo.insert("pagination".into(), json!({ "limit": query.pagination.limit, "offset": query.pagination.offset }));
        QueryAnswer { results, meta, query: echo }
    }

    /// Gives each row its comparison, as Plausible: the same dimensions (time buckets paired by position), the
    /// comparison period's metrics (empty values when it has no such group) and the change.
    pub fn add_comparison(
        &mut self,
        query: &Query,
        comparison_range: &UtcRange,
        comparison_rows: Vec<ResultRow>,
        labels: Option<&[String]>,
        comparison_labels: &[String],
        tz: Tz,
    ) {
        let index: HashMap<Vec<String>, Vec<Value>> =
            comparison_rows.into_iter().map(|r| (r.dimensions, r.metrics)).collect();
        let lookup: HashMap<&String, &String> =
            labels.unwrap_or_default().iter().zip(comparison_labels.iter()).collect();
        let time_at = query.dimensions.iter().position(|d| d.is_time());
        for row in &mut self.results {
            let mut dimensions = row.dimensions.clone();
            if let Some(i) = time_at
                && let Some(label) = lookup.get(&row.dimensions[i])
            {
                dimensions[i] = (*label).clone();
            }
            let metrics = index.get(&dimensions).cloned().unwrap_or_else(|| {
                query.metrics.iter().map(|m| metrics::value(*m, &Quantities::default(), false)).collect()
            });
            let change = query
                .metrics
                .iter()
                .enumerate()
                .map(|(i, m)| metrics::change(*m, &metrics[i], &row.metrics[i]))
                .collect();
            row.comparison = Some(ComparisonRow { dimensions, metrics, change });
        }
        self.meta.insert("comparison_date_range".into(), range_json(comparison_range, tz));
        self.meta.sort_keys();
    }

    /// The rows as CSV: a header of dimension then metric names, one line per row.
    pub fn to_csv(&self, query: &Query) -> String {
        let mut out = String::new();
        let header: Vec<String> = query
            .dimensions
            .iter()
            .map(|d| d.name())
            .chain(query.metrics.iter().map(|m| m.name().to_owned()))
            .collect();
        push_csv_line(&mut out, header.iter().map(String::as_str));
        for row in &self.results {
            let metrics: Vec<String> = row
                .metrics
                .iter()
                .map(|v| match v {
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect();
            push_csv_line(
                &mut out,
                row.dimensions.iter().map(String::as_str).chain(metrics.iter().map(String::as_str)),
            );
        }
        out
    }
}

fn push_csv_line<'a>(out: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_written_as_elixir_writes_them() {
        let t = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(iso(t, chrono_tz::UTC), "2024-01-01T00:00:00Z");
        assert_eq!(iso(t, chrono_tz::Europe::Berlin), "2024-01-01T01:00:00+01:00");
    }
}
