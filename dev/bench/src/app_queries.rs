//! The dashboard's calls, each as the ClickHouse statements a plan would send and as the Stats API v2 body the app
//! will answer them from (`POST /api/v2/query`).
//!
//! Plans (see `candidates.rs` for the tables):
//! - `raw`: the production tables and the shapes of docs/CLICKHOUSE.md: `uniqExact` over `events`, sessions by
//!   `GROUP BY session_id` with `-Merge` over the months of the range, a session attributed to its start.
//! - `idrange`: the same tables, sessions read by session-id range (ids minted as `start second << 32 | random`).
//! - `slim`: sessions from `c_sessions_slim` (min/max states only) by session-id range; events raw.
//! - `rollup`: event counts from the exact daily rollup, sessions as in `slim`.
//! - `hll`: event counts from the `uniq` rollup (approximate), sessions as in `slim`.
//! - `daily`: event counts from the exact rollup, visits from `c_visits_daily` (closed days, filled by a job).
//! - `prewhere`: the realtime count with the time condition as PREWHERE.
//!
//! Values are literals written by this module from the bench's own constants, never user input.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Raw,
    IdRange,
    Slim,
    Rollup,
    Hll,
    Daily,
    Prewhere,
}

impl Plan {
    pub fn name(self) -> &'static str {
        match self {
            Plan::Raw => "raw",
            Plan::IdRange => "idrange",
            Plan::Slim => "slim",
            Plan::Rollup => "rollup",
            Plan::Hll => "hll",
            Plan::Daily => "daily",
            Plan::Prewhere => "prewhere",
        }
    }

    /// Whether answers are exact (compared for equality with `raw`) or approximate (relative error measured).
    pub fn exact(self) -> bool {
        self != Plan::Hll
    }
}

/// The range every call reads: `days` full UTC days ending at `end_ms` (a midnight, the end of the history), and the
/// same length before it for comparisons.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub project: Uuid,
    pub end_ms: i64,
    /// The realtime call's "now".
    pub realtime_ms: i64,
    pub days: i64,
}

impl Window {
    fn start_ms(&self) -> i64 {
        self.end_ms - self.days * 86_400_000
    }
    fn prev_ms(&self) -> i64 {
        self.end_ms - 2 * self.days * 86_400_000
    }
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("in range")
}
fn date(ms: i64) -> String {
    format!("toDate('{}')", at(ms).format("%Y-%m-%d"))
}
fn datetime(ms: i64) -> String {
    format!("toDateTime('{}', 'UTC')", at(ms).format("%Y-%m-%d %H:%M:%S"))
}
fn month(ms: i64) -> String {
    format!("toDate('{}')", at(ms).format("%Y-%m-01"))
}
/// The first session id minted at `ms`.
fn session_floor(ms: i64) -> u64 {
    ((ms / 1000) as u64) << 32
}

/// One call of the dashboard.
pub struct Call {
    pub name: String,
    pub filtered: bool,
    pub body: Value,
    /// The statements of each plan that answers this call differently from the plans before it.
    pub plans: Vec<(Plan, Vec<String>)>,
}

/// Two filters, as the dashboard sends them: a visit property and an event property.
const COUNTRY: &str = "DE";
const PAGE_CONTAINS: &str = "/blog";

fn events_range(w: &Window, from_ms: i64, to_ms: i64, filtered: bool) -> String {
    let mut sql = format!(
        "project_id = toUUID('{}') AND toDate(ts) >= {} AND toDate(ts) <= {} AND ts >= {} AND ts < {}",
        w.project,
        date(from_ms),
        date(to_ms - 1),
        datetime(from_ms),
        datetime(to_ms)
    );
    if filtered {
        sql.push_str(&format!(" AND country = '{COUNTRY}' AND position(path, '{PAGE_CONTAINS}') > 0"));
    }
    sql
}

#[derive(Clone, Copy, PartialEq)]
enum Sessions {
    Raw,
    IdRange,
    Slim,
}

impl Sessions {
    fn of(plan: Plan) -> Self {
        match plan {
            Plan::Raw | Plan::Prewhere => Sessions::Raw,
            Plan::IdRange => Sessions::IdRange,
            Plan::Slim | Plan::Rollup | Plan::Hll | Plan::Daily => Sessions::Slim,
        }
    }
}

