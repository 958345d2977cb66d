//! Offline access to the ext2/3/4 file systems inside a disk image, without mounts or loop
//! devices: every byte of the image is parsed by e2fsprogs and util-linux programs running in
//! the image sandbox ([`Job::tool`]), never by vmd and never outside it.
//!
//! # How
//! 1. qemu-img (sandboxed) converts the image to a sparse raw file, [`RAW`], in the job's
//!    writable `out/` directory, owned by the sandbox user.
//! 2. `sfdisk --json` (sandboxed) lists its partitions, MBR (primary and logical) or GPT; a
//!    disk without a partition table is taken as one file system at offset 0.
//! 3. Each partition is opened by `debugfs` through e2fsprogs' `FILE?offset=BYTES` I/O option;
//!    one that debugfs cannot open is not an ext file system and is skipped.
//!
//! debugfs commands are built only from vmd's own path constants and from names of the strict
//! [`is_safe_name`] character set read back from `ls -p`; a script goes to debugfs on stdin,
//! never through a file the sandbox could replace. Every tool's output is read up to
//! [`OUTPUT_LIMIT`] and every run has a time limit.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::sandbox::{Job, SandboxError};

/// The raw copy of the image inside the sandbox.
pub const RAW: &str = "/out/disk.raw";
/// The raw copy's name in the job's `out/`.
pub const RAW_NAME: &str = "disk.raw";
/// Bytes of a tool's stdout (and, separately, stderr) that are kept; the rest is discarded.
pub const OUTPUT_LIMIT: usize = 4 << 20;
/// At most this many partitions are looked at.
const MAX_PARTITIONS: usize = 64;
/// Time limit for one debugfs or sfdisk run.
const QUICK: Duration = Duration::from_secs(120);
/// Time limit for one e2fsck run.
const FSCK: Duration = Duration::from_secs(1800);

