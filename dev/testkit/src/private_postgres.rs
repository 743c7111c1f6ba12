//! A PostgreSQL server of one test's own, on a free port with its cluster in a temporary directory, for tests that
//! kill and restart PostgreSQL: the shared server of the local stack must never be stopped.
//!
//! PostgreSQL refuses to run as root, so the cluster belongs to the `postgres` user and every command runs through
//! `runuser` when the test runs as root (as it does on the project's build machines).

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PrivatePostgres {
    dir: PathBuf,
    pub port: u16,
}

impl PrivatePostgres {
    /// Creates a cluster (`initdb`, trust authentication), starts it and waits until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(crate::random_name("tidemark-pg-"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if is_root() {
            run(Command::new("chown").arg("postgres:").arg(&dir))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let server = Self { dir, port };
        let data = server.data();
        tokio::task::spawn_blocking(move || {
            run(as_postgres(&format!("{BIN}/initdb")).arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]))
        })
        .await??;
        server.resume().await?;
        Ok(server)
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `database` and applies the project's migrations to it.
    pub async fn migrated(&self, database: &str) -> anyhow::Result<sqlx::PgPool> {
        let admin = tidemark_shared::postgres::connect(&self.url("postgres"), 1).await?;
        // The name is the test's own, not input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}"))).execute(&admin).await?;
        admin.close().await;
        let pool = tidemark_shared::postgres::connect(&self.url(database), 4).await?;
        tidemark_shared::postgres::migrate(&pool).await?;
        Ok(pool)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The postmaster's process id, from its pid file, while it runs.
    fn postmaster(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// Kills the server with SIGKILL, like a crash: the postmaster and every process it started (each backend is
    /// its own process group, so a group kill would miss them). The data directory stays, needing crash recovery.
    pub async fn kill(&mut self) {
        let Some(pid) = self.postmaster() else { return };
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let mut kill = Command::new("kill");
        kill.arg("-KILL").arg(pid.to_string()).args(children.split_whitespace());
        let _ = kill.status();
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the server on the same port and data (recovering from a kill) and waits until it accepts
    /// connections.
    pub async fn resume(&self) -> anyhow::Result<()> {
        if self.postmaster().is_some() {
            return Ok(());
        }
        let (data, dir, port) = (self.data(), self.dir.clone(), self.port);
        tokio::task::spawn_blocking(move || {
            let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", dir.display());
            run(as_postgres(&format!("{BIN}/pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-o")
                .arg(options)
                .arg("-l")
                .arg(dir.join("log"))
                .args(["-w", "-t", "30", "start"]))
        })
        .await??;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("PostgreSQL on port {} did not accept connections within 5 s", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if let Some(pid) = self.postmaster() {
            // SIGQUIT: immediate shutdown; the postmaster takes its children with it.
            let _ = Command::new("kill").arg("-QUIT").arg(pid.to_string()).status();
            for _ in 0..100 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
}

/// `program` run as `postgres` when we are root, else as ourselves.
fn as_postgres(program: &str) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", program]);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let output = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !output.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}