/// One row per session that started in [from, to): `sid`, `vid`, `first_ms`, `last_ms`, `bounce` and `extra`
/// columns (`expr AS alias`); with the filters, only sessions whose country is `DE` that viewed a matching page.
fn sessions_subquery(w: &Window, s: Sessions, from_ms: i64, to_ms: i64, filtered: bool, extra: &[&str]) -> String {
    let (table, bounce) = match s {
        Sessions::Slim => (
            "c_sessions_slim",
            "minIfMerge(first_pageview) AS fpv, maxIfMerge(last_pageview) AS lpv, \
             (fpv != 0 AND fpv = lpv AND maxIfMerge(last_custom) = 0) AS bounce",
        ),
        _ => ("sessions", "(uniqExactIfMerge(pageviews) = 1 AND uniqExactIfMerge(interactions) = 0) AS bounce"),
    };
    let range = match s {
        Sessions::Raw => format!("month >= {} AND month <= {}", month(from_ms), month(to_ms)),
        // The month bound prunes partitions before the range: 18.16 reads the last granule of every part whose
        // first key is below the range's end, as its index has no mark for the part's end.
        _ => format!(
            "month >= {} AND session_id >= {} AND session_id < {}",
            month(from_ms),
            session_floor(from_ms),
            session_floor(to_ms)
        ),
    };
    let mut columns = vec![
        "session_id AS sid".to_owned(),
        "maxMerge(visitor_id) AS vid".to_owned(),
        "minMerge(start_ms) AS first_ms".to_owned(),
        "maxMerge(end_ms) AS last_ms".to_owned(),
        bounce.to_owned(),
    ];
    columns.extend(extra.iter().map(|e| (*e).to_owned()));
    let mut filter = String::new();
    let mut having = format!("first_ms >= {from_ms} AND first_ms < {to_ms}");
    if filtered {
        columns.push("argMinMerge(country) AS session_country".to_owned());
        having.push_str(&format!(" AND session_country = '{COUNTRY}'"));
        filter = format!(
            " AND session_id IN (SELECT session_id FROM events WHERE {} AND type = 'pageview' AND position(path, '{PAGE_CONTAINS}') > 0)",
            events_range(w, from_ms, to_ms, false)
        );
    }
    format!(
        "SELECT {} FROM {table} WHERE project_id = toUUID('{}') AND {range}{filter} GROUP BY session_id HAVING {having}",
        columns.join(", "),
        w.project
    )
}

fn overview(w: &Window, plan: Plan, filtered: bool) -> Vec<String> {
    let (prev, start, end) = (w.prev_ms(), w.start_ms(), w.end_ms);
    let events = match plan {
        Plan::Rollup | Plan::Hll | Plan::Daily => {
            // Same row as the raw shape: -MergeIf merges the states of the days of each period. Aliases never reuse
            // a column name (ClickHouse would substitute the alias into the next aggregate).
            let (table, m) = rollup_table(plan);
            let (current, previous) = (format!("day >= {}", date(start)), format!("day < {}", date(start)));
            format!(
                "SELECT {m}MergeIf(visitors, {current}) AS cur_v, {m}IfMergeIf(pageviews, {current}) AS cur_pv, \
                 {m}MergeIf(visitors, {previous}) AS prev_v, {m}IfMergeIf(pageviews, {previous}) AS prev_pv \
                 FROM {table} WHERE project_id = toUUID('{}') AND dim = 'all' AND day >= {} AND day <= {}",
                w.project,
                date(prev),
                date(end - 1)
            )
        }
        _ => format!(
            "SELECT uniqExactIf(visitor_id, ts >= {s}) AS visitors, uniqExactIf(event_id, ts >= {s} AND type = 'pageview') AS pageviews, \
             uniqExactIf(visitor_id, ts < {s}) AS prev_visitors, uniqExactIf(event_id, ts < {s} AND type = 'pageview') AS prev_pageviews \
             FROM events WHERE {}",
            events_range(w, prev, end, filtered),
            s = datetime(start)
        ),
    };
    if plan == Plan::Daily {
        let visits = format!(
            "SELECT sumIf(visits, day >= {s}) AS cur_visits, sumIf(bounces, day >= {s}) AS cur_bounces, \
             sumIf(duration_ms, day >= {s}) AS cur_ms, sumIf(visits, day < {s}) AS prev_visits, \
             sumIf(bounces, day < {s}) AS prev_bounces, sumIf(duration_ms, day < {s}) AS prev_ms \
             FROM c_visits_daily FINAL WHERE {}",
            visits_daily(w, "all", prev, end),
            s = date(start)
        );
        return vec![events, visits];
    }
    let sessions = format!(
        "SELECT countIf(first_ms >= {start}) AS visits, countIf(first_ms >= {start} AND bounce) AS bounces, \
         sumIf(last_ms - first_ms, first_ms >= {start}) AS duration_ms, countIf(first_ms < {start}) AS prev_visits, \
         countIf(first_ms < {start} AND bounce) AS prev_bounces, sumIf(last_ms - first_ms, first_ms < {start}) AS prev_duration_ms \
         FROM ({}) AS s",
        sessions_subquery(w, Sessions::of(plan), prev, end, filtered, &[])
    );
    vec![events, sessions]
}

