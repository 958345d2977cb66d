//! The project's tiny test guest (`scripts/build-test-guest.sh`): built once, cached in
//! `.cache/test-guest`, and rebuilt only when the script or its inputs change.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Deadline for a guest boot under TCG (≈10 s alone; many at once on 2 cores take longer).
pub const BOOT: Duration = Duration::from_secs(180);

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the (cached) build and returns the disk form's path, or why it failed.
pub fn build() -> Result<PathBuf, String> {
    run_builder(
        "build-test-guest.sh",
        ".cache/test-guest/guest.qcow2",
        "the test guest",
    )
}

/// Runs `scripts/SCRIPT` (a cached guest builder) and returns `OUTPUT` (relative to the
/// workspace root), or why it failed; `what` names the guest in errors.
pub(crate) fn run_builder(script: &str, output: &str, what: &str) -> Result<PathBuf, String> {
    let root = workspace_root();
    let out = Command::new("bash")
        .arg(root.join("scripts").join(script))
        .output()
        .map_err(|e| format!("cannot run scripts/{script}: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("building {what} failed:\n{stderr}"));
    }
    let path = root.join(output);
    match path.exists() {
        true => Ok(path),
        false => Err(format!("{} missing after the build", path.display())),
    }
}

/// The disk form of the test guest (built on first use; panics if that fails). It prints
/// `GUEST-READY <hostname>` on its serial console once booted, then runs a shell there.
pub fn guest_qcow2() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build().unwrap_or_else(|e| panic!("{e}")))
        .clone()
}

/// The ISO form of the test guest (with its `install-to-disk` installer).
pub fn guest_iso() -> PathBuf {
    guest_qcow2().with_file_name("guest.iso")
}
