use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Read;
use tidemark_app::auth::{keys, roles};
use tidemark_app::goals::{input, store as goal_store};
use tidemark_app::{AppConfig, projects, purge, setup, users};

/// Tidemark app: admin, projects and tokens, analytics API and dashboards.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the app (the default).
    Serve,
    /// Apply PostgreSQL and ClickHouse migrations.
    Migrate,
    /// Manage projects.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Manage accounts (instance admins and project members).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Give an account a role on a project, or take it away.
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// Secret API keys for scripts.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Revoke or rotate ingest tokens; running hubs forget them at once.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Conversion goals of a project.
    Goal {
        #[command(subcommand)]
        command: GoalCommand,
    },
    /// Print every ClickHouse query the services issue, with sample values, as JSON lines.
    SqlCatalog,
}

#[derive(Subcommand)]
enum ProjectCommand {
    /// Create a project and its ingest token; prints one JSON line with `id` and `token`.
    Create {
        #[arg(long)]
        name: String,
        /// Allowed browser origin host; repeat for several.
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// IANA time zone whose midnights start the project's days in every answer.
        #[arg(long, default_value = "UTC")]
        timezone: String,
    },
    /// Print the first project (creating a "Demo" project for localhost when none exists) as one JSON line.
    Demo,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Revoke one token.
    Revoke { token: String },
    /// Issue a new token for a project and revoke its old ones; prints the new token as JSON.
    Rotate {
        #[arg(long)]
        project: uuid::Uuid,
    },
}

#[derive(Subcommand)]
enum GoalCommand {
    /// Add a goal (a custom event name or a page path pattern); prints it as one JSON line.
    Add {
        #[arg(long)]
        project: uuid::Uuid,
        /// A custom event with exactly this name.
        #[arg(long, conflicts_with = "page", required_unless_present = "page")]
        event: Option<String>,
        /// A page path pattern: `*` within one path segment, `**` across segments (`/blog/**`).
        #[arg(long)]
        page: Option<String>,
        /// The name answers use for the goal (default: the event name, or `Visit <pattern>`).
        #[arg(long)]
        name: Option<String>,
    },
    /// Print the project's goals, one JSON line each.
    List {
        #[arg(long)]
        project: uuid::Uuid,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        /// An instance admin: manages accounts and acts as owner of every project.
        #[arg(long)]
        admin: bool,
    },
    /// While no admin exists, print how to create the first one (for `just up`); print nothing once one does.
    FirstRun,
}

#[derive(Subcommand)]
enum MemberCommand {
    /// Give the account a role on the project (replacing its role there); prints one JSON line.
    Add {
        #[arg(long)]
        project: uuid::Uuid,
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = parse_role)]
        role: roles::Role,
    },
    /// Take the account off the project.
    Remove {
        #[arg(long)]
        project: uuid::Uuid,
        #[arg(long)]
        email: String,
    },
}

