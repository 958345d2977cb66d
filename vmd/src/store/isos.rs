//! Queries on the `isos` table.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{Owner, StoreError};

/// One row of `isos`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoRow {
    /// Primary key.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// File under `isos/`.
    pub file_name: String,
    /// Bytes.
    pub size_bytes: u64,
    /// SHA-256 of the uploaded bytes.
    pub sha256: String,
    /// Uploader.
    pub owner: Owner,
    /// Unix seconds.
    pub created_at: i64,
}

/// What `insert_iso` needs.
pub type NewIso = IsoRow;

const COLUMNS: &str = "s.id, s.name, s.file_name, s.size_bytes, s.sha256, COALESCE(s.owner_id, 0),
    s.created_at, COALESCE(o.name, 'uid-' || s.owner_uid), o.uid";

const FROM: &str = "isos s LEFT JOIN users o ON o.id = s.owner_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<IsoRow> {
    Ok(IsoRow {
        id: row.get(0)?,
        name: row.get(1)?,
        file_name: row.get(2)?,
        size_bytes: row.get::<_, i64>(3)? as u64,
        sha256: row.get(4)?,
        owner: Owner {
            id: row.get(5)?,
            name: row.get(7)?,
            uid: row.get(8)?,
        },
        created_at: row.get(6)?,
    })
}

/// Inserts an ISO (its `id` is ignored), returning the new id.
pub fn insert_iso(conn: &Connection, iso: &NewIso) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO isos (name, file_name, size_bytes, sha256, owner_id, created_at, owner_uid)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, COALESCE((SELECT uid FROM users WHERE id = ?5), -1))",
        params![
            iso.name,
            iso.file_name,
            iso.size_bytes as i64,
            iso.sha256,
            iso.owner.id,
            iso.created_at
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The ISO called `name`, if any.
pub fn get_iso(conn: &Connection, name: &str) -> Result<Option<IsoRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE s.name = ?1");
    Ok(conn.query_row(&sql, [name], from_row).optional()?)
}

/// Every ISO, by name.
pub fn list_isos(conn: &Connection) -> Result<Vec<IsoRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} ORDER BY s.name");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Names of the VMs that have ISO `id` inserted, sorted.
pub fn iso_users(conn: &Connection, id: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT name FROM vms WHERE iso_id = ?1 ORDER BY name")?;
    let names = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(names)
}

/// Deletes ISO `id`.
pub fn delete_iso(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM isos WHERE id = ?1", [id])?;
    Ok(())
}
