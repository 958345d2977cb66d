//! A thin async wrapper over the `qemu-img` binary. Every call names the format explicitly
//! (`-f`/`-F`/`-O`); nothing is probed. Every call has a timeout.
//!
//! Calls on uploaded (untrusted) files (`*_untrusted`) run inside a [`Job`]'s sandbox, name
//! format and protocol drivers with `--image-opts`, and never pass qemu-img's words on to the
//! client: they go to the daemon log, and the error says only which step failed.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;

use super::sandbox::{Job, SandboxError, OUTPUT};

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
    /// qemu-img could not read an uploaded image; what it said is in the daemon log only.
    #[error("qemu-img {verb} cannot read the image: it is corrupt or uses unsupported features")]
    Unreadable {
        /// Sub-command.
        verb: &'static str,
    },
    /// `qemu-img check` found corruption in an uploaded image.
    #[error("image is corrupt (qemu-img check found errors)")]
    Corrupt,
    /// The sandbox could not run qemu-img.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
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

/// Sets the virtual size of the qcow2 `path`, one of vmd's own disks (its backing, if any,
/// is a trusted base), to `size_bytes`. Without `shrink` qemu-img refuses a smaller size;
/// with it a shrink is allowed (only used to undo a grow nothing has written into yet).
pub async fn resize(path: &Path, size_bytes: u64, shrink: bool) -> Result<(), QemuImgError> {
    run("resize", QUICK, |c| {
        c.args(["resize", "-q", "-f", "qcow2"]);
        if shrink {
            c.arg("--shrink");
        }
        c.arg(path).arg(size_bytes.to_string());
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

/// `--image-opts` for a file inside the sandbox: format and protocol drivers both explicit.
fn image_opts(format: &str, path: &str) -> String {
    format!("driver={format},file.driver=file,file.filename={path}")
}

/// `qemu-img info` of `path` (of `format`) inside the sandbox.
pub async fn info_untrusted(
    job: &Job,
    format: &str,
    path: &str,
) -> Result<ImageInfo, QemuImgError> {
    let mut cmd = job.qemu_img()?;
    cmd.args(["info", "-U", "--output=json", "--image-opts"])
        .arg(image_opts(format, path));
    let out = output_untrusted("info", QUICK, cmd).await?;
    if !out.status.success() {
        return Err(refused("info", &out));
    }
    serde_json::from_slice(&out.stdout).map_err(QemuImgError::Parse)
}

/// `qemu-img check` of `path` inside the sandbox: clean, only leaked clusters, or a format
/// without checks pass; corruption is [`QemuImgError::Corrupt`].
pub async fn check_untrusted(job: &Job, format: &str, path: &str) -> Result<(), QemuImgError> {
    let mut cmd = job.qemu_img()?;
    cmd.args(["check", "-U", "--image-opts"])
        .arg(image_opts(format, path));
    let out = output_untrusted("check", CONVERT, cmd).await?;
    match out.status.code() {
        Some(0 | 3 | 63) => Ok(()),
        Some(2) => {
            refused("check", &out);
            Err(QemuImgError::Corrupt)
        }
        _ => Err(refused("check", &out)),
    }
}

/// Converts `path` (of `format`) inside the sandbox to a standalone qcow2 at [`OUTPUT`].
pub async fn convert_untrusted(job: &Job, format: &str, path: &str) -> Result<(), QemuImgError> {
    let mut cmd = job.qemu_img()?;
    cmd.args(["convert", "--image-opts"])
        .arg(image_opts(format, path))
        .args(["-O", "qcow2", "-o", "compat=1.1", OUTPUT]);
    let out = output_untrusted("convert", CONVERT, cmd).await?;
    match out.status.success() {
        true => Ok(()),
        false => Err(refused("convert", &out)),
    }
}

/// Converts `path` (of `format`) inside the sandbox to a sparse raw file at `raw` (a path
/// inside [`super::sandbox::OUTPUT_DIR`]), for the file-system tools of [`super::guest_fs`].
pub async fn to_raw_untrusted(
    job: &Job,
    format: &str,
    path: &str,
    raw: &str,
) -> Result<(), QemuImgError> {
    let mut cmd = job.qemu_img()?;
    cmd.args(["convert", "--image-opts"])
        .arg(image_opts(format, path))
        .args(["-O", "raw", raw]);
    let out = output_untrusted("convert", CONVERT, cmd).await?;
    match out.status.success() {
        true => Ok(()),
        false => Err(refused("convert", &out)),
    }
}

/// Logs what qemu-img said about an upload; the client gets only [`QemuImgError::Unreadable`].
/// A refused upload is the client's mistake (debug); a failed conversion is vmd's (warn).
fn refused(verb: &'static str, out: &Output) -> QemuImgError {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    match verb {
        "convert" => {
            tracing::warn!(verb, status = %out.status, stderr, "qemu-img failed on an uploaded image")
        }
        _ => {
            tracing::debug!(verb, status = %out.status, stderr, "qemu-img refused an uploaded image")
        }
    }
    QemuImgError::Unreadable { verb }
}

/// Runs a sandboxed command; bwrap's own failures (`bwrap: …`) become [`SandboxError`]s.
async fn output_untrusted(
    verb: &'static str,
    limit: Duration,
    mut cmd: Command,
) -> Result<Output, QemuImgError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => QemuImgError::Sandbox(SandboxError::Missing),
        _ => QemuImgError::Spawn(e),
    })?;
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| QemuImgError::Timeout(verb))?
        .map_err(QemuImgError::Spawn)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.starts_with("bwrap:") {
        let first = stderr.lines().next().unwrap_or_default().to_string();
        return Err(SandboxError::Setup(first).into());
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resize_grows_refuses_a_shrink_and_undoes_with_shrink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().join("base.qcow2");
        let disk = dir.path().join("disk.qcow2");
        create_blank(&base, 1 << 20).await.expect("base");
        create_overlay(&base, &disk, 1 << 20)
            .await
            .expect("overlay");
        let size = |p: std::path::PathBuf| async move {
            info("qcow2", &p).await.expect("info").virtual_size
        };
        resize(&disk, 3 << 20, false).await.expect("grow");
        assert_eq!(size(disk.clone()).await, 3 << 20);
        let err = resize(&disk, 2 << 20, false)
            .await
            .expect_err("shrink refused");
        assert!(
            matches!(err, QemuImgError::Failed { verb: "resize", .. }),
            "{err}"
        );
        assert_eq!(size(disk.clone()).await, 3 << 20);
        resize(&disk, 1 << 20, true).await.expect("undo");
        assert_eq!(size(disk.clone()).await, 1 << 20);
        assert_eq!(size(base).await, 1 << 20, "the base is untouched");
    }
}
