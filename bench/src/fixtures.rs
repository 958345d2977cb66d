//! Base images: a small (64 MiB) and a large (20 GiB) blank qcow2 made with qemu-img (both a
//! few hundred KiB on disk, so uploads are instant and only the virtual size differs), and
//! the project's bootable test guest for the graceful stop.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::cleanup;
use crate::rpc::Client;

/// Image names inside every daemon of the bench.
pub const SMALL: &str = "small";
/// See [`SMALL`].
pub const LARGE: &str = "large";
/// See [`SMALL`].
pub const GUEST: &str = "guest";

/// The bench's base images.
pub struct Fixtures {
    dir: tempfile::TempDir,
    /// 64 MiB virtual.
    pub small: PathBuf,
    /// 20 GiB virtual.
    pub large: PathBuf,
}

impl Fixtures {
    /// Creates the blank bases.
    pub fn create() -> anyhow::Result<Fixtures> {
        let dir = tempfile::Builder::new()
            .prefix("vmd-bench-fixtures-")
            .tempdir()?;
        cleanup::register_dir(dir.path());
        let small = dir.path().join("small.qcow2");
        let large = dir.path().join("large.qcow2");
        blank_qcow2(&small, "64M")?;
        blank_qcow2(&large, "20G")?;
        Ok(Fixtures { dir, small, large })
    }

    /// Imports the bases named in `which` into a daemon; returns the images.
    pub fn import(&self, rpc: &Client, which: &[&str]) -> anyhow::Result<Vec<Value>> {
        which
            .iter()
            .map(|name| {
                let path = match *name {
                    SMALL => self.small.clone(),
                    LARGE => self.large.clone(),
                    GUEST => guest()?,
                    other => bail!("no fixture {other}"),
                };
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                rpc.import(&bytes, name)
            })
            .collect()
    }
}

impl Drop for Fixtures {
    fn drop(&mut self) {
        cleanup::unregister_dir(self.dir.path());
    }
}

fn blank_qcow2(path: &Path, size: &str) -> anyhow::Result<()> {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(size)
        .output()
        .context("running qemu-img (install qemu-utils: scripts/setup.sh)")?;
    if !out.status.success() {
        bail!(
            "qemu-img create {size}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The workspace root (the bench crate's parent).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The test guest (`scripts/build-test-guest.sh`), built (cached) when missing.
pub fn guest() -> anyhow::Result<PathBuf> {
    let path = workspace_root().join(".cache/test-guest/guest.qcow2");
    if path.exists() {
        return Ok(path);
    }
    eprintln!("vmd-bench: building the test guest (scripts/build-test-guest.sh)");
    testkit::guest::build().map_err(anyhow::Error::msg)
}
