//! Queries on the `vms` table.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::StoreError;

/// One row of `vms`, joined with its image's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmRow {
    /// Primary key.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Backing image id.
    pub image_id: i64,
    /// Backing image name.
    pub image_name: String,
    /// Backing image file under `images/`.
    pub image_file: String,
    /// vCPUs.
    pub cpus: u32,
    /// Guest memory.
    pub memory_mib: u64,
    /// Virtual disk size.
    pub disk_bytes: u64,
    /// `VmState::as_str`.
    pub state: String,
    /// Creating user.
    pub owner_uid: u32,
    /// Unix seconds.
    pub created_at: i64,
    /// File under `overlays/`.
    pub overlay_file: String,
}

/// What `insert_vm` needs.
#[derive(Debug, Clone)]
pub struct NewVm {
    /// Unique name.
    pub name: String,
    /// Backing image id.
    pub image_id: i64,
    /// vCPUs.
    pub cpus: u32,
    /// Guest memory.
    pub memory_mib: u64,
    /// Virtual disk size.
    pub disk_bytes: u64,
    /// Initial state.
    pub state: String,
    /// Creating user.
    pub owner_uid: u32,
    /// Unix seconds.
    pub created_at: i64,
    /// File under `overlays/`.
    pub overlay_file: String,
}

const SELECT: &str = "SELECT v.id, v.name, v.image_id, i.name, i.file_name, v.cpus, v.memory_mib,
    v.disk_bytes, v.state, v.owner_uid, v.created_at, v.overlay_file
    FROM vms v JOIN images i ON i.id = v.image_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<VmRow> {
    Ok(VmRow {
        id: row.get(0)?,
        name: row.get(1)?,
        image_id: row.get(2)?,
        image_name: row.get(3)?,
        image_file: row.get(4)?,
        cpus: row.get(5)?,
        memory_mib: row.get::<_, i64>(6)? as u64,
        disk_bytes: row.get::<_, i64>(7)? as u64,
        state: row.get(8)?,
        owner_uid: row.get(9)?,
        created_at: row.get(10)?,
        overlay_file: row.get(11)?,
    })
}

/// Inserts a VM, returning its id.
pub fn insert_vm(conn: &Connection, vm: &NewVm) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO vms (name, image_id, cpus, memory_mib, disk_bytes, state, owner_uid, created_at, overlay_file)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            vm.name,
            vm.image_id,
            vm.cpus,
            vm.memory_mib as i64,
            vm.disk_bytes as i64,
            vm.state,
            vm.owner_uid,
            vm.created_at,
            vm.overlay_file
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The VM called `name`, if any.
pub fn get_vm(conn: &Connection, name: &str) -> Result<Option<VmRow>, StoreError> {
    let sql = format!("{SELECT} WHERE v.name = ?1");
    Ok(conn.query_row(&sql, [name], from_row).optional()?)
}

/// Every VM, by name.
pub fn list_vms(conn: &Connection) -> Result<Vec<VmRow>, StoreError> {
    let sql = format!("{SELECT} ORDER BY v.name");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Deletes VM `id`.
pub fn delete_vm(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM vms WHERE id = ?1", [id])?;
    Ok(())
}

/// Counts VMs.
pub fn count_vms(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM vms", [], |r| r.get::<_, i64>(0))? as u64)
}
