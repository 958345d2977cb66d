//! A VM's networking: the NICs table (`nic add`, `nic rm`, `show`) and the port forwards
//! table (`port ls`, `port add`, `port rm`, `show`).

use vm_proto::types::{Nic, PortForward, Vm};

use super::list_table;

/// The NICs table: NETWORK, MAC, IP (`-` without a lease); TAP is added when the daemon
/// told (admins, while the VM has a process). A VM without NICs on lab networks gets a
/// sentence instead.
pub fn nics(vm: &Vm) -> String {
    if vm.nics.is_empty() {
        return format!("vm {} has no NICs on lab networks", vm.name);
    }
    let with_tap = vm.nics.iter().any(|nic| nic.tap.is_some());
    let mut headers = vec!["NETWORK", "MAC", "IP"];
    if with_tap {
        headers.push("TAP");
    }
    let rows = vm.nics.iter().map(|nic| nic_row(nic, with_tap));
    list_table(&headers, rows)
}

/// One NICs row.
fn nic_row(nic: &Nic, with_tap: bool) -> Vec<String> {
    let mut row = vec![
        nic.network.clone(),
        nic.mac.clone(),
        nic.ip.clone().unwrap_or_else(|| "-".to_string()),
    ];
    if with_tap {
        row.push(nic.tap.clone().unwrap_or_else(|| "-".to_string()));
    }
    row
}

/// The port forwards table: PROTO, HOST (`ADDR:PORT`), GUEST; a sentence when there are
/// none.
pub fn ports(ports: &[PortForward]) -> String {
    if ports.is_empty() {
        return "no port forwards".to_string();
    }
    let rows = ports.iter().map(|p| {
        vec![
            p.protocol.as_str().to_string(),
            host(p),
            p.guest_port.to_string(),
        ]
    });
    list_table(&["PROTO", "HOST", "GUEST"], rows)
}

/// The ports table of a VM (`port add`, `port rm`).
pub fn vm_ports(vm: &Vm) -> String {
    ports(&vm.ports)
}

/// `ADDR:PORT` of a forward's host side.
fn host(port: &PortForward) -> String {
    format!("{}:{}", port.host_address, port.host_port)
}

/// What `show` appends to the VM's fields: the NICs and ports tables, each after a blank
/// line, when the VM has any.
pub fn show_tables(vm: &Vm) -> String {
    let mut text = String::new();
    if !vm.nics.is_empty() {
        text.push_str("\n\n");
        text.push_str(&nics(vm));
    }
    if !vm.ports.is_empty() {
        text.push_str("\n\n");
        text.push_str(&ports(&vm.ports));
    }
    text
}

/// The `user net` line of `show`: `yes`, `yes (N port forwards)`, or `no`.
pub fn user_net(vm: &Vm) -> String {
    match (vm.user_net, vm.ports.len()) {
        (false, _) => "no".to_string(),
        (true, 0) => "yes".to_string(),
        (true, 1) => "yes (1 port forward)".to_string(),
        (true, n) => format!("yes ({n} port forwards)"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vm_proto::types::Protocol;

    /// A VM on two networks with two forwards.
    pub(crate) fn networked() -> Vm {
        Vm {
            nics: vec![
                Nic {
                    network: "lab".into(),
                    mac: "02:76:6d:00:01:01".into(),
                    ip: Some("10.213.4.17".into()),
                    tap: None,
                },
                Nic {
                    network: "dmz".into(),
                    mac: "02:76:6d:00:02:01".into(),
                    ip: None,
                    tap: None,
                },
            ],
            ports: vec![
                PortForward {
                    protocol: Protocol::Tcp,
                    host_address: "127.0.0.1".into(),
                    host_port: 2222,
                    guest_port: 22,
                },
                PortForward {
                    protocol: Protocol::Udp,
                    host_address: "0.0.0.0".into(),
                    host_port: 5353,
                    guest_port: 53,
                },
            ],
            ..crate::output::vm::tests::sample()
        }
    }

    #[test]
    fn nics_table_has_network_mac_ip() {
        let text = nics(&networked());
        assert_eq!(
            text,
            "NETWORK   MAC                 IP\n\
             lab       02:76:6d:00:01:01   10.213.4.17\n\
             dmz       02:76:6d:00:02:01   -"
        );
        let mut vm = networked();
        vm.nics[1].tap = Some("vmdtap7".into());
        let text = nics(&vm);
        assert!(
            text.lines().next().expect("header").ends_with("TAP"),
            "{text}"
        );
        assert!(text.ends_with("-             vmdtap7"), "{text}");
        vm.nics.clear();
        assert_eq!(nics(&vm), "vm web1 has no NICs on lab networks");
    }

    #[test]
    fn ports_table_has_proto_host_guest() {
        let text = ports(&networked().ports);
        assert_eq!(
            text,
            "PROTO   HOST             GUEST\n\
             tcp     127.0.0.1:2222   22\n\
             udp     0.0.0.0:5353     53"
        );
        assert_eq!(ports(&[]), "no port forwards");
    }

    #[test]
    fn user_net_counts_forwards() {
        let mut vm = networked();
        assert_eq!(user_net(&vm), "yes (2 port forwards)");
        vm.ports.truncate(1);
        assert_eq!(user_net(&vm), "yes (1 port forward)");
        vm.ports.clear();
        assert_eq!(user_net(&vm), "yes");
        vm.user_net = false;
        assert_eq!(user_net(&vm), "no");
    }
}
