//! Generalizing a published copy and detecting cloud-init, offline, on the file systems of an
//! image (through [`super::guest_fs`], inside the image sandbox).
//!
//! # What generalize resets (on every ext2/3/4 file system that has `/etc`)
//! - `/etc/machine-id`: emptied (blocks punched, size 0; inode, mode and owner kept), so
//!   systemd makes a new one at first boot;
//! - `/var/lib/dbus/machine-id`: removed when it is a regular file (not a symlink);
//! - `/etc/ssh/ssh_host_*_key` and `ssh_host_*_key.pub`: removed;
//! - `/var/lib/cloud/*` except `seed/` (instance symlink, `instances/`, `data/`, `sem/`, …),
//!   as `cloud-init clean` does: removed recursively;
//! - `/var/lib/systemd/random-seed`: removed;
//! - `/var/log/journal/*`: removed recursively (the directory itself stays);
//! - `/var/log/cloud-init*.log`: removed; `/var/log/wtmp`, `btmp`, `lastlog`: truncated;
//! - root's shell and tool histories ([`HISTORIES`]) in `/root`: removed.
//!
//! Before: `e2fsck -E journal_only` replays the journal of a VM that was not shut down
//! cleanly. After: `e2fsck -fy`. Names outside [`is_safe_name`] are left and counted.

use std::time::Instant;

use super::guest_fs::{self, is_safe_name, ExtFs, GuestFsError, Kind, Listing, RAW, RAW_NAME};
use super::import::{check_info, take_output};
use super::qemu_img;
use super::sandbox::{Job, INPUT, OUTPUT};
use super::{PreparedBase, Storage, StorageError};

/// Files of root's home removed by generalize.
pub const HISTORIES: &[&str] = &[
    ".bash_history",
    ".zsh_history",
    ".ash_history",
    ".sh_history",
    ".python_history",
    ".lesshst",
    ".viminfo",
];
/// At most this many entries are removed under one tree.
const MAX_ENTRIES: usize = 100_000;
/// At most this deep below a removed tree.
const MAX_DEPTH: usize = 16;
/// Most directories listed (one sandboxed debugfs run each) under one cleared directory.
const MAX_LISTINGS: usize = 5_000;

/// What generalize did, summed over the file systems.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// File systems generalized.
    pub file_systems: usize,
    /// Whether a machine-id was found (and emptied, if it was not yet).
    pub machine_id: bool,
    /// SSH host key files removed (private and public).
    pub ssh_host_keys: usize,
    /// Entries removed under `/var/lib/cloud`.
    pub cloud_entries: usize,
    /// Log files removed or truncated (journal entries included).
    pub logs: usize,
    /// Entries left alone because their names are outside the safe set.
    pub skipped_names: usize,
    /// `authorized_keys` files removed (root's and those under `/home`).
    pub authorized_keys: usize,
}

impl Report {
    /// The sentence of the publish event.
    pub fn summary(&self) -> String {
        let id = match self.machine_id {
            true => "machine-id",
            false => "no machine-id found",
        };
        let mut s = format!(
            "generalized ({id}, {} SSH host keys, {} authorized_keys files, cloud-init state, logs reset)",
            self.ssh_host_keys, self.authorized_keys
        );
        if self.skipped_names > 0 {
            s.push_str(&format!(
                "; {} entries with unusual names left",
                self.skipped_names
            ));
        }
        s
    }
}

impl Storage {
    /// Generalizes the flattened copy `prepared` in place (it is moved into a sandbox job,
    /// changed there and taken back to the same path). On error the copy is gone.
    pub async fn generalize(&self, prepared: &PreparedBase) -> Result<Report, StorageError> {
        let started = Instant::now();
        let job = self.new_job(&prepared.tmp_path).await?;
        qemu_img::to_raw_untrusted(&job, "qcow2", INPUT, RAW).await?;
        let report = generalize_raw(&job).await?;
        qemu_img::convert_untrusted(&job, "raw", RAW).await?;
        job.remove_output(RAW_NAME);
        check_info(&qemu_img::info_untrusted(&job, "qcow2", OUTPUT).await?)?;
        take_output(job, prepared.tmp_path.clone()).await?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            ?report,
            "image generalized"
        );
        Ok(report)
    }

    /// Whether the converted upload in `job` ([`OUTPUT`]) has cloud-init: an ext file system
    /// with `/usr/bin/cloud-init` or `/etc/cloud/cloud.cfg`.
    pub(super) async fn detect_cloud_init(&self, job: &Job) -> Result<bool, StorageError> {
        let started = Instant::now();
        qemu_img::to_raw_untrusted(job, "qcow2", OUTPUT, RAW).await?;
        let found = has_cloud_init(job).await;
        job.remove_output(RAW_NAME);
        let found = found?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            found,
            "cloud-init detection"
        );
        Ok(found)
    }
}

