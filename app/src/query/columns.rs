//! The planner's allow-list: every dimension as a SQL expression, on an `events` row or on a session row. Column
//! names and functions come only from here; values (property keys, goal names, the time zone) are bound.
//!
//! Two contexts:
//! - **event rows** (`events`): event dimensions read the event; geography, device, browser and OS are the same on
//!   every event of a session (the hub stamps them per request and the session keeps its first), so they are read
//!   from the event itself, which is cheaper; acquisition (source, referrer, channel, UTM tags) and entry/exit
//!   pages belong to the session and come from the session row joined on `session_id` (`s_*` columns);
//! - **session rows** (the `sessions` states merged per session): everything from the session; `event:page` means
//!   the entry page and `event:hostname` the first event's host (Plausible's rule for session metrics by page).

use super::channel;
use super::model::Dimension;
use super::sql::Sql;
use crate::goals::{Goal, GoalKind, page_pattern_regex};

/// What Plausible shows for a visit without a referrer.
pub const DIRECT: &str = "Direct / None";
/// A custom property the event did not carry.
pub const NONE: &str = "(none)";
/// A browser, OS or device the hub could not tell.
pub const NOT_SET: &str = "(not set)";

/// The merged session row: alias and the `-Merge` that makes it. Aliases never reuse a state column's name
/// (ClickHouse would substitute the alias into its own definition).
pub const SESSION_COLUMNS: [(&str, &str); 25] = [
    ("s_first_ms", "minMerge(start_ms)"),
    ("s_last_ms", "maxMerge(end_ms)"),
    ("s_pageviews", "uniqExactIfMerge(pageviews)"),
    ("s_interactions", "uniqExactIfMerge(interactions)"),
    ("s_entry_page", "argMinIfMerge(entry_page)"),
    ("s_exit_page", "argMaxIfMerge(exit_page)"),
    ("s_host", "argMinMerge(host)"),
    ("s_referrer", "argMinMerge(referrer)"),
    ("s_referrer_host", "argMinMerge(referrer_host)"),
    ("s_source_type", "argMinMerge(referrer_source)"),
    ("s_referrer_name", "argMinMerge(referrer_name)"),
    ("s_utm_source", "argMinMerge(utm_source)"),
    ("s_utm_medium", "argMinMerge(utm_medium)"),
    ("s_utm_campaign", "argMinMerge(utm_campaign)"),
    ("s_utm_term", "argMinMerge(utm_term)"),
    ("s_utm_content", "argMinMerge(utm_content)"),
    ("s_country", "argMinMerge(country)"),
    ("s_region", "argMinMerge(region)"),
    ("s_city", "argMinMerge(city)"),
    ("s_device", "argMinMerge(device)"),
    ("s_browser", "argMinMerge(browser)"),
    ("s_browser_version", "argMinMerge(browser_version)"),
    ("s_os", "argMinMerge(os)"),
    ("s_os_version", "argMinMerge(os_version)"),
    ("s_start", "toDateTime(intDiv(s_first_ms, 1000), 'UTC')"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    Events,
    Sessions,
}

/// A concrete time bucket (`time` already resolved to one of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
    Week,
    Month,
}

/// Whether a dimension is read from the session even on event rows.
pub fn from_session(dimension: &Dimension) -> bool {
    matches!(
        dimension,
        Dimension::VisitEntryPage
            | Dimension::VisitExitPage
            | Dimension::VisitSource
            | Dimension::VisitReferrer
            | Dimension::VisitChannel
            | Dimension::VisitUtmSource
            | Dimension::VisitUtmMedium
            | Dimension::VisitUtmCampaign
            | Dimension::VisitUtmContent
            | Dimension::VisitUtmTerm
    )
}

fn not_set(column: &str) -> String {
    format!("if({column} = '', '{NOT_SET}', {column})")
}

