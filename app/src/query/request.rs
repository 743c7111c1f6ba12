//! The request's JSON, checked the way Plausible's JSON schema (`priv/json-schemas/query-api-schema.json`) checks
//! it, then read into the typed [`Query`].
//!
//! This walks a `serde_json::Value` instead of deriving `Deserialize`: serde stops at the first mismatch with its own
//! wording, while Plausible's answers say `#/<json pointer>: <message>` in the words of its schema validator
//! (reworded to `Invalid metric "foo"` and the like for the lists). Matching those texts needs the path and the
//! offending value at hand, which a hand walk keeps. Where Plausible reports several schema errors at once (joined
//! by newlines), this reports the first.

use chrono::{DateTime, NaiveDate};
use serde_json::{Map, Value};

use super::QueryError;
use super::model::{
    Clause, Comparison, ComparisonMode, DateRange, Days, Dimension, Direction, Filter, FilterOp, Include, Metric,
    OrderBy, OrderKey, Pagination, Query,
};

const TOP_LEVEL: [&str; 9] =
    ["site_id", "metrics", "date_range", "dimensions", "filters", "order_by", "include", "pagination", "date"];
const REQUIRED: [&str; 3] = ["site_id", "metrics", "date_range"];
const NO_MATCH: &str = "Expected exactly one of the schemata to match, but none of them did.";

/// Parses the request body (JSON bytes) into a query that has passed the schema, not yet the cross-field rules.
pub fn from_slice(body: &[u8]) -> Result<Query, QueryError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| QueryError::new(format!("#: Invalid JSON in the request body: {e}")))?;
    from_value(&value)
}

pub fn from_value(value: &Value) -> Result<Query, QueryError> {
    let Some(object) = value.as_object() else {
        return Err(type_mismatch("#", "Object", value));
    };
    // `date` is in Plausible's schema for its own dashboard only; the public API refuses it like any unknown key.
    if let Some(key) = object.keys().find(|k| !TOP_LEVEL[..8].contains(&k.as_str())) {
        return Err(at(&format!("#/{}", pointer_escape(key)), "Schema does not allow additional properties."));
    }
    let missing: Vec<&str> = REQUIRED.into_iter().filter(|k| !object.contains_key(*k)).collect();
    match missing.as_slice() {
        [] => {}
        [one] => return Err(at("#", &format!("Required property {one} was not present."))),
        many => return Err(at("#", &format!("Required properties {} were not present.", many.join(", ")))),
    }

    let site_id = match &object["site_id"] {
        Value::String(s) => s.clone(),
        other => return Err(type_mismatch("#/site_id", "String", other)),
    };
    let metrics = metrics(&object["metrics"])?;
    let date_range = date_range(&object["date_range"])?;
    let dimensions = match object.get("dimensions") {
        Some(v) => dimensions(v)?,
        None => Vec::new(),
    };
    // Plausible's parser looks inside filters only once the whole request has passed the schema, so its complaints
    // about clauses wait until every other field's shape has been checked.
    let mut parser_error = None;
    let filters = match object.get("filters") {
        Some(v) => filters(v, &mut parser_error)?,
        None => Vec::new(),
    };
    let order_by = match object.get("order_by") {
        Some(v) => Some(order_by(v)?),
        None => None,
    };
    let include = match object.get("include") {
        Some(v) => include(v)?,
        None => Include::default(),
    };
    let pagination = match object.get("pagination") {
        Some(v) => pagination(v)?,
        None => Pagination::default(),
    };
    if let Some(error) = parser_error {
        return Err(error);
    }
    Ok(Query { site_id, metrics, date_range, dimensions, filters, order_by, include, pagination })
}

fn metrics(value: &Value) -> Result<Vec<Metric>, QueryError> {
    let items = array(value, "#/metrics")?;
    if items.is_empty() {
        return Err(at("#/metrics", "Expected a minimum of 1 items but got 0."));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str().and_then(Metric::parse) {
            Some(m) => out.push(m),
            None => return Err(at(&format!("#/metrics/{i}"), &format!("Invalid metric {}", inspect(item)))),
        }
    }
    unique(items, "#/metrics")?;
    Ok(out)
}

