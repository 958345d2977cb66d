//! Queries on `templates` and on the clone columns of `vms`.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{Owner, StoreError};

/// One row of `templates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRow {
    /// Primary key.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Owning account.
    pub owner: Owner,
    /// Every user may clone it (made by an admin).
    pub shared: bool,
    /// The base image under its disk layer.
    pub image_id: i64,
    /// That image's name.
    pub image_name: String,
    /// The VM it was taken from.
    pub source_vm: String,
    /// vCPUs of every clone.
    pub cpus: u32,
    /// Memory of every clone.
    pub memory_mib: u64,
    /// Virtual disk size of every clone.
    pub disk_bytes: u64,
    /// `bios` or `uefi`.
    pub firmware: String,
    /// Clones have the user-mode NIC.
    pub user_net: bool,
    /// Clones have a cloud-init seed drive.
    pub seed: bool,
    /// `kvm` or `tcg`.
    pub accelerator: String,
    /// QEMU's version string when it was saved.
    pub qemu_version: String,
    /// Directory under `templates/`.
    pub dir: String,
    /// The RAM file's size and modification time when it was saved (`SIZE:MTIME_NS`): a
    /// restore refuses a file that changed since.
    pub ram_seal: String,
    /// Unix seconds.
    pub created_at: i64,
}

const COLUMNS: &str = "t.id, t.name, t.owner_id, o.name, o.uid, t.shared, t.image_id, i.name,
    t.source_vm, t.cpus, t.memory_mib, t.disk_bytes, t.firmware, t.user_net, t.seed,
    t.accelerator, t.qemu_version, t.dir, t.created_at, t.ram_seal
    FROM templates t JOIN users o ON o.id = t.owner_id JOIN images i ON i.id = t.image_id";

fn template_from(row: &Row<'_>) -> rusqlite::Result<TemplateRow> {
    Ok(TemplateRow {
        id: row.get(0)?,
        name: row.get(1)?,
        owner: Owner {
            id: row.get(2)?,
            name: row.get(3)?,
            uid: row.get(4)?,
        },
        shared: row.get(5)?,
        image_id: row.get(6)?,
        image_name: row.get(7)?,
        source_vm: row.get(8)?,
        cpus: row.get(9)?,
        memory_mib: row.get::<_, i64>(10)? as u64,
        disk_bytes: row.get::<_, i64>(11)? as u64,
        firmware: row.get(12)?,
        user_net: row.get(13)?,
        seed: row.get(14)?,
        accelerator: row.get(15)?,
        qemu_version: row.get(16)?,
        dir: row.get(17)?,
        created_at: row.get(18)?,
        ram_seal: row.get(19)?,
    })
}

/// Inserts a template (its `id`, owner name and uid and image name are ignored), returning
/// the id.
pub fn insert_template(conn: &Connection, t: &TemplateRow) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO templates (name, owner_id, shared, image_id, source_vm, cpus, memory_mib,
            disk_bytes, firmware, user_net, seed, accelerator, qemu_version, dir, created_at,
            ram_seal)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            t.name,
            t.owner.id,
            t.shared,
            t.image_id,
            t.source_vm,
            t.cpus,
            t.memory_mib as i64,
            t.disk_bytes as i64,
            t.firmware,
            t.user_net,
            t.seed,
            t.accelerator,
            t.qemu_version,
            t.dir,
            t.created_at,
            t.ram_seal
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Every template, by name.
pub fn list_templates(conn: &Connection) -> Result<Vec<TemplateRow>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} ORDER BY t.name"))?;
    let rows = stmt.query_map([], template_from)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The template called `name`.
pub fn get_template(conn: &Connection, name: &str) -> Result<Option<TemplateRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} WHERE t.name = ?1"),
            [name],
            template_from,
        )
        .optional()?)
}

/// Deletes template `id` (the caller checked it has no clones; the key refuses otherwise).
pub fn delete_template(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM templates WHERE id = ?1", [id])?;
    Ok(())
}

/// The clones of template `id`: (name, owner `users.id`), by name.
pub fn clones_of(conn: &Connection, id: i64) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT name, owner_id FROM vms WHERE template_id = ?1 ORDER BY name")?;
    let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every clone: (template id, name, owner `users.id`), by name.
pub fn all_clones(conn: &Connection) -> Result<Vec<(i64, String, i64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT template_id, name, owner_id FROM vms WHERE template_id IS NOT NULL ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Makes VM `vm_id` a clone of `template_id` (or of none) whose next start restores (or not).
pub fn set_restore_pending(
    conn: &Connection,
    vm_id: i64,
    template_id: Option<i64>,
    pending: bool,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE vms SET template_id = ?2, restore_pending = ?3 WHERE id = ?1",
        params![vm_id, template_id, pending && template_id.is_some()],
    )?;
    Ok(())
}
