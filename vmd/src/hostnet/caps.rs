//! Whether vmd can manage lab networks here, and where the programs it runs are.
//!
//! Needs: `CAP_NET_ADMIN` in the effective set (read from `/proc/self/status`, so it also
//! holds for a non-root vmd given the capability), `/dev/net/tun` (QEMU's taps), `nft`, and
//! `dnsmasq` for DHCP networks. Programs are looked up on `PATH` and then in `/usr/sbin` and
//! `/sbin`, which an ordinary user's `PATH` on Debian lacks.

use std::path::{Path, PathBuf};

use super::HostNetError;

/// Bit of `CAP_NET_ADMIN` in the capability sets.
const CAP_NET_ADMIN: u32 = 12;
/// Where QEMU opens taps.
const TUN_DEVICE: &str = "/dev/net/tun";
/// Searched after `PATH`.
const SBIN_DIRS: [&str; 2] = ["/usr/sbin", "/sbin"];

/// A program lab networks run, with the Debian package that has it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// File name.
    pub name: &'static str,
    /// Debian package.
    pub package: &'static str,
}

/// nftables' command line tool.
pub const NFT: Tool = Tool {
    name: "nft",
    package: "nftables",
};
/// The DHCP server.
pub const DNSMASQ: Tool = Tool {
    name: "dnsmasq",
    package: "dnsmasq-base",
};

/// Checks everything lab networks need; the error names the first thing missing.
pub fn check(needs_dhcp: bool) -> Result<(), HostNetError> {
    if !has_net_admin() {
        return Err(HostNetError::NotCapable {
            missing: "vmd lacks CAP_NET_ADMIN".into(),
            hint: "run vmd as root (the packaged systemd unit does) or grant it CAP_NET_ADMIN \
                   (AmbientCapabilities=CAP_NET_ADMIN)"
                .into(),
        });
    }
    if !Path::new(TUN_DEVICE).exists() {
        return Err(HostNetError::NotCapable {
            missing: format!("{TUN_DEVICE} does not exist"),
            hint: "load the tun module (modprobe tun) or give the container /dev/net/tun".into(),
        });
    }
    find(NFT)?;
    if needs_dhcp {
        find(DNSMASQ)?;
    }
    Ok(())
}

/// The path of `tool`, or [`HostNetError::MissingTool`].
pub fn find(tool: Tool) -> Result<PathBuf, HostNetError> {
    let path_dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_dirs)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(tool.name))
        .find(|candidate| is_executable(candidate))
        .ok_or(HostNetError::MissingTool {
            tool: tool.name,
            package: tool.package,
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn has_net_admin() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| cap_eff(&status))
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// The `CapEff:` mask of a `/proc/PID/status` text.
fn cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cap_eff() {
        let status = "Name:\tvmd\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(cap_eff(status), Some(0x01ff_ffff_ffff));
        assert_eq!(cap_eff("Name:\tx\n"), None);
        let without = "CapEff:\t0000000000000000\n";
        assert!(cap_eff(without).is_some_and(|c| c & (1 << CAP_NET_ADMIN) == 0));
    }

    #[test]
    fn finds_programs_or_names_the_package() {
        let sh = Tool {
            name: "sh",
            package: "dash",
        };
        assert!(find(sh).is_ok_and(|p| p.ends_with("sh")));
        let missing = Tool {
            name: "vmd-no-such-program",
            package: "nothing",
        };
        match find(missing) {
            Err(HostNetError::MissingTool { tool, package }) => {
                assert_eq!((tool, package), ("vmd-no-such-program", "nothing"));
            }
            other => panic!("expected MissingTool, got {other:?}"),
        }
    }
}
