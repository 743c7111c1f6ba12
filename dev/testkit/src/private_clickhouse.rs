//! A ClickHouse server of one test's own, on free ports with its data in a temporary directory, for tests that
//! stop and restart ClickHouse: the shared server of the local stack must never be stopped.

use anyhow::{Context, bail};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tidemark_shared::clickhouse::{ClickHouse, Endpoint};
use tokio::process::{Child, Command};

pub struct PrivateClickHouse {
    dir: PathBuf,
    pub http_port: u16,
    child: Option<Child>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl PrivateClickHouse {
    /// Writes a config with `scripts/clickhouse-config.sh`, starts the server and waits until it answers.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(crate::random_name("tidemark-ch-"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (http_port, tcp_port) = (free_port()?, free_port()?);
        let status = std::process::Command::new("bash")
            .arg(crate::repo_root().join("scripts/clickhouse-config.sh"))
            .arg(&dir)
            .arg(http_port.to_string())
            .arg(tcp_port.to_string())
            .status()
            .context("running scripts/clickhouse-config.sh")?;
        if !status.success() {
            bail!("scripts/clickhouse-config.sh failed");
        }
        let mut server = Self { dir, http_port, child: None };
        server.resume().await?;
        Ok(server)
    }

    /// `http://default@127.0.0.1:PORT/DATABASE`
    pub fn url(&self, database: &str) -> String {
        format!("http://default@127.0.0.1:{}/{database}", self.http_port)
    }

    /// A client for `database`, created and migrated.
    pub async fn migrated(&self, database: &str) -> anyhow::Result<ClickHouse> {
        let ch = ClickHouse::connect(Endpoint::parse(&self.url(database), "")?).await?;
        tidemark_shared::ch_migrations::migrate(&ch).await?;
        Ok(ch)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL: like a crash or a pulled plug; the data directory stays).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same ports and data, and waits until it answers.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = std::fs::File::create(self.dir.join("stdout.log"))?;
        let child = Command::new("clickhouse-server")
            .arg(format!("--config-file={}", self.dir.join("config.xml").display()))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting clickhouse-server (is it installed? `scripts/stack.sh install`)")?;
        self.child = Some(child);
        let endpoint = Endpoint::parse(&self.url("default"), "")?;
        for _ in 0..300 {
            if ClickHouse::connect(endpoint.clone()).await.is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                bail!("clickhouse-server exited with {status}; see {}", self.dir.join("log").display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("clickhouse-server on port {} did not answer within 30 s", self.http_port)
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        // The server may still hold files for a moment; the directory is a temporary one either way.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
