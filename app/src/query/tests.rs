//! Requests shaped after Plausible's Stats API v2 documentation and test suite, with the answers Plausible gives.

use chrono::NaiveDate;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::model::*;
use super::{QueryError, parse, parse_value};

fn ok(value: Value) -> Query {
    match parse_value(&value) {
        Ok(q) => q,
        Err(e) => panic!("{value} was refused: {}", e.message),
    }
}

fn err(value: Value) -> String {
    match parse_value(&value) {
        Ok(q) => panic!("{value} was accepted: {q:?}"),
        Err(e) => e.message,
    }
}

fn leaf(op: FilterOp, dimension: Dimension, clauses: &[&str]) -> Filter {
    Filter::Leaf {
        op,
        dimension,
        clauses: clauses.iter().map(|c| Clause::Text((*c).to_owned())).collect(),
        case_sensitive: true,
    }
}

#[test]
fn minimal_query_takes_plausibles_defaults() {
    let q = ok(json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": "7d"}));
    assert_eq!(
        q,
        Query {
            site_id: "example.com".into(),
            metrics: vec![Metric::Visitors],
            date_range: DateRange::Last(Days(7)),
            dimensions: vec![],
            filters: vec![],
            order_by: None,
            include: Include { time_labels: false, total_rows: false, imports: false, comparisons: None },
            pagination: Pagination { limit: 10_000, offset: 0 },
        }
    );
    assert_eq!(
        q.effective_order_by(),
        vec![OrderBy { key: OrderKey::Metric(Metric::Visitors), direction: Direction::Desc }]
    );
}

#[test]
fn valid_requests() {
    let cases = [
        // Documentation: simple aggregate, every traffic metric.
        json!({"site_id": "dummy.site", "metrics": ["visitors", "visits", "pageviews", "views_per_visit",
               "bounce_rate", "visit_duration"], "date_range": "7d"}),
        // Documentation: top pages from one country, session metric with event:page allowed.
        json!({"site_id": "dummy.site", "metrics": ["visitors", "pageviews", "bounce_rate"], "date_range": "7d",
               "dimensions": ["event:page"], "filters": [["is", "visit:country", ["US", "DE"]]]}),
        // Documentation: UTM breakdown with a negative filter.
        json!({"site_id": "dummy.site", "metrics": ["visitors"], "date_range": "28d",
               "dimensions": ["visit:utm_medium", "visit:utm_source"],
               "filters": [["is_not", "visit:utm_medium", [""]]]}),
        // Documentation: time series with labels.
        json!({"site_id": "dummy.site", "metrics": ["visitors", "pageviews"], "date_range": "month",
               "dimensions": ["time:day"], "include": {"time_labels": true}}),
        // Documentation: custom properties.
        json!({"site_id": "dummy.site", "metrics": ["visitors", "events"], "date_range": "30d",
               "dimensions": ["event:props:author"], "filters": [["is_not", "event:props:author", ["(none)"]]]}),
        // Documentation: goal conversions.
        json!({"site_id": "dummy.site", "metrics": ["visitors", "events", "conversion_rate"], "date_range": "all",
               "dimensions": ["event:goal"], "filters": [["is", "event:goal", ["Signup", "Visit /register"]]]}),
        json!({"site_id": "dummy.site", "metrics": ["visitors", "group_conversion_rate"], "date_range": "6mo",
               "dimensions": ["visit:source"], "filters": [["contains", "event:goal", ["Sign"]]]}),
        // Documentation: nested and/or/not, regular expressions, a city by GeoNames id.
        json!({"site_id": "dummy.site", "metrics": ["visitors"], "date_range": "12mo",
               "filters": [["or", [["is", "visit:city", [2950159]], ["and", [["matches", "event:page", ["^/blog/.*"]],
                           ["not", ["contains", "visit:browser", ["Fire"]]]]]]]]}),
        // Case-insensitive modifier.
        json!({"site_id": "dummy.site", "metrics": ["pageviews"], "date_range": "year",
               "filters": [["contains", "event:page", ["BLOG"], {"case_sensitive": false}]]}),
        // Ordering, pagination, totals.
        json!({"site_id": "dummy.site", "metrics": ["visitors", "percentage"], "date_range": "91d",
               "dimensions": ["visit:browser", "visit:browser_version"], "order_by": [["visitors", "asc"],
               ["visit:browser", "desc"]], "pagination": {"limit": 5, "offset": 10}, "include": {"total_rows": true}}),
        // Explicit dates and datetimes.
        json!({"site_id": "dummy.site", "metrics": ["visitors"], "date_range": ["2024-01-01", "2024-01-31"]}),
        json!({"site_id": "dummy.site", "metrics": ["visitors"],
               "date_range": ["2024-01-01T00:00:00+03:00", "2024-01-02T12:00:00+03:00"]}),
        // Page metrics with their page.
        json!({"site_id": "dummy.site", "metrics": ["scroll_depth", "time_on_page"], "date_range": "day",
               "dimensions": ["event:page"]}),
        json!({"site_id": "dummy.site", "metrics": ["scroll_depth"], "date_range": "day",
               "filters": [["is", "event:page", ["/"]]]}),
        // Comparisons.
        json!({"site_id": "dummy.site", "metrics": ["visitors"], "date_range": "7d",
               "include": {"comparisons": {"mode": "previous_period"}}}),
        json!({"site_id": "dummy.site", "metrics": ["visitors"], "date_range": "7d", "dimensions": ["time:day"],
               "include": {"comparisons": {"mode": "year_over_year", "match_day_of_week": true}}}),
        json!({"site_id": "dummy.site", "metrics": ["visitors"], "date_range": "7d",
               "include": {"comparisons": {"mode": "custom", "date_range": ["2024-01-01", "2024-01-07"]}}}),
        // Every dimension at once.
        json!({"site_id": "dummy.site", "metrics": ["visitors"], "date_range": "day", "dimensions": [
            "visit:entry_page", "visit:exit_page", "visit:source", "visit:referrer", "visit:channel",
            "visit:utm_source", "visit:utm_medium", "visit:utm_campaign", "visit:utm_content", "visit:utm_term",
            "visit:country", "visit:region", "visit:city", "visit:device", "visit:os", "visit:os_version",
            "time", "time:hour", "time:week", "time:month", "event:hostname", "event:name"]}),
    ];
    for case in cases {
        ok(case);
    }
}

#[test]
fn shorthand_ranges() {
    let cases = [
        ("day", DateRange::Day),
        ("7d", DateRange::Last(Days(7))),
        ("28d", DateRange::Last(Days(28))),
        ("30d", DateRange::Last(Days(30))),
        ("91d", DateRange::Last(Days(91))),
        ("5000d", DateRange::Last(Days(5000))),
        ("month", DateRange::Month),
        ("3mo", DateRange::LastMonths(3)),
        ("6mo", DateRange::LastMonths(6)),
        ("12mo", DateRange::LastMonths(12)),
        ("year", DateRange::Year),
        ("all", DateRange::All),
    ];
    for (raw, want) in cases {
        let q = ok(json!({"site_id": "dummy.site", "metrics": ["visitors"], "date_range": raw}));
        assert_eq!(q.date_range, want, "{raw}");
    }
}

#[test]
fn the_typed_query_reads_the_request() {
    let q = ok(json!({"site_id": "9b1d0d4e-0000-4000-8000-000000000000", "metrics": ["visitors"],
        "date_range": ["2024-01-01", "2024-01-31"], "dimensions": ["event:props:plan", "time:week"],
        "filters": [["is", "visit:country", ["US"]],
                    ["not", ["matches", "event:page", ["^/a"]]],
                    ["or", [["contains_not", "visit:source", ["x"], {"case_sensitive": false}]]]],
        "order_by": [["time:week", "asc"]], "pagination": {"offset": 20}}));
    assert_eq!(q.site_id, "9b1d0d4e-0000-4000-8000-000000000000");
    assert_eq!(
        q.date_range,
        DateRange::Custom {
            from: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2024, 1, 31).unwrap()
        }
    );
    assert_eq!(q.dimensions, vec![Dimension::EventProp("plan".into()), Dimension::TimeWeek]);
    assert_eq!(
        q.filters,
        vec![
            leaf(FilterOp::Is, Dimension::VisitCountry, &["US"]),
            Filter::Not(Box::new(leaf(FilterOp::Matches, Dimension::EventPage, &["^/a"]))),
            Filter::Or(vec![Filter::Leaf {
                op: FilterOp::ContainsNot,
                dimension: Dimension::VisitSource,
                clauses: vec![Clause::Text("x".into())],
                case_sensitive: false
            }]),
        ]
    );
    assert_eq!(q.pagination, Pagination { limit: 10_000, offset: 20 });
    assert_eq!(
        q.order_by,
        Some(vec![OrderBy { key: OrderKey::Dimension(Dimension::TimeWeek), direction: Direction::Asc }])
    );
}

