//! The project's cloud test guest (`scripts/build-cloud-guest.sh`): a real Debian 12 with
//! cloud-init (NoCloud), qemu-guest-agent and OpenSSH, built with mmdebstrap once, cached in
//! `.cache/cloud-guest`, and rebuilt only when the script or `scripts/cloud-guest/*` change.
//! See docs/testing.md ("The cloud test guest") for what it contains and how to boot it.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::guest::run_builder;

/// Deadline for a cloud guest's first boot to answer SSH under TCG: ≈60 s alone, ≈110 s for two
/// at once on 2 loaded cores; cloud-init's first boot (host keys, growpart) is the slow one.
pub const BOOT: Duration = Duration::from_secs(400);

/// Runs the (cached) build and returns the disk's path, or why it failed. The first build
/// takes about 2 minutes (mmdebstrap) and needs root and Debian's apt repositories.
pub fn build() -> Result<PathBuf, String> {
    run_builder(
        "build-cloud-guest.sh",
        ".cache/cloud-guest/debian12.qcow2",
        "the cloud test guest",
    )
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