/// Rows of `c_visits_daily` for whole days [from, to).
fn visits_daily(w: &Window, dim: &str, from_ms: i64, to_ms: i64) -> String {
    format!(
        "project_id = toUUID('{}') AND dim = '{dim}' AND day >= {} AND day <= {}",
        w.project,
        date(from_ms),
        date(to_ms - 1)
    )
}

fn rollup_table(plan: Plan) -> (&'static str, &'static str) {
    if plan == Plan::Hll { ("c_rollup_hll", "uniq") } else { ("c_rollup_exact", "uniqExact") }
}

fn timeseries(w: &Window, plan: Plan, filtered: bool) -> Vec<String> {
    let (start, end) = (w.start_ms(), w.end_ms);
    let events = match plan {
        Plan::Rollup | Plan::Hll | Plan::Daily => {
            let (table, m) = rollup_table(plan);
            format!(
                "SELECT day, {m}Merge(visitors) AS visitors, {m}IfMerge(pageviews) AS pageviews FROM {table} \
                 WHERE project_id = toUUID('{}') AND dim = 'all' AND day >= {} AND day <= {} GROUP BY day ORDER BY day",
                w.project,
                date(start),
                date(end - 1)
            )
        }
        _ => format!(
            "SELECT toDate(ts) AS day, uniqExact(visitor_id) AS visitors, uniqExactIf(event_id, type = 'pageview') AS pageviews \
             FROM events WHERE {} GROUP BY day ORDER BY day",
            events_range(w, start, end, filtered)
        ),
    };
    if plan == Plan::Daily {
        let visits = format!(
            "SELECT day, sum(visits) AS visits, sum(bounces) AS bounces, sum(duration_ms) AS duration_ms \
             FROM c_visits_daily FINAL WHERE {} GROUP BY day ORDER BY day",
            visits_daily(w, "all", start, end)
        );
        return vec![events, visits];
    }
    let sessions = format!(
        "SELECT toDate(toDateTime(intDiv(first_ms, 1000), 'UTC')) AS day, count() AS visits, countIf(bounce) AS bounces, \
         sum(last_ms - first_ms) AS duration_ms FROM ({}) AS s GROUP BY day ORDER BY day",
        sessions_subquery(w, Sessions::of(plan), start, end, filtered, &[])
    );
    vec![events, sessions]
}

/// An event dimension: `pages` (pageviews' paths) or `custom_events` (custom events' names).
fn event_breakdown(w: &Window, plan: Plan, filtered: bool, pages: bool) -> Vec<String> {
    let (start, end) = (w.start_ms(), w.end_ms);
    match plan {
        Plan::Rollup | Plan::Hll => {
            let (table, m) = rollup_table(plan);
            let (dim, count) =
                if pages { ("page", format!("{m}IfMerge(pageviews)")) } else { ("event", format!("{m}Merge(events)")) };
            vec![format!(
                "SELECT value, {m}Merge(visitors) AS visitors, {count} AS events FROM {table} \
                 WHERE project_id = toUUID('{}') AND dim = '{dim}' AND day >= {} AND day <= {} \
                 GROUP BY value ORDER BY visitors DESC, value LIMIT 10",
                w.project,
                date(start),
                date(end - 1)
            )]
        }
        _ => {
            let (column, kind) = if pages { ("path", "pageview") } else { ("name", "custom") };
            vec![format!(
                "SELECT {column} AS value, uniqExact(visitor_id) AS visitors, uniqExact(event_id) AS events FROM events \
                 WHERE {} AND type = '{kind}' GROUP BY value ORDER BY visitors DESC, value LIMIT 10",
                events_range(w, start, end, filtered)
            )]
        }
    }
}

