//! Finding the QEMU processes of one vmd instance in the process table.
//!
//! Every QEMU that vmd starts gets a run directory `<run_dir>/<vm id>.<start token>` for its
//! QMP, console and VNC sockets, and those paths are on its command line. So a process whose
//! `/proc/PID/cmdline` names a path under this instance's `run_dir` is one of ours, and the run
//! directory it names tells which start of which VM it is. A start token is fresh for every
//! start, so a QEMU left over from an earlier start (or from a VM that was since removed and
//! whose id was reused) never matches the runtime record of a newer one. Run directories of
//! older vmd versions (`<run_dir>/<vm id>`) are recognised too.

use std::path::{Path, PathBuf};

use super::process;

/// A QEMU of this instance found in `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundQemu {
    /// Its pid.
    pub pid: u32,
    /// Its start time (pid reuse guard).
    pub start_time: u64,
    /// The run directory on its command line.
    pub run_dir: PathBuf,
}

/// Every live process whose command line names a path directly under `run_dir`.
pub fn scan(run_dir: &Path) -> Vec<FoundQemu> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| found(pid, run_dir))
        .collect()
}

fn found(pid: u32, run_dir: &Path) -> Option<FoundQemu> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let dir = run_dir_in(&cmdline, run_dir)?;
    let start_time = process::start_time(pid)?;
    process::is_same_process(pid, start_time).then_some(FoundQemu {
        pid,
        start_time,
        run_dir: dir,
    })
}

/// The first VM run directory (`run_dir/<id>.<token>` or `run_dir/<id>`) named inside any
/// argument of a NUL-separated command line. Other entries of `run_dir` (the `net` directory
/// of dnsmasq's files, named on dnsmasq's command line) do not count.
fn run_dir_in(cmdline: &[u8], run_dir: &Path) -> Option<PathBuf> {
    let prefix = format!("{}/", run_dir.display());
    cmdline
        .split(|b| *b == 0)
        .filter_map(|arg| std::str::from_utf8(arg).ok())
        .find_map(|arg| {
            let at = arg.find(&prefix)?;
            let rest = &arg[at + prefix.len()..];
            let entry = run_dir.join(rest.split(['/', ',']).next()?);
            vm_id_of(&entry).is_some().then_some(entry)
        })
}

/// The VM id a run directory belongs to (`<id>.<token>` or the older `<id>`).
pub fn vm_id_of(run_dir: &Path) -> Option<i64> {
    let name = run_dir.file_name()?.to_str()?;
    name.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_run_dir_in_qemu_arguments() {
        let cmd =
            b"qemu-system-x86_64\0-chardev\0socket,id=qmp,path=/run/vmd/vms/7.ab12/qmp,server=on\0";
        let dir = run_dir_in(cmd, Path::new("/run/vmd/vms"));
        assert_eq!(dir, Some(PathBuf::from("/run/vmd/vms/7.ab12")));
        assert_eq!(vm_id_of(Path::new("/run/vmd/vms/7.ab12")), Some(7));
        assert_eq!(vm_id_of(Path::new("/run/vmd/vms/12")), Some(12));
    }

    #[test]
    fn other_instances_and_prefixes_do_not_match() {
        let cmd = b"qemu\0path=/run/vmd/vms2/7.x/qmp\0/run/vmd/vmsx\0";
        assert_eq!(run_dir_in(cmd, Path::new("/run/vmd/vms")), None);
    }

    #[test]
    fn other_entries_of_the_run_dir_do_not_match() {
        let dnsmasq = b"/usr/sbin/dnsmasq\0--pid-file=/run/vmd/vms/net/dnsmasq-1.pid\0";
        assert_eq!(run_dir_in(dnsmasq, Path::new("/run/vmd/vms")), None);
        let empty = b"qemu\0/run/vmd/vms/\0";
        assert_eq!(run_dir_in(empty, Path::new("/run/vmd/vms")), None);
    }

    #[test]
    fn a_child_naming_our_run_dir_is_found() {
        let dir = tempfile::tempdir().expect("tmp");
        let run = dir.path().join("vms");
        let arg = format!("{}/3.tok/qmp", run.display());
        // `read` is a shell builtin: sh neither forks nor execs, and keeps the extra argument
        // in its argv as QEMU keeps its socket paths.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read x", &arg])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut found = scan(&run);
        while found.is_empty() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
            found = scan(&run);
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pid, child.id());
        assert_eq!(found[0].run_dir, run.join("3.tok"));
    }
}
