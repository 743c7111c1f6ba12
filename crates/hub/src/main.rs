use anyhow::Context;
use clap::{Parser, Subcommand};
use tidemark_hub::HubConfig;

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
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tidemark_shared::telemetry::init("info");
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
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