/// A visit dimension: each session counts under its own value (its first event's, or its entry/exit page).
fn visit_breakdown(w: &Window, plan: Plan, filtered: bool, name: &str, expr: &str) -> Vec<String> {
    if plan == Plan::Daily {
        return vec![format!(
            "SELECT value, uniqExactMerge(visitors) AS visitors, sum(visits) AS visits, sum(bounces) AS bounces, \
             sum(duration_ms) AS duration_ms FROM c_visits_daily FINAL WHERE {} \
             GROUP BY value ORDER BY visitors DESC, value LIMIT 10",
            visits_daily(w, name, w.start_ms(), w.end_ms)
        )];
    }
    let value = format!("{expr} AS value");
    vec![format!(
        "SELECT value, uniqExact(vid) AS visitors, count() AS visits, countIf(bounce) AS bounces, \
         sum(last_ms - first_ms) AS duration_ms FROM ({}) AS s GROUP BY value ORDER BY visitors DESC, value LIMIT 10",
        sessions_subquery(w, Sessions::of(plan), w.start_ms(), w.end_ms, filtered, &[&value])
    )]
}

fn funnel(w: &Window, filtered: bool) -> Vec<String> {
    use crate::history::{FUNNEL, FUNNEL_EVENT};
    let step = |p: &str| format!("type = 'pageview' AND path = '{p}'");
    vec![format!(
        "SELECT level, count() AS visitors FROM (SELECT visitor_id, windowFunnel(1800)(ts, {}, {}, {}, type = 'custom' AND name = '{FUNNEL_EVENT}') AS level \
         FROM events WHERE {} AND ((type = 'pageview' AND path IN ('{}', '{}', '{}')) OR (type = 'custom' AND name = '{FUNNEL_EVENT}')) \
         GROUP BY visitor_id) AS f GROUP BY level ORDER BY level",
        step(FUNNEL[0]),
        step(FUNNEL[1]),
        step(FUNNEL[2]),
        // The page filter would cut the funnel's own steps: the funnel takes the visit filter only.
        events_range(w, w.start_ms(), w.end_ms, false)
            + &if filtered { format!(" AND country = '{COUNTRY}'") } else { String::new() },
        FUNNEL[0],
        FUNNEL[1],
        FUNNEL[2]
    )]
}

fn realtime(w: &Window, plan: Plan) -> Vec<String> {
    let from = w.realtime_ms - 300_000;
    let base = format!("project_id = toUUID('{}') AND toDate(ts) >= {}", w.project, date(from));
    let time = format!("ts >= {}", datetime(from));
    vec![if plan == Plan::Prewhere {
        format!("SELECT uniqExact(visitor_id) AS visitors FROM events PREWHERE {time} WHERE {base}")
    } else {
        format!("SELECT uniqExact(visitor_id) AS visitors FROM events WHERE {base} AND {time}")
    }]
}

/// Visit dimensions: API name, expression over `sessions` (raw and idrange), over `c_sessions_slim`.
pub const VISIT_DIMENSIONS: &[(&str, &str, &str)] = &[
    ("entry_pages", "visit:entry_page", "argMinIfMerge(entry_page)"),
    ("exit_pages", "visit:exit_page", "argMaxIfMerge(exit_page)"),
    ("sources", "visit:source", "argMinMerge(referrer_name)"),
    ("referrers", "visit:referrer", "argMinMerge(referrer)"),
    ("utm_sources", "visit:utm_source", "argMinMerge(utm_source)"),
    ("countries", "visit:country", "argMinMerge(country)"),
    ("regions", "visit:region", "argMinMerge(region)"),
    ("cities", "visit:city", "argMinMerge(city)"),
    ("browsers", "visit:browser", "argMinMerge(browser)"),
    ("os", "visit:os", "argMinMerge(os)"),
    ("devices", "visit:device", "argMinMerge(device)"),
];

fn body(w: &Window, metrics: &[&str], dimensions: &[&str], filtered: bool) -> Value {
    let from = at(w.start_ms()).format("%Y-%m-%d").to_string();
    let to = at(w.end_ms - 1).format("%Y-%m-%d").to_string();
    let mut b = json!({
        "site_id": w.project.to_string(),
        "metrics": metrics,
        "date_range": [from, to],
        "dimensions": dimensions,
    });
    if filtered {
        b["filters"] = json!([["is", "visit:country", [COUNTRY]], ["contains", "event:page", [PAGE_CONTAINS]]]);
    }
    if !dimensions.is_empty() && dimensions != ["time:day"] {
        b["order_by"] = json!([["visitors", "desc"]]);
        b["pagination"] = json!({"limit": 10, "offset": 0});
    }
    b
}