async fn has_cloud_init(job: &Job) -> Result<bool, GuestFsError> {
    for offset in guest_fs::partition_offsets(job).await? {
        let Some(fs) = ExtFs::open(job, offset).await? else {
            continue;
        };
        for path in ["/usr/bin/cloud-init", "/etc/cloud/cloud.cfg"] {
            if fs.exists(path).await? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Generalizes every ext root file system of [`RAW`]; [`GuestFsError::NoRootFs`] if none.
pub async fn generalize_raw(job: &Job) -> Result<Report, GuestFsError> {
    let mut report = Report::default();
    for offset in guest_fs::partition_offsets(job).await? {
        let Some(fs) = ExtFs::open(job, offset).await? else {
            continue;
        };
        let root = fs.list("/").await?;
        if root.get("etc").map(|e| e.kind) != Some(Kind::Dir) {
            continue;
        }
        fs.fsck(false).await?;
        let script = plan(&fs, &mut report).await?;
        tracing::debug!(
            offset,
            commands = script.lines().count(),
            "generalize script"
        );
        fs.write(script).await?;
        fs.fsck(true).await?;
        report.file_systems += 1;
    }
    match report.file_systems {
        0 => Err(GuestFsError::NoRootFs),
        _ => Ok(report),
    }
}

/// The debugfs commands for one file system, counting into `report`.
async fn plan(fs: &ExtFs<'_>, report: &mut Report) -> Result<String, GuestFsError> {
    let mut script = Script::default();
    let etc = fs.list("/etc").await?;
    report.skipped_names += etc.skipped;
    if let Some(id) = etc.get("machine-id").filter(|e| e.kind == Kind::File) {
        report.machine_id = true;
        if id.size > 0 {
            script.truncate("/etc/machine-id");
        }
    }
    let ssh = fs.list("/etc/ssh").await?;
    report.skipped_names += ssh.skipped;
    for key in ssh
        .entries
        .iter()
        .filter(|e| is_host_key(&e.name) && e.kind != Kind::Dir)
    {
        script.rm(&format!("/etc/ssh/{}", key.name));
        report.ssh_host_keys += 1;
    }
    remove_file_in(fs, &mut script, "/var/lib/dbus", "machine-id").await?;
    remove_file_in(fs, &mut script, "/var/lib/systemd", "random-seed").await?;
    // Who could log in to the source VM must not be able to log in to VMs made from the copy:
    // cloud-init's sudo rule and every authorized_keys go (a new instance writes its own).
    remove_file_in(fs, &mut script, "/etc/sudoers.d", "90-cloud-init-users").await?;
    report.authorized_keys += authorized_keys(fs, &mut script, report).await?;
    report.cloud_entries += clear_dir(fs, &mut script, "/var/lib/cloud", &["seed"], report).await?;
    report.logs += clear_dir(fs, &mut script, "/var/log/journal", &[], report).await?;
    report.logs += logs(fs, &mut script, report).await?;
    let root = fs.list("/root").await?;
    for history in root
        .entries
        .iter()
        .filter(|e| HISTORIES.contains(&e.name.as_str()))
    {
        script.rm(&format!("/root/{}", history.name));
    }
    Ok(script.text)
}

/// `ssh_host_*_key`, `ssh_host_key` (SSH 1) or either with `.pub`.
pub fn is_host_key(name: &str) -> bool {
    let stem = name.strip_suffix(".pub").unwrap_or(name);
    stem == "ssh_host_key" || (stem.starts_with("ssh_host_") && stem.ends_with("_key"))
}

/// Removes `dir/name` when it is a regular file; whether it did.
async fn remove_file_in(
    fs: &ExtFs<'_>,
    script: &mut Script,
    dir: &str,
    name: &str,
) -> Result<bool, GuestFsError> {
    let listing = fs.list(dir).await?;
    let found = listing.get(name).is_some_and(|e| e.kind == Kind::File);
    if found {
        script.rm(&format!("{dir}/{name}"));
    }
    Ok(found)
}

/// Most home directories looked into for `authorized_keys`.
const MAX_HOMES: usize = 1_000;

/// Removes `/root/.ssh/authorized_keys` and `/home/USER/.ssh/authorized_keys`; the count.
async fn authorized_keys(
    fs: &ExtFs<'_>,
    script: &mut Script,
    report: &mut Report,
) -> Result<usize, GuestFsError> {
    let homes = fs.list("/home").await?;
    report.skipped_names += homes.skipped;
    let mut dirs = vec!["/root/.ssh".to_string()];
    dirs.extend(
        homes
            .entries
            .iter()
            .filter(|e| e.kind == Kind::Dir)
            .take(MAX_HOMES)
            .map(|e| format!("/home/{}/.ssh", e.name)),
    );
    let mut removed = 0;
    for dir in dirs {
        removed += usize::from(remove_file_in(fs, script, &dir, "authorized_keys").await?);
    }
    Ok(removed)
}

/// `/var/log`: cloud-init logs removed, login records truncated. Returns the count.
async fn logs(
    fs: &ExtFs<'_>,
    script: &mut Script,
    report: &mut Report,
) -> Result<usize, GuestFsError> {
    let log = fs.list("/var/log").await?;
    report.skipped_names += log.skipped;
    let mut n = 0;
    for e in log.entries.iter().filter(|e| e.kind == Kind::File) {
        let name = e.name.as_str();
        if name.starts_with("cloud-init") && name.ends_with(".log") {
            script.rm(&format!("/var/log/{name}"));
            n += 1;
        } else if ["wtmp", "btmp", "lastlog"].contains(&name) && e.size > 0 {
            script.truncate(&format!("/var/log/{name}"));
            n += 1;
        }
    }
    Ok(n)
}

/// Removes everything inside `dir` (recursively) but the entries named in `keep`; `dir`
/// stays. Returns the number of entries removed.
async fn clear_dir(
    fs: &ExtFs<'_>,
    script: &mut Script,
    dir: &str,
    keep: &[&str],
    report: &mut Report,
) -> Result<usize, GuestFsError> {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    let mut pending = vec![(dir.to_string(), 0usize)];
    // Directory hard links (possible in a crafted file system) must not multiply the walk,
    // and the number of debugfs runs is bounded whatever the tree.
    let (mut seen, mut listings) = (std::collections::HashSet::new(), 0usize);
    while let Some((path, depth)) = pending.pop() {
        listings += 1;
        if listings > MAX_LISTINGS {
            return Err(GuestFsError::TooManyEntries(dir.into(), MAX_LISTINGS));
        }
        let listing: Listing = fs.list(&path).await?;
        report.skipped_names += listing.skipped;
        for e in listing.entries {
            if depth == 0 && keep.contains(&e.name.as_str()) {
                continue;
            }
            let child = format!("{path}/{}", e.name);
            match e.kind {
                Kind::Dir if depth + 1 >= MAX_DEPTH => {
                    return Err(GuestFsError::TooManyEntries(dir.into(), MAX_DEPTH))
                }
                Kind::Dir if !seen.insert(e.ino) => report.skipped_names += 1,
                Kind::Dir => {
                    dirs.push(child.clone());
                    pending.push((child, depth + 1));
                }
                _ => files.push(child),
            }
        }
        if files.len() + dirs.len() > MAX_ENTRIES {
            return Err(GuestFsError::TooManyEntries(dir.into(), MAX_ENTRIES));
        }
    }
    files.iter().for_each(|f| script.rm(f));
    // Sorted longest first: a directory goes after everything below it.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
    dirs.iter().for_each(|d| script.line("rmdir", d));
    Ok(files.len() + dirs.len())
}

/// A debugfs script under construction.
#[derive(Debug, Default)]
struct Script {
    text: String,
}

impl Script {
    /// Adds `COMMAND PATH`; a path with a component outside the safe set never gets in.
    fn line(&mut self, command: &str, path: &str) {
        if !is_safe_path(path) {
            tracing::warn!(path, "unsafe path left out of a debugfs script");
            return;
        }
        self.text.push_str(&format!("{command} {path}\n"));
    }

    fn rm(&mut self, path: &str) {
        self.line("rm", path);
    }

    /// Frees the blocks and sets the size to 0, keeping the inode (mode, owner, labels).
    fn truncate(&mut self, path: &str) {
        if is_safe_path(path) {
            self.text
                .push_str(&format!("punch {path} 0\nsif {path} size 0\n"));
        }
    }
}

/// An absolute path whose components are all of the safe set.
fn is_safe_path(path: &str) -> bool {
    path.strip_prefix('/')
        .is_some_and(|rest| rest.split('/').all(is_safe_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_key_names() {
        for yes in [
            "ssh_host_ed25519_key",
            "ssh_host_rsa_key.pub",
            "ssh_host_key",
        ] {
            assert!(is_host_key(yes), "{yes}");
        }
        for no in ["ssh_host_", "sshd_config", "ssh_host_rsa_key.bak", "moduli"] {
            assert!(!is_host_key(no), "{no}");
        }
    }

    #[test]
    fn report_summary_names_the_key_count() {
        let report = Report {
            ssh_host_keys: 2,
            machine_id: true,
            ..Report::default()
        };
        assert_eq!(
            report.summary(),
            "generalized (machine-id, 2 SSH host keys, 0 authorized_keys files, cloud-init state, logs reset)"
        );
    }
}
