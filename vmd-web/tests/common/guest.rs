//! The project's test guest (scripts/build-test-guest.sh), built once and cached in `.cache`.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// Deadline for a guest boot under TCG (≈10 s alone; slower when the cores are busy).
pub const BOOT: Duration = Duration::from_secs(180);

/// The disk form of the test guest; it prints `GUEST-READY <hostname>` on its serial console
/// when booted, then runs a shell there.
pub fn guest_qcow2() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = std::process::Command::new("bash")
            .arg(root.join("scripts/build-test-guest.sh"))
            .output()
            .expect("run scripts/build-test-guest.sh");
        assert!(
            out.status.success(),
            "building the test guest failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = root.join(".cache/test-guest/guest.qcow2");
        assert!(path.exists(), "{} missing after build", path.display());
        path
    })
    .clone()
}

/// The installer ISO form of the test guest (its `install-to-disk` copies it to a disk).
pub fn guest_iso() -> PathBuf {
    guest_qcow2().with_file_name("guest.iso")
}
