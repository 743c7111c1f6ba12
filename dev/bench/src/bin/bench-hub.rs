//! `just bench hub`: the hub under a realistic mix at 64 connections on loopback, against a minimal actix-web
//! handler that only parses the same bodies, with the same load tool (wrk) in the same run. Prints numbers; it
//! is not a test and nothing here passes or fails.
//!
//! Both servers run side by side and are loaded in turns, hub then handler, for a few rounds: on two cores shared
//! with wrk and the stores, one 15-second figure of either moves by a third from run to run, and a ratio of two
//! such figures taken minutes apart says more about the machine than about the hub. Each round's ratio compares
//! neighbours in time; the summary is the median round. Before each turn the kernel writes back dirty pages, so
//! neither server pays for the append-only file the hub's turn made Redis write.

use anyhow::{Context, bail};
use clap::Parser;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tidemark_bench::{process, traffic};

#[derive(Parser)]
struct Args {
    /// Seconds of load per server and round.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Rounds of (hub, minimal handler).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// wrk threads (the machine has 2 cores; wrk shares them with the server under test).
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Share of bot user agents in the mix.
    #[arg(long, default_value_t = 0.02)]
    bots: f64,
    /// The hub binary to measure (default: the `hub` next to this bench), e.g. an older build to compare with.
    #[arg(long)]
    hub_bin: Option<std::path::PathBuf>,
}

struct WrkResult {
    /// CPU wrk itself used.
    cpu: Duration,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    requests: u64,
}

/// One server's turn: wrk's figures and the CPU it and Redis used.
struct Turn {
    wrk: WrkResult,
    /// Cores the server used on average.
    cores: f64,
    /// Cores Redis used on average (the hub's turns only).
    redis_cores: f64,
    /// Cores every other process used on average (busy time of the machine less the server, Redis and wrk): a
    /// turn that shares the machine with a build or a test is not comparable with one that does not.
    other_cores: f64,
    /// Commands Redis executed during the turn (the hub's turns only), from every client: about 1.1 per hub
    /// request (one `GETEX` per job in the script, the script call, its `XADD` and `MEMORY USAGE` per call of
    /// about 15 jobs). More means another client is loading Redis, whose CPU the turn then counts as the hub's.
    redis_commands: f64,
}

