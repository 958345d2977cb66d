//! One dnsmasq per DHCP network: its command line, start, adoption, stop and leases.
//!
//! dnsmasq runs with no config file (`--conf-file=/dev/null`), DNS off (`--port=0`), bound to
//! the network's bridge only, in the foreground in a session of its own (`setsid`, as QEMU:
//! it outlives vmd and no signal aimed at vmd's group reaches it). Files in the [`HostNet`]
//! directory, `<id>` being the network's id:
//!
//! - `dnsmasq-<id>.pid`: written by dnsmasq. A pid from it counts as our dnsmasq only while
//!   `/proc/PID/cmdline` is dnsmasq's with this very `--pid-file=` argument, so a stranger
//!   that reused the pid is never adopted nor signalled;
//! - `dnsmasq-<id>.leases`: the lease database (`EXPIRY MAC IP HOSTNAME CLIENT-ID` lines),
//!   kept across restarts so guests keep their addresses;
//! - `dnsmasq-<id>.log`: its stderr (`--log-facility=-`), appended; routine DHCP is not
//!   logged (`--quiet-dhcp`), so it stays small.
//!
//! dnsmasq opens the lease file as root and then runs as `nobody`; the directory may stay
//! 0700 root because it writes its log to the stderr vmd opened.
//! Only NAT networks announce a router (the gateway); isolated ones send an empty router
//! option, so guests get no default route through the host.
//!
//! [`HostNet`]: super::HostNet

use std::fs::OpenOptions;
use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tokio::process::Command;
use vm_proto::types::Subnet;

use super::{caps, HostNetError, NetSpec};
use crate::qemu::process as proc;

/// How long dnsmasq may take to write its pid file, or to exit after SIGTERM.
const DEADLINE: Duration = Duration::from_secs(5);
/// How often the start-up and stop waits look.
const POLL: Duration = Duration::from_millis(20);
/// Lease time handed out.
const LEASE_TIME: &str = "1h";
/// How much of the log an error quotes.
const LOG_TAIL_BYTES: usize = 600;

/// One DHCP lease from a lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseEntry {
    /// Client MAC, lowercase with colons.
    pub mac: String,
    /// Leased address.
    pub ip: Ipv4Addr,
    /// Host name the client sent.
    pub hostname: Option<String>,
    /// Unix seconds when it ends; 0 for an infinite lease.
    pub expires_at: i64,
}

/// The dnsmasq of one network.
#[derive(Debug)]
pub struct Dnsmasq {
    dir: PathBuf,
    network: String,
    bridge: String,
    subnet: Subnet,
    nat: bool,
    id: i64,
}

impl Dnsmasq {
    /// For `net`, with its files in `dir`.
    pub fn new(dir: &Path, net: &NetSpec) -> Dnsmasq {
        Dnsmasq {
            dir: dir.to_path_buf(),
            network: net.name.clone(),
            bridge: net.bridge(),
            subnet: net.subnet,
            nat: net.nat,
            id: net.id,
        }
    }

