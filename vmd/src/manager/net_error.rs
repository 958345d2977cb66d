//! Failures of lab networks, NICs and port forwards, each mapped to one API error kind and a
//! hint (kept apart from [`super::Error`], which wraps them).

use vm_proto::types::Protocol;
use vm_proto::ErrorCode;

use crate::hostnet::HostNetError;

/// What went wrong with a network, a NIC or a port forward.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// No network of that name (or one the caller may not see).
    #[error("network {0} not found")]
    NotFound(String),
    /// A network with that name exists.
    #[error("network {0} already exists")]
    Exists(String),
    /// VMs have NICs on it.
    #[error("network {name} is used by {}", users.join(", "))]
    InUse {
        /// The network.
        name: String,
        /// VMs with a NIC on it.
        users: Vec<String>,
    },
    /// The subnet overlaps another network or a host route.
    #[error("subnet {subnet} overlaps {other}")]
    Overlap {
        /// The requested subnet.
        subnet: String,
        /// What it overlaps.
        other: String,
    },
    /// A user's subnet lies outside the pool.
    #[error("subnet {subnet} is outside the network pool {pool}")]
    OutsidePool {
        /// The requested subnet.
        subnet: String,
        /// The configured pool.
        pool: String,
    },
    /// The pool has no free /24 left.
    #[error("no free /24 left in the network pool {0}")]
    PoolFull(String),
    /// The VM already has a NIC on the network.
    #[error("vm {vm} already has a NIC on network {network}")]
    NicExists {
        /// The VM.
        vm: String,
        /// The network.
        network: String,
    },
    /// The VM has no NIC on the network.
    #[error("vm {vm} has no NIC on network {network}")]
    NoNic {
        /// The VM.
        vm: String,
        /// The network.
        network: String,
    },
    /// More NICs than a VM may have, or a network named twice.
    #[error("{0}")]
    Nics(String),
    /// Port forwards need the user-mode NIC.
    #[error("vm {0} has no user-mode NIC (created with no_user_net)")]
    NoUserNet(String),
    /// A port value or address is not acceptable.
    #[error("{0}")]
    Port(String),
    /// A user asked for a host port below 1024.
    #[error("host port {0} is privileged (below 1024): only admins may forward it")]
    PrivilegedPort(u16),
    /// Another forward holds the host port.
    #[error("host port {protocol}/{port} is already forwarded to {holder}")]
    PortTaken {
        /// TCP or UDP.
        protocol: &'static str,
        /// The port.
        port: u16,
        /// `vm NAME` when the caller may see it, else "another user's vm".
        holder: String,
    },
    /// The VM has no such forward.
    #[error("vm {vm} has no {} forward of host port {port}", protocol.as_str())]
    NoPort {
        /// The VM.
        vm: String,
        /// TCP or UDP.
        protocol: Protocol,
        /// The host port.
        port: u16,
    },
    /// QEMU refused the forward (typically: the host port is bound by another program).
    #[error("QEMU could not forward host port {port}: {reason}")]
    Bind {
        /// The port.
        port: u16,
        /// QEMU's words.
        reason: String,
    },
    /// Networking is not possible here (no CAP_NET_ADMIN, a tool missing).
    #[error("lab networks are unavailable here")]
    Unavailable(#[source] HostNetError),
    /// Setting up or tearing down the host side failed.
    #[error("cannot set up network {name} on the host")]
    Host {
        /// The network.
        name: String,
        /// Why.
        #[source]
        source: HostNetError,
    },
}

impl NetError {
    /// The API error kind.
    pub fn code(&self) -> ErrorCode {
        match self {
            NetError::NotFound(_) | NetError::NoNic { .. } | NetError::NoPort { .. } => {
                ErrorCode::NotFound
            }
            NetError::Exists(_) | NetError::NicExists { .. } => ErrorCode::AlreadyExists,
            NetError::InUse { .. } | NetError::PortTaken { .. } => ErrorCode::InUse,
            NetError::Overlap { .. }
            | NetError::OutsidePool { .. }
            | NetError::Nics(_)
            | NetError::NoUserNet(_)
            | NetError::Port(_) => ErrorCode::InvalidArgument,
            NetError::PoolFull(_) => ErrorCode::Unavailable,
            NetError::PrivilegedPort(_) => ErrorCode::PermissionDenied,
            NetError::Bind { .. } | NetError::Unavailable(_) => ErrorCode::Unavailable,
            NetError::Host { .. } => ErrorCode::Internal,
        }
    }

    /// What the caller can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            NetError::NotFound(_) => "list networks with `vmctl net ls`".into(),
            NetError::Exists(_) => "choose another name or remove the existing one first".into(),
            NetError::InUse { name, users } => format!(
                "remove the NICs first: {}",
                users
                    .iter()
                    .map(|vm| format!("vmctl nic rm {vm} --net {name}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            NetError::Overlap { .. } => {
                "choose another --subnet, or leave it out to get a free one".into()
            }
            NetError::OutsidePool { pool, .. } => {
                format!("choose a subnet inside {pool}, or leave --subnet out")
            }
            NetError::PoolFull(_) => {
                "remove unused networks, or ask an admin to widen [network] pool".into()
            }
            NetError::NoNic { vm, .. } => format!("`vmctl show {vm}` lists its NICs"),
            NetError::NoUserNet(_) => "create the VM without --no-user-net to forward ports".into(),
            NetError::PrivilegedPort(_) => "choose a host port of 1024 or above".into(),
            NetError::PortTaken { .. } | NetError::Bind { .. } => {
                "choose another host port (`vmctl port ls VM` shows a VM's forwards)".into()
            }
            NetError::NoPort { vm, .. } => format!("`vmctl port ls {vm}` lists its forwards"),
            NetError::Unavailable(source) => return source.hint(),
            NetError::Host { .. } => "see the daemon log (journalctl -u vmd)".into(),
            _ => return None,
        })
    }
}