fn dimensions(value: &Value) -> Result<Vec<Dimension>, QueryError> {
    let items = array(value, "#/dimensions")?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str().and_then(Dimension::parse) {
            Some(d) => out.push(d),
            None => return Err(at(&format!("#/dimensions/{i}"), &format!("Invalid dimension {}", inspect(item)))),
        }
    }
    unique(items, "#/dimensions")?;
    Ok(out)
}

fn date_range(value: &Value) -> Result<DateRange, QueryError> {
    let invalid = || at("#/date_range", &format!("Invalid date range {}", inspect(value)));
    match value {
        Value::String(s) => shorthand(s).ok_or_else(invalid),
        Value::Array(pair) if pair.len() == 2 => {
            let (Some(from), Some(to)) = (pair[0].as_str(), pair[1].as_str()) else {
                return Err(invalid());
            };
            if let (Some(from), Some(to)) = (date(from), date(to)) {
                if from > to {
                    return Err(at(
                        "#/date_range",
                        &format!("Invalid date range {}: it ends before it starts", inspect(value)),
                    ));
                }
                return Ok(DateRange::Custom { from, to });
            }
            match (DateTime::parse_from_rfc3339(from), DateTime::parse_from_rfc3339(to)) {
                (Ok(from), Ok(to)) if from > to => {
                    Err(at("#/date_range", &format!("Invalid date range {}: it ends before it starts", inspect(value))))
                }
                (Ok(from), Ok(to)) => Ok(DateRange::Between { from, to }),
                _ => Err(invalid()),
            }
        }
        _ => Err(invalid()),
    }
}

fn shorthand(s: &str) -> Option<DateRange> {
    Some(match s {
        "day" => DateRange::Day,
        "month" => DateRange::Month,
        "year" => DateRange::Year,
        "all" => DateRange::All,
        // `7d`, `28d`, `30d`, `91d`, `6mo`, `12mo` and, as Plausible's parser takes them, any `<n>d` up to 5000 days
        // and `<n>mo` up to 100 months.
        _ => {
            let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let n: u32 = digits.parse().ok().filter(|_| !digits.starts_with(['+', '0']))?;
            match &s[digits.len()..] {
                "d" if (1..=5000).contains(&n) => DateRange::Last(Days(n)),
                "mo" if (1..=100).contains(&n) => DateRange::LastMonths(n),
                _ => return None,
            }
        }
    })
}

/// A full-date as JSON schema's `date` format has it: exactly `YYYY-MM-DD`, a real day.
fn date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn filters(value: &Value, parser_error: &mut Option<QueryError>) -> Result<Vec<Filter>, QueryError> {
    let items = array(value, "#/filters")?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        // The schema's `oneOf` fails at the top-level entry, so a fault anywhere inside names the whole entry.
        match filter_tree(item, parser_error) {
            Some(f) => out.push(f),
            None => return Err(at(&format!("#/filters/{i}"), &format!("Invalid filter {}", inspect(item)))),
        }
    }
    Ok(out)
}

/// `None` for a shape the schema refuses. The parser's own complaints about a well-shaped leaf go to `parser_error`
/// (the first one wins) and the leaf is still returned, so the rest of the tree gets its schema check.
fn filter_tree(value: &Value, parser_error: &mut Option<QueryError>) -> Option<Filter> {
    let items = value.as_array()?;
    let head = items.first().and_then(Value::as_str)?;
    match head {
        "and" | "or" => {
            let [_, children] = items.as_slice() else { return None };
            let children = children.as_array().filter(|c| !c.is_empty())?;
            let out = children.iter().map(|c| filter_tree(c, parser_error)).collect::<Option<Vec<_>>>()?;
            Some(if head == "and" { Filter::And(out) } else { Filter::Or(out) })
        }
        "not" => {
            let [_, child] = items.as_slice() else { return None };
            filter_tree(child, parser_error).map(|f| Filter::Not(Box::new(f)))
        }
        _ => leaf(value, items, parser_error),
    }
}

