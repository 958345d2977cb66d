//! The host side of lab networks: Linux bridges, taps, nftables rules and dnsmasq.
//!
//! Each network is a bridge `vmdbr<id>` (no STP, IPv6 off, a stable MAC derived from the id).
//! A network with DHCP or NAT gets the subnet's first address on its bridge (dnsmasq needs one
//! to serve DHCP; NAT guests route through it); an isolated one without DHCP has none. The
//! tap of each NIC (made by QEMU with `-netdev tap,ifname=…`) joins the bridge.
//!
//! Isolation is enforced by vmd's own nftables table `inet vmd` ([`nft`]), regenerated from
//! the full list of networks and replaced in one transaction on every change: guests reach the
//! host only for DHCP (and ping of the gateway on NAT networks), the host reaches no guest,
//! networks do not reach each other, and only NAT networks are forwarded (and masqueraded) to
//! the rest of the host's links. While any NAT network exists, `net.ipv4.ip_forward` is set to
//! 1 (and never set back: other software on the host may rely on it). No other table, chain
//! or sysctl is touched.
//!
//! dnsmasq ([`dnsmasq`]) runs once per DHCP network in a session of its own, so that it
//! outlives vmd like QEMU does; its pid, lease and log files live in the [`HostNet`] directory
//! under names with the network id, and a running one is adopted after a vmd restart.
//!
//! All of this needs `CAP_NET_ADMIN` ([`caps`]); without it vmd runs with lab networks off.
//! Everything here acts on the network namespace of the calling thread (netlink sockets,
//! `/proc/sys/net` and the children `nft` and `dnsmasq` all follow it), which the tests use
//! to run in a namespace of their own.

pub mod caps;
pub mod dnsmasq;
pub mod link;
pub mod nft;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use vm_proto::types::Subnet;

pub use dnsmasq::LeaseEntry;
use link::Netlink;

/// Name prefix of every bridge vmd makes (`vmdbr<id>`).
pub const BRIDGE_PREFIX: &str = "vmdbr";
/// Name prefix of every tap vmd's QEMUs make (`vmd<vm>n<position>`).
pub const TAP_PREFIX: &str = "vmd";

/// What the host side needs to know about one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSpec {
    /// The store's id; names the bridge and the files.
    pub id: i64,
    /// The network's name (for messages).
    pub name: String,
    /// Its subnet.
    pub subnet: Subnet,
    /// dnsmasq serves DHCP on it.
    pub dhcp: bool,
    /// Guests reach the host's other links through NAT.
    pub nat: bool,
}

impl NetSpec {
    /// The bridge's name: `vmdbr<id>` (at most 15 bytes for ids below 10^10).
    pub fn bridge(&self) -> String {
        format!("{BRIDGE_PREFIX}{}", self.id)
    }

    /// The host's address on the bridge: the subnet's first address when the network has
    /// DHCP or NAT, else none.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        (self.dhcp || self.nat).then(|| self.subnet.gateway())
    }
}

/// The tap of a VM's lab NIC: `vmd<vm_id>n<position>` (at most 15 bytes while the ids fit).
pub fn tap_name(vm_id: i64, position: i64) -> String {
    format!("{TAP_PREFIX}{vm_id}n{position}")
}

