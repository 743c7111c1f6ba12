//! How long the engine takes on a larger history (not part of the pass/fail suite: `#[ignore]`). Run with
//! `cargo test -p tidemark-app --test query_perf -- --ignored --nocapture`; it prints one line per query.
//!
//! The history: 1M events (every tenth a custom event) in 100k sessions of 10 events, 50k visitors, 50 pages, over
//! 30 days, written into `events` and `session_input` by `INSERT ... SELECT FROM numbers()`. Event ids are hashes:
//! ids that share their upper 64 bits (`00000000-0000-4000-8000-…`) make 18.16's `uniqExact` over UUIDs take over a
//! minute for 1M rows (its hash table degenerates), which random v4 ids, what the hub writes, never do.

use std::time::Instant;

use serde_json::json;
use tidemark_app::query::{self, ProjectContext};
use tidemark_testkit::test_env;
use uuid::Uuid;

const N: u64 = 1_000_000;
const BASE: u64 = 1_704_067_200; // 2024-01-01T00:00:00Z

#[tokio::test]
#[ignore]
async fn engine_timings_on_a_million_events() {
    let env = test_env().await;
    let project = Uuid::from_u128(42);
    let common = format!(
        "toUUID('{project}') AS project_id, intDiv(number, 10) AS sid, intDiv(sid, 2) AS vid, \
         hex(sipHash128(toString(number))) AS h, toUUID(concat(substring(h, 1, 8), '-', substring(h, 9, 4), '-', \
         substring(h, 13, 4), '-', substring(h, 17, 4), '-', substring(h, 21, 12))) AS eid, \
         if(number % 10 = 9, 'custom', 'pageview') AS kind, \
         {BASE} + (sid * 26) % (30 * 86400) + (number % 10) * 30 AS t, concat('/p', toString(number % 50)) AS p, \
         ['DE', 'US', 'FR', 'GB'][sid % 4 + 1] AS c, ['direct', 'search', 'social', 'referral', 'email'][sid % 5 + 1] AS st, \
         ['', 'Google', 'Facebook', 'example.org', ''][sid % 5 + 1] AS rn"
    );
    let started = Instant::now();
    env.ch
        .client
        .query(&format!(
            "INSERT INTO events (project_id, event_id, type, name, ts, received_at, visitor_id, session_id, path, \
             host, referrer_source, referrer_name, country, browser, device) SELECT project_id, eid, kind, \
             if(kind = 'custom', 'Signup', ''), toDateTime(t, 'UTC'), toDateTime(t, 'UTC'), vid, sid, p, \
             'shop.example', st, rn, c, 'Chrome', 'desktop' FROM (SELECT number, {common} FROM numbers({N}))"
        ))
        .execute()
        .await
        .unwrap();
    env.ch
        .client
        .query(&format!(
            "INSERT INTO session_input (project_id, session_id, visitor_id, event_id, type, ts_ms, ord, path, host, \
             referrer_source, referrer_name, country, browser, device) SELECT project_id, sid, vid, eid, kind, \
             t * 1000, bitOr(bitShiftLeft(t * 1000, 16), number % 65536), p, 'shop.example', st, rn, c, 'Chrome', \
             'desktop' FROM (SELECT number, {common} FROM numbers({N}))"
        ))
        .execute()
        .await
        .unwrap();
    println!("seeded {N} events in {:?}", started.elapsed());
    let ctx = ProjectContext { id: project, site_id: "shop.example".into(), timezone: chrono_tz::Europe::Berlin };
    let goals = tidemark_app::query::catalog::sample_goals();
    let now = chrono::DateTime::parse_from_rfc3339("2024-01-31T12:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let cases = [
        (
            "aggregate, 7 metrics",
            json!({ "metrics": ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"] }),
        ),
        ("by day", json!({ "metrics": ["visitors", "visits", "bounce_rate"], "dimensions": ["time:day"] })),
        (
            "top pages",
            json!({ "metrics": ["visitors", "pageviews"], "dimensions": ["event:page"], "pagination": { "limit": 10 } }),
        ),
        (
            "by source (join)",
            json!({ "metrics": ["visitors", "visits", "bounce_rate"], "dimensions": ["visit:source"] }),
        ),
        (
            "filtered by country",
            json!({ "metrics": ["visitors", "visits"], "filters": [["is", "visit:country", ["DE"]]] }),
        ),
        (
            "visits with a page filter",
            json!({ "metrics": ["visits", "bounce_rate"], "filters": [["is", "event:page", ["/p1"]]] }),
        ),
        ("goals", json!({ "metrics": ["visitors", "conversion_rate"], "dimensions": ["event:goal"] })),
        (
            "comparison",
            json!({ "metrics": ["visitors", "visits"], "include": { "comparisons": { "mode": "previous_period" } } }),
        ),
    ];
    for (name, mut body) in cases {
        body["site_id"] = json!("shop.example");
        body["date_range"] = json!(["2024-01-01", "2024-01-30"]);
        let parsed = query::parse_value(&body).unwrap();
        // Once to warm the caches, then the median of three.
        query::run(&env.ch, &ctx, &goals, &parsed, now).await.unwrap();
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            query::run(&env.ch, &ctx, &goals, &parsed, now).await.unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        println!("{name:<28} {:>6} ms", times[1].as_millis());
    }
    // A million rows is too many to leave behind for the test-database cleaner.
    env.ch.server().query(&format!("DROP DATABASE {}", env.ch.endpoint.database)).execute().await.unwrap();
}
