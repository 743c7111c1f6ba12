//! Every metric, defined once: which quantities it is made of (counted by the statements of [`super::plan`]) and
//! how it is rounded, as Plausible rounds it. docs/CLICKHOUSE.md ("Metrics") says the same in words.
//!
//! Plausible rounds in ClickHouse, whose `round` breaks ties to the even neighbour; so does this.

use serde_json::Value;

use super::model::Metric;

/// The quantities of one group, as the statements returned them (0 where a statement had no row for it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quantities {
    /// From events (pageviews and custom events): distinct visitors, pageviews, events, sessions.
    pub visitors: f64,
    pub pageviews: f64,
    pub events: f64,
    pub event_visits: f64,
    /// From sessions that started in the range: count, bounces, summed duration (ms), summed pageviews.
    pub visits: f64,
    pub bounces: f64,
    pub duration_ms: f64,
    pub session_pageviews: f64,
    /// From page leaves, each once: summed `duration_ms` and count.
    pub leave_ms: f64,
    pub leaves: f64,
    /// Denominators: visitors of the whole query, of the query without goal and property filters, and of the
    /// group without them.
    pub total_visitors: f64,
    pub conversion_total: f64,
    pub group_total: f64,
}

/// Rounds to `decimals` places, ties to even.
pub fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round_ties_even() / scale
}

fn int(x: f64) -> Value {
    Value::from(x.round_ties_even() as i64)
}

fn ratio(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| part / whole)
}

/// A metric's value for a group. `event_grouped`: the query groups by an event dimension, so visits are the
/// distinct sessions of the matching events.
pub fn value(metric: Metric, q: &Quantities, event_grouped: bool) -> Value {
    match metric {
        Metric::Visitors => int(q.visitors),
        Metric::Pageviews => int(q.pageviews),
        Metric::Events => int(q.events),
        Metric::Visits => int(if event_grouped { q.event_visits } else { q.visits }),
        // Integer percent of visits with exactly one pageview and no custom event.
        Metric::BounceRate => int(ratio(q.bounces, q.visits).map_or(0.0, |r| r * 100.0)),
        // Mean of (last arrival - first arrival) per visit, whole seconds.
        Metric::VisitDuration => int(ratio(q.duration_ms, q.visits).map_or(0.0, |ms| ms / 1000.0)),
        Metric::ViewsPerVisit => Value::from(ratio(q.session_pageviews, q.visits).map_or(0.0, |r| round_to(r, 2))),
        // Share of the query's visitors, one decimal; null when there are none (Plausible's rule).
        Metric::Percentage => {
            ratio(q.visitors, q.total_visitors).map_or(Value::Null, |r| Value::from(round_to(r * 100.0, 1)))
        }
        Metric::ConversionRate => {
            Value::from(ratio(q.visitors, q.conversion_total).map_or(0.0, |r| round_to(r * 100.0, 1)))
        }
        Metric::GroupConversionRate => {
            Value::from(ratio(q.visitors, q.group_total).map_or(0.0, |r| round_to(r * 100.0, 1)))
        }
        // Mean page-leave duration on the page, whole seconds; null without page leaves.
        Metric::TimeOnPage => ratio(q.leave_ms, q.leaves).map_or(Value::Null, |ms| int(ms / 1000.0)),
        // The tracker does not send scroll depth yet.
        Metric::ScrollDepth => Value::Null,
    }
}

/// Plausible's `change` between a comparison value and the current one: points for bounce rate (null when the
/// old rate is 0), else a whole percent (100 from nothing to something, 0 from nothing to nothing).
pub fn change(metric: Metric, old: &Value, new: &Value) -> Value {
    let (Some(old), Some(new)) = (old.as_f64(), new.as_f64()) else {
        return Value::Null;
    };
    if metric == Metric::BounceRate {
        return if old > 0.0 { int(new - old) } else { Value::Null };
    }
    if old == 0.0 {
        return Value::from(if new > 0.0 { 100 } else { 0 });
    }
    int((new - old) / old * 100.0)
}

/// A metric's value as a number for ordering (null first).
pub fn sort_key(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NEG_INFINITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundings_follow_plausible() {
        let q = Quantities {
            visitors: 1.0,
            visits: 3.0,
            bounces: 1.0,
            duration_ms: 100_500.0,
            session_pageviews: 5.0,
            total_visitors: 3.0,
            ..Default::default()
        };
        assert_eq!(value(Metric::BounceRate, &q, false), Value::from(33));
        assert_eq!(value(Metric::VisitDuration, &q, false), Value::from(34));
        assert_eq!(value(Metric::ViewsPerVisit, &q, false), Value::from(1.67));
        assert_eq!(value(Metric::Percentage, &q, false), Value::from(33.3));
        assert_eq!(value(Metric::TimeOnPage, &q, false), Value::Null);
        assert_eq!(value(Metric::Percentage, &Quantities::default(), false), Value::Null);
        assert_eq!(value(Metric::ConversionRate, &Quantities::default(), false), Value::from(0.0));
        assert_eq!(round_to(2.5, 0), 2.0);
    }

    #[test]
    fn changes_follow_plausible() {
        let v = |x: i64| Value::from(x);
        assert_eq!(change(Metric::Visitors, &v(0), &v(5)), v(100));
        assert_eq!(change(Metric::Visitors, &v(0), &v(0)), v(0));
        assert_eq!(change(Metric::Visitors, &v(4), &v(5)), v(25));
        assert_eq!(change(Metric::BounceRate, &v(40), &v(50)), v(10));
        assert_eq!(change(Metric::BounceRate, &v(0), &v(50)), Value::Null);
    }
}