fn leaf(value: &Value, items: &[Value], parser_error: &mut Option<QueryError>) -> Option<Filter> {
    let op = items[0].as_str().and_then(FilterOp::parse)?;
    // Regular-expression filters take no modifiers in the schema; the others may carry `{"case_sensitive": bool}`.
    let max_len = if op.is_regex() { 3 } else { 4 };
    if items.len() < 3 || items.len() > max_len {
        return None;
    }
    let dimension = items[1].as_str().and_then(Dimension::parse)?;
    if dimension.is_time() || (dimension == Dimension::EventGoal && !matches!(op, FilterOp::Is | FilterOp::Contains)) {
        return None;
    }
    let raw_clauses = items[2].as_array()?;
    let clauses = raw_clauses
        .iter()
        .map(|c| match c {
            Value::String(s) => Some(Clause::Text(s.clone())),
            // An integer past i64 passes the schema and is refused just below (`all_integers` is false for it).
            Value::Number(n) => n.as_i64().map(Clause::Int).or_else(|| n.as_u64().map(|_| Clause::Int(i64::MAX))),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    let case_sensitive = match items.get(3) {
        None => true,
        Some(Value::Object(modifiers)) => case_sensitive(modifiers)?,
        Some(_) => return None,
    };

    // Past the schema: Plausible's parser wants all strings, or all integers for `visit:city`.
    let all_strings = clauses.iter().all(|c| matches!(c, Clause::Text(_)));
    let all_integers = raw_clauses.iter().all(Value::is_i64);
    let readable = all_strings || (dimension == Dimension::VisitCity && all_integers);
    let complaint = if !readable {
        Some(QueryError::new(format!("Invalid filter '{}'.", inspect(value))))
    } else if dimension == Dimension::VisitCountry
        && matches!(op, FilterOp::Is | FilterOp::IsNot)
        && !clauses.iter().all(|c| matches!(c, Clause::Text(s) if s.chars().count() == 2))
    {
        Some(QueryError::new("Invalid visit:country filter, visit:country needs to be a valid 2-letter country code."))
    } else {
        None
    };
    if parser_error.is_none() {
        *parser_error = complaint;
    }
    Some(Filter::Leaf { op, dimension, clauses, case_sensitive })
}

fn case_sensitive(modifiers: &Map<String, Value>) -> Option<bool> {
    if modifiers.keys().any(|k| k != "case_sensitive") {
        return None;
    }
    match modifiers.get("case_sensitive") {
        None => Some(true),
        Some(v) => v.as_bool(),
    }
}

fn order_by(value: &Value) -> Result<Vec<OrderBy>, QueryError> {
    let items = array(value, "#/order_by")?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("#/order_by/{i}");
        let entry = array(item, &path)?;
        if entry.len() < 2 {
            return Err(at(&path, &format!("Expected a minimum of 2 items but got {}.", entry.len())));
        }
        if entry.len() > 2 {
            return Err(at(&path, &format!("Expected a maximum of 2 items but got {}.", entry.len())));
        }
        let raw_key = &entry[0];
        // The schema lists metrics, filterable dimensions and time buckets here, but not `event:goal`.
        let key = raw_key.as_str().and_then(|s| match Metric::parse(s) {
            Some(m) => Some(OrderKey::Metric(m)),
            None => Dimension::parse(s).filter(|d| *d != Dimension::EventGoal).map(OrderKey::Dimension),
        });
        let Some(key) = key else {
            return Err(at(&format!("{path}/0"), &format!("Invalid value in order_by {}", inspect(raw_key))));
        };
        let direction = match entry[1].as_str() {
            Some("asc") => Direction::Asc,
            Some("desc") => Direction::Desc,
            _ if !entry[1].is_string() => return Err(type_mismatch(&format!("{path}/1"), "String", &entry[1])),
            _ => return Err(at(&format!("{path}/1"), "Value is not allowed in enum.")),
        };
        out.push(OrderBy { key, direction });
    }
    Ok(out)
}

fn include(value: &Value) -> Result<Include, QueryError> {
    let Some(object) = value.as_object() else { return Err(type_mismatch("#/include", "Object", value)) };
    let mut include = Include::default();
    for (key, v) in object {
        let path = format!("#/include/{}", pointer_escape(key));
        match key.as_str() {
            "time_labels" => include.time_labels = boolean(v, &path)?,
            "total_rows" => include.total_rows = boolean(v, &path)?,
            "imports" => include.imports = boolean(v, &path)?,
            "comparisons" => include.comparisons = Some(comparison(v, &path)?),
            _ => return Err(at(&path, "Schema does not allow additional properties.")),
        }
    }
    Ok(include)
}

fn comparison(value: &Value, path: &str) -> Result<Comparison, QueryError> {
    let Some(object) = value.as_object() else { return Err(type_mismatch(path, "Object", value)) };
    let no_match = || at(path, NO_MATCH);
    let match_day_of_week = match object.get("match_day_of_week") {
        None => false,
        Some(v) => v.as_bool().ok_or_else(no_match)?,
    };
    let mode = match object.get("mode").and_then(Value::as_str) {
        Some("previous_period") | Some("year_over_year")
            if object.keys().all(|k| k == "mode" || k == "match_day_of_week") =>
        {
            if object["mode"] == "previous_period" {
                ComparisonMode::PreviousPeriod
            } else {
                ComparisonMode::YearOverYear
            }
        }
        Some("custom") if object.keys().all(|k| matches!(k.as_str(), "mode" | "match_day_of_week" | "date_range")) => {
            let pair = object.get("date_range").and_then(Value::as_array).ok_or_else(no_match)?;
            let dates: Vec<NaiveDate> = pair.iter().filter_map(|d| d.as_str().and_then(date)).collect();
            match dates.as_slice() {
                [from, to] if pair.len() == 2 && from <= to => ComparisonMode::Custom { from: *from, to: *to },
                _ => return Err(no_match()),
            }
        }
        _ => return Err(no_match()),
    };
    Ok(Comparison { mode, match_day_of_week })
}

fn pagination(value: &Value) -> Result<Pagination, QueryError> {
    let Some(object) = value.as_object() else { return Err(type_mismatch("#/pagination", "Object", value)) };
    let mut pagination = Pagination::default();
    for (key, v) in object {
        let path = format!("#/pagination/{}", pointer_escape(key));
        match key.as_str() {
            "limit" => {
                let n = integer(v, &path)?;
                if n < 1 {
                    return Err(at(&path, "Expected the value to be >= 1"));
                }
                if n > i128::from(Pagination::MAX_LIMIT) {
                    return Err(at(&path, &format!("Expected the value to be <= {}", Pagination::MAX_LIMIT)));
                }
                pagination.limit = n as u32;
            }
            "offset" => {
                let n = integer(v, &path)?;
                if n < 0 {
                    return Err(at(&path, "Expected the value to be >= 0"));
                }
                pagination.offset = u64::try_from(n).unwrap_or(u64::MAX);
            }
            _ => return Err(at(&path, "Schema does not allow additional properties.")),
        }
    }
    Ok(pagination)
}

fn array<'a>(value: &'a Value, path: &str) -> Result<&'a Vec<Value>, QueryError> {
    value.as_array().ok_or_else(|| type_mismatch(path, "Array", value))
}