/// Every call of the dashboard, without filter and with the two filters.
pub fn calls(w: &Window) -> Vec<Call> {
    use Plan::*;
    let mut out = Vec::new();
    for filtered in [false, true] {
        let suffix = if filtered { "+2 filters" } else { "" };
        let session_plans: &[Plan] = if filtered { &[Raw, IdRange, Slim] } else { &[Raw, IdRange, Slim, Daily] };
        let event_plans: &[Plan] = if filtered { &[Raw] } else { &[Raw, Rollup, Hll] };
        let mixed: Vec<Plan> =
            if filtered { session_plans.to_vec() } else { vec![Raw, IdRange, Slim, Rollup, Hll, Daily] };
        let mut overview_body = body(
            w,
            &["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"],
            &[],
            filtered,
        );
        overview_body["include"] = json!({"comparisons": {"mode": "previous_period"}});
        out.push(Call {
            name: format!("overview+comparison{suffix}"),
            filtered,
            body: overview_body,
            plans: mixed.iter().map(|p| (*p, overview(w, *p, filtered))).collect(),
        });
        let mut series_body =
            body(w, &["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"], &["time:day"], filtered);
        series_body["include"] = json!({"time_labels": true});
        out.push(Call {
            name: format!("timeseries_day{suffix}"),
            filtered,
            body: series_body,
            plans: mixed.iter().map(|p| (*p, timeseries(w, *p, filtered))).collect(),
        });
        for (name, dim, pages) in [("pages", "event:page", true), ("custom_events", "event:goal", false)] {
            let metrics: &[&str] = if pages { &["visitors", "pageviews"] } else { &["visitors", "events"] };
            out.push(Call {
                name: format!("{name}{suffix}"),
                filtered,
                body: body(w, metrics, &[dim], filtered),
                plans: event_plans.iter().map(|p| (*p, event_breakdown(w, *p, filtered, pages))).collect(),
            });
        }
        for (name, dim, expr) in VISIT_DIMENSIONS {
            out.push(Call {
                name: format!("{name}{suffix}"),
                filtered,
                body: body(w, &["visitors", "visits", "bounce_rate", "visit_duration"], &[dim], filtered),
                plans: session_plans.iter().map(|p| (*p, visit_breakdown(w, *p, filtered, name, expr))).collect(),
            });
        }
        // Funnels and realtime are Tidemark's own endpoints beyond Plausible's API; these bodies are provisional
        // until the planner fixes their shape.
        let mut funnel_body = body(w, &["visitors"], &[], filtered);
        funnel_body["funnel"] = json!({
            "window_seconds": 1800,
            "steps": [
                {"page": crate::history::FUNNEL[0]}, {"page": crate::history::FUNNEL[1]},
                {"page": crate::history::FUNNEL[2]}, {"event": crate::history::FUNNEL_EVENT}
            ]
        });
        if filtered {
            funnel_body["filters"] = json!([["is", "visit:country", [COUNTRY]]]);
        }
        out.push(Call {
            name: format!("funnel_4_steps{suffix}"),
            filtered,
            body: funnel_body,
            plans: vec![(Raw, funnel(w, filtered))],
        });
    }
    out.push(Call {
        name: "realtime_5min".into(),
        filtered: false,
        body: json!({"site_id": w.project.to_string(), "metrics": ["visitors"], "date_range": "realtime"}),
        plans: [Raw, Prewhere].iter().map(|p| (*p, realtime(w, *p))).collect(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_bound_the_range() {
        let w = Window { project: Uuid::nil(), end_ms: 1_796_083_200_000, realtime_ms: 1_796_083_200_000, days: 30 };
        assert_eq!(session_floor(w.end_ms) >> 32, 1_796_083_200);
        let sql = sessions_subquery(&w, Sessions::IdRange, w.start_ms(), w.end_ms, false, &[]);
        assert!(sql.contains(&format!("session_id < {}", 1_796_083_200u64 << 32)), "{sql}");
        assert_eq!(date(w.end_ms - 1), "toDate('2026-11-30')");
    }
}
