//! Tables for lab networks: the `net ls` list and the `net show` details with their members
//! and DHCP leases.

use vm_proto::types::{Lease, Network, NetworkMember};

use super::{created, expiry_short, kv_table, list_table, yes_no};

/// The `net ls` table: NAME, SUBNET, GATEWAY, DHCP, MODE (`nat` or `isolated`), OWNER,
/// MEMBERS (how many NICs the caller may see).
pub fn table(networks: &[Network]) -> String {
    let headers = [
        "NAME", "SUBNET", "GATEWAY", "DHCP", "MODE", "OWNER", "MEMBERS",
    ];
    list_table(&headers, networks.iter().map(row))
}

/// One `net ls` row.
fn row(net: &Network) -> Vec<String> {
    vec![
        net.name.clone(),
        net.subnet.clone(),
        or_dash(net.gateway.as_deref()),
        yes_no(net.dhcp).to_string(),
        mode(net).to_string(),
        net.owner.clone(),
        net.members.len().to_string(),
    ]
}

/// `nat` or `isolated`.
pub fn mode(net: &Network) -> &'static str {
    if net.nat {
        "nat"
    } else {
        "isolated"
    }
}

/// The `net show` text: every field one per line, then the members and leases tables (each
/// left out when empty).
pub fn details(net: &Network) -> String {
    let mut text = kv_table(&[
        ("name", net.name.clone()),
        ("subnet", net.subnet.clone()),
        ("gateway", or_dash(net.gateway.as_deref())),
        ("dhcp", yes_no(net.dhcp).to_string()),
        ("mode", mode(net).to_string()),
        ("owner", net.owner.clone()),
        ("shared", yes_no(net.shared).to_string()),
        ("bridge", or_dash(net.bridge.as_deref())),
        ("created", created(&net.created_at)),
        ("members", net.members.len().to_string()),
        ("leases", net.leases.len().to_string()),
    ]);
    if !net.members.is_empty() {
        text.push_str("\n\n");
        text.push_str(&members(&net.members));
    }
    if !net.leases.is_empty() {
        text.push_str("\n\n");
        text.push_str(&leases(&net.leases));
    }
    text
}

/// The members table: VM, MAC, IP.
fn members(members: &[NetworkMember]) -> String {
    let rows = members
        .iter()
        .map(|m| vec![m.vm.clone(), m.mac.clone(), or_dash(m.ip.as_deref())]);
    list_table(&["VM", "MAC", "IP"], rows)
}

/// The leases table: MAC, IP, HOSTNAME, EXPIRES (time left), VM.
fn leases(leases: &[Lease]) -> String {
    let rows = leases.iter().map(|l| {
        vec![
            l.mac.clone(),
            l.ip.clone(),
            or_dash(l.hostname.as_deref()),
            expiry_short(Some(&l.expires_at)),
            or_dash(l.vm.as_deref()),
        ]
    });
    list_table(&["MAC", "IP", "HOSTNAME", "EXPIRES", "VM"], rows)
}

/// The value, or `-` when there is none.
fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Network {
        Network {
            name: "lab".into(),
            owner: "admin".into(),
            shared: true,
            subnet: "10.213.4.0/24".into(),
            gateway: Some("10.213.4.1".into()),
            dhcp: true,
            nat: false,
            bridge: Some("vmdbr1".into()),
            created_at: "2024-05-01T12:00:00Z".into(),
            members: vec![
                NetworkMember {
                    vm: "web1".into(),
                    mac: "02:76:6d:00:01:01".into(),
                    ip: Some("10.213.4.17".into()),
                },
                NetworkMember {
                    vm: "db1".into(),
                    mac: "02:76:6d:00:01:02".into(),
                    ip: None,
                },
            ],
            leases: vec![Lease {
                mac: "02:76:6d:00:01:01".into(),
                ip: "10.213.4.17".into(),
                hostname: None,
                expires_at: "2020-01-01T00:00:00Z".into(),
                vm: Some("web1".into()),
            }],
        }
    }

    #[test]
    fn list_has_every_column() {
        let bare = Network {
            name: "dmz".into(),
            owner: "ann".into(),
            gateway: None,
            dhcp: false,
            nat: true,
            members: vec![],
            ..sample()
        };
        let text = table(&[sample(), bare]);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["NAME", "SUBNET", "GATEWAY", "DHCP", "MODE", "OWNER", "MEMBERS"]
        );
        let cells = |line: &str| {
            line.split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cells(lines[1]),
            [
                "lab",
                "10.213.4.0/24",
                "10.213.4.1",
                "yes",
                "isolated",
                "admin",
                "2"
            ]
        );
        assert_eq!(
            cells(lines[2]),
            ["dmz", "10.213.4.0/24", "-", "no", "nat", "ann", "0"]
        );
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    }

    #[test]
    fn details_show_fields_members_and_leases() {
        let text = details(&sample());
        for line in [
            "name      lab",
            "gateway   10.213.4.1",
            "mode      isolated",
            "shared    yes",
            "bridge    vmdbr1",
            "members   2",
            "leases    1",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        let blocks: Vec<_> = text.split("\n\n").collect();
        assert_eq!(blocks.len(), 3, "{text}");
        let members: Vec<_> = blocks[1].lines().collect();
        assert_eq!(members[0], "VM     MAC                 IP");
        assert_eq!(members[1], "web1   02:76:6d:00:01:01   10.213.4.17");
        assert_eq!(members[2], "db1    02:76:6d:00:01:02   -");
        let leases: Vec<_> = blocks[2].lines().collect();
        assert_eq!(
            leases[0].split_whitespace().collect::<Vec<_>>(),
            ["MAC", "IP", "HOSTNAME", "EXPIRES", "VM"]
        );
        assert_eq!(
            leases[1].split_whitespace().collect::<Vec<_>>(),
            ["02:76:6d:00:01:01", "10.213.4.17", "-", "expired", "web1"]
        );
    }

    #[test]
    fn empty_network_has_no_tables() {
        let empty = Network {
            members: vec![],
            leases: vec![],
            bridge: None,
            ..sample()
        };
        let text = details(&empty);
        assert!(!text.contains("\n\n") && !text.contains("MAC"), "{text}");
        assert!(text.contains("bridge    -"), "{text}");
    }

    #[test]
    fn json_round_trips_the_api_type() {
        let json = crate::output::to_json(&[sample()]).expect("json");
        assert_eq!(
            serde_json::from_str::<Vec<Network>>(&json).expect("parse"),
            vec![sample()]
        );
    }
}
