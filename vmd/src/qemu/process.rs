//! Starting QEMU processes and watching them, including ones vmd did not start itself.
//!
//! QEMU runs in a session of its own (a Ctrl-C or SIGTERM aimed at vmd's group never reaches
//! it, nor the SIGHUP the kernel sends an orphaned process group with a stopped member when
//! vmd dies) and outlives vmd: the child is not killed when its handle is dropped. After a vmd
//! restart a QEMU is known only by pid, so every check pairs the pid with the process's start
//! time (field 22 of `/proc/PID/stat`) to tell it from an unrelated process that reused the
//! pid. A zombie counts as gone.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::argv::{qemu_binary, QemuConfig};

/// util-linux's `setsid`, which starts QEMU in a session of its own.
const SETSID: &str = "setsid";

/// How often [`wait_gone`] looks at `/proc`.
const POLL: Duration = Duration::from_millis(5);

/// Failures of process operations.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The log file for QEMU's stdout and stderr could not be opened.
    #[error("cannot open QEMU log {path}")]
    OpenLog {
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The QEMU binary could not be started.
    #[error("cannot start {binary}")]
    Spawn {
        /// The program.
        binary: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The signal could not be sent.
    #[error("cannot kill process {pid}")]
    Kill {
        /// The process.
        pid: u32,
        /// Why.
        #[source]
        source: nix::Error,
    },
}

/// Starts QEMU for `config` with stdout and stderr appended to `stderr_log`.
///
/// The child has its own session and process group, stdin from /dev/null, and keeps running when the
/// returned handle is dropped.
pub fn spawn(config: &QemuConfig, stderr_log: &Path) -> Result<Child, ProcessError> {
    let open_log = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_log)
            .map_err(|source| ProcessError::OpenLog {
                path: stderr_log.to_path_buf(),
                source,
            })
    };
    let (stdout, stderr) = (open_log()?, open_log()?);
    let binary = qemu_binary();
    // `setsid` (util-linux) makes QEMU a session leader in place (same pid: vmd's child is not
    // a group leader, so setsid(1) execs without forking). Its own process group alone is not
    // enough: when vmd dies, a group of vmd's session with a stopped member is orphaned and
    // the kernel sends it SIGHUP, which ends QEMU. std offers no safe setsid in the child.
    Command::new(SETSID)
        .arg("--")
        .arg(binary)
        .args(config.args())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|source| ProcessError::Spawn { binary, source })
}

/// The fields of `/proc/PID/stat` vmd uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    /// Field 3: `R`, `S`, `D`, `Z`, …
    state: char,
    /// Field 22: start time in clock ticks since boot.
    start_time: u64,
}

/// Parses a `/proc/PID/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `fields` now starts at field 4; field 22 is 18 further on.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_time })
}

fn read_stat(pid: u32) -> Option<Stat> {
    if pid == 0 {
        return None;
    }
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time (clock ticks since boot) of process `pid`, if it exists.
pub fn start_time(pid: u32) -> Option<u64> {
    read_stat(pid).map(|s| s.start_time)
}

/// True when `pid` is a live process that started at `start_time`. A zombie counts as gone
/// once all its threads have exited: a killed multi-threaded QEMU's main thread can be a
/// zombie while vCPU threads are still exiting and its files (and image locks) still open.
pub fn is_same_process(pid: u32, start_time: u64) -> bool {
    read_stat(pid)
        .is_some_and(|s| s.start_time == start_time && (!is_dead(s.state) || threads_alive(pid)))
}

/// Whether any thread of `pid` is not yet dead.
fn threads_alive(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|line| parse_stat_state(&line))
            .is_some_and(|state| !is_dead(state))
    })
}

