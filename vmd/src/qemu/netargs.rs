//! The NICs of a QEMU command line: the user-mode NIC (`net0`, first, with its port forwards)
//! and one virtio NIC per lab network, each on a tap device QEMU creates by name (`ifname=`,
//! while it still runs as root) and vmd then joins to the network's bridge. A VM with lab
//! NICs starts paused (`-S`): vmd attaches the taps and only then lets the guest run, so a
//! guest never sends its first DHCP request into a tap that is not on its bridge yet.
//!
//! Port forwards are `hostfwd` rules of the user-mode NIC; at run time the same rules are
//! added and removed with the HMP commands `hostfwd_add`/`hostfwd_remove` ([`hostfwd_add`]),
//! which QMP only offers through `human-monitor-command`.

use vm_proto::types::{PortForward, Protocol};

/// The QEMU id of the user-mode NIC's netdev.
pub const USER_NETDEV: &str = "net0";

/// One NIC on a lab network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapNic {
    /// The tap device QEMU creates (`vmd<vm>n<position>`).
    pub tap: String,
    /// The guest's MAC address.
    pub mac: String,
}

/// The networking part of a [`super::argv::QemuConfig`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetArgs {
    /// Whether the VM has the user-mode NIC.
    pub user_net: bool,
    /// Port forwards on it.
    pub ports: Vec<PortForward>,
    /// Lab NICs in guest order.
    pub taps: Vec<TapNic>,
}

impl NetArgs {
    /// `-netdev`/`-device` pairs, plus `-S` when there are lab NICs.
    pub fn args(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.user_net {
            let mut netdev = format!("user,id={USER_NETDEV}");
            for port in &self.ports {
                netdev.push_str(&format!(",hostfwd={}", rule(port)));
            }
            out.push(("-netdev", netdev));
            out.push(("-device", format!("virtio-net-pci,netdev={USER_NETDEV}")));
        }
        for (i, nic) in self.taps.iter().enumerate() {
            out.push((
                "-netdev",
                format!("tap,id=lan{i},ifname={},script=no,downscript=no", nic.tap),
            ));
            out.push((
                "-device",
                format!("virtio-net-pci,netdev=lan{i},mac={}", nic.mac),
            ));
        }
        out
    }

    /// Whether QEMU must start paused until vmd has attached the taps.
    pub fn starts_paused(&self) -> bool {
        !self.taps.is_empty()
    }
}

/// `tcp:127.0.0.1:8080-:80`: a `hostfwd` rule (addresses are checked IPv4 literals).
pub fn rule(port: &PortForward) -> String {
    format!(
        "{}:{}:{}-:{}",
        port.protocol.as_str(),
        port.host_address,
        port.host_port,
        port.guest_port
    )
}

/// The HMP command that adds `port` to a running VM.
pub fn hostfwd_add(port: &PortForward) -> String {
    format!("hostfwd_add {USER_NETDEV} {}", rule(port))
}

/// The HMP command that removes the forward of `protocol` on `address:host_port`.
pub fn hostfwd_remove(protocol: Protocol, address: &str, host_port: u16) -> String {
    format!(
        "hostfwd_remove {USER_NETDEV} {}:{address}:{host_port}",
        protocol.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(protocol: Protocol, host_port: u16, guest_port: u16) -> PortForward {
        PortForward {
            protocol,
            host_address: "127.0.0.1".into(),
            host_port,
            guest_port,
        }
    }

    #[test]
    fn user_nic_first_with_forwards_then_taps() {
        let net = NetArgs {
            user_net: true,
            ports: vec![fwd(Protocol::Tcp, 2222, 22), fwd(Protocol::Udp, 5353, 53)],
            taps: vec![TapNic {
                tap: "vmd3n0".into(),
                mac: "02:76:6d:00:00:01".into(),
            }],
        };
        let args = net.args();
        assert_eq!(
            args[0].1,
            "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:5353-:53"
        );
        assert_eq!(args[1].1, "virtio-net-pci,netdev=net0");
        assert_eq!(
            args[2].1,
            "tap,id=lan0,ifname=vmd3n0,script=no,downscript=no"
        );
        assert_eq!(
            args[3].1,
            "virtio-net-pci,netdev=lan0,mac=02:76:6d:00:00:01"
        );
        assert!(net.starts_paused());
    }

    #[test]
    fn no_user_nic_and_hmp_commands() {
        let net = NetArgs::default();
        assert!(net.args().is_empty() && !net.starts_paused());
        assert_eq!(
            hostfwd_add(&fwd(Protocol::Tcp, 8080, 80)),
            "hostfwd_add net0 tcp:127.0.0.1:8080-:80"
        );
        assert_eq!(
            hostfwd_remove(Protocol::Udp, "127.0.0.1", 5353),
            "hostfwd_remove net0 udp:127.0.0.1:5353"
        );
    }
}