impl Turn {
    fn us_per_request(&self, cores: f64) -> f64 {
        cores / self.wrk.requests_per_sec * 1e6
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    let bin_dir = std::env::current_exe()?.parent().context("binary directory")?.to_path_buf();
    let env = tidemark_testkit::test_env().await;
    let (_project, token) = env.project(&[]).await;

    let requests = traffic::mix(4000, args.bots);
    let mean_body = requests.iter().map(|r| r.body.len()).sum::<usize>() / requests.len();
    let script = std::env::temp_dir().join(format!("tidemark-bench-{}.lua", std::process::id()));
    std::fs::write(&script, traffic::wrk_script(&requests, &token))?;

    let hub_port = free_port()?;
    let metrics_port = free_port()?;
    let geo = tidemark_testkit::repo_root().join(".data/geo");
    let geo_files: Vec<String> = std::fs::read_dir(&geo)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "mmdb"))
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    let hub_bin = args.hub_bin.clone().unwrap_or_else(|| bin_dir.join("hub"));
    let hub = Command::new(&hub_bin)
        .env("TIDEMARK_HUB_LISTEN", format!("127.0.0.1:{hub_port}"))
        .env("TIDEMARK_HUB_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
        .env("TIDEMARK_REDIS_URL", &env.stores.redis_url)
        .env("TIDEMARK_POSTGRES_URL", &env.postgres_url)
        .env("TIDEMARK_KEY_PREFIX", &env.key_prefix)
        .env("TIDEMARK_TRUSTED_PROXIES", "127.0.0.1")
        .env("TIDEMARK_RATE_LIMIT_PER_SEC", "0")
        .env("TIDEMARK_MAX_STREAM_BYTES", "1000000000000")
        .env("TIDEMARK_GEO_DATABASE", geo_files.join(","))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} (build it with --release)", hub_bin.display()))?;
    let hub = Stopped(hub);
    let minimal_port = free_port()?;
    let minimal = Command::new(bin_dir.join("minimal-handler"))
        .arg(format!("127.0.0.1:{minimal_port}"))
        .stdout(Stdio::null())
        .spawn()
        .context("starting target/release/minimal-handler")?;
    let minimal = Stopped(minimal);
    wait_http(&format!("http://127.0.0.1:{hub_port}/readyz")).await?;
    wait_tcp(minimal_port).await?;

    let stream = env.keys.stream(0);
    let trimmer = tokio::spawn(keep_drained(env.redis().await, stream.clone()));
    let mut conn = env.redis().await;
    // Warm the token cache, the salts, the caches and the connections, as running servers would be.
    wrk(&script, hub_port, 2, args.connections, args.threads)?;
    wrk(&script, minimal_port, 2, args.connections, args.threads)?;

    let mut rounds: Vec<(Turn, Turn)> = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        let hub_turn = turn(&args, &script, hub_port, hub.0.id(), Some(&mut conn)).await?;
        let minimal_turn = turn(&args, &script, minimal_port, minimal.0.id(), None).await?;
        if hub_turn.wrk.non_2xx > 0 {
            bail!("the hub answered {} requests with a non-2xx status", hub_turn.wrk.non_2xx);
        }
        rounds.push((hub_turn, minimal_turn));
    }
    let hub_rss = process::peak_rss_mib(hub.0.id()).unwrap_or(0.0);
    let minimal_rss = process::peak_rss_mib(minimal.0.id()).unwrap_or(0.0);
    let metrics = hub_metrics(&[metrics_port, hub_port]).await?;
    drop(hub);
    drop(minimal);
    trimmer.abort();
    let queued = entries_added(&mut conn, &stream).await?;
    let _: () = redis::cmd("DEL").arg(&stream).query_async(&mut conn).await?;
    let _ = std::fs::remove_file(&script);

    println!(
        "Hub benchmark: {} rounds of {} s per server (hub, then minimal handler), {} connections, wrk -t{}, \
         loopback, 2 cores shared with wrk",
        args.rounds, args.seconds, args.connections, args.threads
    );
    println!(
        "mix: {} distinct requests, {:.0}% bots, mean body {} bytes, geo database: {}",
        requests.len(),
        args.bots * 100.0,
        mean_body,
        if geo_files.is_empty() { "none" } else { "yes" }
    );
    println!();
    // CPU per request is steadier than req/s on a machine whose two cores are shared with the load generator.
    println!(
        "| round | server | req/s | p50 ms | p99 ms | CPU (cores) | Redis CPU (cores) | other processes (cores) | CPU µs per request (server + Redis) | Redis commands per request | hub / minimal |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, (h, m)) in rounds.iter().enumerate() {
        println!(
            "| {} | hub | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} + {:.1} | {:.2} | {:.1}% |",
            i + 1,
            h.wrk.requests_per_sec,
            h.wrk.p50_ms,
            h.wrk.p99_ms,
            h.cores,
            h.redis_cores,
            h.other_cores,
            h.us_per_request(h.cores),
            h.us_per_request(h.redis_cores),
            h.redis_commands / h.wrk.requests.max(1) as f64,
            h.wrk.requests_per_sec / m.wrk.requests_per_sec * 100.0
        );
        println!(
            "| {} | minimal handler | {:.0} | {:.2} | {:.2} | {:.2} | | {:.2} | {:.1} | | |",
            i + 1,
            m.wrk.requests_per_sec,
            m.wrk.p50_ms,
            m.wrk.p99_ms,
            m.cores,
            m.other_cores,
            m.us_per_request(m.cores)
        );
    }
    println!();
    let median_round = {
        let mut order: Vec<usize> = (0..rounds.len()).collect();
        order.sort_by(|&a, &b| ratio(&rounds[a]).total_cmp(&ratio(&rounds[b])));
        order[order.len() / 2]
    };
    let (h, m) = &rounds[median_round];
    let worst_p99 = rounds.iter().map(|(h, _)| h.wrk.p99_ms).fold(0.0, f64::max);
    println!(
        "median round ({}): hub {:.0} req/s, minimal handler {:.0} req/s: hub / minimal handler {:.1}% (target >= 50%); \
         hub p99 {:.2} ms, worst round {:.2} ms (target <= 5 ms)",
        median_round + 1,
        h.wrk.requests_per_sec,
        m.wrk.requests_per_sec,
        ratio(&rounds[median_round]) * 100.0,
        h.wrk.p99_ms,
        worst_p99
    );
    // Means over the rounds: the figures to compare two builds by, since they move far less than req/s.
    let mean = |f: &dyn Fn(&(Turn, Turn)) -> f64| rounds.iter().map(f).sum::<f64>() / rounds.len() as f64;
    println!(
        "mean CPU µs per request over the rounds: hub {:.1} + Redis {:.1}, minimal handler {:.1}",
        mean(&|(h, _)| h.us_per_request(h.cores)),
        mean(&|(h, _)| h.us_per_request(h.redis_cores)),
        mean(&|(_, m)| m.us_per_request(m.cores))
    );
    println!(
        "mean cores used by other processes during the turns: hub's {:.2}, minimal handler's {:.2} (0 on a machine \
         running nothing else)",
        mean(&|(h, _)| h.other_cores),
        mean(&|(_, m)| m.other_cores)
    );
    println!("peak RSS: hub {hub_rss:.0} MiB, minimal handler {minimal_rss:.0} MiB");
    let accepted = metric_total(&metrics, "tidemark_hub_events_accepted_total");
    let hub_requests: u64 = rounds.iter().map(|(h, _)| h.wrk.requests).sum();
    println!(
        "hub requests {} (warm-up included: {:.0}) -> events queued {:.0} in {} stream entries, {:.1} events per entry \
         (bots are answered 202 and not queued)",
        hub_requests,
        accepted + metric_total(&metrics, "tidemark_hub_events_dropped_total"),
        accepted,
        queued,
        accepted / queued.max(1) as f64
    );
    Ok(())
}