/// The expression of a dimension on `rows`. `tz` is the project's time zone; `bucket` is the resolved time bucket
/// for time dimensions. Event-only dimensions other than page and hostname have no session form: the planner
/// never asks for one (the request rules keep session metrics away from them).
pub fn expression(dimension: &Dimension, rows: Rows, tz: &str, bucket: Bucket, goals: &[Goal]) -> Sql {
    let mut sql = Sql::new();
    let session = rows == Rows::Sessions;
    let col = |event: &str, session_col: &str| if session { session_col.to_owned() } else { event.to_owned() };
    let text = match dimension {
        Dimension::EventPage => col("path", "s_entry_page"),
        Dimension::EventHostname => col("host", "s_host"),
        Dimension::EventName => "if(type = 'pageview', 'pageview', name)".to_owned(),
        Dimension::EventProp(key) => {
            sql.push("if(indexOf(prop_keys, ")
                .str(key)
                .push(&format!(") = 0, '{NONE}', prop_values[indexOf(prop_keys, "));
            sql.str(key).push(")])");
            return sql;
        }
        Dimension::EventGoal => {
            sql.push("arrayJoin(arrayFilter(x -> x != '', [");
            if goals.is_empty() {
                sql.push("''");
            }
            for (i, goal) in goals.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("if(").append(goal_condition(goal)).push(", ").str(&goal.display_name).push(", '')");
            }
            sql.push("]))");
            return sql;
        }
        Dimension::VisitEntryPage => "s_entry_page".to_owned(),
        Dimension::VisitExitPage => "s_exit_page".to_owned(),
        Dimension::VisitSource => format!(
            "multiIf(s_referrer_name != '', s_referrer_name, s_referrer_host != '', s_referrer_host, \
             s_utm_source != '', s_utm_source, '{DIRECT}')"
        ),
        Dimension::VisitReferrer => format!("if(s_referrer = '', '{DIRECT}', s_referrer)"),
        Dimension::VisitChannel => {
            channel::expression("s_source_type", "s_referrer_name", "s_utm_source", "s_utm_medium", "s_utm_campaign")
        }
        Dimension::VisitUtmSource => "s_utm_source".to_owned(),
        Dimension::VisitUtmMedium => "s_utm_medium".to_owned(),
        Dimension::VisitUtmCampaign => "s_utm_campaign".to_owned(),
        Dimension::VisitUtmContent => "s_utm_content".to_owned(),
        Dimension::VisitUtmTerm => "s_utm_term".to_owned(),
        Dimension::VisitCountry => col("country", "s_country"),
        Dimension::VisitRegion => col("region", "s_region"),
        Dimension::VisitCity => col("city", "s_city"),
        Dimension::VisitDevice => not_set(&col("device", "s_device")),
        Dimension::VisitBrowser => not_set(&col("browser", "s_browser")),
        Dimension::VisitBrowserVersion => not_set(&col("browser_version", "s_browser_version")),
        Dimension::VisitOs => not_set(&col("os", "s_os")),
        Dimension::VisitOsVersion => not_set(&col("os_version", "s_os_version")),
        Dimension::Time | Dimension::TimeHour | Dimension::TimeDay | Dimension::TimeWeek | Dimension::TimeMonth => {
            let ts = col("ts", "s_start");
            let (open, close) = match bucket {
                Bucket::Hour => ("toString(toStartOfHour(toTimeZone(", ")))"),
                Bucket::Day => ("toString(toDate(toTimeZone(", ")))"),
                Bucket::Week => ("toString(toMonday(toDate(toTimeZone(", "))))"),
                Bucket::Month => ("toString(toStartOfMonth(toDate(toTimeZone(", "))))"),
            };
            sql.push(open).push(&ts).push(", ").str(tz).push(close);
            return sql;
        }
    };
    sql.push(&text);
    sql
}

/// The condition an event meets when it completes the goal: a custom event of that name, or a pageview whose
/// path matches the page pattern.
pub fn goal_condition(goal: &Goal) -> Sql {
    let mut sql = Sql::new();
    match &goal.kind {
        GoalKind::Event { event_name } => sql.push("(type = 'custom' AND name = ").str(event_name).push(")"),
        GoalKind::Page { page_path } => {
            sql.push("(type = 'pageview' AND match(path, ").str(&page_pattern_regex(page_path)).push("))")
        }
    };
    sql
}
