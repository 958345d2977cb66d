//! Generalize and cloud-init detection on real synthetic disks (mkfs.ext4 -d, sfdisk), run
//! through the real sandbox, checked afterwards by debugfs and e2fsck outside it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::storage::detect::Format;
use crate::storage::{PreparedBase, Storage, StorageError};

#[path = "../../tests/common/guest_disk.rs"]
mod guest_disk;
use guest_disk::{Layout, View, FS_OFFSET, HOSTILE};

/// A state directory the sandbox user can reach, and its storage.
fn storage() -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let storage = Storage::open(&dir.path().join("state"), "nobody").expect("storage");
    (dir, storage)
}

/// A guest disk as a hidden qcow2 in `images/`, as `flatten` leaves it.
fn flattened(storage: &Storage, raw: &Path) -> PreparedBase {
    let tmp_path = storage.hidden_path(storage.images_dir(), "tmp", "gen");
    guest_disk::to_qcow2(raw, &tmp_path);
    PreparedBase {
        tmp_path,
        source_format: Format::Qcow2,
        virtual_size_bytes: 0,
        cloud_init: None,
    }
}

fn offset(layout: Layout) -> u64 {
    match layout {
        Layout::Bare => 0,
        _ => FS_OFFSET,
    }
}

/// Everything in the state directory but the (empty) directories themselves.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        match path.is_dir() {
            true => found.extend(files_under(&path)),
            false => found.push(path.display().to_string()),
        }
    }
    found
}

async fn generalized(layout: Layout) {
    let (dir, storage) = storage();
    let root = guest_disk::guest_tree(dir.path(), true);
    let raw = guest_disk::raw_disk(dir.path(), &root, layout);
    let prepared = flattened(&storage, &raw);
    let report = storage.generalize(&prepared).await.expect("generalize");
    assert_eq!(report.file_systems, 1);
    assert!(report.machine_id);
    assert_eq!(report.ssh_host_keys, 4, "{report:?}");
    assert!(
        report.skipped_names >= 1,
        "the hostile name is reported: {report:?}"
    );
    let mode = std::fs::metadata(&prepared.tmp_path)
        .expect("output")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o444,
        "the output is read-only like every base"
    );
    let view = View::open(&prepared.tmp_path, "qcow2", offset(layout));
    assert!(view.fsck_clean(), "e2fsck -fn finds the result clean");
    let id = view.stat("/etc/machine-id");
    assert!(id.contains("Size: 0"), "machine-id emptied: {id}");
    assert!(
        id.contains("Mode:  0444") && id.contains("User:     0"),
        "mode/owner kept: {id}"
    );
    let ssh = view.names("/etc/ssh");
    assert_eq!(
        ssh,
        [HOSTILE, "sshd_config"],
        "keys gone, the hostile name untouched"
    );
    for gone in [
        "/var/lib/dbus/machine-id",
        "/var/lib/systemd/random-seed",
        "/var/lib/cloud/instance",
        "/var/lib/cloud/instances",
        "/var/lib/cloud/data",
        "/var/log/cloud-init.log",
        "/var/log/cloud-init-output.log",
        "/root/.bash_history",
    ] {
        assert!(!view.exists(gone), "{gone} removed");
    }
    assert_eq!(view.names("/var/lib/cloud"), ["seed"], "seed kept");
    assert!(view.names("/var/log/journal").is_empty(), "journal emptied");
    assert!(
        view.stat("/var/log/wtmp").contains("Size: 0"),
        "wtmp truncated"
    );
    for kept in [
        "/etc/hostname",
        "/var/log/syslog",
        "/usr/bin/cloud-init",
        "/var/log/journal",
    ] {
        assert!(view.exists(kept), "{kept} kept");
    }
}

#[tokio::test]
async fn generalize_resets_identity_on_an_mbr_disk() {
    generalized(Layout::Mbr).await;
}

#[tokio::test]
async fn generalize_resets_identity_on_a_gpt_disk() {
    generalized(Layout::Gpt).await;
}

#[tokio::test]
async fn generalize_resets_identity_on_a_bare_file_system() {
    generalized(Layout::Bare).await;
}

