//! `just bench pipeline`: how fast the workers drain the ingest stream into ClickHouse, and how long an event
//! answered 202 by the hub takes to become visible in ClickHouse. Prints numbers; it is not a test.
//!
//! 1. Drain: for each worker kind and 1, 2 and 4 worker processes, pre-fill a fresh stream with N realistic jobs
//!    (written exactly as the hub's ingest script writes them) and time the release worker binaries until their
//!    group has no lag and nothing pending. Batch sizes and insert times come from the workers' own /metrics.
//! 2. Latency: an in-process hub and one worker of each kind; clients post single events at a steady rate, each
//!    with its own event id, and a poller notes when each id becomes visible in `events` (every 50 ms).
//!
//! Needs the worker binaries beside this one: `cargo build --release -p tidemark-worker -p tidemark-bench`.

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use rand::Rng;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tidemark_shared::job::{Agent, EventJob, EventType, Geo, Utm};
use tidemark_shared::keys::{GROUPS, Keys};
use tidemark_testkit::TestEnv;
use tidemark_testkit::batch;
use tidemark_worker::consumer::group_lag;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Jobs pre-filled for each drain run.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Worker process counts to drain with.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    procs: Vec<usize>,
    /// Worker kinds to drain with.
    #[arg(long, value_delimiter = ',', default_value = "events,sessions,devices")]
    kinds: Vec<String>,
    /// Offered load of the latency run, events per second.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Length of the latency run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin_dir = std::env::current_exe()?.parent().context("binary directory")?.to_path_buf();
    for kind in &args.kinds {
        if !bin_dir.join(format!("worker-{kind}")).exists() {
            bail!("worker-{kind} is not built beside this binary: cargo build --release -p tidemark-worker");
        }
    }
    println!("Tidemark pipeline benchmark ({} jobs per drain run)\n", args.events);
    println!("| worker kind | processes | drained events/s | mean rows per insert | mean insert ms | wall s |");
    println!("|---|---|---|---|---|---|");
    for kind in &args.kinds {
        for &procs in &args.procs {
            let run = drain_run(&bin_dir, kind, procs, args.events).await?;
            println!(
                "| {kind} | {procs} | {:.0} | {:.0} | {:.1} | {:.2} |",
                args.events as f64 / run.seconds,
                run.rows as f64 / run.batches.max(1) as f64,
                run.insert_seconds * 1000.0 / run.inserts.max(1) as f64,
                run.seconds
            );
        }
    }
    println!();
    latency_run(&bin_dir, args.rate, args.seconds).await
}

struct DrainRun {
    seconds: f64,
    rows: u64,
    batches: u64,
    inserts: u64,
    insert_seconds: f64,
}