#[test]
fn invalid_requests_get_plausibles_messages() {
    let base = || json!({"site_id": "dummy.site", "metrics": ["visitors"], "date_range": "all"});
    let with = |key: &str, value: Value| {
        let mut q = base();
        q[key] = value;
        q
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!([]), "#: Type mismatch. Expected Object but got Array."),
        (json!({}), "#: Required properties site_id, metrics, date_range were not present."),
        (json!({"site_id": "a", "metrics": ["visitors"]}), "#: Required property date_range was not present."),
        (with("foo", json!(1)), "#/foo: Schema does not allow additional properties."),
        (with("date", json!("2024-01-01")), "#/date: Schema does not allow additional properties."),
        (with("site_id", json!(12)), "#/site_id: Type mismatch. Expected String but got Integer."),
        (with("metrics", json!([])), "#/metrics: Expected a minimum of 1 items but got 0."),
        (with("metrics", json!("visitors")), "#/metrics: Type mismatch. Expected Array but got String."),
        (with("metrics", json!(["visitors", "foo"])), "#/metrics/1: Invalid metric \"foo\""),
        (with("metrics", json!(["event:name"])), "#/metrics/0: Invalid metric \"event:name\""),
        (with("metrics", json!(["total_revenue"])), "#/metrics/0: Invalid metric \"total_revenue\""),
        (
            with("metrics", json!(["events", "visitors", "visitors"])),
            "#/metrics: Expected items to be unique but they were not.",
        ),
        (with("date_range", json!("foo")), "#/date_range: Invalid date range \"foo\""),
        (with("date_range", json!("realtime")), "#/date_range: Invalid date range \"realtime\""),
        (with("date_range", json!("0d")), "#/date_range: Invalid date range \"0d\""),
        (with("date_range", json!("07d")), "#/date_range: Invalid date range \"07d\""),
        (with("date_range", json!("5001d")), "#/date_range: Invalid date range \"5001d\""),
        (with("date_range", json!("101mo")), "#/date_range: Invalid date range \"101mo\""),
        (with("date_range", json!("7days")), "#/date_range: Invalid date range \"7days\""),
        (with("date_range", json!(["2024-01-01"])), "#/date_range: Invalid date range [\"2024-01-01\"]"),
        (
            with("date_range", json!(["2024-02-30", "2024-03-01"])),
            "#/date_range: Invalid date range [\"2024-02-30\", \"2024-03-01\"]",
        ),
        (
            with("date_range", json!(["2024-01-01", "2024-01-02T00:00:00Z"])),
            "#/date_range: Invalid date range [\"2024-01-01\", \"2024-01-02T00:00:00Z\"]",
        ),
        (
            with("date_range", json!(["2024-02-01", "2024-01-01"])),
            "#/date_range: Invalid date range [\"2024-02-01\", \"2024-01-01\"]: it ends before it starts",
        ),
        (with("dimensions", json!(["visitors"])), "#/dimensions/0: Invalid dimension \"visitors\""),
        (with("dimensions", json!(["event:props:"])), "#/dimensions/0: Invalid dimension \"event:props:\""),
        (with("dimensions", json!("foobar")), "#/dimensions: Type mismatch. Expected Array but got String."),
        (
            with("dimensions", json!(["event:name", "event:name"])),
            "#/dimensions: Expected items to be unique but they were not.",
        ),
        (with("filters", json!("foobar")), "#/filters: Type mismatch. Expected Array but got String."),
        (with("filters", json!([[]])), "#/filters/0: Invalid filter []"),
        (with("filters", json!([["and", []]])), "#/filters/0: Invalid filter [\"and\", []]"),
        (with("filters", json!([["not"]])), "#/filters/0: Invalid filter [\"not\"]"),
        (
            with("filters", json!([["is_not", "event:name"]])),
            "#/filters/0: Invalid filter [\"is_not\", \"event:name\"]",
        ),
        (
            with("filters", json!([["is", "event:name", "foo"]])),
            "#/filters/0: Invalid filter [\"is\", \"event:name\", \"foo\"]",
        ),
        (
            with("filters", json!([["exists?", "event:name", ["foo"]]])),
            "#/filters/0: Invalid filter [\"exists?\", \"event:name\", [\"foo\"]]",
        ),
        (
            with("filters", json!([["matches_wildcard", "event:name", ["foo"]]])),
            "#/filters/0: Invalid filter [\"matches_wildcard\", \"event:name\", [\"foo\"]]",
        ),
        (
            with("filters", json!([["is", "event:device", ["foo"]]])),
            "#/filters/0: Invalid filter [\"is\", \"event:device\", [\"foo\"]]",
        ),
        (
            with("filters", json!([["is", "visit:name", ["foo"]]])),
            "#/filters/0: Invalid filter [\"is\", \"visit:name\", [\"foo\"]]",
        ),
        (
            with("filters", json!([["and", [["is", "event:props:foobar", ["value"]]], "extra"]])),
            "#/filters/0: Invalid filter [\"and\", [[\"is\", \"event:props:foobar\", [\"value\"]]], \"extra\"]",
        ),
        (
            with("filters", json!([["is", "event:props:foobar", ["value"], true]])),
            "#/filters/0: Invalid filter [\"is\", \"event:props:foobar\", [\"value\"], true]",
        ),
        (
            with("filters", json!([["matches", "event:page", ["a"], {"case_sensitive": false}]])),
            "#/filters/0: Invalid filter [\"matches\", \"event:page\", [\"a\"], %{\"case_sensitive\" => false}]",
        ),
        (
            with("filters", json!([["is_not", "event:goal", ["Signup"]]])),
            "#/filters/0: Invalid filter [\"is_not\", \"event:goal\", [\"Signup\"]]",
        ),
        (
            with("filters", json!([["is", "time:day", ["x"]]])),
            "#/filters/0: Invalid filter [\"is\", \"time:day\", [\"x\"]]",
        ),
        (
            with("filters", json!([["is", "event:page", ["/"]], ["or", [["is", "visit:source", [true]]]]])),
            "#/filters/1: Invalid filter [\"or\", [[\"is\", \"visit:source\", [true]]]]",
        ),
        (
            with("filters", json!([["is", "visit:os_version", [123]]])),
            "Invalid filter '[\"is\", \"visit:os_version\", [123]]'.",
        ),
        (
            // The schema's complaint about a later field comes before the parser's about a clause.
            {
                let mut q = with("filters", json!([["is", "visit:os_version", [123]]]));
                q["pagination"] = json!({"limit": 0});
                q
            },
            "#/pagination/limit: Expected the value to be >= 1",
        ),
        (
            with("filters", json!([["and", [["is", "visit:os_version", [1]], ["is", "visit:nope", ["a"]]]]])),
            "#/filters/0: Invalid filter [\"and\", [[\"is\", \"visit:os_version\", [1]], [\"is\", \"visit:nope\", [\"a\"]]]]",
        ),
        (
            with("filters", json!([["is", "visit:city", [18_446_744_073_709_551_615_u64]]])),
            "Invalid filter '[\"is\", \"visit:city\", [18446744073709551615]]'.",
        ),
        (
            with("filters", json!([["is", "visit:country", ["USA"]]])),
            "Invalid visit:country filter, visit:country needs to be a valid 2-letter country code.",
        ),
        (with("order_by", json!([["visssss", "desc"]])), "#/order_by/0/0: Invalid value in order_by \"visssss\""),
        (with("order_by", json!([["visitors", "up"]])), "#/order_by/0/1: Value is not allowed in enum."),
        (with("order_by", json!([["visitors"]])), "#/order_by/0: Expected a minimum of 2 items but got 1."),
        (with("order_by", json!("visitors")), "#/order_by: Type mismatch. Expected Array but got String."),
        (
            with("order_by", json!([["events", "desc"]])),
            "Invalid order_by entry '{:events, :desc}'. Entry is not a queried metric or dimension.",
        ),
        (
            with("order_by", json!([["event:name", "asc"]])),
            "Invalid order_by entry '{\"event:name\", :asc}'. Entry is not a queried metric or dimension.",
        ),
        (with("include", json!("foobar")), "#/include: Type mismatch. Expected Object but got String."),
        (with("include", json!({"foo": true})), "#/include/foo: Schema does not allow additional properties."),
        (
            with("include", json!({"time_labels": "yes"})),
            "#/include/time_labels: Type mismatch. Expected Boolean but got String.",
        ),
        (with("include", json!({"time_labels": true})), "Invalid include.time_labels: requires a time dimension."),
        (
            with("include", json!({"comparisons": {"mode": "last_week"}})),
            "#/include/comparisons: Expected exactly one of the schemata to match, but none of them did.",
        ),
        (
            with("include", json!({"comparisons": {"mode": "custom"}})),
            "#/include/comparisons: Expected exactly one of the schemata to match, but none of them did.",
        ),
        (with("pagination", json!({"limit": 100_000})), "#/pagination/limit: Expected the value to be <= 10000"),
        (with("pagination", json!({"limit": 0})), "#/pagination/limit: Expected the value to be >= 1"),
        (with("pagination", json!({"offset": -5})), "#/pagination/offset: Expected the value to be >= 0"),
        (
            with("pagination", json!({"limit": 1.5})),
            "#/pagination/limit: Type mismatch. Expected Integer but got Number.",
        ),
        (with("pagination", json!({"page": 2})), "#/pagination/page: Schema does not allow additional properties."),
        (
            with("metrics", json!(["conversion_rate"])),
            "Metric `conversion_rate` can only be queried with event:goal filters or dimensions.",
        ),
        (
            with("metrics", json!(["group_conversion_rate"])),
            "Metric `group_conversion_rate` can only be queried with event:goal filters or dimensions.",
        ),
        (
            with("metrics", json!(["scroll_depth"])),
            "Metric `scroll_depth` can only be queried with event:page filters or dimensions.",
        ),
        (
            with("metrics", json!(["time_on_page"])),
            "Metric `time_on_page` can only be queried with event:page filters or dimensions.",
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(err(request.clone()), expected, "for {request}");
    }
}