/// Failures of host network operations.
#[derive(Debug, thiserror::Error)]
pub enum HostNetError {
    /// vmd lacks a privilege or a kernel device that lab networks need.
    #[error("lab networks are not available: {missing}")]
    NotCapable {
        /// What is missing.
        missing: String,
        /// How to fix it.
        hint: String,
    },
    /// A program that lab networks need is not installed.
    #[error("lab networks need {tool}, which is not installed")]
    MissingTool {
        /// The program.
        tool: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// A netlink request failed.
    #[error("cannot {op}")]
    Netlink {
        /// What vmd tried (`create bridge vmdbr3`).
        op: String,
        /// Why.
        #[source]
        source: rtnetlink::Error,
    },
    /// A link that must exist does not.
    #[error("network device {name} does not exist")]
    NoSuchLink {
        /// Its name.
        name: String,
    },
    /// `nft` refused the ruleset or failed.
    #[error("cannot apply the nftables rules: {stderr}")]
    Nft {
        /// What nft said.
        stderr: String,
    },
    /// dnsmasq did not come up.
    #[error("dnsmasq for network {network} did not start: {message}")]
    Dnsmasq {
        /// The network's name.
        network: String,
        /// What went wrong (the end of its log when it exited).
        message: String,
    },
    /// A program could not be run.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file (state file, sysctl) could not be read or written.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl HostNetError {
    /// A sentence telling the operator how to fix it, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            HostNetError::NotCapable { hint, .. } => Some(hint.clone()),
            HostNetError::MissingTool { package, .. } => {
                Some(format!("install it on the host: apt-get install {package}"))
            }
            _ => None,
        }
    }

    fn io(path: &Path, source: std::io::Error) -> HostNetError {
        HostNetError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The host side of all lab networks. Cheap to share; holds no open resources.
#[derive(Debug, Clone)]
pub struct HostNet {
    /// dnsmasq's pid, lease and log files.
    dir: PathBuf,
}

impl HostNet {
    /// `dir` (normally `<run_dir>/net`) is created, mode 0700, when dnsmasq first needs it.
    pub fn new(dir: PathBuf) -> HostNet {
        HostNet { dir }
    }

    /// Checks that vmd can manage networks here: `CAP_NET_ADMIN`, `/dev/net/tun`, `nft`, and
    /// `dnsmasq` when `needs_dhcp`. The error says what is missing and how to fix it.
    pub fn check_capable(&self, needs_dhcp: bool) -> Result<(), HostNetError> {
        caps::check(needs_dhcp)
    }

    /// The IPv4 subnets of the host's addresses and routes that are not on vmd's bridges
    /// (default routes left out), as network address and prefix, for refusing overlaps.
    pub async fn host_subnets(&self) -> Result<Vec<(Ipv4Addr, u8)>, HostNetError> {
        Netlink::connect()?.host_subnets(BRIDGE_PREFIX).await
    }

    /// Makes `net` exist on the host, idempotently: the nftables table for `all` (which must
    /// include `net`), then [`HostNet::ensure_links`].
    pub async fn ensure(&self, net: &NetSpec, all: &[NetSpec]) -> Result<(), HostNetError> {
        // Rules first: a bridge never has an address the rules do not guard yet.
        self.apply_rules(all).await?;
        self.ensure_links(net).await
    }

    /// Replaces vmd's table with the one for `all` (deleted when empty).
    pub async fn apply_rules(&self, all: &[NetSpec]) -> Result<(), HostNetError> {
        nft::apply(all).await
    }

    /// `net`'s bridge up with IPv6 off and the gateway as its only address (none without
    /// DHCP and NAT), and its dnsmasq if it has DHCP (a live one is kept). Idempotent; the
    /// rules must already cover `net` ([`HostNet::apply_rules`]).
    pub async fn ensure_links(&self, net: &NetSpec) -> Result<(), HostNetError> {
        let nl = Netlink::connect()?;
        let created = nl.ensure_bridge(&net.bridge(), bridge_mac(net.id)).await?;
        let address = net.gateway().map(|gw| (gw, net.subnet.prefix));
        nl.set_address(&net.bridge(), address).await?;
        let started = net.dhcp && self.ensure_dnsmasq(net).await?;
        if created {
            tracing::info!(network = %net.name, bridge = %net.bridge(), subnet = %net.subnet,
                dhcp = net.dhcp, nat = net.nat, "network up");
        } else if started {
            tracing::info!(network = %net.name, bridge = %net.bridge(), "dnsmasq restarted");
        }
        Ok(())
    }

    /// Takes `net` off the host, idempotently: stops its dnsmasq, deletes its bridge (which
    /// detaches any tap still on it), applies the table for `remaining` (deleted when empty)
    /// and removes its files.
    pub async fn remove(&self, net: &NetSpec, remaining: &[NetSpec]) -> Result<(), HostNetError> {
        self.dnsmasq(net).stop().await?;
        let deleted = Netlink::connect()?.delete_link(&net.bridge()).await?;
        nft::apply(remaining).await?;
        self.dnsmasq(net).remove_files()?;
        if deleted {
            tracing::info!(network = %net.name, bridge = %net.bridge(), "network down");
        }
        Ok(())
    }

    /// Loads the table for `all` again if another program removed it (e.g. `nft flush
    /// ruleset`); `Ok(true)` if it had to. Meant for the supervisor.
    pub async fn ensure_rules(&self, all: &[NetSpec]) -> Result<bool, HostNetError> {
        if all.is_empty() || nft::table_present().await? {
            return Ok(false);
        }
        nft::apply(all).await?;
        Ok(true)
    }

    /// Puts the existing `tap` on `net`'s bridge, up, with IPv6 off. Idempotent.
    pub async fn attach_tap(&self, tap: &str, net: &NetSpec) -> Result<(), HostNetError> {
        link::disable_ipv6(tap)?;
        Netlink::connect()?.attach(tap, &net.bridge()).await
    }

    /// Starts `net`'s dnsmasq unless a live one runs; `Ok(true)` if it started one (which the
    /// caller logs). Meant to be called every few seconds by a supervisor.
    pub async fn ensure_dnsmasq(&self, net: &NetSpec) -> Result<bool, HostNetError> {
        self.dnsmasq(net).ensure().await
    }

    /// The leases in `net`'s lease file (none when there is no file).
    pub fn leases(&self, net: &NetSpec) -> Vec<LeaseEntry> {
        self.dnsmasq(net).leases()
    }

    /// Names of the host's links that start with `prefix` (for removing stale bridges).
    pub async fn links_with_prefix(&self, prefix: &str) -> Result<Vec<String>, HostNetError> {
        Netlink::connect()?.links_with_prefix(prefix).await
    }

    /// Deletes the link `name` if it exists; true if it did. For stale bridges and taps.
    pub async fn delete_link(&self, name: &str) -> Result<bool, HostNetError> {
        Netlink::connect()?.delete_link(name).await
    }

    /// Ids of networks with host state (a `vmdbr<id>` bridge or dnsmasq files) that are not
    /// in `known`: leftovers of networks removed while vmd was down, for
    /// [`HostNet::remove_stale`].
    pub async fn stale_ids(&self, known: &[NetSpec]) -> Result<Vec<i64>, HostNetError> {
        let bridges = self.links_with_prefix(BRIDGE_PREFIX).await?;
        let mut ids: Vec<i64> = bridges
            .iter()
            .filter_map(|b| b.strip_prefix(BRIDGE_PREFIX)?.parse().ok())
            .chain(dnsmasq::ids_with_files(&self.dir))
            .filter(|id| !known.iter().any(|k| k.id == *id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Removes what is left of network `id` (its dnsmasq, bridge and files), applying the
    /// table for `remaining`. Idempotent.
    pub async fn remove_stale(&self, id: i64, remaining: &[NetSpec]) -> Result<(), HostNetError> {
        let leftover = NetSpec {
            id,
            name: format!("#{id}"),
            // Not used when removing: only the id names the bridge and the files.
            subnet: Subnet {
                network: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
            },
            dhcp: true,
            nat: false,
        };
        self.remove(&leftover, remaining).await
    }

    fn dnsmasq(&self, net: &NetSpec) -> dnsmasq::Dnsmasq {
        dnsmasq::Dnsmasq::new(&self.dir, net)
    }
}

/// The bridge's MAC: locally administered unicast `02:76:6d:` ("vmd") and the id's low 24
/// bits (guests' NICs use `02:6c:61:`, so the two never collide). A fixed MAC keeps the gateway's
/// ARP entry valid in guests when the bridge is re-created (else a bridge takes the lowest
/// MAC of its ports, which changes as taps come and go).
fn bridge_mac(id: i64) -> [u8; 6] {
    let [.., a, b, c] = id.to_be_bytes();
    [0x02, 0x76, 0x6d, a, b, c]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: i64, dhcp: bool, nat: bool) -> NetSpec {
        NetSpec {
            id,
            name: format!("n{id}"),
            subnet: Subnet::parse("10.213.4.0/24").expect("subnet"),
            dhcp,
            nat,
        }
    }

    #[test]
    fn names_fit_in_ifnamsiz() {
        assert_eq!(spec(7, false, false).bridge(), "vmdbr7");
        assert_eq!(tap_name(12, 3), "vmd12n3");
        assert!(spec(9_999_999_999, false, false).bridge().len() <= 15);
        assert!(tap_name(999_999, 7).len() <= 15);
    }

    #[test]
    fn gateway_only_with_dhcp_or_nat() {
        let gw = Some(Ipv4Addr::new(10, 213, 4, 1));
        assert_eq!(spec(1, false, false).gateway(), None);
        assert_eq!(spec(1, true, false).gateway(), gw);
        assert_eq!(spec(1, false, true).gateway(), gw);
    }

    #[test]
    fn bridge_macs_are_local_unicast_and_distinct() {
        let mac = bridge_mac(0x01_0203);
        assert_eq!(mac, [0x02, 0x76, 0x6d, 0x01, 0x02, 0x03]);
        assert_eq!(mac[0] & 0x03, 0x02, "locally administered unicast");
        assert_ne!(bridge_mac(1), bridge_mac(2));
    }

    #[test]
    fn hints_name_the_fix() {
        let err = HostNetError::MissingTool {
            tool: "nft",
            package: "nftables",
        };
        assert_eq!(
            err.hint().as_deref(),
            Some("install it on the host: apt-get install nftables")
        );
    }
}
