//! The project's cloud test guest (`scripts/build-cloud-guest.sh`): a real Debian 12 with
//! cloud-init (NoCloud), qemu-guest-agent and OpenSSH, built with mmdebstrap once, cached in
//! `.cache/cloud-guest`, and rebuilt only when the script or `scripts/cloud-guest/*` change.
//! See docs/testing.md ("The cloud test guest") for what it contains and how to boot it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::guest::workspace_root;

/// Deadline for a cloud guest's first boot to answer SSH under TCG: ≈60 s alone, ≈110 s for two
/// at once on 2 loaded cores; cloud-init's first boot (host keys, growpart) is the slow one.
pub const BOOT: Duration = Duration::from_secs(400);

/// Runs the (cached) build and returns the disk's path, or why it failed. The first build
/// takes about 2 minutes (mmdebstrap) and needs root and Debian's apt repositories.
pub fn build() -> Result<PathBuf, String> {
    let root = workspace_root();
    let out = Command::new("bash")
        .arg(root.join("scripts/build-cloud-guest.sh"))
        .output()
        .map_err(|e| format!("cannot run scripts/build-cloud-guest.sh: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("building the cloud test guest failed:\n{stderr}"));
    }
    let path = root.join(".cache/cloud-guest/debian12.qcow2");
    match path.exists() {
        true => Ok(path),
        false => Err(format!("{} missing after the build", path.display())),
    }
}

/// The cloud guest's disk (built on first use; panics with the build's stderr if that fails):
/// 2 GiB virtual, MBR, root ext4 last (grown by cloud-init to the disk's size), no users, no
/// SSH host keys and an empty /etc/machine-id until cloud-init's first boot. Use it as the
/// read-only backing file of an overlay, never directly.
pub fn debian12_qcow2() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build().unwrap_or_else(|e| panic!("{e}")))
        .clone()
}
