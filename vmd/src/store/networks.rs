//! Queries on `networks`, `vm_nics` and `port_forwards`.

use rusqlite::{params, Connection, OptionalExtension, Row};
use vm_proto::types::{PortForward, Protocol};

use super::{Owner, StoreError};

/// One row of `networks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRow {
    /// Primary key (names the bridge).
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Owning account.
    pub owner: Owner,
    /// Every user may attach VMs (made by an admin).
    pub shared: bool,
    /// CIDR, checked at creation (`vm_proto::types::Subnet`).
    pub subnet: String,
    /// dnsmasq serves DHCP.
    pub dhcp: bool,
    /// Masquerade to the uplink.
    pub nat: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// One row of `vm_nics` with its VM and network names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicRow {
    /// The VM.
    pub vm_id: i64,
    /// Its name.
    pub vm_name: String,
    /// Its owner (`users.id`).
    pub vm_owner: i64,
    /// Guest order among the VM's lab NICs, from 0.
    pub position: i64,
    /// The network.
    pub network_id: i64,
    /// Its name.
    pub network_name: String,
    /// MAC address, lowercase with colons.
    pub mac: String,
}

const NET_COLUMNS: &str = "n.id, n.name, n.owner_id, o.name, o.uid, n.shared, n.subnet, n.dhcp,
    n.nat, n.created_at FROM networks n JOIN users o ON o.id = n.owner_id";

fn network_from(row: &Row<'_>) -> rusqlite::Result<NetworkRow> {
    Ok(NetworkRow {
        id: row.get(0)?,
        name: row.get(1)?,
        owner: Owner {
            id: row.get(2)?,
            name: row.get(3)?,
            uid: row.get(4)?,
        },
        shared: row.get(5)?,
        subnet: row.get(6)?,
        dhcp: row.get(7)?,
        nat: row.get(8)?,
        created_at: row.get(9)?,
    })
}

/// Inserts a network (its `id` and the owner's name and uid are ignored), returning the id.
pub fn insert_network(conn: &Connection, net: &NetworkRow) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO networks (name, owner_id, shared, subnet, dhcp, nat, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            net.name,
            net.owner.id,
            net.shared,
            net.subnet,
            net.dhcp,
            net.nat,
            net.created_at
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Every network, by name.
pub fn list_networks(conn: &Connection) -> Result<Vec<NetworkRow>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {NET_COLUMNS} ORDER BY n.name"))?;
    let rows = stmt.query_map([], network_from)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The network called `name`.
pub fn get_network(conn: &Connection, name: &str) -> Result<Option<NetworkRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {NET_COLUMNS} WHERE n.name = ?1"),
            [name],
            network_from,
        )
        .optional()?)
}

/// How many networks `owner_id` owns.
pub fn count_networks_of(conn: &Connection, owner_id: i64) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM networks WHERE owner_id = ?1",
        [owner_id],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// Deletes a network row (its NICs must be gone: `ON DELETE RESTRICT`).
pub fn delete_network(conn: &Connection, id: i64) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM networks WHERE id = ?1", [id])? == 1)
}

const NIC_COLUMNS: &str = "c.vm_id, v.name, COALESCE(v.owner_id, 0), c.position, c.network_id,
    n.name, c.mac FROM vm_nics c JOIN vms v ON v.id = c.vm_id
    JOIN networks n ON n.id = c.network_id";

fn nic_from(row: &Row<'_>) -> rusqlite::Result<NicRow> {
    Ok(NicRow {
        vm_id: row.get(0)?,
        vm_name: row.get(1)?,
        vm_owner: row.get(2)?,
        position: row.get(3)?,
        network_id: row.get(4)?,
        network_name: row.get(5)?,
        mac: row.get(6)?,
    })
}

