//! Lab networks, the NICs that join VMs to them, and port forwards on the user-mode NIC.
//! `docs/networks.md` describes the model; the validation rules live here so that vmctl
//! refuses bad input before it connects and vmd applies the same rules.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Most NICs on lab networks one VM may have (besides the user-mode NIC).
pub const NICS_MAX: usize = 8;
/// Most port forwards one VM may have.
pub const PORTS_MAX: usize = 32;
/// Longest prefix a network's subnet may have (a /29 leaves 5 addresses for guests).
pub const SUBNET_PREFIX_MAX: u8 = 29;
/// Shortest prefix a network's subnet may have.
pub const SUBNET_PREFIX_MIN: u8 = 16;

/// A lab network: a Linux bridge that joins VMs' NICs, isolated unless it has NAT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Network {
    /// Unique network name (a DNS label).
    pub name: String,
    /// The account that owns it.
    pub owner: String,
    /// Whether every user may attach VMs to it (networks of admins are shared).
    pub shared: bool,
    /// IPv4 subnet in CIDR notation (`10.213.4.0/24`).
    pub subnet: String,
    /// The host's address on the bridge (the first address of the subnet) when the network
    /// has DHCP or NAT; `None`: the bridge has no address.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Whether vmd serves DHCP (dnsmasq) on it.
    pub dhcp: bool,
    /// Whether guests reach the host's uplink through NAT (else: isolated).
    pub nat: bool,
    /// The Linux bridge on the host (admins only; `None` for users).
    #[serde(default)]
    pub bridge: Option<String>,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// The NICs on this network that the caller may see, with their VMs.
    #[serde(default)]
    pub members: Vec<NetworkMember>,
    /// DHCP leases handed out (only those of members the caller may see).
    #[serde(default)]
    pub leases: Vec<Lease>,
}

/// One NIC on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkMember {
    /// The VM.
    pub vm: String,
    /// The NIC's MAC address.
    pub mac: String,
    /// The address its DHCP lease gives, if any.
    #[serde(default)]
    pub ip: Option<String>,
}

/// A DHCP lease of a network's dnsmasq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lease {
    /// The client's MAC address.
    pub mac: String,
    /// The leased address.
    pub ip: String,
    /// The host name the client sent, if any.
    #[serde(default)]
    pub hostname: Option<String>,
    /// When the lease ends, RFC 3339 UTC.
    pub expires_at: String,
    /// The VM whose NIC holds it.
    #[serde(default)]
    pub vm: Option<String>,
}

/// Parameters of `net.create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    /// Unique network name (a DNS label).
    pub name: String,
    /// IPv4 subnet in CIDR notation, prefix /16 to /29, the network address itself
    /// (`10.213.4.0/24`). Default: the next free /24 of the config's `network_pool`. Users
    /// must stay inside the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Serve DHCP on it. Default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dhcp: bool,
    /// Give guests the host's uplink through NAT. Default `false` (isolated).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nat: bool,
}

/// A NIC of a VM on a lab network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Nic {
    /// The network.
    pub network: String,
    /// Its MAC address (locally administered, unique, stable).
    pub mac: String,
    /// The address its DHCP lease gives, if any.
    #[serde(default)]
    pub ip: Option<String>,
    /// The host's tap device while the VM has a process.
    #[serde(default)]
    pub tap: Option<String>,
}

/// Parameters of `vm.nic_add` and `vm.nic_remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NicChange {
    /// The VM (stopped).
    pub vm: String,
    /// The network.
    pub network: String,
}

/// Transport of a port forward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The wire and table name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// Parses [`Protocol::as_str`] back.
    pub fn parse(text: &str) -> Option<Protocol> {
        [Protocol::Tcp, Protocol::Udp]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

/// A host port forwarded to a guest port through the user-mode NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortForward {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The host address it listens on.
    pub host_address: String,
    /// The host port.
    pub host_port: u16,
    /// The guest port.
    pub guest_port: u16,
}

/// Parameters of `vm.port_add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PortAdd {
    /// The VM (it needs its user-mode NIC).
    pub vm: String,
    /// Default TCP.
    #[serde(default)]
    pub protocol: Protocol,
    /// Host address to listen on. Default `127.0.0.1`; others must be allowed by the
    /// config's `port_forward_addresses`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_address: Option<String>,
    /// Host port, 1 to 65535; below 1024 only for admins. Unique per protocol among all VMs.
    pub host_port: u16,
    /// Guest port, 1 to 65535.
    pub guest_port: u16,
}

