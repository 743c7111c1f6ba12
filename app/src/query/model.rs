//! The typed query: what a Stats API v2 request means once its JSON has been checked.
//!
//! Every name on the wire is spelled exactly once, in the `name`/`parse` pairs below, so the request parser, the
//! error messages and (later) the planner's allow-list of columns cannot drift apart.

use chrono::{DateTime, FixedOffset, NaiveDate};

/// A metric as Plausible's Stats API v2 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Visitors,
    Visits,
    Pageviews,
    ViewsPerVisit,
    BounceRate,
    VisitDuration,
    Events,
    Percentage,
    ConversionRate,
    GroupConversionRate,
    TimeOnPage,
    ScrollDepth,
}

impl Metric {
    pub const ALL: [Metric; 12] = [
        Metric::Visitors,
        Metric::Visits,
        Metric::Pageviews,
        Metric::ViewsPerVisit,
        Metric::BounceRate,
        Metric::VisitDuration,
        Metric::Events,
        Metric::Percentage,
        Metric::ConversionRate,
        Metric::GroupConversionRate,
        Metric::TimeOnPage,
        Metric::ScrollDepth,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Visitors => "visitors",
            Metric::Visits => "visits",
            Metric::Pageviews => "pageviews",
            Metric::ViewsPerVisit => "views_per_visit",
            Metric::BounceRate => "bounce_rate",
            Metric::VisitDuration => "visit_duration",
            Metric::Events => "events",
            Metric::Percentage => "percentage",
            Metric::ConversionRate => "conversion_rate",
            Metric::GroupConversionRate => "group_conversion_rate",
            Metric::TimeOnPage => "time_on_page",
            Metric::ScrollDepth => "scroll_depth",
        }
    }

    pub fn parse(raw: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == raw)
    }

    /// Metrics only the sessions table can answer; Plausible refuses them next to event dimensions because a visit
    /// has no single page, name or property to be grouped under.
    pub fn session_only(self) -> bool {
        matches!(self, Metric::BounceRate | Metric::VisitDuration | Metric::ViewsPerVisit)
    }
}

/// A property to group or filter by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dimension {
    EventPage,
    EventHostname,
    EventName,
    EventGoal,
    /// A custom property, `event:props:<key>`; the key is never empty.
    EventProp(String),
    VisitEntryPage,
    VisitExitPage,
    VisitSource,
    VisitReferrer,
    VisitChannel,
    VisitUtmSource,
    VisitUtmMedium,
    VisitUtmCampaign,
    VisitUtmContent,
    VisitUtmTerm,
    VisitCountry,
    VisitRegion,
    VisitCity,
    VisitDevice,
    VisitBrowser,
    VisitBrowserVersion,
    VisitOs,
    VisitOsVersion,
    /// `time`: the bucket follows the range's length (hour for a day, day up to a month, and so on).
    Time,
    TimeHour,
    TimeDay,
    TimeWeek,
    TimeMonth,
}

const FIXED_DIMENSIONS: [(&str, Dimension); 27] = [
    ("event:page", Dimension::EventPage),
    ("event:hostname", Dimension::EventHostname),
    ("event:name", Dimension::EventName),
    ("event:goal", Dimension::EventGoal),
    ("visit:entry_page", Dimension::VisitEntryPage),
    ("visit:exit_page", Dimension::VisitExitPage),
    ("visit:source", Dimension::VisitSource),
    ("visit:referrer", Dimension::VisitReferrer),
    ("visit:channel", Dimension::VisitChannel),
    ("visit:utm_source", Dimension::VisitUtmSource),
    ("visit:utm_medium", Dimension::VisitUtmMedium),
    ("visit:utm_campaign", Dimension::VisitUtmCampaign),
    ("visit:utm_content", Dimension::VisitUtmContent),
    ("visit:utm_term", Dimension::VisitUtmTerm),
    ("visit:country", Dimension::VisitCountry),
    ("visit:region", Dimension::VisitRegion),
    ("visit:city", Dimension::VisitCity),
    ("visit:device", Dimension::VisitDevice),
    ("visit:browser", Dimension::VisitBrowser),
    ("visit:browser_version", Dimension::VisitBrowserVersion),
    ("visit:os", Dimension::VisitOs),
    ("visit:os_version", Dimension::VisitOsVersion),
    ("time", Dimension::Time),
    ("time:hour", Dimension::TimeHour),
    ("time:day", Dimension::TimeDay),
    ("time:week", Dimension::TimeWeek),
    ("time:month", Dimension::TimeMonth),
];

