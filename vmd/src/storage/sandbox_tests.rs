//! The sandbox proven with the parser bypassed: qemu-img inside it cannot open a host file that
//! the same qemu-img outside it reads, and it still reads and converts what it is given.

use std::os::unix::fs::MetadataExt;
use std::process::Command as StdCommand;

use super::*;
use crate::storage::qemu_img::{self, QemuImgError};

/// A capacity-0 sparse VMDK whose embedded descriptor has a FLAT extent on `target`: the
/// attack that the VMDK parser refuses before qemu-img would see it.
fn attack_vmdk(target: &str) -> Vec<u8> {
    let mut b = b"KDMV".to_vec();
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&3u32.to_le_bytes());
    for v in [0u64, 128, 1, 20] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&512u32.to_le_bytes());
    for v in [0u64, 0, 128] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(b"\0\n \r\n\0\0");
    b.resize(512, 0);
    let desc = format!("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 2 FLAT \"{target}\" 0\n");
    b.extend_from_slice(desc.as_bytes());
    b.resize(21 * 512, 0);
    b
}

/// A sandbox whose work root the unprivileged user can reach (tempdirs are 0700).
fn sandbox() -> (tempfile::TempDir, Sandbox) {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(dir.path(), Permissions::from_mode(0o711)).expect("chmod");
    let sandbox = Sandbox::open(dir.path().join("sandbox"), "nobody").expect("sandbox");
    (dir, sandbox)
}

fn upload(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write upload");
    path
}

#[tokio::test]
async fn qemu_img_in_the_sandbox_cannot_open_host_files() {
    let (dir, sandbox) = sandbox();
    let evil = upload(dir.path(), "evil.vmdk", &attack_vmdk("/etc/passwd"));
    let outside = StdCommand::new("qemu-img")
        .args(["info", "-U", "-f", "vmdk", "--output=json"])
        .arg(&evil)
        .output()
        .expect("qemu-img (run scripts/setup.sh)");
    assert!(
        outside.status.success()
            && String::from_utf8_lossy(&outside.stdout).contains("/etc/passwd"),
        "control: unsandboxed qemu-img must follow the extent to /etc/passwd"
    );
    let job = sandbox.job(&evil).expect("job");
    assert!(!evil.exists(), "the upload moved into the job");
    for verb in ["info", "convert"] {
        let result = match verb {
            "info" => qemu_img::info_untrusted(&job, "vmdk", INPUT)
                .await
                .map(drop),
            _ => qemu_img::convert_untrusted(&job, "vmdk", INPUT).await,
        };
        assert!(
            matches!(result, Err(QemuImgError::Unreadable { verb: v }) if v == verb),
            "{verb}: sandboxed qemu-img must fail to open the extent, got {result:?}"
        );
    }
    let out = job.dir.join("out/image.qcow2");
    assert!(!out.exists(), "no output from a failed conversion");
}

#[tokio::test]
async fn sandboxed_qemu_img_reads_and_converts_its_input() {
    let (dir, sandbox) = sandbox();
    let mut disk = vec![0u8; 1 << 20];
    disk[510..512].copy_from_slice(&[0x55, 0xaa]);
    let job = sandbox
        .job(&upload(dir.path(), "disk.img", &disk))
        .expect("job");
    let info = qemu_img::info_untrusted(&job, "raw", INPUT)
        .await
        .expect("info");
    assert_eq!(info.virtual_size, 1 << 20);
    qemu_img::check_untrusted(&job, "raw", INPUT)
        .await
        .expect("check");
    qemu_img::convert_untrusted(&job, "raw", INPUT)
        .await
        .expect("convert");
    let dst = dir.path().join("base.qcow2");
    job.take_output(&dst).expect("take output");
    let meta = std::fs::metadata(&dst).expect("output");
    assert_eq!(meta.mode() & 0o777, 0o444, "read-only");
    assert_eq!(
        meta.uid(),
        nix::unistd::getuid().as_raw(),
        "given back to vmd"
    );
    let job_dir = job.dir.clone();
    drop(job);
    assert!(!job_dir.exists(), "job directory removed");
}

#[tokio::test]
async fn the_sandbox_user_and_namespaces_apply() {
    let (dir, sandbox) = sandbox();
    let job = sandbox.job(&upload(dir.path(), "x", b"x")).expect("job");
    let mut cmd = job.qemu_img().expect("command");
    // The same bwrap set-up, running `qemu-img --version` to prove it starts, while the
    // argv is checked for every isolation option.
    cmd.arg("--version");
    let std_cmd = cmd.as_std();
    let args: Vec<String> = std_cmd
        .get_args()
        .map(|a| a.to_string_lossy().into())
        .collect();
    for flag in [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} missing: {args:?}");
    }
    assert!(
        args.windows(2).any(|w| w == ["--cap-drop", "ALL"]),
        "{args:?}"
    );
    assert!(
        !args.iter().any(|a| a == "/etc" || a == "/home"),
        "{args:?}"
    );
    let out = cmd.output().await.expect("bwrap runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if nix::unistd::getuid().is_root() {
        let nobody = resolve_user("nobody").expect("nobody exists");
        assert_eq!(sandbox.user(), Some(nobody));
        let input = std::fs::metadata(job.dir.join("in")).expect("input");
        assert_eq!((input.uid(), input.mode() & 0o777), (nobody.uid, 0o400));
    }
}

#[test]
fn root_and_unknown_users_are_refused() {
    assert!(matches!(
        resolve_user("root"),
        Err(SandboxError::Privileged(_))
    ));
    assert!(matches!(
        resolve_user("no-such-user-vmd"),
        Err(SandboxError::UnknownUser(_))
    ));
}