/// Parameters of `vm.port_remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PortRemove {
    /// The VM.
    pub vm: String,
    /// Default TCP.
    #[serde(default)]
    pub protocol: Protocol,
    /// The host port of the forward.
    pub host_port: u16,
}

/// An IPv4 subnet in CIDR notation, checked: the network address itself and a prefix from
/// [`SUBNET_PREFIX_MIN`] to [`SUBNET_PREFIX_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// The network address.
    pub network: Ipv4Addr,
    /// The prefix length.
    pub prefix: u8,
}

impl Subnet {
    /// Parses and checks `10.213.4.0/24`.
    pub fn parse(text: &str) -> Result<Subnet, String> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("subnet {text:?} is not in CIDR notation (10.213.4.0/24)"))?;
        let network: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("subnet {text:?}: {addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (SUBNET_PREFIX_MIN..=SUBNET_PREFIX_MAX).contains(p))
            .ok_or_else(|| {
                format!("subnet {text:?}: the prefix must be /{SUBNET_PREFIX_MIN} to /{SUBNET_PREFIX_MAX}")
            })?;
        let subnet = Subnet { network, prefix };
        if subnet.base() != u32::from(network) {
            return Err(format!(
                "subnet {text:?} is not a network address; did you mean {}?",
                Subnet {
                    network: Ipv4Addr::from(u32::from(network) & subnet.mask()),
                    prefix
                }
            ));
        }
        if network.is_loopback() || network.is_multicast() || network.is_unspecified() {
            return Err(format!("subnet {text:?} is not usable for a network"));
        }
        Ok(subnet)
    }

    fn mask(self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    fn base(self) -> u32 {
        u32::from(self.network) & self.mask()
    }

    /// The last address (broadcast).
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(self.base() | !self.mask())
    }

    /// The first host address: the host's address on the bridge.
    pub fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::from(self.base() + 1)
    }

    /// The DHCP range: from the second host address to the last before the broadcast.
    pub fn dhcp_range(self) -> (Ipv4Addr, Ipv4Addr) {
        (
            Ipv4Addr::from(self.base() + 2),
            Ipv4Addr::from(u32::from(self.broadcast()) - 1),
        )
    }

    /// Whether `addr` lies inside.
    pub fn contains(self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == self.base()
    }

    /// Whether the two share any address.
    pub fn overlaps(self, other: Subnet) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `Vm::user_net` of responses from daemons older than 2.6: every VM had the user NIC.
pub fn network_default_user_net() -> bool {
    true
}

/// Checks a MAC address string: six lowercase hex pairs with colons.
pub fn is_mac(text: &str) -> bool {
    text.len() == 17
        && text.split(':').count() == 6
        && text.split(':').all(|p| {
            p.len() == 2
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_refuse() {
        let s = Subnet::parse("10.213.4.0/24").expect("ok");
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 213, 4, 1));
        assert_eq!(
            s.dhcp_range(),
            (Ipv4Addr::new(10, 213, 4, 2), Ipv4Addr::new(10, 213, 4, 254))
        );
        assert_eq!(s.to_string(), "10.213.4.0/24");
        let err = Subnet::parse("10.213.4.7/24").expect_err("host bits");
        assert!(err.contains("10.213.4.0/24"), "{err}");
        for bad in [
            "10.0.0.0",
            "10.0.0.0/8",
            "10.0.0.0/30",
            "x/24",
            "127.0.0.0/16",
            "224.0.0.0/24",
        ] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
        let big = Subnet::parse("10.213.0.0/16").expect("ok");
        assert!(big.overlaps(s) && s.overlaps(big));
        assert!(!s.overlaps(Subnet::parse("10.213.5.0/24").expect("ok")));
    }

    #[test]
    fn macs_and_protocols() {
        assert!(is_mac("02:76:6d:00:01:ff"));
        assert!(
            !is_mac("02:76:6D:00:01:ff")
                && !is_mac("02:76:6d:00:01")
                && !is_mac("0276:6d:00:01:ff:0")
        );
        assert_eq!(Protocol::parse("udp"), Some(Protocol::Udp));
        assert_eq!(Protocol::parse("sctp"), None);
    }
}
