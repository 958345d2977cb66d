//! A thin async wrapper over the `qemu-img` binary. Every call names the format explicitly
//! (`-f`/`-F`/`-O`); nothing is probed. Every call has a timeout.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;

/// Time limit for metadata calls (`info`, `create`).
const QUICK: Duration = Duration::from_secs(30);
/// Time limit for `convert`, which copies data.
const CONVERT: Duration = Duration::from_secs(3600);

/// Failures of qemu-img calls.
#[derive(Debug, thiserror::Error)]
pub enum QemuImgError {
    /// The binary could not be started.
    #[error("cannot run qemu-img")]
    Spawn(#[source] std::io::Error),
    /// qemu-img exited non-zero.
    #[error("qemu-img {verb} failed: {stderr}")]
    Failed {
        /// Sub-command.
        verb: &'static str,
        /// What qemu-img printed on stderr (trimmed).
        stderr: String,
    },
    /// qemu-img did not finish in time.
    #[error("qemu-img {0} timed out")]
    Timeout(&'static str),
    /// `info --output=json` was not understood.
    #[error("cannot parse qemu-img info output")]
    Parse(#[source] serde_json::Error),
}

/// The parts of `qemu-img info --output=json` that vmd checks.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageInfo {
    /// Guest-visible size.
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    /// Set when the image names a backing file.
    #[serde(rename = "backing-filename", default)]
    pub backing_filename: Option<String>,
    /// Set when the image is encrypted.
    #[serde(default)]
    pub encrypted: Option<bool>,
    /// Format-specific details (data file, extents).
    #[serde(rename = "format-specific", default)]
    pub format_specific: Option<serde_json::Value>,
}

/// Runs `qemu-img info -f FORMAT --output=json PATH`.
pub async fn info(format: &str, path: &Path) -> Result<ImageInfo, QemuImgError> {
    let out = run("info", QUICK, |c| {
        c.args(["info", "-U", "-f", format, "--output=json"])
            .arg(path);
    })
    .await?;
    serde_json::from_slice(&out).map_err(QemuImgError::Parse)
}

/// Runs `qemu-img check -f FORMAT PATH`. `Ok(None)` when clean (or only leaked clusters, or
/// the format has no check); `Ok(Some(report))` when qemu-img found corruption.
pub async fn check(format: &str, path: &Path) -> Result<Option<String>, QemuImgError> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["check", "-U", "-f", format]).arg(path);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(QemuImgError::Spawn)?;
    let out = tokio::time::timeout(CONVERT, child.wait_with_output())
        .await
        .map_err(|_| QemuImgError::Timeout("check"))?
        .map_err(QemuImgError::Spawn)?;
    match out.status.code() {
        Some(0 | 3 | 63) => Ok(None),
        _ => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let first = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no details")
                .to_string();
            Ok(Some(first))
        }
    }
}

/// Converts `src` (of `format`) to a standalone qcow2 at `dst`.
pub async fn convert_to_qcow2(format: &str, src: &Path, dst: &Path) -> Result<(), QemuImgError> {
    run("convert", CONVERT, |c| {
        c.args(["convert", "-f", format, "-O", "qcow2", "-o", "compat=1.1"])
            .arg(src)
            .arg(dst);
    })
    .await
    .map(drop)
}

/// Creates a qcow2 overlay at `dst` backed by the qcow2 `base` with virtual size `size_bytes`.
pub async fn create_overlay(base: &Path, dst: &Path, size_bytes: u64) -> Result<(), QemuImgError> {
    run("create", QUICK, |c| {
        c.args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(base)
            .arg(dst)
            .arg(size_bytes.to_string());
    })
    .await
    .map(drop)
}

/// Whether `path` (qcow2) has any allocated data (`qemu-img map`): a blank disk has none.
pub async fn has_data(path: &Path) -> Result<bool, QemuImgError> {
    let out = run("map", QUICK, |c| {
        c.args(["map", "-U", "-f", "qcow2", "--output=json"])
            .arg(path);
    })
    .await?;
    let extents: Vec<serde_json::Value> =
        serde_json::from_slice(&out).map_err(QemuImgError::Parse)?;
    Ok(extents.iter().any(|e| e["data"] == true))
}

/// Creates a blank standalone qcow2 at `dst` of `size_bytes`.
pub async fn create_blank(dst: &Path, size_bytes: u64) -> Result<(), QemuImgError> {
    run("create", QUICK, |c| {
        c.args(["create", "-q", "-f", "qcow2"])
            .arg(dst)
            .arg(size_bytes.to_string());
    })
    .await
    .map(drop)
}

/// The first line of `qemu-img --version`.
pub async fn version() -> Result<String, QemuImgError> {
    let out = run("--version", QUICK, |c| {
        c.arg("--version");
    })
    .await?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

async fn run(
    verb: &'static str,
    limit: Duration,
    args: impl FnOnce(&mut Command),
) -> Result<Vec<u8>, QemuImgError> {
    let mut cmd = Command::new("qemu-img");
    args(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(QemuImgError::Spawn)?;
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| QemuImgError::Timeout(verb))?
        .map_err(QemuImgError::Spawn)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(QemuImgError::Failed { verb, stderr });
    }
    Ok(out.stdout)
}
