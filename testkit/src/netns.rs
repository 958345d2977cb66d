//! Named network namespaces for the networking tests (which run as root): a test's own
//! little internet. [`NetNs::new`] makes `vmdt-<pid>-<n>` (`ip netns add`, loopback up); its
//! `Drop` kills every process still inside and deletes it, so a failing test leaves no
//! namespace, bridge, tap or veth behind (namespaces of test processes that died without
//! dropping theirs are swept by the next `new`).
//!
//! Ways in: [`NetNs::wrapper`] (an argv prefix that execs a program inside, same pid, e.g.
//! for vmd), [`NetNs::exec`] (run a command to completion), [`NetNs::ip`] (`ip -n NAME …`) and
//! [`NetNs::run`] (a closure on a thread that entered the namespace, for std sockets).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";
/// Prefix of every namespace this module makes.
const PREFIX: &str = "vmdt-";
/// How long `Drop` waits for the processes inside to die.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Numbers namespaces and veth pairs within this process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A named network namespace, deleted (with everything running in it) on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Makes a fresh namespace `vmdt-<pid>-<n>` with its loopback up (panics when `ip` fails,
    /// e.g. without root).
    pub fn new() -> NetNs {
        sweep_stale();
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        checked(&["netns", "add", &name], ip_cmd(&["netns", "add", &name]));
        let ns = NetNs { name };
        ns.ip_ok(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name (for `ip netns exec`, `ip -n`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its bind mount, `/run/netns/NAME` (for `nsenter --net=`, `setns`).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    /// An argv prefix that runs the rest inside: `nsenter --net=PATH --`. nsenter execs the
    /// program in place, so a spawned child's pid is the program's pid.
    pub fn wrapper(&self) -> Vec<String> {
        vec![
            "nsenter".to_owned(),
            format!("--net={}", self.path().display()),
            "--".to_owned(),
        ]
    }

    /// `ip -n NAME ARGS…`, its output whatever the status.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip_cmd(&full)
    }

    /// Runs `argv` inside the namespace to completion, its output whatever the status.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let mut full = self.wrapper();
        full.extend(argv.iter().map(|a| (*a).to_owned()));
        Command::new(&full[0])
            .args(&full[1..])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {full:?}: {e}"))
    }

    /// Runs `f` on a thread that entered the namespace (sockets it opens live there) and
    /// returns its result; a panic in `f` is passed on.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = File::open(self.path())
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.path().display()));
        std::thread::scope(|s| {
            let worker = s.spawn(move || {
                setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
                f()
            });
            worker
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Links this namespace to `other` with a veth pair, addresses `my_cidr` here and
    /// `other_cidr` there (e.g. "10.99.0.1/24"), both ends up. Returns the two interface names
    /// (here, there).
    pub fn veth_pair(&self, other: &NetNs, my_cidr: &str, other_cidr: &str) -> (String, String) {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let (mine, theirs) = (format!("vt{n}a"), format!("vt{n}b"));
        self.ip_ok(&[
            "link",
            "add",
            "name",
            &mine,
            "type",
            "veth",
            "peer",
            "name",
            &theirs,
            "netns",
            &other.name,
        ]);
        self.ip_ok(&["addr", "add", my_cidr, "dev", &mine]);
        self.ip_ok(&["link", "set", &mine, "up"]);
        other.ip_ok(&["addr", "add", other_cidr, "dev", &theirs]);
        other.ip_ok(&["link", "set", &theirs, "up"]);
        (mine, theirs)
    }

    /// The names of the namespace's interfaces (`lo` first), without `@peer` suffixes.
    pub fn links(&self) -> Vec<String> {
        let out = self.ip_ok(&["-o", "link", "show"]);
        out.lines().filter_map(link_name).collect()
    }

    /// `nft list ruleset` inside the namespace (empty when it has no tables).
    pub fn nft_ruleset(&self) -> String {
        let out = self.exec(&["nft", "list", "ruleset"]);
        checked(&["nft", "list", "ruleset"], out)
    }

    /// The pids of the processes inside (`ip netns pids`).
    pub fn pids(&self) -> Vec<i32> {
        let out = ip_cmd(&["netns", "pids", &self.name]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// `ip -n NAME ARGS…`, panicking with ip's words unless it succeeds; returns stdout.
    pub fn ip_ok(&self, args: &[&str]) -> String {
        checked(args, self.ip(args))
    }

    /// SIGKILLs everything inside until nothing is left (or [`KILL_WAIT`] passed).
    fn kill_all(&self) {
        let end = Instant::now() + KILL_WAIT;
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > end {
                return;
            }
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Default for NetNs {
    fn default() -> Self {
        NetNs::new()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        self.kill_all();
        let _ = ip_cmd(&["netns", "del", &self.name]);
    }
}

/// Deletes `vmdt-<pid>-*` namespaces whose test process is gone (it was killed before its
/// `NetNs` values dropped), after killing what still runs inside.
fn sweep_stale() {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            drop(NetNs { name });
        }
    }
}

/// The test process that made namespace `name`, if it is one of ours.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// An interface name from a line of `ip -o link show`: `2: vt0a@if3: <…> …` → `vt0a`.
fn link_name(line: &str) -> Option<String> {
    let name = line.split(": ").nth(1)?;
    Some(name.split('@').next().unwrap_or(name).to_owned())
}

/// Runs `ip ARGS…`.
fn ip_cmd(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip {args:?}: {e}"))
}

/// stdout of a successful command, or a panic naming it with its stderr.
fn checked(what: &[&str], out: Output) -> String {
    if !out.status.success() {
        panic!(
            "{what:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(test)]
#[path = "netns_tests.rs"]
mod tests;
