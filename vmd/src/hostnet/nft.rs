//! vmd's nftables table `inet vmd`: rendering from the list of networks and applying it.
//!
//! The whole table is rendered from every network and replaced in one `nft -f -` transaction
//! (`add table` + `delete table` + the new table: atomic, and it works whether or not the
//! table existed). Without networks the table is deleted. Nothing outside this table is
//! touched. Rules, for the set `B` of vmd bridges and the NAT bridges `N`:
//!
//! - input: on a DHCP network's bridge accept DHCP (udp dport 67 to the broadcast address or
//!   the gateway, where dnsmasq listens) and, on a NAT bridge, ping of its gateway; drop
//!   everything else from `B` (the host is not reachable from guests, and no other DHCP
//!   server of the host answers them);
//! - output: to DHCP bridges accept DHCP replies (udp sport 67), to `B` replies of
//!   established flows (ping of a NAT gateway); drop
//!   the rest (the host reaches no guest, also not through a guest's user-mode NIC, whose
//!   connections QEMU makes from the host);
//! - forward: within one bridge accept (hosts with `br_netfilter` see bridged frames here);
//!   from a NAT bridge to any link not in `B` accept when the source is the network's own
//!   subnet and the destination is not link-local (169.254.0.0/16: a cloud host's metadata
//!   service), and back for established flows; drop
//!   everything else into or out of `B` (networks never reach each other);
//! - postrouting (nat): masquerade a NAT network's subnet leaving through another link.
//!
//! While any NAT network exists `net.ipv4.ip_forward` is set to 1.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{caps, HostNetError, NetSpec};

/// The table's family and name.
pub const TABLE: &str = "inet vmd";
/// Link-local IPv4 addresses, which NAT networks never reach.
const LINK_LOCAL: &str = "169.254.0.0/16";
/// The sysctl that lets the kernel forward between links.
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The `nft -f` script that makes the table match `nets`.
pub fn render(nets: &[NetSpec]) -> String {
    let mut script = format!("add table {TABLE}\ndelete table {TABLE}\n");
    if nets.is_empty() {
        return script;
    }
    let all = name_set(nets.iter());
    let nat: Vec<&NetSpec> = nets.iter().filter(|n| n.nat).collect();
    script.push_str(&format!("table {TABLE} {{\n"));
    script.push_str(&chain(
        "input",
        "filter hook input priority filter",
        &input_rules(nets, &all, &nat),
    ));
    script.push_str(&chain(
        "output",
        "filter hook output priority filter",
        &output_rules(nets, &all),
    ));
    script.push_str(&chain(
        "forward",
        "filter hook forward priority filter",
        &forward_rules(nets, &all, &nat),
    ));
    if !nat.is_empty() {
        script.push_str(&chain(
            "postrouting",
            "nat hook postrouting priority srcnat",
            &nat_rules(&nat),
        ));
    }
    script.push_str("}\n");
    script
}

/// An anonymous set of the bridges' names: `{ "vmdbr1", "vmdbr2" }`.
fn name_set<'a>(nets: impl Iterator<Item = &'a NetSpec>) -> String {
    let names: Vec<String> = nets.map(|n| format!("\"{}\"", n.bridge())).collect();
    format!("{{ {} }}", names.join(", "))
}

fn chain(name: &str, hook: &str, rules: &[String]) -> String {
    let mut text = format!("  chain {name} {{\n    type {hook}; policy accept;\n");
    for rule in rules {
        text.push_str(&format!("    {rule}\n"));
    }
    text.push_str("  }\n");
    text
}

fn input_rules(nets: &[NetSpec], all: &str, nat: &[&NetSpec]) -> Vec<String> {
    let mut rules: Vec<String> = nets
        .iter()
        .filter(|n| n.dhcp)
        .map(|n| {
            format!(
                "iifname \"{}\" ip daddr {{ 255.255.255.255, {} }} udp dport 67 accept",
                n.bridge(),
                n.subnet.gateway()
            )
        })
        .collect();
    for net in nat {
        rules.push(format!(
            "iifname \"{}\" ip daddr {} icmp type echo-request accept",
            net.bridge(),
            net.subnet.gateway()
        ));
    }
    rules.push(format!("iifname {all} drop"));
    rules
}

fn output_rules(nets: &[NetSpec], all: &str) -> Vec<String> {
    let dhcp: Vec<&NetSpec> = nets.iter().filter(|n| n.dhcp).collect();
    let mut rules = Vec::new();
    if !dhcp.is_empty() {
        let set = name_set(dhcp.into_iter());
        rules.push(format!("oifname {set} udp sport 67 accept"));
    }
    rules.push(format!("oifname {all} ct state established,related accept"));
    rules.push(format!("oifname {all} drop"));
    rules
}