fn nics_where(conn: &Connection, filter: &str, id: Option<i64>) -> Result<Vec<NicRow>, StoreError> {
    let sql = format!("SELECT {NIC_COLUMNS} WHERE {filter} ORDER BY v.name, c.position");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([id], nic_from)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A VM's lab NICs in guest order.
pub fn nics_of_vm(conn: &Connection, vm_id: i64) -> Result<Vec<NicRow>, StoreError> {
    nics_where(conn, "c.vm_id = ?1", Some(vm_id))
}

/// Every VM's lab NICs, in guest order per VM (one query for a whole listing).
pub fn all_nics(conn: &Connection) -> Result<Vec<NicRow>, StoreError> {
    nics_where(conn, "?1 IS NULL", None)
}

/// The NICs on a network, by VM name.
pub fn nics_on_network(conn: &Connection, network_id: i64) -> Result<Vec<NicRow>, StoreError> {
    nics_where(conn, "c.network_id = ?1", Some(network_id))
}

/// Adds a NIC last in the VM's order. A MAC already in use is `Ok(false)` (pick another).
pub fn insert_nic(
    conn: &Connection,
    vm_id: i64,
    network_id: i64,
    mac: &str,
) -> Result<bool, StoreError> {
    if conn
        .query_row("SELECT 1 FROM vm_nics WHERE mac = ?1", [mac], |_| Ok(()))
        .optional()?
        .is_some()
    {
        return Ok(false);
    }
    conn.execute(
        "INSERT INTO vm_nics (vm_id, position, network_id, mac) VALUES (?1,
            (SELECT COALESCE(MAX(position) + 1, 0) FROM vm_nics WHERE vm_id = ?1), ?2, ?3)",
        params![vm_id, network_id, mac],
    )?;
    Ok(true)
}

/// Removes a VM's NIC on a network and closes the gap in the order; `false`: none.
pub fn delete_nic(conn: &Connection, vm_id: i64, network_id: i64) -> Result<bool, StoreError> {
    let position: Option<i64> = conn
        .query_row(
            "SELECT position FROM vm_nics WHERE vm_id = ?1 AND network_id = ?2",
            [vm_id, network_id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(position) = position else {
        return Ok(false);
    };
    conn.execute(
        "DELETE FROM vm_nics WHERE vm_id = ?1 AND network_id = ?2",
        [vm_id, network_id],
    )?;
    // Two steps: a direct `position - 1` could collide with the primary key mid-update.
    conn.execute(
        "UPDATE vm_nics SET position = -position WHERE vm_id = ?1 AND position > ?2",
        [vm_id, position],
    )?;
    conn.execute(
        "UPDATE vm_nics SET position = -position - 1 WHERE vm_id = ?1 AND position < 0",
        [vm_id],
    )?;
    Ok(true)
}

/// Sets whether a VM has the user-mode NIC.
pub fn set_user_net(conn: &Connection, vm_id: i64, on: bool) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE vms SET user_net = ?2 WHERE id = ?1",
        params![vm_id, on],
    )?;
    Ok(())
}

fn port_from(row: &Row<'_>) -> rusqlite::Result<PortForward> {
    let protocol: String = row.get(0)?;
    Ok(PortForward {
        protocol: Protocol::parse(&protocol).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                format!("unknown protocol {protocol:?}").into(),
            )
        })?,
        host_address: row.get(1)?,
        host_port: row.get(2)?,
        guest_port: row.get(3)?,
    })
}

/// A VM's port forwards, by protocol and host port.
pub fn ports_of_vm(conn: &Connection, vm_id: i64) -> Result<Vec<PortForward>, StoreError> {
    Ok(ports_where(conn, Some(vm_id))?
        .into_iter()
        .map(|(_, port)| port)
        .collect())
}

/// Every VM's port forwards with their VM ids (one query for a whole listing).
pub fn all_ports(conn: &Connection) -> Result<Vec<(i64, PortForward)>, StoreError> {
    ports_where(conn, None)
}

fn ports_where(
    conn: &Connection,
    vm_id: Option<i64>,
) -> Result<Vec<(i64, PortForward)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT protocol, host_address, host_port, guest_port, vm_id FROM port_forwards
         WHERE ?1 IS NULL OR vm_id = ?1 ORDER BY protocol, host_port",
    )?;
    let rows = stmt.query_map([vm_id], |r| Ok((r.get(4)?, port_from(r)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The VM that forwards host port `port` of `protocol`, if any.
pub fn port_user(
    conn: &Connection,
    protocol: Protocol,
    port: u16,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT v.name FROM port_forwards p JOIN vms v ON v.id = p.vm_id
             WHERE p.protocol = ?1 AND p.host_port = ?2",
            params![protocol.as_str(), port],
            |r| r.get(0),
        )
        .optional()?)
}

/// Stores a port forward (the caller checked [`port_user`] in the same transaction).
pub fn insert_port(conn: &Connection, vm_id: i64, port: &PortForward) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO port_forwards (vm_id, protocol, host_address, host_port, guest_port)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            vm_id,
            port.protocol.as_str(),
            port.host_address,
            port.host_port,
            port.guest_port
        ],
    )?;
    Ok(())
}

