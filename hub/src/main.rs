use anyhow::Context;
use clap::{Parser, Subcommand};
use tidemark_hub::HubConfig;

/// A request makes dozens of small allocations (headers, JSON, the job). Under load glibc's malloc and free took
/// about 11 % of the hub's CPU in `perf`; with mimalloc allocation is about 5 % (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tidemark hub: receives events from websites and servers and queues them for the workers.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the ingest API (the default).
    Serve,
    /// Classify user agents read from stdin, one per line, exactly as ingestion does: one JSON line each on stdout
    /// with the bot verdict and reason, the prefetch verdict, browser, OS and device.
    InspectUa {
        /// A request header to classify with, as 'Name: value' (client hints such as Sec-CH-UA, Sec-Purpose...).
        /// May be repeated.
        #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = tidemark_hub::inspect::parse_header_arg)]
        headers: Vec<(String, String)>,
    },
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => {
            tidemark_shared::telemetry::init("info");
            serve().await
        }
        // No logging set-up: stdout carries the JSON lines and nothing else.
        Command::InspectUa { headers } => {
            let output = std::io::BufWriter::new(std::io::stdout().lock());
            tidemark_hub::inspect::run(std::io::stdin().lock(), output, &headers)
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let config: HubConfig = tidemark_shared::config::load()?;
    let listener = std::net::TcpListener::bind(&config.hub_listen)
        .with_context(|| format!("binding hub_listen {}", config.hub_listen))?;
    tracing::info!(listen = config.hub_listen, "Hub listening.");
    let hub = tidemark_hub::build(config, listener).await?;
    hub.server.await.context("hub server")
}
