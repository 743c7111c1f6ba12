//! Operator commands of the workers: `worker dead-letters list|redrive|delete`. Reads the configuration as the
//! workers do (`TIDEMARK_CONFIG`, `./tidemark.toml`, `TIDEMARK_*`); prints one JSON line per dead letter touched.

use clap::{Args, Parser, Subcommand};
use tidemark_shared::keys::Keys;
use tidemark_worker::WorkerConfig;
use tidemark_worker::dead_letters::{self, Selection};

/// Tidemark worker tools.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Jobs the workers gave up on.
    DeadLetters {
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// Print dead letters, oldest first per shard, as JSON lines.
    List {
        #[command(flatten)]
        filter: Filter,
    },
    /// Send the selected dead letters' jobs back to the group that failed them (only that group writes them), and
    /// remove the dead letters.
    Redrive {
        #[command(flatten)]
        which: Which,
        #[command(flatten)]
        filter: Filter,
    },
    /// Remove the selected dead letters for good.
    Delete {
        #[command(flatten)]
        which: Which,
        #[command(flatten)]
        filter: Filter,
    },
}

#[derive(Args)]
struct Filter {
    /// Only dead letters of this consumer group (`events`, `sessions`, `devices`, `users`).
    #[arg(long)]
    group: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct Which {
    /// A dead letter's id, as `list` prints it; repeat for several.
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Every dead letter (of `--group`, up to `--limit`).
    #[arg(long)]
    all: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tidemark_shared::telemetry::init("warn");
    let cli = Cli::parse();
    let config: WorkerConfig = tidemark_shared::config::load()?;
    let keys = Keys::new(config.key_prefix.clone(), config.stream_shards);
    let client = tidemark_shared::redis::client(config.redis_url.expose())?;
    let mut conn = tidemark_shared::redis::connect(&client).await?;
    let Command::DeadLetters { command } = cli.command;
    let selection = |filter: Filter, ids: Vec<String>| Selection { group: filter.group, ids, limit: filter.limit };
    match command {
        DeadLetterCommand::List { filter } => {
            for letter in dead_letters::list(&mut conn, &keys, &selection(filter, Vec::new())).await? {
                println!("{}", letter.to_json());
            }
        }
        DeadLetterCommand::Redrive { which, filter } => {
            for letter in dead_letters::list(&mut conn, &keys, &selection(filter, which.ids)).await? {
                let entry = dead_letters::redrive(&mut conn, &keys, &letter).await?;
                let line = serde_json::json!({
                    "id": letter.id, "shard": letter.shard, "group": letter.group(), "redriven_as": entry,
                });
                println!("{line}");
            }
        }
        DeadLetterCommand::Delete { which, filter } => {
            for letter in dead_letters::list(&mut conn, &keys, &selection(filter, which.ids)).await? {
                dead_letters::delete(&mut conn, &keys, &letter).await?;
                let line = serde_json::json!({ "id": letter.id, "shard": letter.shard, "group": letter.group(), "deleted": true });
                println!("{line}");
            }
        }
    }
    Ok(())
}