#[tokio::test]
async fn generalize_refuses_a_disk_without_an_ext_root_and_leaves_nothing() {
    let (dir, storage) = storage();
    let raw = dir.path().join("garbage.raw");
    let mut bytes: Vec<u8> = (0..(4u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    bytes[510] = 0x55;
    bytes[511] = 0xaa;
    std::fs::write(&raw, bytes).expect("write");
    let prepared = flattened(&storage, &raw);
    let err = storage
        .generalize(&prepared)
        .await
        .expect_err("no ext root");
    assert!(
        matches!(err, StorageError::GuestFs(GuestFsError::NoRootFs)),
        "{err:?}"
    );
    crate::storage::remove_quietly(&prepared.tmp_path);
    let left = files_under(&dir.path().join("state"));
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}

#[tokio::test]
async fn an_ext_file_system_without_etc_is_not_a_root() {
    let (dir, storage) = storage();
    let root = dir.path().join("data");
    std::fs::create_dir_all(root.join("srv")).expect("mkdir");
    let raw = guest_disk::raw_disk(dir.path(), &root, Layout::Mbr);
    let prepared = flattened(&storage, &raw);
    let err = storage.generalize(&prepared).await.expect_err("no /etc");
    assert!(
        matches!(err, StorageError::GuestFs(GuestFsError::NoRootFs)),
        "{err:?}"
    );
}

async fn detected(cloud_init: bool, layout: Layout) -> Option<bool> {
    let (dir, storage) = storage();
    let root = guest_disk::guest_tree(dir.path(), cloud_init);
    let raw = guest_disk::raw_disk(dir.path(), &root, layout);
    let upload = storage.uploads_dir().join("upload");
    std::fs::copy(&raw, &upload).expect("stage");
    let prepared = storage
        .prepare_base(&upload, "img", true)
        .await
        .expect("import");
    let not_asked = {
        let upload = storage.uploads_dir().join("again");
        std::fs::copy(&raw, &upload).expect("stage");
        storage
            .prepare_base(&upload, "img2", false)
            .await
            .expect("import")
    };
    assert_eq!(not_asked.cloud_init, None, "not looked for when not asked");
    prepared.cloud_init
}

#[tokio::test]
async fn import_detects_cloud_init() {
    assert_eq!(detected(true, Layout::Gpt).await, Some(true));
}

#[tokio::test]
async fn import_detects_no_cloud_init() {
    assert_eq!(detected(false, Layout::Mbr).await, Some(false));
}

#[test]
fn ls_lines_with_unsafe_names_are_skipped() {
    let out = "/2/040755/0/0/.//\n/2/040755/0/0/..//\n/12/100644/0/0/ok.name_1/5/\n\
               /13/100644/0/0/a b/1/\n/14/100644/0/0/x\n\"; rm y/1/\n/15/120777/0/0/link/7/\n\
               /16/040700/0/0/dir//\n/17/100644/0/0/-rf/1/\n";
    let listing = parse_ls(out);
    let names: Vec<&str> = listing.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["ok.name_1", "link", "dir"]);
    assert_eq!(listing.entries[0].size, 5);
    assert_eq!(listing.entries[1].kind, Kind::Symlink);
    assert_eq!(listing.entries[2].kind, Kind::Dir);
    assert_eq!(listing.skipped, 4);
}

#[test]
fn safe_names() {
    for ok in [
        "machine-id",
        "system@0a-1.journal~",
        "a+b",
        "ssh_host_ed25519_key.pub",
    ] {
        assert!(is_safe_name(ok), "{ok}");
    }
    for bad in [
        "", ".", "..", "-rf", "a b", "a\nb", "a\"b", "a;b", "a$b", "é", "a/b", "#x",
    ] {
        assert!(!is_safe_name(bad), "{bad:?}");
    }
}

/// debugfs can copy a host file into an image (`write`); inside the sandbox there is none to
/// copy. The control shows the same script working outside.
#[tokio::test]
async fn debugfs_in_the_sandbox_cannot_read_host_files() {
    use crate::storage::qemu_img;
    use crate::storage::sandbox::INPUT;
    let (dir, storage) = storage();
    let root = guest_disk::guest_tree(dir.path(), false);
    let fs = guest_disk::raw_disk(dir.path(), &root, Layout::Bare);
    let control = dir.path().join("control.raw");
    std::fs::copy(&fs, &control).expect("copy");
    let script = "write /etc/passwd stolen\n";
    let outside = std::process::Command::new("debugfs")
        .args(["-w", "-R", script.trim()])
        .arg(&control)
        .output()
        .expect("debugfs");
    assert!(outside.status.success());
    assert!(
        View::open(&control, "raw", 0).exists("/stolen"),
        "control: debugfs copies host files"
    );
    let upload = storage.uploads_dir().join("fs");
    std::fs::copy(&fs, &upload).expect("stage");
    let job = storage.new_job(&upload).await.expect("job");
    qemu_img::to_raw_untrusted(&job, "raw", INPUT, RAW)
        .await
        .expect("raw");
    let out = run_tool(
        &job,
        "debugfs",
        &["-w", "-f", "-", RAW],
        Some(script.into()),
        QUICK,
    )
    .await
    .expect("debugfs");
    assert!(
        out.stderr.contains("/etc/passwd"),
        "debugfs found no host file: {}",
        out.stderr
    );
    qemu_img::convert_untrusted(&job, "raw", RAW)
        .await
        .expect("qcow2");
    let dst = dir.path().join("after.qcow2");
    job.take_output(&dst).expect("take");
    assert!(
        !View::open(&dst, "qcow2", 0).exists("/stolen"),
        "nothing copied in the sandbox"
    );
}