async fn drain_run(bin_dir: &Path, kind: &str, procs: usize, n: usize) -> anyhow::Result<DrainRun> {
    let env = tidemark_testkit::test_env().await;
    let mut conn = env.redis().await;
    let project = Uuid::new_v4();
    let mut rng = rand::rng();
    let start_ms = now_ms() - 3_600_000;
    for chunk_start in (0..n).step_by(2000) {
        let mut pipe = redis::pipe();
        let jobs: Vec<(EventJob, u64)> = (chunk_start..(chunk_start + 2000).min(n))
            .map(|i| realistic(&mut rng, project, start_ms + i as i64))
            .collect();
        for entry in jobs.chunks(JOBS_PER_ENTRY) {
            xadd(&mut pipe, &env.keys, entry);
        }
        pipe.query_async::<()>(&mut conn).await?;
    }
    let group = GROUPS.iter().copied().find(|g| *g == kind).context("unknown worker kind")?;
    // Created here, from the first entry, so the lag counts the whole backlog before any worker is up.
    redis::cmd("XGROUP").arg("CREATE").arg(env.keys.stream(0)).arg(group).arg("0").query_async::<()>(&mut conn).await?;
    let ports: Vec<u16> = (0..procs).map(|_| free_port()).collect::<Result<_, _>>()?;
    let started = Instant::now();
    let mut children = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        children.push(spawn_worker(bin_dir, kind, &env, &format!("bench-{kind}-{i}"), *port, &[])?);
    }
    loop {
        let lag = group_lag(&mut conn, &env.keys, group).await?;
        if lag.lag == 0 && lag.pending == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("{kind} x{procs} did not drain in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut run = DrainRun { seconds, rows: 0, batches: 0, inserts: 0, insert_seconds: 0.0 };
    for port in &ports {
        let metrics = scrape(*port).await.unwrap_or_default();
        run.rows += metric(&metrics, "tidemark_worker_rows_total") as u64;
        run.batches += metric(&metrics, "tidemark_worker_batches_total") as u64;
        run.inserts += metric(&metrics, "tidemark_worker_insert_duration_seconds_count") as u64;
        run.insert_seconds += metric(&metrics, "tidemark_worker_insert_duration_seconds_sum");
    }
    for child in &mut children {
        stop(child).await;
    }
    // Drained, but kept until every group has it, which in this run never happens: a run's stream would otherwise
    // stay in Redis, and the next runs would measure Redis rewriting it into its append-only file.
    redis::cmd("DEL").arg(env.keys.stream(0)).query_async::<()>(&mut conn).await?;
    Ok(run)
}

async fn latency_run(bin_dir: &Path, rate: u64, seconds: u64) -> anyhow::Result<()> {
    let env = tidemark_testkit::test_env().await;
    let (project, token) = env.project(&[]).await;
    let config = tidemark_hub::HubConfig {
        hub_listen: "127.0.0.1:0".into(),
        hub_metrics_listen: String::new(),
        redis_url: tidemark_shared::secret::Secret::new(env.stores.redis_url.clone()),
        postgres_url: tidemark_shared::secret::Secret::new(env.postgres_url.clone()),
        key_prefix: env.key_prefix.clone(),
        hub_threads: 1,
        ..tidemark_hub::HubConfig::default()
    };
    let hub = tidemark_hub::build(config, std::net::TcpListener::bind("127.0.0.1:0")?).await?;
    tokio::spawn(hub.server);
    let base = format!("http://127.0.0.1:{}/v1/event", hub.port);
    let mut workers = Vec::new();
    for kind in ["events", "sessions", "devices"] {
        workers.push(spawn_worker(bin_dir, kind, &env, &format!("latency-{kind}"), free_port()?, &[])?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // id → when the hub answered 202
    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let visible: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let poller = {
        let (ch, visible) = (env.ch.clone(), visible.clone());
        tokio::spawn(async move {
            loop {
                let ids: Vec<String> = ch
                    .client
                    .query("SELECT toString(event_id) FROM events WHERE project_id = toUUID(?) AND received_at >= now() - 30")
                    .bind(project.to_string())
                    .fetch_all()
                    .await
                    .unwrap_or_default();
                let now = Instant::now();
                {
                    let mut seen = visible.lock().unwrap();
                    for id in ids {
                        seen.entry(id).or_insert(now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let http = reqwest::Client::new();
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    let mut refused = 0u64;
    for i in 0..total {
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (http, base, token, accepted) = (http.clone(), base.clone(), token.clone(), accepted.clone());
        sends.spawn(async move {
            let id = Uuid::new_v4().to_string();
            let body = serde_json::json!({
                "type": "pageview", "id": id, "url": format!("https://shop.example/p/{}", i % 50),
                "referrer": "https://news.ycombinator.com/", "title": "Product"
            });
            let resp = http
                .post(&base)
                .bearer_auth(&token)
                .header("user-agent", format!("Mozilla/5.0 (X11; Linux x86_64) Chrome/130.{} Safari/537.36", i % 200))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await;
            match resp {
                Ok(r) if r.status().as_u16() == 202 => {
                    accepted.lock().unwrap().insert(id, Instant::now());
                    true
                }
                _ => false,
            }
        });
        while let Some(done) = sends.try_join_next() {
            refused += u64::from(!done.unwrap_or(false));
        }
    }
    while let Some(done) = sends.join_next().await {
        refused += u64::from(!done.unwrap_or(false));
    }
    let offered_for = started.elapsed();
    let want = accepted.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while visible.lock().unwrap().len() < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    poller.abort();
    for child in &mut workers {
        stop(child).await;
    }

    let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000, 3)?;
    let (accepted, visible) = (accepted.lock().unwrap(), visible.lock().unwrap());
    let mut missing = 0;
    for (id, at) in accepted.iter() {
        match visible.get(id) {
            Some(seen) => hist.record(seen.saturating_duration_since(*at).as_millis().max(1) as u64)?,
            None => missing += 1,
        }
    }
    println!("Latency from the hub's 202 to visibility in ClickHouse `events` (poll every 50 ms):");
    println!(
        "  offered {rate}/s for {:.1} s: {} accepted, {refused} refused, {missing} not visible after 30 s",
        offered_for.as_secs_f64(),
        accepted.len()
    );
    println!(
        "  p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (workers at defaults: batch_size 5000, batch_max_wait_ms 1000)",
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.9),
        hist.value_at_quantile(0.99),
        hist.max()
    );
    Ok(())
}

/// Jobs per pre-filled entry: about what the hub's writers file per call under load (`just bench hub` prints it).
const JOBS_PER_ENTRY: usize = 16;

/// One `batch.v1` entry of `event.v2` jobs, as the hub's ingest script writes it.
fn xadd(pipe: &mut redis::Pipeline, keys: &Keys, jobs: &[(EventJob, u64)]) {
    let (assigned, frames) = batch::encode_events(jobs);
    pipe.add_command(batch::xadd(&keys.stream(0), &assigned, &frames)).ignore();
}

/// An enriched pageview or event of the kind a content site sends: 2,000 visitors with a few sessions each.
fn realistic(rng: &mut impl Rng, project: Uuid, ts_ms: i64) -> (EventJob, u64) {
    const PAGES: [&str; 8] = ["/", "/pricing", "/docs", "/docs/install", "/blog/launch", "/about", "/signup", "/faq"];
    const AGENTS: [(&str, &str, &str, &str, &str); 4] = [
        ("Chrome", "130", "Windows", "10", "desktop"),
        ("Safari", "17", "iOS", "17.5", "mobile"),
        ("Firefox", "131", "Linux", "", "desktop"),
        ("Chrome", "129", "Android", "14", "mobile"),
    ];
    let visitor = rng.random_range(1..=2000u64);
    let path = PAGES[rng.random_range(0..PAGES.len())];
    let (browser, browser_version, os, os_version, device) = AGENTS[(visitor % 4) as usize];
    let custom = rng.random_bool(0.1);
    let event = EventJob {
        project_id: project,
        event_id: Uuid::new_v4(),
        event_type: if custom { EventType::Custom } else { EventType::Pageview },
        name: if custom { "signup_click".into() } else { String::new() },
        ts_ms,
        received_ms: ts_ms,
        visitor_id: visitor.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        visitor_kind: Default::default(),
        user_id: String::new(),
        url: format!("https://www.example.com{path}?utm_source=newsletter"),
        host: "example.com".into(),
        path: path.into(),
        title: "Example — a page title of ordinary length".into(),
        referrer: "https://news.ycombinator.com/item?id=41234567".into(),
        referrer_host: "news.ycombinator.com".into(),
        referrer_source: "referral".into(),
        referrer_name: "Hacker News".into(),
        utm: Utm { source: "newsletter".into(), ..Utm::default() },
        geo: Arc::new(Geo { country: "DE".into(), region: "BE".into(), city: "Berlin".into() }),
        agent: Arc::new(Agent {
            browser: browser.into(),
            browser_version: browser_version.into(),
            os: os.into(),
            os_version: os_version.into(),
            device: device.into(),
        }),
        screen_width: 1440,
        duration_ms: 0,
        props: if custom { vec![("plan".into(), "pro".into())] } else { Vec::new() },
    };
    (event, visitor * 10 + rng.random_range(0..3))
}

fn spawn_worker(
    bin_dir: &Path,
    kind: &str,
    env: &TestEnv,
    name: &str,
    metrics_port: u16,
    extra: &[(&str, &str)],
) -> anyhow::Result<tokio::process::Child> {
    let path: PathBuf = bin_dir.join(format!("worker-{kind}"));
    let mut cmd = tokio::process::Command::new(&path);
    cmd.env_clear()
        .env("RUST_LOG", "warn")
        .env("TIDEMARK_CONFIG", "/dev/null")
        .env("TIDEMARK_REDIS_URL", &env.stores.redis_url)
        .env("TIDEMARK_CLICKHOUSE_URL", &env.clickhouse_url)
        .env("TIDEMARK_KEY_PREFIX", &env.key_prefix)
        .env("TIDEMARK_CONSUMER_NAME", name)
        .env("TIDEMARK_WORKER_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
        .kill_on_drop(true);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().with_context(|| format!("starting {}", path.display()))
}

async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

async fn scrape(port: u16) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n").await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body)
}

/// The value of the first sample of `name` (any labels) in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
