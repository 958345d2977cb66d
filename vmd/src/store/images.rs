//! Queries on the `images` table.

use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row};
use vm_proto::types::OsFamily;

use super::{Owner, StoreError};

/// One row of `images`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    /// Primary key.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// File under `images/`.
    pub file_name: String,
    /// Format of the uploaded bytes.
    pub source_format: String,
    /// Guest-visible size.
    pub virtual_size_bytes: u64,
    /// SHA-256 of the uploaded bytes.
    pub sha256: String,
    /// Owning account.
    pub owner: Owner,
    /// Whether every user may see and use it.
    pub public: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Whether the base may back VMs (false while it is being installed).
    pub sealed: bool,
    /// `bios` or `uefi`.
    pub firmware: String,
    /// Family of the installed OS (decoded by [`OsColumn`]).
    pub os: OsFamily,
    /// Free text for people; empty for none.
    pub description: String,
    /// Whether the image runs cloud-init (VMs from it get a seed).
    pub cloud_init: bool,
}

/// What `insert_image` needs (its `id` is ignored).
pub type NewImage = ImageRow;

const COLUMNS: &str = "i.id, i.name, i.file_name, i.source_format, i.virtual_size_bytes,
    i.sha256, COALESCE(i.owner_id, 0), i.created_at, i.sealed, i.firmware,
    COALESCE(o.name, 'uid-' || i.owner_uid), o.uid, i.public, i.os, i.description, i.cloud_init";

const FROM: &str = "images i LEFT JOIN users o ON o.id = i.owner_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<ImageRow> {
    Ok(ImageRow {
        id: row.get(0)?,
        name: row.get(1)?,
        file_name: row.get(2)?,
        source_format: row.get(3)?,
        virtual_size_bytes: row.get::<_, i64>(4)? as u64,
        sha256: row.get(5)?,
        owner: Owner {
            id: row.get(6)?,
            name: row.get(10)?,
            uid: row.get(11)?,
        },
        public: row.get(12)?,
        created_at: row.get(7)?,
        sealed: row.get(8)?,
        firmware: row.get(9)?,
        os: row.get::<_, OsColumn>(13)?.0,
        description: row.get(14)?,
        cloud_init: row.get(15)?,
    })
}

/// Inserts an image, returning its id.
pub fn insert_image(conn: &Connection, image: &NewImage) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO images (name, file_name, source_format, virtual_size_bytes, sha256, owner_id, created_at, sealed, firmware, public, os, description, cloud_init, owner_uid)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, COALESCE((SELECT uid FROM users WHERE id = ?6), -1))",
        params![
            image.name,
            image.file_name,
            image.source_format,
            image.virtual_size_bytes as i64,
            image.sha256,
            image.owner.id,
            image.created_at,
            image.sealed,
            image.firmware,
            image.public,
            OsColumn(image.os),
            image.description,
            image.cloud_init
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The image called `name`, if any.
pub fn get_image(conn: &Connection, name: &str) -> Result<Option<ImageRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE i.name = ?1");
    Ok(conn.query_row(&sql, [name], from_row).optional()?)
}

/// The image with id `id`, if any.
pub fn get_image_by_id(conn: &Connection, id: i64) -> Result<Option<ImageRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE i.id = ?1");
    Ok(conn.query_row(&sql, [id], from_row).optional()?)
}

/// Every image, by name.
pub fn list_images(conn: &Connection) -> Result<Vec<ImageRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} ORDER BY i.name");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Names of the VMs backed by image `id`, sorted.
pub fn image_users(conn: &Connection, id: i64) -> Result<Vec<String>, StoreError> {
    // A warm template's disk layer is an overlay on the image too.
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM vms WHERE image_id = ?1
         UNION ALL SELECT 'template ' || name FROM templates WHERE image_id = ?1 ORDER BY 1",
    )?;
    let names = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(names)
}

/// Deletes image `id`. Fails (foreign key) while VMs use it.
pub fn delete_image(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM images WHERE id = ?1", [id])?;
    Ok(())
}

/// Counts images.
pub fn count_images(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM images", [], |r| r.get::<_, i64>(0))? as u64)
}

/// Marks image `id` sealed with its final size and checksum.
pub fn seal_image(
    conn: &Connection,
    id: i64,
    virtual_size_bytes: u64,
    sha256: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE images SET sealed = 1, virtual_size_bytes = ?2, sha256 = ?3 WHERE id = ?1",
        params![id, virtual_size_bytes as i64, sha256],
    )?;
    Ok(())
}

/// What `image.set` may change on a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Family of the installed OS.
    pub os: OsFamily,
    /// Free text for people; empty for none.
    pub description: String,
    /// Whether every user may see and use it.
    pub public: bool,
    /// Whether the image runs cloud-init.
    pub cloud_init: bool,
}

/// Writes the OS family, description, visibility and cloud-init flag of image `id`.
pub fn set_image_info(conn: &Connection, id: i64, info: &ImageInfo) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE images SET os = ?2, description = ?3, public = ?4, cloud_init = ?5 WHERE id = ?1",
        params![
            id,
            OsColumn(info.os),
            info.description,
            info.public,
            info.cloud_init
        ],
    )?;
    Ok(())
}

/// `images.os` as stored: [`OsFamily::as_str`]. A spelling this binary does not know (written
/// by a newer vmd of the same schema) reads as [`OsFamily::Other`]: the family only chooses
/// an icon, so guessing is harmless here, unlike a VM's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsColumn(pub OsFamily);

impl FromSql for OsColumn {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(OsColumn(
            OsFamily::parse(value.as_str()?).unwrap_or_default(),
        ))
    }
}

impl ToSql for OsColumn {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_str()))
    }
}

/// Guesses the OS family of every image from its name (schema version 6 starts them all at
/// `other`).
pub(super) fn guess_os_families(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT id, name FROM images")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    for (id, name) in rows {
        let os = OsColumn(OsFamily::guess(&name));
        conn.execute("UPDATE images SET os = ?2 WHERE id = ?1", params![id, os])?;
    }
    Ok(())
}