fn ratio((hub, minimal): &(Turn, Turn)) -> f64 {
    hub.wrk.requests_per_sec / minimal.wrk.requests_per_sec
}

/// One measured turn of one server; `redis` is given for the hub, whose work Redis shares.
async fn turn(
    args: &Args,
    script: &std::path::Path,
    port: u16,
    pid: u32,
    mut redis: Option<&mut redis::aio::MultiplexedConnection>,
) -> anyhow::Result<Turn> {
    // Dirty pages of the last turn (Redis's append-only file) are written back now, not during this turn.
    let _ = Command::new("sync").status();
    let redis_before = match redis.as_deref_mut() {
        Some(conn) => (redis_cpu_secs(conn).await?, redis_commands(conn).await?),
        None => (0.0, 0.0),
    };
    let machine_before = process::machine_busy().unwrap_or_default();
    let cpu_before = process::cpu_time(pid).unwrap_or_default();
    let started = Instant::now();
    let result = wrk(script, port, args.seconds, args.connections, args.threads)?;
    let cpu = process::cpu_time(pid).unwrap_or_default().saturating_sub(cpu_before);
    let machine = process::machine_busy().unwrap_or_default().saturating_sub(machine_before);
    let wall = started.elapsed().as_secs_f64();
    let (redis_cpu, redis_commands) = match redis {
        Some(conn) => (redis_cpu_secs(conn).await? - redis_before.0, redis_commands(conn).await? - redis_before.1),
        None => (0.0, 0.0),
    };
    let others = machine.as_secs_f64() - cpu.as_secs_f64() - redis_cpu - result.cpu.as_secs_f64();
    Ok(Turn {
        wrk: result,
        cores: cpu.as_secs_f64() / wall,
        redis_cores: redis_cpu / wall,
        other_cores: (others / wall).max(0.0),
        redis_commands,
    })
}

/// Plays the workers' part for Redis: in production they drain the stream and trimming keeps it short, so Redis
/// holds a small dataset and its append-only-file rewrites stay cheap. Without this the stream would grow by
/// hundreds of megabytes per run and Redis would spend a core compressing them in rewrites that a drained
/// queue never needs. The trimming itself runs inside Redis and is counted in the run.
async fn keep_drained(mut conn: redis::aio::MultiplexedConnection, stream: String) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let trimmed: redis::RedisResult<u64> =
            redis::cmd("XTRIM").arg(&stream).arg("MAXLEN").arg("~").arg(1000).query_async(&mut conn).await;
        if trimmed.is_err() {
            return;
        }
    }
}