/// Removes a VM's forward of `protocol` host port `port`; `false`: none.
pub fn delete_port(
    conn: &Connection,
    vm_id: i64,
    protocol: Protocol,
    port: u16,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "DELETE FROM port_forwards WHERE vm_id = ?1 AND protocol = ?2 AND host_port = ?3",
        params![vm_id, protocol.as_str(), port],
    )? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn store_with_vm() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        store
            .read(|c| {
                c.execute_batch(
                    "INSERT INTO users (id, name, role, created_at) VALUES (1, 'ann', 'user', 0);
                     INSERT INTO images (id, name, file_name, source_format, virtual_size_bytes,
                        sha256, owner_uid, created_at) VALUES (1, 'img', 'img.qcow2', 'qcow2', 1, '', 0, 0);
                     INSERT INTO vms (id, name, image_id, cpus, memory_mib, disk_bytes, state,
                        owner_uid, created_at, overlay_file, owner_id)
                        VALUES (7, 'vm1', 1, 1, 64, 1, 'stopped', 0, 0, 'o.qcow2', 1);",
                )?;
                Ok(())
            })
            .expect("seed");
        (dir, store)
    }

    fn net(name: &str) -> NetworkRow {
        NetworkRow {
            id: 0,
            name: name.into(),
            owner: Owner {
                id: 1,
                name: String::new(),
                uid: None,
            },
            shared: false,
            subnet: "10.213.0.0/24".into(),
            dhcp: true,
            nat: false,
            created_at: 5,
        }
    }

    #[test]
    fn nics_keep_order_and_unique_macs() {
        let (_dir, store) = store_with_vm();
        store
            .read(|c| {
                let a = insert_network(c, &net("a"))?;
                let b = insert_network(c, &net("b"))?;
                assert!(insert_nic(c, 7, a, "02:00:00:00:00:01")?);
                assert!(!insert_nic(c, 7, b, "02:00:00:00:00:01")?, "mac taken");
                assert!(insert_nic(c, 7, b, "02:00:00:00:00:02")?);
                assert!(
                    insert_nic(c, 7, b, "02:00:00:00:00:03").is_err(),
                    "one per net"
                );
                let nics = nics_of_vm(c, 7)?;
                assert_eq!(nics.iter().map(|n| n.position).collect::<Vec<_>>(), [0, 1]);
                assert!(delete_network(c, a).is_err(), "restricted while used");
                assert!(delete_nic(c, 7, a)?);
                let nics = nics_of_vm(c, 7)?;
                assert_eq!((nics[0].position, nics[0].network_name.as_str()), (0, "b"));
                assert_eq!(
                    get_network(c, "a")?.map(|n| n.owner.name),
                    Some("ann".into())
                );
                assert!(delete_network(c, a)?);
                assert_eq!(count_networks_of(c, 1)?, 1);
                Ok(())
            })
            .expect("queries");
    }

    #[test]
    fn ports_are_unique_per_protocol() {
        let (_dir, store) = store_with_vm();
        let fwd = |proto, port| PortForward {
            protocol: proto,
            host_address: "127.0.0.1".into(),
            host_port: port,
            guest_port: 22,
        };
        store
            .read(|c| {
                insert_port(c, 7, &fwd(Protocol::Tcp, 2222))?;
                insert_port(c, 7, &fwd(Protocol::Udp, 2222))?;
                assert!(insert_port(c, 7, &fwd(Protocol::Tcp, 2222)).is_err());
                assert_eq!(port_user(c, Protocol::Tcp, 2222)?, Some("vm1".into()));
                assert_eq!(ports_of_vm(c, 7)?.len(), 2);
                assert!(delete_port(c, 7, Protocol::Udp, 2222)?);
                assert!(!delete_port(c, 7, Protocol::Udp, 2222)?);
                Ok(())
            })
            .expect("queries");
    }
}
