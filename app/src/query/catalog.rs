//! The generated SQL catalogue: a fixed matrix of representative queries (every metric, every dimension, every
//! filter operator on event and session rows, nested and/or/not, every time bucket, comparisons) planned into SQL.
//! `app sql-catalog` prints them after the hand-written catalogue so `scripts/ch_compat.py` runs them on current
//! ClickHouse; `app/tests/query_catalog.rs` runs the same statements on the 18.16 server. The planner writes SQL
//! from many pieces, so this is how both versions see every piece.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::model::{Dimension, Metric};
use super::plan::{self, Context};
use super::range;
use super::sql::Sql;
use crate::goals::{Goal, GoalKind};

/// The project, goals, time zone and clock every entry is planned with.
pub fn sample_goals() -> Vec<Goal> {
    vec![
        Goal { id: 1, display_name: "Signup".into(), kind: GoalKind::Event { event_name: "Signup".into() } },
        Goal { id: 2, display_name: "Visit /pricing*".into(), kind: GoalKind::Page { page_path: "/pricing*".into() } },
    ]
}

const PROJECT: Uuid = Uuid::from_u128(1);

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-03-15T12:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

/// The request bodies of the matrix, named.
pub fn bodies() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    let base = |metrics: Value| json!({ "site_id": "catalog.example", "metrics": metrics, "date_range": "7d" });
    let with = |mut body: Value, key: &str, value: Value| {
        body[key] = value;
        body
    };
    // Every metric, alone where it may stand alone, else with what it needs.
    for metric in Metric::ALL {
        let body = base(json!([metric.name()]));
        let body = match metric {
            Metric::ConversionRate => with(body, "filters", json!([["is", "event:goal", ["Signup"]]])),
            Metric::GroupConversionRate => with(body, "dimensions", json!(["event:goal"])),
            Metric::TimeOnPage | Metric::ScrollDepth => with(body, "dimensions", json!(["event:page"])),
            _ => body,
        };
        out.push((format!("metric.{}", metric.name()), body));
    }
    // Every dimension: event metrics, and session metrics where the rules allow them.
    let dimensions = [
        "event:page",
        "event:hostname",
        "event:name",
        "event:goal",
        "event:props:plan",
        "visit:entry_page",
        "visit:exit_page",
        "visit:source",
        "visit:referrer",
        "visit:channel",
        "visit:utm_source",
        "visit:utm_medium",
        "visit:utm_campaign",
        "visit:utm_content",
        "visit:utm_term",
        "visit:country",
        "visit:region",
        "visit:city",
        "visit:device",
        "visit:browser",
        "visit:browser_version",
        "visit:os",
        "visit:os_version",
        "time",
        "time:hour",
        "time:day",
        "time:week",
        "time:month",
    ];
    for name in dimensions {
        let Some(dimension) = Dimension::parse(name) else { continue };
        let session_ok = !dimension.is_event() || dimension == Dimension::EventPage;
        let metrics = if session_ok {
            json!(["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "percentage"])
        } else {
            json!(["visitors", "visits", "pageviews", "events", "percentage"])
        };
        out.push((format!("dimension.{name}"), with(base(metrics), "dimensions", json!([name]))));
    }
    // Every operator, on event rows and (through the same filter) on session rows.
    let leaves = [
        json!(["is", "event:page", ["/a", "/b"]]),
        json!(["is_not", "visit:country", ["DE"]]),
        json!(["contains", "visit:source", ["oogl"], { "case_sensitive": false }]),
        json!(["contains_not", "event:props:plan", ["free"]]),
        json!(["matches", "visit:utm_campaign", ["^spring"]]),
        json!(["matches_not", "visit:browser", ["^Chrome$"]]),
        json!(["is", "event:goal", ["Signup", "Visit /pricing*"]]),
        json!(["contains", "event:goal", ["Visit"]]),
        json!(["is", "visit:channel", ["Organic Search"]]),
        json!(["is", "event:name", ["pageview"], { "case_sensitive": false }]),
        json!(["is", "visit:city", [2950159]]),
    ];
    for (i, leaf) in leaves.iter().enumerate() {
        let body = with(base(json!(["visitors", "visits", "bounce_rate"])), "filters", json!([leaf]));
        out.push((format!("filter.{i}.{}.{}", leaf[0].as_str().unwrap_or(""), leaf[1].as_str().unwrap_or("")), body));
    }
    out.push((
        "filter.tree".into(),
        with(
            base(json!(["visitors", "visit_duration"])),
            "filters",
            json!([[
                "or",
                [
                    ["and", [["is", "visit:device", ["mobile"]], ["not", ["contains", "event:page", ["/blog"]]]]],
                    ["is", "visit:exit_page", ["/thanks"]]
                ]
            ]]),
        ),
    ));
    out.push((
        "conversion.by_source".into(),
        json!({ "site_id": "catalog.example", "metrics": ["visitors", "conversion_rate", "group_conversion_rate"],
                "date_range": "30d", "dimensions": ["visit:source"],
                "filters": [["is", "event:goal", ["Signup"]], ["is", "event:props:plan", ["pro"]]] }),
    ));
    out.push((
        "time_on_page.filtered".into(),
        with(base(json!(["time_on_page", "visitors"])), "filters", json!([["is", "event:page", ["/a"]]])),
    ));
    out
}

/// Every entry of the matrix planned into its statements (the main range, and the comparison range for the entries
/// listed with a comparison), each named `query.<entry>.<part>`.
pub fn catalog() -> Vec<(String, Sql)> {
    let goals = sample_goals();
    let ctx = Context { project: PROJECT, tz: chrono_tz::Europe::Berlin, goals: &goals };
    let mut out = Vec::new();
    let mut bodies = bodies();
    for range in ["day", "month", "12mo", "all"] {
        let body = json!({ "site_id": "catalog.example", "metrics": ["visitors", "visits"], "date_range": range,
                           "dimensions": ["time"] });
        bodies.push((format!("range.{range}"), body));
    }
    for (name, body) in bodies {
        let query = match super::parse_value(&body) {
            Ok(q) => q,
            Err(e) => panic!("catalog entry {name} does not parse: {e}"),
        };
        let main = range::resolve(&query.date_range, ctx.tz, now(), None);
        let mut ranges = vec![("", main)];
        if name.starts_with("dimension.time") {
            use super::model::{Comparison, ComparisonMode};
            for (label, mode) in [
                (".previous_period", ComparisonMode::PreviousPeriod),
                (".year_over_year", ComparisonMode::YearOverYear),
            ] {
                let comparison = Comparison { mode, match_day_of_week: true };
                ranges.push((label, range::resolve_comparison(&query.date_range, &comparison, ctx.tz, now(), None)));
            }
        }
        for (suffix, r) in ranges {
            let bucket = plan::bucket_for(&query, &main);
            match plan::plan_with_bucket(&ctx, &query, &r, bucket) {
                Ok(planned) => {
                    for statement in planned.statements {
                        out.push((format!("query.{name}{suffix}.{:?}", statement.part).to_lowercase(), statement.sql));
                    }
                }
                Err(e) => panic!("catalog entry {name} does not plan: {e}"),
            }
        }
    }
    out.push(("query.first_day".into(), plan::first_day_sql(&ctx)));
    out.extend(crate::funnel::sql::catalog(&ctx, now()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_plans_and_binds_every_value() {
        let entries = catalog();
        assert!(entries.len() > 80, "{}", entries.len());
        for (name, sql) in &entries {
            assert_eq!(sql.text.matches('?').count(), sql.values.len(), "{name}");
            assert!(sql.text.contains("toUUID(?)"), "{name}: the project is bound");
        }
    }
}