pub const PROPS_PREFIX: &str = "event:props:";

impl Dimension {
    pub fn name(&self) -> String {
        if let Dimension::EventProp(key) = self {
            return format!("{PROPS_PREFIX}{key}");
        }
        let (name, _) = FIXED_DIMENSIONS.iter().find(|(_, d)| d == self).expect("every fixed dimension has a name");
        (*name).to_owned()
    }

    pub fn parse(raw: &str) -> Option<Dimension> {
        if let Some(key) = raw.strip_prefix(PROPS_PREFIX) {
            return (!key.is_empty()).then(|| Dimension::EventProp(key.to_owned()));
        }
        FIXED_DIMENSIONS.iter().find(|(name, _)| *name == raw).map(|(_, d)| d.clone())
    }

    pub fn is_time(&self) -> bool {
        matches!(
            self,
            Dimension::Time | Dimension::TimeHour | Dimension::TimeDay | Dimension::TimeWeek | Dimension::TimeMonth
        )
    }

    /// `event:*` dimensions, custom properties included: they describe one event, not the visit.
    pub fn is_event(&self) -> bool {
        matches!(
            self,
            Dimension::EventPage
                | Dimension::EventHostname
                | Dimension::EventName
                | Dimension::EventGoal
                | Dimension::EventProp(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterOp {
    Is,
    IsNot,
    Contains,
    ContainsNot,
    /// A regular expression (RE2 syntax, as ClickHouse's `match`).
    Matches,
    MatchesNot,
}

impl FilterOp {
    pub const ALL: [FilterOp; 6] = [
        FilterOp::Is,
        FilterOp::IsNot,
        FilterOp::Contains,
        FilterOp::ContainsNot,
        FilterOp::Matches,
        FilterOp::MatchesNot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FilterOp::Is => "is",
            FilterOp::IsNot => "is_not",
            FilterOp::Contains => "contains",
            FilterOp::ContainsNot => "contains_not",
            FilterOp::Matches => "matches",
            FilterOp::MatchesNot => "matches_not",
        }
    }

    pub fn parse(raw: &str) -> Option<FilterOp> {
        FilterOp::ALL.into_iter().find(|op| op.name() == raw)
    }

    pub fn is_regex(self) -> bool {
        matches!(self, FilterOp::Matches | FilterOp::MatchesNot)
    }
}

/// One value of a filter's list. Integers are only meaningful for `visit:city` (GeoNames ids).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Clause {
    Text(String),
    Int(i64),
}

/// A filter tree. A leaf matches when the dimension matches any of its clauses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Leaf { op: FilterOp, dimension: Dimension, clauses: Vec<Clause>, case_sensitive: bool },
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

impl Filter {
    /// Every leaf with its depth (0 for a top-level leaf), depth first.
    pub fn leaves(&self) -> Vec<(&Filter, usize)> {
        let mut out = Vec::new();
        self.collect_leaves(0, &mut out);
        out
    }

    fn collect_leaves<'a>(&'a self, depth: usize, out: &mut Vec<(&'a Filter, usize)>) {
        match self {
            Filter::Leaf { .. } => out.push((self, depth)),
            Filter::And(children) | Filter::Or(children) => {
                children.iter().for_each(|c| c.collect_leaves(depth + 1, out))
            }
            Filter::Not(child) => child.collect_leaves(depth + 1, out),
        }
    }

    pub fn dimension(&self) -> Option<&Dimension> {
        match self {
            Filter::Leaf { dimension, .. } => Some(dimension),
            _ => None,
        }
    }
}

/// The period asked for, kept symbolic until a project's time zone and "now" turn it into instants
/// (see [`crate::query::range`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateRange {
    /// Today.
    Day,
    /// The last N whole days, today excluded (`7d`, `28d`, `30d`, `91d`).
    Last(Days),
    /// The current calendar month.
    Month,
    /// The last N whole calendar months, the current one excluded (`6mo`, `12mo`).
    LastMonths(u32),
    /// The current calendar year.
    Year,
    /// From the project's first day of stats to today.
    All,
    /// Whole days, both included, in the project's time zone.
    Custom { from: NaiveDate, to: NaiveDate },
    /// Two instants with their own offsets.
    Between { from: DateTime<FixedOffset>, to: DateTime<FixedOffset> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(pub u32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComparisonMode {
    PreviousPeriod,
    YearOverYear,
    Custom { from: NaiveDate, to: NaiveDate },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub mode: ComparisonMode,
    /// With `time:day`, shift the comparison so weekdays line up.
    pub match_day_of_week: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Include {
    pub time_labels: bool,
    pub total_rows: bool,
    /// Accepted for compatibility; Tidemark has no imported data, so it changes nothing.
    pub imports: bool,
    pub comparisons: Option<Comparison>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderKey {
    Metric(Metric),
    Dimension(Dimension),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    pub key: OrderKey,
    pub direction: Direction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    pub limit: u32,
    pub offset: u64,
}

impl Pagination {
    pub const MAX_LIMIT: u32 = 10_000;
}

impl Default for Pagination {
    fn default() -> Self {
        Pagination { limit: Pagination::MAX_LIMIT, offset: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// As sent: a project id or one of its domains. Resolving it needs the database, so the caller does it.
    pub site_id: String,
    pub metrics: Vec<Metric>,
    pub date_range: DateRange,
    pub dimensions: Vec<Dimension>,
    /// Top-level filters, all of which must hold.
    pub filters: Vec<Filter>,
    /// `None` when the request named no order; see [`Query::effective_order_by`].
    pub order_by: Option<Vec<OrderBy>>,
    pub include: Include,
    pub pagination: Pagination,
}

impl Query {
    /// The order the answer takes: the request's, or Plausible's default (time ascending when grouped by time,
    /// then the first metric descending).
    pub fn effective_order_by(&self) -> Vec<OrderBy> {
        if let Some(order_by) = &self.order_by {
            return order_by.clone();
        }
        let mut order = Vec::new();
        if let Some(time) = self.dimensions.iter().find(|d| d.is_time()) {
            order.push(OrderBy { key: OrderKey::Dimension(time.clone()), direction: Direction::Asc });
        }
        if let Some(first) = self.metrics.first() {
            order.push(OrderBy { key: OrderKey::Metric(*first), direction: Direction::Desc });
        }
        order
    }

    /// Every filter leaf with its depth (0 at the top level).
    pub fn filter_leaves(&self) -> Vec<(&Filter, usize)> {
        self.filters.iter().flat_map(|f| f.leaves()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.name()), Some(m));
        }
        for (name, d) in FIXED_DIMENSIONS {
            assert_eq!(Dimension::parse(name), Some(d.clone()));
            assert_eq!(d.name(), name);
        }
        assert_eq!(Dimension::parse("event:props:plan"), Some(Dimension::EventProp("plan".into())));
        assert_eq!(Dimension::EventProp("plan".into()).name(), "event:props:plan");
        assert_eq!(Dimension::parse("event:props:"), None);
        for op in FilterOp::ALL {
            assert_eq!(FilterOp::parse(op.name()), Some(op));
        }
    }
}
