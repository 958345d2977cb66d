//! Synthetic guest disks for the generalize and cloud-init tests: a directory tree made into
//! an ext4 file system by `mkfs.ext4 -d`, placed in an MBR or GPT partition by `sfdisk` and
//! `dd` (or left bare), and `debugfs` read-only views of the result. No mounts, no loops.
//! Shared by the unit tests (`storage/guest_fs_tests.rs`) and the daemon tests.
#![allow(dead_code)]

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A name no debugfs command may carry: newline, quote, `;`, `$( )`, space.
pub const HOSTILE: &str = "ssh_host_x\n\"; rm -rf $(id) _key";

/// Where the ext4 file system starts in a partitioned disk (1 MiB).
pub const FS_OFFSET: u64 = 1 << 20;
const FS_MIB: u64 = 48;

/// How the file system sits in the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// MBR, one primary partition at 1 MiB.
    Mbr,
    /// GPT, one partition at 1 MiB.
    Gpt,
    /// No partition table: the file system is the whole disk.
    Bare,
}

fn run(cmd: &mut Command) {
    let out = cmd.stderr(Stdio::piped()).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write(root: &Path, rel: &str, body: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, body).expect("write");
}

/// A root tree with identity, cloud-init state and logs (`cloud_init`: cloud-init installed).
pub fn guest_tree(dir: &Path, cloud_init: bool) -> PathBuf {
    let root = dir.join("root");
    write(
        &root,
        "etc/machine-id",
        "0123456789abcdef0123456789abcdef\n",
    );
    std::fs::set_permissions(
        root.join("etc/machine-id"),
        PermissionsExt::from_mode(0o444),
    )
    .expect("chmod");
    write(&root, "etc/hostname", "golden\n");
    write(&root, "etc/ssh/sshd_config", "PermitRootLogin no\n");
    write(&root, "etc/ssh/ssh_host_ed25519_key", "PRIVATE\n");
    write(&root, "etc/ssh/ssh_host_ed25519_key.pub", "PUBLIC\n");
    write(&root, "etc/ssh/ssh_host_rsa_key", "PRIVATE\n");
    write(&root, "etc/ssh/ssh_host_rsa_key.pub", "PUBLIC\n");
    write(&root, &format!("etc/ssh/{HOSTILE}"), "hostile\n");
    write(
        &root,
        "var/lib/dbus/machine-id",
        "0123456789abcdef0123456789abcdef\n",
    );
    write(&root, "var/lib/systemd/random-seed", "seed");
    write(
        &root,
        "var/lib/cloud/instances/iid-1/sem/config_ssh",
        "done\n",
    );
    write(
        &root,
        "var/lib/cloud/instances/iid-1/user-data.txt",
        "#cloud-config\n",
    );
    write(&root, "var/lib/cloud/data/instance-id", "iid-1\n");
    write(
        &root,
        "var/lib/cloud/seed/nocloud/meta-data",
        "instance-id: keep\n",
    );
    symlink(
        "/var/lib/cloud/instances/iid-1",
        root.join("var/lib/cloud/instance"),
    )
    .expect("ln");
    write(&root, "var/log/journal/0123abcd/system.journal", "journal");
    write(
        &root,
        "var/log/journal/0123abcd/system@00a-01.journal~",
        "journal",
    );
    write(&root, "var/log/cloud-init.log", "log\n");
    write(&root, "var/log/cloud-init-output.log", "log\n");
    write(&root, "var/log/wtmp", "records");
    write(&root, "var/log/syslog", "kept\n");
    write(&root, "root/.bash_history", "secret\n");
    if cloud_init {
        write(&root, "usr/bin/cloud-init", "#!/usr/bin/python3\n");
        write(&root, "etc/cloud/cloud.cfg", "datasource_list: [NoCloud]\n");
    }
    root
}

/// A raw disk at `dir/disk.raw` holding an ext4 file system made from `root`.
pub fn raw_disk(dir: &Path, root: &Path, layout: Layout) -> PathBuf {
    let fs = dir.join("fs.img");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "root", "-d"])
        .arg(root)
        .arg(&fs)
        .arg(format!("{FS_MIB}M")));
    if layout == Layout::Bare {
        return fs;
    }
    let disk = dir.join("disk.raw");
    let file = std::fs::File::create(&disk).expect("create disk");
    file.set_len((FS_MIB + 2) << 20).expect("size disk");
    let label = match layout {
        Layout::Gpt => "gpt",
        _ => "dos",
    };
    let table = format!("label: {label}\nstart=2048, size={}\n", FS_MIB << 11);
    partition(&disk, &table);
    run(Command::new("dd")
        .arg(format!("if={}", fs.display()))
        .arg(format!("of={}", disk.display()))
        .args(["bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"]));
    disk
}

/// Writes the partition table `table` (an sfdisk script) on the disk file `disk`.
pub fn partition(disk: &Path, table: &str) {
    let mut sfdisk = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(disk)
        .stdin(Stdio::piped())
        .spawn()
        .expect("sfdisk");
    std::io::Write::write_all(sfdisk.stdin.as_mut().expect("stdin"), table.as_bytes())
        .expect("table");
    assert!(sfdisk.wait().expect("wait").success(), "sfdisk");
}

/// `raw` converted to a standalone qcow2 at `dst`.
pub fn to_qcow2(raw: &Path, dst: &Path) {
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(raw)
        .arg(dst));
}

/// A read-only view of the file system of a qcow2 (or raw) disk, by a raw copy and debugfs.
pub struct View {
    _dir: tempfile::TempDir,
    spec: String,
    fs: PathBuf,
}

impl View {
    /// Opens `image` (of `format`), the file system at `offset`.
    pub fn open(image: &Path, format: &str, offset: u64) -> View {
        let dir = tempfile::tempdir().expect("tmp");
        let raw = dir.path().join("view.raw");
        run(Command::new("qemu-img")
            .args(["convert", "-f", format, "-O", "raw"])
            .arg(image)
            .arg(&raw));
        let spec = format!("{}?offset={offset}", raw.display());
        View {
            _dir: dir,
            spec,
            fs: raw,
        }
    }

    /// debugfs `-R COMMAND` stdout.
    pub fn debugfs(&self, command: &str) -> String {
        let out = Command::new("debugfs")
            .args(["-R", command, &self.spec])
            .output()
            .expect("debugfs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether `path` exists.
    pub fn exists(&self, path: &str) -> bool {
        self.debugfs(&format!("stat {path}")).starts_with("Inode:")
    }

    /// The names in directory `path` (raw `ls -p` lines' name fields, `.`/`..` left out).
    pub fn names(&self, path: &str) -> Vec<String> {
        self.debugfs(&format!("ls -p {path}"))
            .split("\n/")
            .filter_map(|l| {
                l.trim_start_matches('/')
                    .split('/')
                    .nth(4)
                    .map(str::to_string)
            })
            .filter(|n| n != "." && n != "..")
            .collect()
    }

    /// `stat` output of `path`.
    pub fn stat(&self, path: &str) -> String {
        self.debugfs(&format!("stat {path}"))
    }

    /// `e2fsck -fn` on the file system: whether it is clean.
    pub fn fsck_clean(&self) -> bool {
        let _ = &self.fs;
        Command::new("e2fsck")
            .args(["-f", "-n", &self.spec])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("e2fsck")
            .success()
    }
}
