//! The migration commands warm templates use: QEMU's device state goes to or comes from a
//! file vmd opened and passed over the socket (`getfd` + `fd:` URI: QEMU 7.2 has no `file:`
//! URI, and its sandbox forbids the `exec:` one), with `x-ignore-shared` so that guest RAM in
//! a shared memory backend stays out of the stream.

use std::os::fd::OwnedFd;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::{Qmp, QmpError, RunState};

/// The name the passed file has in QEMU's monitor while a migration uses it.
const FD_NAME: &str = "vmd-migration";
/// Pause between polls of a migration's progress.
const POLL: Duration = Duration::from_millis(5);

/// How a migration ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationEnd {
    /// It completed.
    Completed,
    /// It failed; QEMU's words.
    Failed(String),
}

#[derive(Deserialize)]
struct MigrateInfo {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, rename = "error-desc")]
    error_desc: Option<String>,
}

impl Qmp {
    /// Leaves RAM in shared memory backends out of migration streams (both ends need it).
    pub async fn ignore_shared_ram(&self) -> Result<(), QmpError> {
        let caps = json!({"capabilities": [{"capability": "x-ignore-shared", "state": true}]});
        self.execute("migrate-set-capabilities", Some(caps))
            .await
            .map(drop)
    }

    /// Starts saving the (paused) guest's state into `file`.
    pub async fn migrate_to(&self, file: OwnedFd) -> Result<(), QmpError> {
        self.give_fd(file).await?;
        let uri = json!({"uri": format!("fd:{FD_NAME}")});
        self.execute("migrate", Some(uri)).await.map(drop)
    }

    /// Starts loading a saved state from `file` into a QEMU started with `-incoming defer`.
    pub async fn migrate_from(&self, file: OwnedFd) -> Result<(), QmpError> {
        self.give_fd(file).await?;
        let uri = json!({"uri": format!("fd:{FD_NAME}")});
        self.execute("migrate-incoming", Some(uri)).await.map(drop)
    }

    async fn give_fd(&self, file: OwnedFd) -> Result<(), QmpError> {
        self.execute_with_fd("getfd", Some(json!({"fdname": FD_NAME})), file)
            .await
            .map(drop)
    }

    /// Waits until the outgoing migration ends, at most `limit` (then it is cancelled).
    pub async fn wait_migrated(&self, limit: Duration) -> Result<MigrationEnd, QmpError> {
        let until = Instant::now() + limit;
        loop {
            let value = self.execute("query-migrate", None).await?;
            let info: MigrateInfo =
                serde_json::from_value(value).map_err(|source| QmpError::Decode {
                    command: "query-migrate".into(),
                    source,
                })?;
            match info.status.as_deref() {
                Some("completed") => return Ok(MigrationEnd::Completed),
                Some("failed" | "cancelled") => {
                    let why = info.error_desc.unwrap_or_else(|| "migration failed".into());
                    return Ok(MigrationEnd::Failed(why));
                }
                _ if Instant::now() >= until => {
                    let _ = self.execute("migrate_cancel", None).await;
                    return Ok(MigrationEnd::Failed(format!(
                        "not saved within {} s",
                        limit.as_secs()
                    )));
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Waits until an incoming migration has left `inmigrate`, at most `limit`; returns the
    /// run state it reached (`paused` when the state loaded).
    pub async fn wait_restored(&self, limit: Duration) -> Result<RunState, QmpError> {
        let until = Instant::now() + limit;
        loop {
            let status = self.query_status().await?.status;
            if status != RunState::Inmigrate || Instant::now() >= until {
                return Ok(status);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