/// CPU seconds the Redis server has used (its own threads; not a forked rewrite child).
async fn redis_cpu_secs(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    let field = |name: &str| -> f64 {
        info.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
    };
    Ok(field("used_cpu_sys:") + field("used_cpu_user:"))
}

/// The hub's `/metrics`, from the first of `ports` that serves it: today's hubs serve it on `hub_metrics_listen`
/// only, hubs before 2026-12-03 on the ingest port only (and ignore the metrics setting), so `--hub-bin` can
/// measure either.
async fn hub_metrics(ports: &[u16]) -> anyhow::Result<String> {
    for port in ports {
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await
            && response.status().is_success()
        {
            return Ok(response.text().await?);
        }
    }
    bail!("no /metrics on ports {ports:?}")
}

/// Commands Redis has executed so far, from every client (`INFO commandstats`).
async fn redis_commands(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<f64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await?;
    Ok(info.lines().filter_map(|l| l.split_once("calls=")?.1.split(',').next()?.parse::<f64>().ok()).sum())
}

/// The sum of a Prometheus counter over its labels.
fn metric_total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every entry ever appended to the stream, trimmed or not (Redis 7's `entries-added`).
async fn entries_added(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> anyhow::Result<u64> {
    let info: Vec<redis::Value> = redis::cmd("XINFO").arg("STREAM").arg(stream).query_async(conn).await?;
    let pairs = info.chunks(2).filter_map(|kv| match kv {
        [redis::Value::BulkString(k), redis::Value::Int(v)] if k.as_slice() == b"entries-added" => Some(*v as u64),
        _ => None,
    });
    pairs.into_iter().next().context("XINFO STREAM has no entries-added (Redis 7 or newer is needed)")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_http(url: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if reqwest::get(url).await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} did not become ready")
}

async fn wait_tcp(port: u16) -> anyhow::Result<()> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("port {port} did not open")
}

/// A server process stopped when this is dropped, also when the bench fails half-way: a server left running
/// after a failed run would take a share of the cores from every later run.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn wrk(script: &std::path::Path, port: u16, seconds: u64, connections: u32, threads: u32) -> anyhow::Result<WrkResult> {
    let mut child = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string(), "-d", &format!("{seconds}s"), "--latency"])
        .arg("-s")
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/v1/event"))
        .stdout(Stdio::piped())
        .spawn()
        .context("running wrk (apt-get install wrk)")?;
    let mut text = String::new();
    child.stdout.take().context("wrk's output")?.read_to_string(&mut text)?;
    // wrk has closed its output by exiting; until it is waited for, its CPU time is still in /proc.
    let cpu = process::cpu_time(child.id()).unwrap_or_default();
    child.wait()?;
    let mut result = parse_wrk(&text).with_context(|| format!("unexpected wrk output:\n{text}"))?;
    result.cpu = cpu;
    Ok(result)
}

fn parse_wrk(text: &str) -> Option<WrkResult> {
    let number_after = |prefix: &str| -> Option<String> {
        text.lines().map(str::trim).find(|l| l.starts_with(prefix)).map(|l| l[prefix.len()..].trim().to_owned())
    };
    let requests_per_sec = number_after("Requests/sec:")?.parse().ok()?;
    let p50_ms = duration_ms(number_after("50%")?.as_str())?;
    let p99_ms = duration_ms(number_after("99%")?.as_str())?;
    let non_2xx = number_after("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Some(WrkResult { cpu: Duration::ZERO, requests_per_sec, p50_ms, p99_ms, non_2xx, requests })
}

/// wrk prints latencies as `812.00us`, `1.23ms` or `2.01s`.
fn duration_ms(raw: &str) -> Option<f64> {
    let raw = raw.trim();
    let (value, scale) = if let Some(v) = raw.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = raw.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = raw.strip_suffix('s') {
        (v, 1000.0)
    } else {
        return None;
    };
    Some(value.parse::<f64>().ok()? * scale)
}