/// Failures of the offline file-system operations.
#[derive(Debug, thiserror::Error)]
pub enum GuestFsError {
    /// No ext2/3/4 file system holding `/etc` was found (another file system, or none).
    #[error("no ext2/3/4 root file system (one with /etc) found in the image")]
    NoRootFs,
    /// A directory holds more entries than the operations walk.
    #[error("{0} has more entries than vmd walks ({1}); the image was left unchanged")]
    TooManyEntries(String, usize),
    /// A tool failed; what it said is in the daemon log.
    #[error("{tool} failed on the image ({status})")]
    Tool {
        /// The program.
        tool: &'static str,
        /// Its exit status.
        status: String,
    },
    /// e2fsck found errors it could not correct.
    #[error("the image's file system has errors e2fsck cannot correct")]
    Unfixable,
    /// A tool did not finish in time.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// A tool could not be started.
    #[error("cannot run {0}")]
    Spawn(&'static str, #[source] std::io::Error),
    /// The sandbox could not run the tool.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// What one tool run printed (each stream cut at [`OUTPUT_LIMIT`]).
#[derive(Debug)]
pub struct ToolOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output, possibly cut.
    pub stdout: String,
    /// Standard error, possibly cut.
    pub stderr: String,
    /// Whether stdout was longer than [`OUTPUT_LIMIT`].
    pub cut: bool,
}

/// Runs `tool` in the job's sandbox with `args`, `script` on stdin, within `limit`.
pub async fn run_tool(
    job: &Job,
    tool: &'static str,
    args: &[&str],
    script: Option<String>,
    limit: Duration,
) -> Result<ToolOutput, GuestFsError> {
    let mut cmd: Command = job.tool(tool)?;
    cmd.args(args)
        .stdin(match script {
            Some(_) => Stdio::piped(),
            None => Stdio::null(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| GuestFsError::Spawn(tool, e))?;
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let work = async {
        let feed = async {
            if let (Some(mut pipe), Some(text)) = (stdin, script) {
                // A tool that exits early closes the pipe: its status tells what happened.
                let _ = pipe.write_all(text.as_bytes()).await;
            }
        };
        let (_, out, err) = tokio::join!(feed, read_capped(stdout), read_capped(stderr));
        (child.wait().await, out, err)
    };
    let (status, (stdout, cut), (stderr, _)) = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| GuestFsError::Timeout(tool))?;
    let status = status.map_err(|e| GuestFsError::Spawn(tool, e))?;
    if !status.success() && stderr.starts_with("bwrap:") {
        let first = stderr.lines().next().unwrap_or_default().to_string();
        return Err(SandboxError::Setup(first).into());
    }
    Ok(ToolOutput {
        status,
        stdout,
        stderr,
        cut,
    })
}

/// Reads a pipe to its end, keeping the first [`OUTPUT_LIMIT`] bytes.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>) -> (String, bool) {
    let Some(mut pipe) = pipe else {
        return (String::new(), false);
    };
    let (mut kept, mut buf, mut cut) = (Vec::new(), vec![0u8; 64 << 10], false);
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = OUTPUT_LIMIT.saturating_sub(kept.len());
        cut |= n > room;
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    (String::from_utf8_lossy(&kept).into_owned(), cut)
}

/// `sfdisk --json` output: the parts vmd uses.
#[derive(Debug, Deserialize)]
struct SfdiskJson {
    partitiontable: PartitionTable,
}

#[derive(Debug, Deserialize)]
struct PartitionTable {
    #[serde(default = "default_sector")]
    sectorsize: u64,
    #[serde(default)]
    partitions: Vec<Partition>,
}

#[derive(Debug, Deserialize)]
struct Partition {
    start: u64,
}

fn default_sector() -> u64 {
    512
}

/// Byte offsets of the partitions of [`RAW`] (`[0]` without a partition table).
pub async fn partition_offsets(job: &Job) -> Result<Vec<u64>, GuestFsError> {
    let out = run_tool(job, "sfdisk", &["--json", RAW], None, QUICK).await?;
    let table = match out.status.success() && !out.cut {
        true => serde_json::from_str::<SfdiskJson>(&out.stdout).ok(),
        false => None,
    };
    let Some(table) = table else {
        tracing::debug!(stderr = %out.stderr.trim(), "no partition table: the whole disk is one file system");
        return Ok(vec![0]);
    };
    let sector = table.partitiontable.sectorsize;
    let mut offsets: Vec<u64> = table
        .partitiontable
        .partitions
        .iter()
        .filter_map(|p| p.start.checked_mul(sector))
        .collect();
    // A hostile table may list one file system many times: each is worked on once.
    offsets.sort_unstable();
    offsets.dedup();
    offsets.truncate(MAX_PARTITIONS);
    Ok(offsets)
}

/// Whether `name` may appear in a debugfs command: `[A-Za-z0-9._@~+-]`, 1–255 bytes, not
/// `.` or `..`, not starting with `-`. Other names are never put in a command.
pub fn is_safe_name(name: &str) -> bool {
    let charset = |c: char| c.is_ascii_alphanumeric() || "._@~+-".contains(c);
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.starts_with('-')
        && name.chars().all(charset)
}

/// Inode types vmd tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// Anything else (device, FIFO, socket).
    Other,
}

/// One directory entry with a safe name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its inode number.
    pub ino: u64,
    /// The name (of the [`is_safe_name`] set).
    pub name: String,
    /// Its inode type.
    pub kind: Kind,
    /// Its size in bytes (0 when debugfs prints none).
    pub size: u64,
}

/// A directory listing: the entries with safe names and how many lines were not understood
/// (names outside the safe set, names with newlines).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Entries with safe names, without `.` and `..`.
    pub entries: Vec<Entry>,
    /// Lines left alone.
    pub skipped: usize,
}

impl Listing {
    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// Parses debugfs `ls -p` output: one `/INODE/MODE/UID/GID/NAME/SIZE/` line per entry.
pub fn parse_ls(out: &str) -> Listing {
    let mut listing = Listing::default();
    for line in out.lines().filter(|l| !l.is_empty()) {
        match parse_ls_line(line) {
            Some(entry) => listing.entries.push(entry),
            None if is_dot_line(line) => {}
            None => listing.skipped += 1,
        }
    }
    listing
}

fn is_dot_line(line: &str) -> bool {
    let parts: Vec<&str> = line.split('/').collect();
    parts.len() == 8 && (parts[5] == "." || parts[5] == "..")
}

fn parse_ls_line(line: &str) -> Option<Entry> {
    let parts: Vec<&str> = line.split('/').collect();
    let [first, ino, mode, uid, gid, name, size, last] = parts.as_slice() else {
        return None;
    };
    let numeric = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    let fields_ok =
        first.is_empty() && last.is_empty() && [ino, uid, gid].iter().all(|s| numeric(s));
    if !fields_ok || !is_safe_name(name) {
        return None;
    }
    let mode = u32::from_str_radix(mode, 8).ok()?;
    let kind = match mode & 0o170000 {
        0o040000 => Kind::Dir,
        0o100000 => Kind::File,
        0o120000 => Kind::Symlink,
        _ => Kind::Other,
    };
    let size = match size.is_empty() {
        true => 0,
        false => size.parse().ok()?,
    };
    Some(Entry {
        ino: ino.parse().ok()?,
        name: name.to_string(),
        kind,
        size,
    })
}

/// One ext file system inside [`RAW`].
#[derive(Debug, Clone, Copy)]
pub struct ExtFs<'a> {
    job: &'a Job,
    offset: u64,
}