fn forward_rules(nets: &[NetSpec], all: &str, nat: &[&NetSpec]) -> Vec<String> {
    let mut rules: Vec<String> = nets
        .iter()
        .map(|n| format!("iifname \"{0}\" oifname \"{0}\" accept", n.bridge()))
        .collect();
    for net in nat {
        let bridge = net.bridge();
        // Only the network's own addresses leave (no spoofed sources), and never to
        // link-local addresses (a cloud host's metadata service answers there).
        rules.push(format!(
            "iifname \"{bridge}\" ip saddr {} ip daddr != {LINK_LOCAL} oifname != {all} accept",
            net.subnet
        ));
        rules.push(format!(
            "oifname \"{bridge}\" ct state established,related accept"
        ));
    }
    rules.push(format!("iifname {all} drop"));
    rules.push(format!("oifname {all} drop"));
    rules
}

fn nat_rules(nat: &[&NetSpec]) -> Vec<String> {
    nat.iter()
        .map(|n| {
            format!(
                "ip saddr {} oifname != \"{}\" masquerade",
                n.subnet,
                n.bridge()
            )
        })
        .collect()
}

/// Replaces the table with the one for `nets` (deletes it when empty), and turns on IPv4
/// forwarding when a NAT network exists.
pub async fn apply(nets: &[NetSpec]) -> Result<(), HostNetError> {
    let nft = caps::find(caps::NFT)?;
    run_script(&nft, &render(nets)).await?;
    if nets.iter().any(|n| n.nat) {
        std::fs::write(IP_FORWARD, "1").map_err(|e| HostNetError::io(Path::new(IP_FORWARD), e))?;
    }
    Ok(())
}

/// Whether vmd's table is loaded (a `flush ruleset` by another program removes it).
pub async fn table_present() -> Result<bool, HostNetError> {
    let nft = caps::find(caps::NFT)?;
    let status = Command::new(&nft)
        .args(["list", "table", "inet", "vmd"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|source| HostNetError::Spawn {
            program: nft.clone(),
            source,
        })?;
    Ok(status.success())
}

/// Runs `nft -f -` with `script` on stdin.
async fn run_script(nft: &Path, script: &str) -> Result<(), HostNetError> {
    let spawn_error = |source| HostNetError::Spawn {
        program: nft.to_path_buf(),
        source,
    };
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_error)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(spawn_error)?;
    }
    let output = child.wait_with_output().await.map_err(spawn_error)?;
    if output.status.success() {
        return Ok(());
    }
    Err(HostNetError::Nft {
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use vm_proto::types::Subnet;

    use super::*;

    fn net(id: i64, subnet: &str, dhcp: bool, nat: bool) -> NetSpec {
        NetSpec {
            id,
            name: format!("n{id}"),
            subnet: Subnet::parse(subnet).expect("subnet"),
            dhcp,
            nat,
        }
    }

    #[test]
    fn no_networks_deletes_the_table() {
        assert_eq!(render(&[]), "add table inet vmd\ndelete table inet vmd\n");
    }

    #[test]
    fn isolated_and_nat_networks() {
        let nets = [
            net(1, "10.213.1.0/24", true, false),
            net(2, "10.213.2.0/24", false, true),
        ];
        let expected = r#"add table inet vmd
delete table inet vmd
table inet vmd {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "vmdbr1" ip daddr { 255.255.255.255, 10.213.1.1 } udp dport 67 accept
    iifname "vmdbr2" ip daddr 10.213.2.1 icmp type echo-request accept
    iifname { "vmdbr1", "vmdbr2" } drop
  }
  chain output {
    type filter hook output priority filter; policy accept;
    oifname { "vmdbr1" } udp sport 67 accept
    oifname { "vmdbr1", "vmdbr2" } ct state established,related accept
    oifname { "vmdbr1", "vmdbr2" } drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "vmdbr1" oifname "vmdbr1" accept
    iifname "vmdbr2" oifname "vmdbr2" accept
    iifname "vmdbr2" ip saddr 10.213.2.0/24 ip daddr != 169.254.0.0/16 oifname != { "vmdbr1", "vmdbr2" } accept
    oifname "vmdbr2" ct state established,related accept
    iifname { "vmdbr1", "vmdbr2" } drop
    oifname { "vmdbr1", "vmdbr2" } drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.213.2.0/24 oifname != "vmdbr2" masquerade
  }
}
"#;
        assert_eq!(render(&nets), expected);
    }

    #[test]
    fn isolated_only_has_no_nat_chain_and_no_forward_out() {
        let script = render(&[net(3, "10.1.0.0/16", false, false)]);
        assert!(!script.contains("postrouting"), "{script}");
        assert!(!script.contains("oifname != "), "{script}");
        assert!(!script.contains("echo-request"), "{script}");
        assert!(
            !script.contains("67"),
            "no DHCP rules without DHCP: {script}"
        );
        assert!(script.contains("iifname { \"vmdbr3\" } drop"), "{script}");
    }
}
