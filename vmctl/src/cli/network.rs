//! Command-line syntax of lab networks: the `net`, `nic` and `port` verbs and the network
//! options of `create` (`--net`, `--no-user-net`).
//!
//! Like sizes, the subnet and the ports stay strings here and are checked by the verbs, so
//! that a bad value exits 6 (invalid argument), not 2 (usage).

use clap::{Args, Subcommand};

use super::NamesArg;

/// The `net` verbs.
#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Create a lab network: a bridge for VMs' NICs, isolated unless --nat
    Create(NetCreateArgs),
    /// List the networks you may use (shared ones and your own; admins: all)
    #[command(visible_alias = "list")]
    Ls,
    /// Show a network with its members and DHCP leases
    Show(NetNameArg),
    /// Delete networks no VM has a NIC on, in order; stops at the first failure
    #[command(visible_alias = "remove")]
    Rm(NamesArg),
}

/// A network name.
#[derive(Debug, Args)]
pub struct NetNameArg {
    /// Name of the network
    pub name: String,
}

/// Arguments of `net create`.
#[derive(Debug, Args)]
pub struct NetCreateArgs {
    /// Name of the new network
    pub name: String,
    /// IPv4 subnet, the network address with a prefix of /16 to /29, e.g. 10.213.4.0/24
    /// [default: the next free /24 of the daemon's network pool]
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// Serve DHCP on it (the host takes the subnet's first address)
    #[arg(long)]
    pub dhcp: bool,
    /// Give guests the host's uplink through NAT
    #[arg(long, conflicts_with = "isolated")]
    pub nat: bool,
    /// No way out of the network (the default; says so explicitly)
    #[arg(long)]
    pub isolated: bool,
}

/// The `nic` verbs.
#[derive(Debug, Subcommand)]
pub enum NicCommand {
    /// Join a stopped VM to a network with a new NIC (last in order) and print its NICs
    Add(NicArgs),
    /// Remove a stopped VM's NIC on a network and print its NICs
    #[command(visible_alias = "remove")]
    Rm(NicArgs),
}

/// Arguments of `nic add` and `nic rm`.
#[derive(Debug, Args)]
pub struct NicArgs {
    /// Name of the VM (stopped)
    pub vm: String,
    /// The network
    #[arg(long = "net", value_name = "NAME")]
    pub network: String,
}

/// The `port` verbs.
#[derive(Debug, Subcommand)]
pub enum PortCommand {
    /// Forward a host port to a guest port through the VM's user-mode NIC (live while it
    /// runs) and print its forwards, e.g. `port add web 8080 80`
    Add(PortAddArgs),
    /// List a VM's port forwards
    #[command(visible_alias = "list")]
    Ls(PortVmArg),
    /// Remove a port forward (live while the VM runs) and print the VM's forwards
    #[command(visible_alias = "remove")]
    Rm(PortRmArgs),
}

/// A VM name, for `port ls`.
#[derive(Debug, Args)]
pub struct PortVmArg {
    /// Name of the VM
    pub vm: String,
}

/// Arguments of `port add`.
#[derive(Debug, Args)]
pub struct PortAddArgs {
    /// Name of the VM
    pub vm: String,
    /// Host port, optionally after the IPv4 address to listen on: 8080 or 127.0.0.1:8080
    /// [default address: 127.0.0.1]
    #[arg(value_name = "[ADDR:]HOSTPORT")]
    pub host: String,
    /// Guest port
    #[arg(value_name = "GUESTPORT")]
    pub guest_port: String,
    /// Forward UDP instead of TCP
    #[arg(long)]
    pub udp: bool,
}

/// Arguments of `port rm`.
#[derive(Debug, Args)]
pub struct PortRmArgs {
    /// Name of the VM
    pub vm: String,
    /// Host port of the forward
    #[arg(value_name = "HOSTPORT")]
    pub host_port: String,
    /// The UDP forward of that port, not the TCP one
    #[arg(long)]
    pub udp: bool,
}

/// Network options of `create`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Networking")]
pub struct VmNetArgs {
    /// Join this lab network with a NIC (repeatable; NICs follow the order given, after the
    /// user-mode NIC)
    #[arg(long = "net", value_name = "NAME")]
    pub networks: Vec<String>,
    /// No user-mode NIC: no outbound access through vmd's NAT, no port forwards, no
    /// --ssh-port
    #[arg(long)]
    pub no_user_net: bool,
}
