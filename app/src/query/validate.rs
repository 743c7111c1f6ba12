//! The rules that tie one part of a query to another, checked after the schema, in the order Plausible's query
//! parser (`lib/plausible/stats/filters/query_parser.ex`) checks them and in its words.
//!
//! Left to the caller because they need the database: that `site_id` names a project the key may read, and that
//! every `event:goal` filter names a configured goal (Plausible: "The goal `X` is not configured for this site.").

use super::QueryError;
use super::model::{Clause, Dimension, Direction, Filter, Metric, OrderKey, Query};

pub fn validate(query: &Query) -> Result<(), QueryError> {
    order_by_is_queried(query)?;
    toplevel_only_filters(query)?;
    special_metrics_filters(query)?;
    regular_expressions(query)?;
    for metric in &query.metrics {
        metric_fits(*metric, query)?;
    }
    no_session_metrics_with_event_dimensions(query)?;
    include_fits(query)
}

fn order_by_is_queried(query: &Query) -> Result<(), QueryError> {
    for entry in query.order_by.iter().flatten() {
        let queried = match &entry.key {
            OrderKey::Metric(m) => query.metrics.contains(m),
            OrderKey::Dimension(d) => query.dimensions.contains(d),
        };
        if !queried {
            // Plausible quotes the parsed entry as an Elixir tuple: metrics are atoms, dimensions strings.
            let key = match &entry.key {
                OrderKey::Metric(m) => format!(":{}", m.name()),
                OrderKey::Dimension(d) => format!("{:?}", d.name()),
            };
            let direction = match entry.direction {
                Direction::Asc => ":asc",
                Direction::Desc => ":desc",
            };
            return Err(QueryError::new(format!(
                "Invalid order_by entry '{{{key}, {direction}}}'. Entry is not a queried metric or dimension."
            )));
        }
    }
    Ok(())
}

/// Goals and hostnames decide which events a whole query looks at, so Plausible allows them only at the top.
fn toplevel_only_filters(query: &Query) -> Result<(), QueryError> {
    let nested = query.filter_leaves().into_iter().filter(|(_, depth)| *depth > 0).filter_map(|(f, _)| f.dimension());
    for dimension in nested {
        if matches!(dimension, Dimension::EventGoal | Dimension::EventHostname) {
            return Err(QueryError::new(format!(
                "Invalid filters. Dimension `{}` can only be filtered at the top level.",
                dimension.name()
            )));
        }
    }
    Ok(())
}

fn special_metrics_filters(query: &Query) -> Result<(), QueryError> {
    let special = query.metrics.iter().any(|m| matches!(m, Metric::ConversionRate | Metric::GroupConversionRate));
    let deep_prop = query
        .filter_leaves()
        .into_iter()
        .any(|(f, depth)| depth > 0 && matches!(f.dimension(), Some(Dimension::EventProp(_))));
    if special && deep_prop {
        return Err(QueryError::new(
            "Invalid filters. When `conversion_rate` or `group_conversion_rate` metrics are used, custom property \
             filters can only be used on top level.",
        ));
    }
    Ok(())
}

/// Tidemark's own rule: Plausible hands a broken pattern to ClickHouse and answers 500; this answers 400.
fn regular_expressions(query: &Query) -> Result<(), QueryError> {
    for (filter, _) in query.filter_leaves() {
        let Filter::Leaf { op, dimension, clauses, .. } = filter else { continue };
        if !op.is_regex() {
            continue;
        }
        for clause in clauses {
            if let Clause::Text(pattern) = clause
                && let Err(e) = regex::Regex::new(pattern)
            {
                let reason = e.to_string().lines().last().unwrap_or_default().trim().to_owned();
                return Err(QueryError::new(format!(
                    "Invalid filter: `{}` on `{}` has an invalid regular expression {:?} ({reason}).",
                    op.name(),
                    dimension.name(),
                    pattern
                )));
            }
        }
    }
    Ok(())
}

fn metric_fits(metric: Metric, query: &Query) -> Result<(), QueryError> {
    let name = metric.name();
    match metric {
        Metric::ConversionRate | Metric::GroupConversionRate => {
            if query.dimensions.contains(&Dimension::EventGoal) || filters_on(query, &Dimension::EventGoal) {
                Ok(())
            } else {
                Err(QueryError::new(format!(
                    "Metric `{name}` can only be queried with event:goal filters or dimensions."
                )))
            }
        }
        // Both are per page: an average over every page of a site answers no question anyone asked.
        Metric::ScrollDepth | Metric::TimeOnPage => {
            let toplevel_page_filter = query.filters.iter().any(|f| f.dimension() == Some(&Dimension::EventPage));
            if query.dimensions.contains(&Dimension::EventPage) || toplevel_page_filter {
                Ok(())
            } else {
                Err(QueryError::new(format!(
                    "Metric `{name}` can only be queried with event:page filters or dimensions."
                )))
            }
        }
        Metric::ViewsPerVisit => {
            if filters_on(query, &Dimension::EventPage) {
                Err(QueryError::new(format!("Metric `{name}` cannot be queried with a filter on `event:page`.")))
            } else if !query.dimensions.is_empty() {
                Err(QueryError::new(format!("Metric `{name}` cannot be queried with `dimensions`.")))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn no_session_metrics_with_event_dimensions(query: &Query) -> Result<(), QueryError> {
    let session: Vec<&str> = query.metrics.iter().filter(|m| m.session_only()).map(|m| m.name()).collect();
    // A visit has one entry page per page view it is counted under, so `event:page` is the exception.
    let event_dimension = query.dimensions.iter().any(|d| d.is_event() && *d != Dimension::EventPage);
    if !session.is_empty() && event_dimension {
        return Err(QueryError::new(format!(
            "Session metric(s) `{}` cannot be queried along with event dimensions.",
            session.join(", ")
        )));
    }
    Ok(())
}

fn include_fits(query: &Query) -> Result<(), QueryError> {
    if query.include.time_labels && !query.dimensions.iter().any(Dimension::is_time) {
        return Err(QueryError::new("Invalid include.time_labels: requires a time dimension."));
    }
    Ok(())
}

fn filters_on(query: &Query, dimension: &Dimension) -> bool {
    query.filter_leaves().into_iter().any(|(f, _)| f.dimension() == Some(dimension))
}
