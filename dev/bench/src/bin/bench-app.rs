//! `just bench app`: how fast the app's queries are on a real site's history. Prints numbers; it is not a test.
//!
//! - `generate`: writes a deterministic 90-day history (`history.rs`) into its own ClickHouse database, migrated by
//!   the migrations `app migrate` runs, through the workers' own rows and insert code (`events` and
//!   `session_input`, so the materialized views fill `sessions` as in production), plus the candidate tables of
//!   `candidates.rs` fed by their own views.
//! - `measure`: each dashboard call (`app_queries.rs`) under each storage plan, warm and cold (ClickHouse's mark and
//!   uncompressed caches dropped before each run; the OS page cache stays), p50/p95, rows read, peak memory, and
//!   whether the answer equals the production tables' one. `--app URL --key KEY` sends the Stats API v2 bodies to
//!   a running app instead (needs `POST /api/v2/query`).
//! - `sql-catalog`: the candidate DDL and every statement as JSON lines for `scripts/ch_compat.py` (26.x via chdb).

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::Value;
use std::time::{Duration, Instant};
use tidemark_bench::app_queries::{self, Call, Plan, Window};
use tidemark_bench::{candidates, history};
use tidemark_shared::clickhouse::{ClickHouse, Endpoint};
use tidemark_worker::events_sink::EventRow;
use tidemark_worker::sessions_sink::SessionInputRow;
use tidemark_worker::sink::EventTable;
use uuid::Uuid;

/// The history ends here (a midnight, UTC), whenever it is generated, so that every run writes the same rows.
const END: &str = "2026-12-01";