#[test]
fn cross_field_rules() {
    let q = |extra: Value| {
        let mut base = json!({"site_id": "dummy.site", "date_range": "all"});
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            q(json!({"metrics": ["visitors"], "filters": [["or", [["is", "event:goal", ["Signup"]]]]]})),
            "Invalid filters. Dimension `event:goal` can only be filtered at the top level.",
        ),
        (
            q(json!({"metrics": ["visitors"], "filters": [["not", ["is", "event:hostname", ["a.com"]]]]})),
            "Invalid filters. Dimension `event:hostname` can only be filtered at the top level.",
        ),
        (
            q(json!({"metrics": ["conversion_rate"], "dimensions": ["event:goal"],
                     "filters": [["or", [["is", "event:props:plan", ["pro"]], ["is", "visit:os", ["Mac"]]]]]})),
            "Invalid filters. When `conversion_rate` or `group_conversion_rate` metrics are used, custom property \
             filters can only be used on top level.",
        ),
        (
            q(json!({"metrics": ["views_per_visit"], "filters": [["is", "event:page", ["/"]]]})),
            "Metric `views_per_visit` cannot be queried with a filter on `event:page`.",
        ),
        (
            q(json!({"metrics": ["views_per_visit"], "dimensions": ["visit:source"]})),
            "Metric `views_per_visit` cannot be queried with `dimensions`.",
        ),
        (
            q(json!({"metrics": ["visitors", "bounce_rate", "visit_duration"], "dimensions": ["event:props:foo"]})),
            "Session metric(s) `bounce_rate, visit_duration` cannot be queried along with event dimensions.",
        ),
        (
            q(json!({"metrics": ["bounce_rate"], "dimensions": ["event:name"]})),
            "Session metric(s) `bounce_rate` cannot be queried along with event dimensions.",
        ),
        (
            // Scroll depth needs the page at the top level; nested does not count.
            q(json!({"metrics": ["scroll_depth"], "filters": [["or", [["is", "event:page", ["/"]]]]]})),
            "Metric `scroll_depth` can only be queried with event:page filters or dimensions.",
        ),
        (
            q(json!({"metrics": ["visitors"], "filters": [["matches", "event:page", ["(unclosed"]]]})),
            "Invalid filter: `matches` on `event:page` has an invalid regular expression \"(unclosed\" \
             (error: unclosed group).",
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(err(request.clone()), expected, "for {request}");
    }
    // Conversion rate is happy with a goal filter at the top level, nested custom properties are not a problem
    // without it, and bounce rate may sit next to event:page.
    ok(q(json!({"metrics": ["conversion_rate"], "filters": [["is", "event:goal", ["Signup"]]]})));
    ok(q(json!({"metrics": ["visitors"], "filters": [["or", [["is", "event:props:plan", ["pro"]]]]]})));
    ok(q(json!({"metrics": ["bounce_rate", "visit_duration"], "dimensions": ["event:page"]})));
}