fn parse_stat_state(line: &str) -> Option<char> {
    line[line.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

fn is_dead(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// Sends SIGKILL to `pid` if it is still the process that started at `start_time`.
/// A process that is already gone is not an error.
pub fn kill(pid: u32, start_time: u64) -> Result<(), ProcessError> {
    if !is_same_process(pid, start_time) {
        return Ok(());
    }
    let raw = i32::try_from(pid).map_err(|_| ProcessError::Kill {
        pid,
        source: nix::Error::EINVAL,
    })?;
    match signal::kill(Pid::from_raw(raw), Signal::SIGKILL) {
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(source) => Err(ProcessError::Kill { pid, source }),
    }
}

/// Waits up to `deadline` for the process to be gone (or a zombie); true if it is.
/// For processes that are not vmd's children, which vmd cannot `wait` for.
pub async fn wait_gone(pid: u32, start_time: u64, deadline: Duration) -> bool {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if !is_same_process(pid, start_time) {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Describes how a process ended: `exited with status 1`, `killed by signal 9 (SIGKILL)`.
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name = Signal::try_from(sig).map_or("unknown signal", Signal::as_str);
            let core = if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            };
            format!("killed by signal {sig} ({name}{core})")
        }
        None => status.to_string(),
    }
}

/// The last `max_bytes` of the file at `path` as lossy UTF-8, starting at a line boundary
/// when the cut falls inside a line that is not the only one, with surrounding whitespace
/// trimmed. Empty when the file cannot be read. For showing QEMU's own error text.
pub fn tail(path: &Path, max_bytes: usize) -> String {
    read_tail(path, max_bytes).unwrap_or_default()
}

fn read_tail(path: &Path, max_bytes: usize) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let max = u64::try_from(max_bytes).unwrap_or(u64::MAX);
    let start = len.saturating_sub(max);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    let mut text = &bytes[..];
    if start > 0 {
        // Drop the partial first line, unless it is all there is.
        if let Some(nl) = text.iter().position(|&b| b == b'\n') {
            if text[nl + 1..].iter().any(|b| !b.is_ascii_whitespace()) {
                text = &text[nl + 1..];
            }
        }
    }
    Ok(String::from_utf8_lossy(text).trim().to_string())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::Command as StdCommand;

    use super::*;

    const STAT: &str = "1234 (qemu-system-x86) S 1 1234 1234 0 -1 4194560 2915 0 0 0 \
                        31 12 0 0 20 0 5 0 987654 1234567 890 18446744073709551615";

    #[test]
    fn parses_stat() {
        let stat = parse_stat(STAT).expect("parse");
        assert_eq!(
            stat,
            Stat {
                state: 'S',
                start_time: 987654
            }
        );
    }

    #[test]
    fn parses_stat_with_spaces_and_parens_in_comm() {
        let line = STAT.replace("(qemu-system-x86)", "(a) Z 1 (b c)");
        let stat = parse_stat(&line).expect("parse");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_time, 987654);
    }

    #[test]
    fn short_stat_is_none() {
        assert_eq!(parse_stat("1 (x) S 1 2 3"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_same_and_pid_reuse_is_detected() {
        let me = std::process::id();
        let start = start_time(me).expect("own start time");
        assert!(is_same_process(me, start));
        assert!(!is_same_process(me, start + 1));
        assert!(!is_same_process(0, start));
        assert_eq!(start_time(0), None);
    }

    #[test]
    fn describes_exits() {
        let exited = StdCommand::new("sh")
            .args(["-c", "exit 3"])
            .status()
            .expect("sh");
        assert_eq!(describe_exit(exited), "exited with status 3");
        let killed = StdCommand::new("sh")
            .args(["-c", "kill -9 $$"])
            .status()
            .expect("sh");
        assert_eq!(describe_exit(killed), "killed by signal 9 (SIGKILL)");
    }

    #[tokio::test]
    async fn kill_and_wait_gone_on_a_zombie() {
        let mut child = StdCommand::new("sleep").arg("60").spawn().expect("sleep");
        let pid = child.id();
        let start = start_time(pid).expect("start time");
        assert!(!wait_gone(pid, start, Duration::from_millis(20)).await);
        // A wrong start time must not kill anything.
        kill(pid, start + 1).expect("no-op kill");
        assert!(is_same_process(pid, start));
        kill(pid, start).expect("kill");
        // Not reaped yet: a zombie, which counts as gone.
        assert!(wait_gone(pid, start, Duration::from_secs(10)).await);
        assert!(!child.wait().expect("wait").success());
        kill(pid, start).expect("kill after exit is fine");
    }

    fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("tempfile");
        file.write_all(content).expect("write");
        file
    }

    #[test]
    fn tail_cuts_at_a_line_boundary() {
        let file = file_with(b"first line\nsecond line\nqemu: Could not open 'x'\n");
        assert_eq!(tail(file.path(), 30), "qemu: Could not open 'x'");
        assert_eq!(
            tail(file.path(), 1000),
            "first line\nsecond line\nqemu: Could not open 'x'"
        );
    }

    #[test]
    fn tail_keeps_a_single_long_line() {
        let file = file_with(b"0123456789abcdef\n");
        assert_eq!(tail(file.path(), 8), "9abcdef");
    }

    #[test]
    fn tail_is_lossy_and_empty_for_missing_files() {
        let file = file_with(b"ok \xff\n");
        assert_eq!(tail(file.path(), 100), "ok \u{fffd}");
        assert_eq!(tail(Path::new("/nonexistent/log"), 100), "");
    }
}