#[derive(Parser)]
struct Args {
    /// ClickHouse URL (the stack's, from .data/tidemark.env, when not given).
    #[arg(long, env = "TIDEMARK_CLICKHOUSE_URL")]
    clickhouse_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes the history into DATABASE (dropped first when it exists).
    Generate {
        #[arg(long, default_value = "bench_app_10m")]
        database: String,
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        #[arg(long, default_value_t = 90)]
        days: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Events per insert (each insert also writes as many `session_input` rows).
        #[arg(long, default_value_t = 100_000)]
        batch: usize,
    },
    /// Measures every call on DATABASE.
    Measure {
        #[arg(long, default_value = "bench_app_10m")]
        database: String,
        /// Timed runs per call and plan, warm and again cold.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Only calls whose name contains one of these.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Only these plans (raw, idrange, slim, rollup, hll, prewhere).
        #[arg(long, value_delimiter = ',')]
        plans: Vec<String>,
        /// Skips the cold runs.
        #[arg(long)]
        no_cold: bool,
        /// Sends the Stats API v2 bodies to this app instead of SQL to ClickHouse.
        #[arg(long)]
        app: Option<String>,
        /// The app's secret key (`app key create --project ID --scope read`), with --app.
        #[arg(long, env = "TIDEMARK_BENCH_APP_KEY")]
        key: Option<String>,
    },
    /// Runs the closed-days job (`candidates::close_days`) over every day of DATABASE's history, one day per
    /// statement as the daily job would, and prints what it costs.
    CloseDays {
        #[arg(long, default_value = "bench_app_10m")]
        database: String,
    },
    /// Exits 0 when DATABASE holds a complete history (its `bench_meta` row is written last), 1 otherwise.
    Exists {
        #[arg(long, default_value = "bench_app_10m")]
        database: String,
    },
    /// Candidate DDL and every statement, as the JSON lines `scripts/ch_compat.py` reads.
    SqlCatalog,
    /// Prints the Stats API v2 bodies, one JSON line per call.
    Bodies {
        #[arg(long, default_value = "bench_app_10m")]
        database: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = match args.clickhouse_url {
        Some(url) => url,
        None => stack_clickhouse_url()?,
    };
    match args.command {
        Command::Generate { database, events, days, seed, batch } => {
            generate(&url, &database, events, days, seed, batch).await
        }
        Command::Measure { database, runs, only, plans, no_cold, app, key } => {
            let ch = Server::connect(&url, &database).await?;
            let window = ch.window().await?;
            let mut calls = app_queries::calls(&window);
            if !only.is_empty() {
                calls.retain(|c| only.iter().any(|o| c.name.contains(o.as_str())));
            }
            if !plans.is_empty() {
                for call in &mut calls {
                    call.plans.retain(|(p, _)| plans.iter().any(|n| n == p.name()));
                }
            }
            match app {
                Some(app) => {
                    let key = key.context("--app needs --key (or TIDEMARK_BENCH_APP_KEY)")?;
                    measure_app(&ch, &calls, &app, &key, runs, !no_cold).await
                }
                None => measure(&ch, &calls, runs, !no_cold).await,
            }
        }
        Command::Exists { database } => {
            let found = match Server::connect(&url, &database).await {
                Ok(ch) => ch.window().await.is_ok(),
                Err(_) => false,
            };
            std::process::exit(if found { 0 } else { 1 })
        }
        Command::CloseDays { database } => close_days(&Server::connect(&url, &database).await?).await,
        Command::SqlCatalog => {
            for (name, sql) in candidates::DDL {
                println!("{}", serde_json::json!({"name": name, "sql": sql}));
            }
            let window = Window { project: Uuid::nil(), end_ms: end_ms()?, realtime_ms: end_ms()?, days: 30 };
            println!("{}", serde_json::json!({"name": "candidates.visits_daily", "sql": candidates::VISITS_DAILY}));
            let close = candidates::close_days(&window.project, window.end_ms - 86_400_000, window.end_ms);
            println!("{}", serde_json::json!({"name": "candidates.close_days", "sql": close}));
            for call in app_queries::calls(&window) {
                for (plan, statements) in call.plans {
                    for (i, sql) in statements.iter().enumerate() {
                        let name = format!("bench_app.{}.{}.{i}", call.name, plan.name());
                        println!("{}", serde_json::json!({"name": name, "sql": sql}));
                    }
                }
            }
            Ok(())
        }
        Command::Bodies { database } => {
            let ch = Server::connect(&url, &database).await?;
            for call in app_queries::calls(&ch.window().await?) {
                println!("{}", serde_json::json!({"name": call.name, "body": call.body}));
            }
            Ok(())
        }
    }
}

fn stack_clickhouse_url() -> anyhow::Result<String> {
    let text = std::fs::read_to_string(".data/tidemark.env")
        .context("no --clickhouse-url and no .data/tidemark.env here: run from the repository after `just up`")?;
    text.lines()
        .find_map(|l| l.strip_prefix("TIDEMARK_CLICKHOUSE_URL="))
        .map(str::to_owned)
        .context("TIDEMARK_CLICKHOUSE_URL missing from .data/tidemark.env")
}

fn end_ms() -> anyhow::Result<i64> {
    let day = chrono::NaiveDate::parse_from_str(END, "%Y-%m-%d")?;
    Ok(day.and_hms_opt(0, 0, 0).context("midnight")?.and_utc().timestamp_millis())
}

async fn generate(url: &str, database: &str, events: u64, days: u32, seed: u64, batch: usize) -> anyhow::Result<()> {
    if database == "tidemark" || database.starts_with("t_") {
        bail!("refusing to write bench data into {database}: that name belongs to the stack or the tests");
    }
    let ch = ClickHouse::connect(Endpoint::parse(url, database)?).await?;
    ch.server().query(&format!("DROP DATABASE IF EXISTS {database}")).execute().await?;
    let migrated = tidemark_shared::ch_migrations::migrate(&ch).await?;
    for (name, sql) in candidates::DDL {
        ch.client.query(sql).execute().await.with_context(|| format!("creating {name}"))?;
    }
    println!(
        "Database {database}: {} migrations applied, {} candidate statements.",
        migrated.len(),
        candidates::DDL.len()
    );
    let end = end_ms()?;
    let mut history = history::History::new(seed, events, end, days);
    let project = history.site.project_id;
    let started = Instant::now();
    let (mut sessions, mut insert_secs) = (0u64, 0.0);
    let mut event_rows = Vec::with_capacity(batch + 20);
    let mut session_rows = Vec::with_capacity(batch + 20);
    let mut day = 0;
    while let Some(visits) = history.next_day() {
        day += 1;
        sessions += visits.len() as u64;
        for visit in visits {
            for job in visit.events {
                // The workers' own conversions: the rows are exactly what `worker-events` and `worker-sessions`
                // insert for this job.
                session_rows.extend(SessionInputRow::from_event(job.clone(), visit.session_id));
                event_rows.extend(EventRow::from_event(job, visit.session_id));
            }
            if event_rows.len() >= batch {
                insert_secs += write(&ch, &mut event_rows, &mut session_rows).await?;
            }
        }
        if day % 10 == 0 {
            eprintln!("  day {day}/{days}, {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    insert_secs += write(&ch, &mut event_rows, &mut session_rows).await?;
    let seconds = started.elapsed().as_secs_f64();
    let total: u64 = fetch_u64(&ch, "SELECT count() FROM events").await?;
    ch.client
        .query("CREATE TABLE IF NOT EXISTS bench_meta (project_id UUID, end_ms Int64, events UInt64, seed UInt64) ENGINE = TinyLog")
        .execute()
        .await?;
    ch.client
        .query(&format!("INSERT INTO bench_meta VALUES (toUUID('{project}'), {end}, {total}, {seed})"))
        .execute()
        .await?;
    println!(
        "Wrote {total} events in {sessions} sessions over {days} days in {seconds:.1} s: {:.0} events/s \
         ({insert_secs:.1} s in inserts; each event is one `events` and one `session_input` row).",
        total as f64 / seconds
    );
    println!("Project {project}, history ends {END} 00:00 UTC.");
    settle(&ch).await?;
    close_days(&Server::connect(url, database).await?).await?;
    sizes(&ch, database).await
}

/// The closed-days job over the whole history, a day at a time, twice: the second pass proves a re-run changes
/// nothing (compared on the table's `FINAL` contents) and times the job on a table that already holds the days.
async fn close_days(ch: &Server) -> anyhow::Result<()> {
    ch.run_insert(candidates::VISITS_DAILY).await?;
    let window = ch.window().await?;
    let meta = ch.run("SELECT min(toUInt32(ts)) FROM events", None, &[]).await?;
    let first_ms = value_f64(&meta.data[0][0]).context("first event")? as i64 * 1000;
    let first_day = first_ms - first_ms.rem_euclid(86_400_000);
    let digest = "SELECT count(), sum(visits), sum(bounces), sum(duration_ms), sum(cityHash64(dim, day, value)) \
                  FROM c_visits_daily FINAL";
    let mut answers = Vec::new();
    for pass in 1..=2 {
        let started = Instant::now();
        let mut per_day = Vec::new();
        let mut day = first_day;
        while day < window.end_ms {
            let one = Instant::now();
            ch.run_insert(&candidates::close_days(&window.project, day, day + 86_400_000)).await?;
            per_day.push(one.elapsed().as_secs_f64() * 1000.0);
            day += 86_400_000;
        }
        let t = timings(per_day);
        println!(
            "Closed-days job, pass {pass}: {:.1} s for the whole history, per day p50 {:.0} ms, p95 {:.0} ms.",
            started.elapsed().as_secs_f64(),
            t.p50,
            t.p95
        );
        answers.push(ch.run(digest, None, &[]).await?.data);
    }
    println!(
        "A second run of the job changes c_visits_daily: {}.",
        if answers[0] == answers[1] { "no" } else { "YES" }
    );
    Ok(())
}

/// One insert into `events` and one into `session_input`, as the two workers would make them.
async fn write(
    ch: &ClickHouse,
    events: &mut Vec<EventRow>,
    sessions: &mut Vec<SessionInputRow>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    if !events.is_empty() {
        let (a, b) = tokio::join!(
            tidemark_worker::sink::insert_all(ch, EventRow::TABLE, events),
            tidemark_worker::sink::insert_all(ch, SessionInputRow::TABLE, sessions)
        );
        a.map_err(|e| anyhow::anyhow!("inserting events: {}", e.text()))?;
        b.map_err(|e| anyhow::anyhow!("inserting session_input: {}", e.text()))?;
    }
    events.clear();
    sessions.clear();
    Ok(started.elapsed().as_secs_f64())
}

async fn fetch_u64(ch: &ClickHouse, sql: &str) -> anyhow::Result<u64> {
    ch.client.query(sql).fetch_one::<u64>().await.with_context(|| sql.to_owned())
}

/// Waits for background merges to finish, so that measurements see the parts a settled table has.
async fn settle(ch: &ClickHouse) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let merging =
            fetch_u64(ch, &format!("SELECT count() FROM system.merges WHERE database = '{}'", ch.endpoint.database))
                .await?;
        if merging == 0 || started.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!("Merges settled {:.0} s after the last insert.", started.elapsed().as_secs_f64());
    Ok(())
}

async fn sizes(ch: &ClickHouse, database: &str) -> anyhow::Result<()> {
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Size {
        table: String,
        parts: u64,
        rows: u64,
        bytes: u64,
    }
    let rows: Vec<Size> = ch
        .client
        .query(&format!(
            "SELECT table, count() AS parts, sum(rows) AS rows, sum(bytes) AS bytes FROM system.parts \
             WHERE database = '{database}' AND active GROUP BY table ORDER BY bytes DESC"
        ))
        .fetch_all()
        .await?;
    println!("\n| table | active parts | rows | on disk MB |\n|---|---|---|---|");
    let mut total = 0;
    for r in &rows {
        total += r.bytes;
        println!("| {} | {} | {} | {:.1} |", r.table, r.parts, r.rows, r.bytes as f64 / 1e6);
    }
    println!("| all | | | {:.1} |", total as f64 / 1e6);
    Ok(())
}

/// The server over plain HTTP: the bench needs the query id, the response's statistics and raw timings, which the
/// typed client does not expose.
struct Server {
    http: reqwest::Client,
    endpoint: Endpoint,
    low_cardinality_flag: bool,
    query_log: bool,
}

/// What one run of a statement returned.
struct Ran {
    data: Value,
    rows_read: u64,
    bytes_read: u64,
}

impl Server {
    async fn connect(url: &str, database: &str) -> anyhow::Result<Self> {
        let ch = ClickHouse::connect(Endpoint::parse(url, database)?).await?;
        let mut server = Self {
            http: reqwest::Client::new(),
            endpoint: ch.endpoint.clone(),
            low_cardinality_flag: ch.version.needs_low_cardinality_flag(),
            query_log: false,
        };
        let exists = server.run("EXISTS TABLE system.query_log", None, &[]).await?;
        server.query_log = exists.data.to_string().contains('1');
        Ok(server)
    }

    async fn window(&self) -> anyhow::Result<Window> {
        let ran = self
            .run("SELECT toString(project_id), end_ms FROM bench_meta", None, &[])
            .await
            .context("no bench_meta table: generate the history first (`bench-app generate`), it is written last")?;
        let row = &ran.data[0];
        let project = Uuid::parse_str(row[0].as_str().context("project id")?)?;
        let end_ms = value_f64(&row[1]).context("end_ms")? as i64;
        // Mid-month, like most "last 30 days": a range that is exactly one month would let the production shape's
        // month pruning look perfect. Realtime reads the last 5 minutes of the history.
        Ok(Window { project, end_ms: end_ms - 15 * 86_400_000, realtime_ms: end_ms, days: 30 })
    }

    async fn run(&self, sql: &str, query_id: Option<&str>, settings: &[(&str, &str)]) -> anyhow::Result<Ran> {
        let mut params: Vec<(&str, &str)> = vec![("database", &self.endpoint.database)];
        if let Some(id) = query_id {
            params.push(("query_id", id));
        }
        if self.low_cardinality_flag {
            params.push(("allow_experimental_low_cardinality_type", "1"));
        }
        params.extend_from_slice(settings);
        let wants_rows = !sql.starts_with("SYSTEM");
        let body = if wants_rows { format!("{sql} FORMAT JSONCompact") } else { sql.to_owned() };
        let response = self
            .http
            .post(&self.endpoint.base_url)
            .query(&params)
            .basic_auth(&self.endpoint.user, Some(&self.endpoint.password))
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("ClickHouse answered {status}: {}\n{sql}", text.trim());
        }
        if !wants_rows {
            return Ok(Ran { data: Value::Null, rows_read: 0, bytes_read: 0 });
        }
        let json: Value = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
        let stat = |k: &str| json["statistics"][k].as_u64().unwrap_or(0);
        Ok(Ran { data: json["data"].clone(), rows_read: stat("rows_read"), bytes_read: stat("bytes_read") })
    }

    /// A statement that returns no rows (`CREATE`, `INSERT ... SELECT`).
    async fn run_insert(&self, sql: &str) -> anyhow::Result<()> {
        let mut params: Vec<(&str, &str)> = vec![("database", &self.endpoint.database)];
        if self.low_cardinality_flag {
            params.push(("allow_experimental_low_cardinality_type", "1"));
        }
        let response = self
            .http
            .post(&self.endpoint.base_url)
            .query(&params)
            .basic_auth(&self.endpoint.user, Some(&self.endpoint.password))
            .body(sql.to_owned())
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            bail!("ClickHouse answered {status}: {}\n{sql}", response.text().await?.trim());
        }
        Ok(())
    }

    async fn drop_caches(&self) -> anyhow::Result<()> {
        self.run("SYSTEM DROP MARK CACHE", None, &[]).await?;
        self.run("SYSTEM DROP UNCOMPRESSED CACHE", None, &[]).await?;
        Ok(())
    }

    /// Peak memory of one run: from `system.query_log` where the server keeps it, else the highest
    /// `peak_memory_usage` seen in `system.processes` while the statement ran (sampled every 2 ms: a lower bound).
    async fn peak_memory(&self, sql: &str) -> anyhow::Result<u64> {
        let id = Uuid::new_v4().to_string();
        if self.query_log {
            self.run(sql, Some(&id), &[("log_queries", "1")]).await?;
            self.run("SYSTEM FLUSH LOGS", None, &[]).await?;
            let ran = self
                .run(
                    &format!("SELECT max(memory_usage) FROM system.query_log WHERE query_id = '{id}' AND type = 'QueryFinish'"),
                    None,
                    &[],
                )
                .await?;
            return Ok(value_f64(&ran.data[0][0]).unwrap_or(0.0) as u64);
        }
        let statement = self.run(sql, Some(&id), &[]);
        tokio::pin!(statement);
        let mut peak = 0u64;
        loop {
            tokio::select! {
                done = &mut statement => { done?; return Ok(peak); }
                _ = tokio::time::sleep(Duration::from_millis(2)) => {
                    let seen = self
                        .run(&format!("SELECT max(peak_memory_usage) FROM system.processes WHERE query_id = '{id}'"), None, &[])
                        .await?;
                    peak = peak.max(value_f64(&seen.data[0][0]).unwrap_or(0.0) as u64);
                }
            }
        }
    }
}

fn value_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

struct Timings {
    p50: f64,
    p95: f64,
}

fn timings(mut ms: Vec<f64>) -> Timings {
    ms.sort_by(f64::total_cmp);
    Timings { p50: percentile(&ms, 0.5), p95: percentile(&ms, 0.95) }
}

async fn measure(ch: &Server, calls: &[Call], runs: usize, cold: bool) -> anyhow::Result<()> {
    println!(
        "Memory: {}.",
        if ch.query_log {
            "system.query_log memory_usage"
        } else {
            "no system.query_log on this server: highest peak_memory_usage seen in system.processes, sampled every 2 ms (a lower bound)"
        }
    );
    println!("Statements of a call run one after the other; times are the call's total, ms, {runs} runs each.\n");
    println!(
        "| call | plan | warm p50 | warm p95 | cold p50 | cold p95 | rows read | MB read | peak MB | answer vs raw |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for call in calls {
        let mut reference: Option<Vec<Value>> = None;
        for (plan, statements) in &call.plans {
            // The first run warms the caches and gives the answer to compare.
            let mut answer = Vec::new();
            let (mut rows_read, mut bytes_read) = (0, 0);
            for sql in statements {
                let ran = ch.run(sql, None, &[]).await.with_context(|| format!("{} / {}", call.name, plan.name()))?;
                rows_read += ran.rows_read;
                bytes_read += ran.bytes_read;
                answer.push(ran.data);
            }
            let verdict = match (&reference, plan) {
                (None, Plan::Raw) => "reference".to_owned(),
                (Some(r), p) if p.exact() => {
                    if *r == answer {
                        "same".to_owned()
                    } else {
                        "DIFFERENT".to_owned()
                    }
                }
                (Some(r), _) => relative_error(r, &answer),
                (None, _) => "no raw run".to_owned(),
            };
            if *plan == Plan::Raw {
                reference = Some(answer);
            }
            let warm = timed(ch, statements, runs, false).await?;
            let cold = if cold { Some(timed(ch, statements, runs, true).await?) } else { None };
            let mut memory = 0;
            for sql in statements {
                memory = memory.max(ch.peak_memory(sql).await?);
            }
            let (c50, c95) =
                cold.map_or(("-".into(), "-".into()), |c| (format!("{:.0}", c.p50), format!("{:.0}", c.p95)));
            println!(
                "| {} | {} | {:.0} | {:.0} | {c50} | {c95} | {rows_read} | {:.1} | {:.1} | {verdict} |",
                call.name,
                plan.name(),
                warm.p50,
                warm.p95,
                bytes_read as f64 / 1e6,
                memory as f64 / 1e6
            );
        }
    }
    Ok(())
}

async fn timed(ch: &Server, statements: &[String], runs: usize, cold: bool) -> anyhow::Result<Timings> {
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        if cold {
            ch.drop_caches().await?;
        }
        let started = Instant::now();
        for sql in statements {
            ch.run(sql, None, &[]).await?;
        }
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(timings(ms))
}

/// The largest relative error of any number of `approx` against `exact`, rows matched by their non-numeric cells;
/// rows of the reference missing from the approximation are counted.
fn relative_error(exact: &[Value], approx: &[Value]) -> String {
    fn rows(data: &[Value]) -> Vec<(String, Vec<f64>)> {
        let mut out = Vec::new();
        for (s, statement) in data.iter().enumerate() {
            for row in statement.as_array().into_iter().flatten() {
                let cells = row.as_array().cloned().unwrap_or_default();
                let key = format!(
                    "{s}:{}",
                    cells.iter().filter(|c| value_f64(c).is_none()).map(Value::to_string).collect::<String>()
                );
                out.push((key, cells.iter().filter_map(value_f64).collect()));
            }
        }
        out
    }
    let approx = rows(approx);
    let (mut worst, mut missing) = (0.0f64, 0);
    for (key, numbers) in rows(exact) {
        match approx.iter().find(|(k, _)| *k == key) {
            Some((_, other)) => {
                for (a, b) in numbers.iter().zip(other) {
                    if *a != 0.0 {
                        worst = worst.max((b - a).abs() / a.abs());
                    }
                }
            }
            None => missing += 1,
        }
    }
    format!(
        "max error {:.2} %{}",
        worst * 100.0,
        if missing > 0 { format!(", {missing} rows not in top 10") } else { String::new() }
    )
}

async fn measure_app(ch: &Server, calls: &[Call], app: &str, key: &str, runs: usize, cold: bool) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let url = format!("{}/api/v2/query", app.trim_end_matches('/'));
    println!("| call | warm p50 | warm p95 | cold p50 | cold p95 |\n|---|---|---|---|---|");
    for call in calls {
        let once = || async {
            let started = Instant::now();
            let response = http.post(&url).bearer_auth(key).json(&call.body).send().await?;
            let status = response.status();
            let text = response.text().await?;
            if !status.is_success() {
                bail!("{} answered {status}: {text}", call.name);
            }
            Ok::<f64, anyhow::Error>(started.elapsed().as_secs_f64() * 1000.0)
        };
        once().await?;
        let mut warm = Vec::new();
        for _ in 0..runs {
            warm.push(once().await?);
        }
        let mut cold_ms = Vec::new();
        for _ in 0..if cold { runs } else { 0 } {
            ch.drop_caches().await?;
            cold_ms.push(once().await?);
        }
        let (w, c) = (timings(warm), timings(cold_ms));
        println!("| {} | {:.0} | {:.0} | {:.0} | {:.0} |", call.name, w.p50, w.p95, c.p50, c.p95);
    }
    Ok(())
}