fn parse_role(raw: &str) -> Result<roles::Role, String> {
    roles::Role::parse(raw).ok_or_else(|| format!("`{raw}` is not a role (owner, editor or viewer)"))
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a secret key for a project; prints one JSON line with `id` and `key` (shown only this once).
    Create {
        #[arg(long)]
        project: uuid::Uuid,
        #[arg(long, value_enum)]
        scope: roles::Scope,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Revoke a key by id; requests with it fail at once.
    Revoke { id: uuid::Uuid },
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tidemark_shared::telemetry::init("info");
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    if let Command::SqlCatalog = command {
        for query in tidemark_shared::queries::CATALOG {
            println!("{}", serde_json::json!({ "name": query.name, "sql": query.with_samples() }));
        }
        for (name, sql) in tidemark_app::query::catalog::catalog() {
            println!("{}", serde_json::json!({ "name": name, "sql": sql.with_literals() }));
        }
        return Ok(());
    }
    let config: AppConfig = tidemark_shared::config::load()?;
    match command {
        Command::Serve => {
            let listener = std::net::TcpListener::bind(&config.app_listen)
                .with_context(|| format!("binding app_listen {}", config.app_listen))?;
            tracing::info!(listen = config.app_listen, "App listening.");
            let app = tidemark_app::startup::build(&config, listener)?;
            announce_first_run(&config).await;
            start_purging(&config)?;
            app.server.await?;
        }
        Command::Migrate => {
            let applied = setup::migrate(&config).await?;
            tracing::info!(clickhouse_applied = applied.len(), "Migrations up to date.");
            let pool = tidemark_shared::postgres::connect(config.postgres_url.expose(), 2).await?;
            let endpoint = tidemark_shared::clickhouse::Endpoint::parse(
                config.clickhouse_url.expose(),
                &config.clickhouse_database,
            )?;
            let ch = tidemark_shared::clickhouse::ClickHouse::connect(endpoint).await?;
            let purged = purge::run_pending(&pool, &ch).await?;
            tracing::info!(purged, "Pending project purges done.");
        }
        Command::Project { command } => {
            let pool = tidemark_shared::postgres::connect(config.postgres_url.expose(), 2).await?;
            let project = match command {
                ProjectCommand::Create { name, domains, timezone } => {
                    projects::create(&pool, &name, &domains, &timezone).await?
                }
                ProjectCommand::Demo => match projects::first(&pool).await? {
                    Some(p) => p,
                    None => projects::create(&pool, "Demo", &["localhost".into(), "127.0.0.1".into()], "UTC").await?,
                },
            };
            println!("{}", serde_json::to_string(&project)?);
        }
        Command::User { command: UserCommand::FirstRun } => {
            let pool = tidemark_shared::postgres::connect(config.postgres_url.expose(), 1).await?;
            if !users::any_admin(&pool).await? {
                println!("{}", first_run_hint(&config));
            }
        }
        Command::User { command: UserCommand::Create { email, admin } } => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password).context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']);
            let pool = tidemark_shared::postgres::connect(config.postgres_url.expose(), 2).await?;
            let id = users::create(&pool, &email, password, admin).await?;
            println!("{}", serde_json::json!({ "id": id, "email": email.trim(), "admin": admin }));
        }
        Command::Member { command } => {
            let pool = tidemark_shared::postgres::connect(config.postgres_url.expose(), 2).await?;
            match command {
                MemberCommand::Add { project, email, role } => {
                    let account = users::id_by_email(&pool, &email).await?;
                    roles::grant(&pool, project, account, role).await?;
                    println!("{}", serde_json::json!({ "project": project, "account": account, "role": role }));
                }
                MemberCommand::Remove { project, email } => {
                    let account = users::id_by_email(&pool, &email).await?;
                    let removed = roles::remove(&pool, project, account).await?;
                    println!("{}", serde_json::json!({ "project": project, "account": account, "removed": removed }));
                }
            }
        }
        Command::Key { command } => {
            let pool = tidemark_shared::postgres::connect(config.postgres_url.expose(), 2).await?;
            match command {
                KeyCommand::Create { project, scope, name } => {
                    let created = keys::create(&pool, project, scope, &name).await?;
                    println!("{}", serde_json::to_string(&created)?);
                }
                KeyCommand::Revoke { id } => {
                    let revoked = keys::revoke(&pool, id).await?;
                    println!("{}", serde_json::json!({ "id": id, "revoked": revoked }));
                }
            }
        }
        Command::Token { command } => {
            let pool = tidemark_shared::postgres::connect(config.postgres_url.expose(), 2).await?;
            let (output, changed) = match command {
                TokenCommand::Revoke { token } => {
                    let live = projects::revoke_token(&pool, &token).await?;
                    (serde_json::json!({ "revoked": live }), if live { vec![token] } else { vec![] })
                }
                TokenCommand::Rotate { project } => {
                    let (token, revoked) = projects::rotate_token(&pool, project).await?;
                    (serde_json::json!({ "project": project, "token": token, "revoked": revoked.len() }), revoked)
                }
            };
            projects::announce_token_changes(config.redis_url.expose(), &config.key_prefix, &changed).await;
            println!("{output}");
        }
        Command::Goal { command } => {
            let pool = tidemark_shared::postgres::connect(config.postgres_url.expose(), 2).await?;
            match command {
                GoalCommand::Add { project, event, page, name } => {
                    projects::get(&pool, project).await?.with_context(|| format!("no project {project}"))?;
                    let (kind, display_name) = input::new_goal(event.as_deref(), page.as_deref(), name.as_deref())
                        .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.problem))?;
                    let goal = goal_store::create(&pool, project, kind, Some(&display_name)).await?;
                    println!("{}", serde_json::to_string(&goal_line(&goal))?);
                }
                GoalCommand::List { project } => {
                    for goal in goal_store::list(&pool, project).await? {
                        println!("{}", serde_json::to_string(&goal_line(&goal))?);
                    }
                }
            }
        }
        Command::SqlCatalog => unreachable!("handled above"),
    }
    Ok(())
}

/// A goal as the API shows it (flat: `goal_type` next to `event_name` or `page_path`).
fn goal_line(goal: &tidemark_app::goals::Goal) -> serde_json::Value {
    let mut line = serde_json::json!({ "id": goal.id, "display_name": goal.display_name });
    if let (Some(line), Ok(serde_json::Value::Object(kind))) = (line.as_object_mut(), serde_json::to_value(&goal.kind))
    {
        line.extend(kind);
    }
    line
}

/// Retries pending project purges in the background (see `purge`); PostgreSQL and ClickHouse are reached lazily.
fn start_purging(config: &AppConfig) -> anyhow::Result<()> {
    let pool = tidemark_shared::postgres::connect_lazy(config.postgres_url.expose(), 2)?;
    let endpoint =
        tidemark_shared::clickhouse::Endpoint::parse(config.clickhouse_url.expose(), &config.clickhouse_database)?;
    let store = std::sync::Arc::new(tidemark_app::analytics_store::AnalyticsStore::new(endpoint));
    tokio::spawn(purge::keep_purging(pool, store));
    Ok(())
}

fn first_run_hint(config: &AppConfig) -> String {
    format!(
        "No admin account yet. Create the first one with `echo 'A LONG PASSWORD' | app user create --email E --admin`, \
         or POST {{\"email\",\"password\"}} as JSON to {}/api/v1/setup (it closes once an admin exists).",
        config.app_public_url.trim_end_matches('/')
    )
}

/// The first-run hint in the log while no admin exists.
async fn announce_first_run(config: &AppConfig) {
    let check = async {
        let pool = tidemark_shared::postgres::connect(config.postgres_url.expose(), 1).await?;
        users::any_admin(&pool).await
    };
    match check.await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("{}", first_run_hint(config)),
        Err(e) => tracing::warn!(error = format!("{e:#}"), "Could not check for an admin account."),
    }
}