impl<'a> ExtFs<'a> {
    /// The file system at `offset` bytes into [`RAW`], if debugfs can open it.
    pub async fn open(job: &'a Job, offset: u64) -> Result<Option<ExtFs<'a>>, GuestFsError> {
        let fs = ExtFs { job, offset };
        let out = fs.debugfs(&["-R", "stats -h"], None).await?;
        Ok(out
            .stdout
            .contains("Filesystem magic number:")
            .then_some(fs))
    }

    /// Byte offset in the disk.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn spec(&self) -> String {
        format!("{RAW}?offset={}", self.offset)
    }

    async fn debugfs(
        &self,
        args: &[&str],
        script: Option<String>,
    ) -> Result<ToolOutput, GuestFsError> {
        let spec = self.spec();
        let mut all = args.to_vec();
        all.push(&spec);
        run_tool(self.job, "debugfs", &all, script, QUICK).await
    }

    /// `ls -p DIR` (`dir` is built from safe names); a missing directory lists empty.
    pub async fn list(&self, dir: &str) -> Result<Listing, GuestFsError> {
        let cmd = format!("ls -p {dir}");
        let out = self.debugfs(&["-R", &cmd], None).await?;
        if out.cut {
            return Err(GuestFsError::TooManyEntries(
                dir.to_string(),
                OUTPUT_LIMIT / 64,
            ));
        }
        Ok(parse_ls(&out.stdout))
    }

    /// Whether `path` (built from safe names) exists.
    pub async fn exists(&self, path: &str) -> Result<bool, GuestFsError> {
        let cmd = format!("stat {path}");
        let out = self.debugfs(&["-R", &cmd], None).await?;
        Ok(out.stdout.starts_with("Inode:"))
    }

    /// Runs a debugfs script (commands built from safe names) with the file system writable.
    pub async fn write(&self, script: String) -> Result<(), GuestFsError> {
        let out = self.debugfs(&["-w", "-f", "-"], Some(script)).await?;
        let problems = out
            .stderr
            .lines()
            .filter(|l| !l.starts_with("debugfs "))
            .count();
        if problems > 0 {
            tracing::warn!(offset = self.offset, problems, stderr = %out.stderr.trim(), "debugfs reported problems while generalizing");
        }
        match out.status.success() {
            true => Ok(()),
            false => Err(tool_failed("debugfs", &out)),
        }
    }

    /// `e2fsck -y` (`-f` with `full`; else only the journal is replayed). Corrected errors
    /// are fine; uncorrected ones are [`GuestFsError::Unfixable`].
    pub async fn fsck(&self, full: bool) -> Result<(), GuestFsError> {
        let spec = self.spec();
        let args: &[&str] = match full {
            true => &["-f", "-y", &spec],
            false => &["-y", "-E", "journal_only", &spec],
        };
        let out = run_tool(self.job, "e2fsck", args, None, FSCK).await?;
        match out.status.code() {
            Some(0) => Ok(()),
            Some(1 | 2) => {
                tracing::info!(
                    offset = self.offset,
                    full,
                    "e2fsck corrected the image's file system"
                );
                Ok(())
            }
            Some(4) => {
                tracing::warn!(stdout = %tail(&out.stdout), "e2fsck left errors");
                Err(GuestFsError::Unfixable)
            }
            _ => Err(tool_failed("e2fsck", &out)),
        }
    }
}

fn tool_failed(tool: &'static str, out: &ToolOutput) -> GuestFsError {
    tracing::warn!(tool, status = %out.status, stderr = %tail(&out.stderr), "file-system tool failed");
    GuestFsError::Tool {
        tool,
        status: out.status.to_string(),
    }
}

/// The last 2000 bytes of a tool's words, for the log.
fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(2000);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].trim()
}

#[cfg(test)]
#[path = "guest_fs_tests.rs"]
mod tests;