fn boolean(value: &Value, path: &str) -> Result<bool, QueryError> {
    value.as_bool().ok_or_else(|| type_mismatch(path, "Boolean", value))
}

fn integer(value: &Value, path: &str) -> Result<i128, QueryError> {
    if let Some(n) = value.as_i64() {
        return Ok(i128::from(n));
    }
    if let Some(n) = value.as_u64() {
        return Ok(i128::from(n));
    }
    Err(type_mismatch(path, "Integer", value))
}

fn unique(items: &[Value], path: &str) -> Result<(), QueryError> {
    let repeated = items.iter().enumerate().any(|(i, a)| items[..i].contains(a));
    if repeated { Err(at(path, "Expected items to be unique but they were not.")) } else { Ok(()) }
}

fn at(path: &str, message: &str) -> QueryError {
    QueryError::new(format!("{path}: {message}"))
}

fn type_mismatch(path: &str, expected: &str, got: &Value) -> QueryError {
    at(path, &format!("Type mismatch. Expected {expected} but got {}.", json_type(got)))
}

/// Type names as Plausible's schema validator (ex_json_schema) prints them.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_f64() => "Number",
        Value::Number(_) => "Integer",
        Value::String(_) => "String",
        Value::Array(_) => "Array",
        Value::Object(_) => "Object",
    }
}

/// JSON pointer escaping (RFC 6901), so a key with `/` in it cannot fake a path.
fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A value as Elixir's `inspect` shows it, which is how Plausible quotes the offending part in its messages.
pub fn inspect(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(_) => value.to_string(),
        Value::Array(items) => format!("[{}]", items.iter().map(inspect).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            let pairs: Vec<String> =
                map.iter().map(|(k, v)| format!("{} => {}", Value::String(k.clone()), inspect(v))).collect();
            format!("%{{{}}}", pairs.join(", "))
        }
    }
}
