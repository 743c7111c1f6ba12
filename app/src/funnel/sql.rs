//! The funnel's one statement. Innermost, the counted events of the range that match the filters (the query
//! planner's own `FROM` and `WHERE`, [`crate::query::plan::counted_events`]) and complete some step, each event
//! once (`LIMIT 1 BY event_id`: a redelivered copy is dropped before `windowFunnel` sees it, so copies change
//! nothing whatever `windowFunnel` would make of them); then `windowFunnel` per visitor (or per visit, the best
//! visit counting for its visitor); then, per step, how many visitors reached it.

use crate::goals::page_pattern_regex;
use crate::query::QueryError;
use crate::query::columns::goal_condition;
use crate::query::plan::{self, Context};
use crate::query::range::UtcRange;
use crate::query::sql::Sql;

use super::request::{Funnel, Step, Window};

/// The window used inside one visit: longer than any visit lasts, so only the visit bounds the steps.
const VISIT_WINDOW: u64 = 365 * 86_400;

fn condition(ctx: &Context<'_>, i: usize, step: &Step) -> Result<Sql, QueryError> {
    let mut sql = Sql::new();
    match step {
        Step::Page(pattern) => {
            sql.push("(type = 'pageview' AND match(path, ").str(&page_pattern_regex(pattern)).push("))");
        }
        Step::Event(name) => {
            sql.push("(type = 'custom' AND name = ").str(name).push(")");
        }
        Step::Goal(name) => {
            let goal = ctx.goals.iter().find(|g| g.display_name == *name).ok_or_else(|| {
                QueryError::new(format!("#/steps/{i}/goal: The goal \"{name}\" is not configured for this site."))
            })?;
            sql.append(goal_condition(goal));
        }
    }
    Ok(sql)
}

/// Returns one row, `steps`: the number of visitors who completed step 1, steps 1-2, ..., all steps.
pub fn funnel_sql(ctx: &Context<'_>, range: &UtcRange, funnel: &Funnel) -> Result<Sql, QueryError> {
    let conditions =
        funnel.steps.iter().enumerate().map(|(i, s)| condition(ctx, i, s)).collect::<Result<Vec<_>, _>>()?;
    let (from, filter) = plan::counted_events(ctx, range, &funnel.filters)?;
    let n = conditions.len();
    let names: Vec<String> = (1..=n).map(|i| format!("c{i}")).collect();

    let mut events = Sql::new();
    events.push("SELECT event_id, visitor_id, session_id, ts");
    for (name, cond) in names.iter().zip(conditions) {
        events.push(", ").append(cond).push(&format!(" AS {name}"));
    }
    events.push(" FROM ").append(from).push(" WHERE ").append(filter);
    events.push(&format!(" AND ({}) LIMIT 1 BY event_id", names.join(" OR ")));

    let (window, group) = match funnel.window {
        Window::Seconds(s) => (s, "visitor_id"),
        Window::Session => (VISIT_WINDOW, "visitor_id, session_id"),
    };
    let mut levels = Sql::new();
    levels.push("SELECT visitor_id, ");
    levels.push(&format!("windowFunnel({window})(ts, {}) AS level FROM (", names.join(", ")));
    levels.append(events).push(&format!(") AS e GROUP BY {group}"));
    if funnel.window == Window::Session {
        let mut best = Sql::new();
        best.push("SELECT visitor_id, max(level) AS level FROM (").append(levels).push(") AS v GROUP BY visitor_id");
        levels = best;
    }

    let counts: Vec<String> = (1..=n).map(|i| format!("countIf(level >= {i})")).collect();
    let mut sql = Sql::new();
    sql.push(&format!("SELECT [{}] AS steps FROM (", counts.join(", ")));
    sql.append(levels).push(") AS f");
    Ok(sql)
}

/// Representative funnel statements for the generated SQL catalogue ([`crate::query::catalog`]): page, event and
/// goal steps, both kinds of window, visit and event filters, the most steps.
pub fn catalog(ctx: &Context<'_>, now: chrono::DateTime<chrono::Utc>) -> Vec<(String, Sql)> {
    use serde_json::json;
    let entries = [
        (
            "pages_and_event",
            json!({ "date_range": "7d", "steps": [{ "page": "/" }, { "page": "/pricing/**" },
            { "event": "Signup" }] }),
        ),
        (
            "goals_in_a_visit",
            json!({ "date_range": "30d", "window": "session", "steps": [{ "page": "/blog/*" },
            { "goal": "Visit /pricing*" }, { "goal": "Signup" }] }),
        ),
        (
            "filtered",
            json!({ "date_range": ["2024-03-01", "2024-03-10"], "window": 86400,
            "filters": [["is", "visit:country", ["DE"]], ["contains", "event:page", ["/"]],
                        ["is", "visit:source", ["Google"]]],
            "steps": [{ "page": "/" }, { "event": "Signup" }] }),
        ),
        (
            "eight_steps",
            json!({ "date_range": "day", "window": 60, "steps": [{ "page": "/1" }, { "page": "/2" },
            { "page": "/3" }, { "page": "/4" }, { "page": "/5" }, { "page": "/6" }, { "page": "/7" },
            { "event": "E" }] }),
        ),
    ];
    entries
        .into_iter()
        .map(|(name, mut body)| {
            body["site_id"] = json!("catalog.example");
            let funnel = super::request::from_value(&body).unwrap_or_else(|e| panic!("funnel {name}: {e}"));
            let range = crate::query::range::resolve(&funnel.date_range, ctx.tz, now, None);
            let sql = funnel_sql(ctx, &range, &funnel).unwrap_or_else(|e| panic!("funnel {name}: {e}"));
            (format!("funnel.{name}"), sql)
        })
        .collect()
}