    fn file(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("dnsmasq-{}.{ext}", self.id))
    }

    /// dnsmasq's arguments.
    pub fn args(&self) -> Vec<String> {
        let (start, end) = self.subnet.dhcp_range();
        let router = match self.nat {
            true => format!("--dhcp-option=3,{}", self.subnet.gateway()),
            false => "--dhcp-option=3".to_string(),
        };
        vec![
            "--conf-file=/dev/null".into(),
            "--keep-in-foreground".into(),
            "--bind-interfaces".into(),
            format!("--interface={}", self.bridge),
            "--except-interface=lo".into(),
            "--port=0".into(),
            format!(
                "--dhcp-range={start},{end},{},{LEASE_TIME}",
                netmask(self.subnet.prefix)
            ),
            format!("--dhcp-leasefile={}", self.file("leases").display()),
            format!("--pid-file={}", self.file("pid").display()),
            "--dhcp-authoritative".into(),
            "--no-ping".into(),
            router,
            "--log-facility=-".into(),
            "--quiet-dhcp".into(),
        ]
    }

    /// The pid and start time of our live dnsmasq, if one runs.
    pub fn running(&self) -> Option<(u32, u64)> {
        let pid: u32 = std::fs::read_to_string(self.file("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let start = proc::start_time(pid)?;
        let ours = is_ours(
            &std::fs::read(format!("/proc/{pid}/cmdline")).ok()?,
            &self.file("pid"),
        );
        (ours && proc::is_same_process(pid, start)).then_some((pid, start))
    }

    /// Starts dnsmasq unless ours runs with the current arguments; true if it started one.
    /// Ours with other arguments (the network id was reused after a removal that did not
    /// finish) is stopped first.
    pub async fn ensure(&self) -> Result<bool, HostNetError> {
        if let Some((pid, _)) = self.running() {
            if cmdline_args(pid).is_some_and(|args| args == self.args()) {
                return Ok(false);
            }
            self.stop().await?;
        }
        let binary = caps::find(caps::DNSMASQ)?;
        self.prepare_dir()?;
        let pid_file = self.file("pid");
        let _ = std::fs::remove_file(&pid_file);
        let child = self.spawn(&binary)?;
        self.wait_started(child).await?;
        Ok(true)
    }

    fn prepare_dir(&self) -> Result<(), HostNetError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| HostNetError::io(&self.dir, e))
    }

    fn spawn(&self, binary: &Path) -> Result<tokio::process::Child, HostNetError> {
        let log = self.file("log");
        let open_log = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| HostNetError::io(&log, e))
        };
        let (stdout, stderr) = (open_log()?, open_log()?);
        // `setsid` execs dnsmasq in place (see `qemu::process::spawn`); dropping the handle
        // neither kills it nor leaves a zombie (tokio reaps orphaned children).
        Command::new("setsid")
            .arg("--")
            .arg(binary)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| HostNetError::Spawn {
                program: binary.to_path_buf(),
                source,
            })
    }

    /// Waits until dnsmasq has written its pid file, or fails with the end of its log.
    async fn wait_started(&self, mut child: tokio::process::Child) -> Result<(), HostNetError> {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            if self.running().is_some() {
                return Ok(());
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || tokio::time::Instant::now() >= until {
                let _ = child.start_kill();
                let tail = proc::tail(&self.file("log"), LOG_TAIL_BYTES);
                return Err(HostNetError::Dnsmasq {
                    network: self.network.clone(),
                    message: match exited {
                        Some(status) => format!("{}: {tail}", proc::describe_exit(status)),
                        None => format!("no pid file after {DEADLINE:?}: {tail}"),
                    },
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops our dnsmasq if it runs: SIGTERM, then SIGKILL if it is still there after the
    /// deadline.
    pub async fn stop(&self) -> Result<(), HostNetError> {
        let Some((pid, start)) = self.running() else {
            return Ok(());
        };
        for sig in [Signal::SIGTERM, Signal::SIGKILL] {
            if let Ok(raw) = i32::try_from(pid) {
                let _ = signal::kill(Pid::from_raw(raw), sig);
            }
            if proc::wait_gone(pid, start, DEADLINE).await {
                return Ok(());
            }
        }
        Err(HostNetError::Dnsmasq {
            network: self.network.clone(),
            message: format!("process {pid} does not exit"),
        })
    }

    /// Deletes the pid, lease and log files.
    pub fn remove_files(&self) -> Result<(), HostNetError> {
        for ext in ["pid", "leases", "log"] {
            let path = self.file(ext);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(HostNetError::io(&path, e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The leases in the lease file; none when it is missing.
    pub fn leases(&self) -> Vec<LeaseEntry> {
        std::fs::read_to_string(self.file("leases"))
            .map(|text| parse_leases(&text))
            .unwrap_or_default()
    }
}

/// Ids of the networks that have dnsmasq files in `dir`.
pub fn ids_with_files(dir: &Path) -> Vec<i64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| id_of_file(&e.file_name().to_string_lossy()))
        .collect()
}

/// The id in `dnsmasq-<id>.<ext>`.
fn id_of_file(name: &str) -> Option<i64> {
    let (id, _ext) = name.strip_prefix("dnsmasq-")?.split_once('.')?;
    id.parse().ok()
}

/// The arguments (without argv\[0\]) of process `pid`.
fn cmdline_args(pid: u32) -> Option<Vec<String>> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let text = String::from_utf8(cmdline).ok()?;
    let mut args: Vec<String> = text.split('\0').skip(1).map(str::to_string).collect();
    if args.last().is_some_and(String::is_empty) {
        args.pop();
    }
    Some(args)
}

/// Whether a `/proc/PID/cmdline` is dnsmasq's with `--pid-file=<pid_file>`.
fn is_ours(cmdline: &[u8], pid_file: &Path) -> bool {
    let mut args = cmdline.split(|&b| b == 0).map(String::from_utf8_lossy);
    let Some(argv0) = args.next() else {
        return false;
    };
    let wanted = format!("--pid-file={}", pid_file.display());
    Path::new(argv0.as_ref()).file_name() == Some("dnsmasq".as_ref()) && args.any(|a| a == wanted)
}

/// The dotted netmask of a prefix length.
fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

/// Parses dnsmasq lease lines, skipping malformed ones.
pub fn parse_leases(text: &str) -> Vec<LeaseEntry> {
    text.lines().filter_map(parse_lease).collect()
}

fn parse_lease(line: &str) -> Option<LeaseEntry> {
    let mut fields = line.split_whitespace();
    let expires_at = fields.next()?.parse().ok()?;
    let mac = fields.next()?.to_ascii_lowercase();
    let ip = fields.next()?.parse().ok()?;
    let hostname = fields.next().filter(|h| *h != "*").map(str::to_string);
    vm_proto::types::is_mac(&mac).then_some(LeaseEntry {
        mac,
        ip,
        hostname,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dnsmasq(nat: bool) -> Dnsmasq {
        let net = NetSpec {
            id: 4,
            name: "lab".into(),
            subnet: Subnet::parse("10.213.4.0/29").expect("subnet"),
            dhcp: true,
            nat,
        };
        Dnsmasq::new(Path::new("/run/vmd/net"), &net)
    }

    #[test]
    fn argv_of_an_isolated_network() {
        assert_eq!(
            dnsmasq(false).args(),
            [
                "--conf-file=/dev/null",
                "--keep-in-foreground",
                "--bind-interfaces",
                "--interface=vmdbr4",
                "--except-interface=lo",
                "--port=0",
                "--dhcp-range=10.213.4.2,10.213.4.6,255.255.255.248,1h",
                "--dhcp-leasefile=/run/vmd/net/dnsmasq-4.leases",
                "--pid-file=/run/vmd/net/dnsmasq-4.pid",
                "--dhcp-authoritative",
                "--no-ping",
                "--dhcp-option=3",
                "--log-facility=-",
                "--quiet-dhcp",
            ]
        );
    }

    #[test]
    fn nat_networks_announce_the_gateway() {
        assert!(dnsmasq(true)
            .args()
            .contains(&"--dhcp-option=3,10.213.4.1".to_string()));
    }

    #[test]
    fn ids_of_files() {
        assert_eq!(id_of_file("dnsmasq-12.leases"), Some(12));
        assert_eq!(id_of_file("dnsmasq-x.pid"), None);
        assert_eq!(id_of_file("other-3.pid"), None);
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(16), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(netmask(0), Ipv4Addr::new(0, 0, 0, 0));
    }

    #[test]
    fn adopts_only_its_own_dnsmasq() {
        let pid_file = Path::new("/run/vmd/net/dnsmasq-4.pid");
        let ours =
            b"/usr/sbin/dnsmasq\0--keep-in-foreground\0--pid-file=/run/vmd/net/dnsmasq-4.pid\0";
        assert!(is_ours(ours, pid_file));
        let other_net = b"dnsmasq\0--pid-file=/run/vmd/net/dnsmasq-14.pid\0";
        assert!(!is_ours(other_net, pid_file));
        let stranger = b"/usr/bin/sleep\0--pid-file=/run/vmd/net/dnsmasq-4.pid\0";
        assert!(!is_ours(stranger, pid_file));
        assert!(!is_ours(b"", pid_file));
    }

    #[test]
    fn parses_lease_files() {
        let text = "1796176005 B2:ca:b5:f5:3d:a8 10.213.4.3 web 01:b2:ca:b5:f5:3d:a8\n\
                    0 52:54:00:12:34:56 10.213.4.4 * *\n\
                    garbage line\n\
                    12 not-a-mac 10.213.4.5 x *\n";
        assert_eq!(
            parse_leases(text),
            [
                LeaseEntry {
                    mac: "b2:ca:b5:f5:3d:a8".into(),
                    ip: Ipv4Addr::new(10, 213, 4, 3),
                    hostname: Some("web".into()),
                    expires_at: 1_796_176_005,
                },
                LeaseEntry {
                    mac: "52:54:00:12:34:56".into(),
                    ip: Ipv4Addr::new(10, 213, 4, 4),
                    hostname: None,
                    expires_at: 0,
                },
            ]
        );
    }
}