#[test]
fn the_body_must_be_json() {
    let e = parse(b"{\"site_id\": ").unwrap_err();
    assert!(e.message.starts_with("#: Invalid JSON in the request body"), "{}", e.message);
}

/// Words an error may use to name the part at fault.
const PARTS: [&str; 12] = [
    "#",
    "site_id",
    "metrics",
    "Metric",
    "date_range",
    "dimensions",
    "filter",
    "order_by",
    "include",
    "pagination",
    "JSON",
    "Session metric",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop_oneof![
            Just("visitors"),
            Just("bounce_rate"),
            Just("conversion_rate"),
            Just("scroll_depth"),
            Just("views_per_visit"),
            Just("event:page"),
            Just("event:goal"),
            Just("event:props:x"),
            Just("visit:country"),
            Just("visit:city"),
            Just("time:day"),
            Just("is"),
            Just("is_not"),
            Just("contains"),
            Just("matches"),
            Just("and"),
            Just("or"),
            Just("not"),
            Just("asc"),
            Just("desc"),
            Just("7d"),
            Just("all"),
            Just("2024-01-01"),
            Just("2024-01-01T00:00:00Z"),
            Just("US"),
            Just("(")
        ]
        .prop_map(Value::from),
        ".{0,6}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("case_sensitive".to_owned()),
                    Just("limit".to_owned()),
                    Just("offset".to_owned()),
                    Just("time_labels".to_owned()),
                    Just("mode".to_owned()),
                    "[a-z]{1,4}"
                ],
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn query_shaped() -> impl Strategy<Value = Value> {
    let keys = ["site_id", "metrics", "date_range", "dimensions", "filters", "order_by", "include", "pagination"];
    prop::collection::vec((prop::sample::select(keys.to_vec()), json_value(), any::<bool>()), 0..9).prop_map(|fields| {
        let mut object = serde_json::Map::new();
        object.insert("site_id".into(), json!("dummy.site"));
        object.insert("metrics".into(), json!(["visitors"]));
        object.insert("date_range".into(), json!("7d"));
        for (key, value, keep) in fields {
            if keep {
                object.insert(key.to_owned(), value);
            } else {
                object.remove(key);
            }
        }
        Value::Object(object)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_queries_never_panic_and_errors_name_a_part(request in query_shaped()) {
        let body = serde_json::to_vec(&request).unwrap();
        if let Err(QueryError { message }) = parse(&body) {
            prop_assert!(PARTS.iter().any(|p| message.contains(p)), "{message} names no part");
        }
    }

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse(&body);
    }
}
