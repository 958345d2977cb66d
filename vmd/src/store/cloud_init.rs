//! Queries on `vm_cloud_init`: what a VM's NoCloud seed carries (one row per VM that gets a
//! seed; none for `--no-cloud-init` or images without cloud-init). The password is only ever
//! stored as its SHA-512 crypt hash.

use rusqlite::{params, Connection, Row};

use super::StoreError;

/// One row of `vm_cloud_init`.
#[derive(Clone, PartialEq, Eq)]
pub struct CloudInitRow {
    /// The account cloud-init creates.
    pub user: String,
    /// OpenSSH public key lines.
    pub ssh_keys: Vec<String>,
    /// SHA-512 crypt hash (`$6$…`) of the account's password.
    pub password_hash: Option<String>,
    /// The owner's own user-data.
    pub user_data: Option<String>,
    /// The seed's `instance-id` (a new one after each wipe).
    pub instance_id: String,
}

impl std::fmt::Debug for CloudInitRow {
    /// Never shows the password hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudInitRow")
            .field("user", &self.user)
            .field("ssh_keys", &self.ssh_keys.len())
            .field("password", &self.password_hash.is_some())
            .field("user_data_bytes", &self.user_data.as_ref().map(String::len))
            .field("instance_id", &self.instance_id)
            .finish()
    }
}

/// Decodes the `c.*` columns of the VM query starting at column `first` (all `NULL`: no row).
pub(super) fn from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<Option<CloudInitRow>> {
    let Some(user) = row.get::<_, Option<String>>(first)? else {
        return Ok(None);
    };
    let keys: String = row.get(first + 1)?;
    let ssh_keys = serde_json::from_str(&keys).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            first + 1,
            rusqlite::types::Type::Text,
            Box::new(e),
        )
    })?;
    Ok(Some(CloudInitRow {
        user,
        ssh_keys,
        password_hash: row.get(first + 2)?,
        user_data: row.get(first + 3)?,
        instance_id: row.get(first + 4)?,
    }))
}

/// Stores (replacing) the seed settings of VM `vm_id`.
pub fn set_cloud_init(conn: &Connection, vm_id: i64, ci: &CloudInitRow) -> Result<(), StoreError> {
    let keys = serde_json::to_string(&ci.ssh_keys)
        .map_err(|e| StoreError::Query(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
    conn.execute(
        "INSERT OR REPLACE INTO vm_cloud_init
            (vm_id, user_name, ssh_keys, password_hash, user_data, instance_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            vm_id,
            ci.user,
            keys,
            ci.password_hash,
            ci.user_data,
            ci.instance_id
        ],
    )?;
    Ok(())
}

/// Gives VM `vm_id`'s seed a new `instance-id` (no-op without a seed).
pub fn set_instance_id(conn: &Connection, vm_id: i64, instance_id: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE vm_cloud_init SET instance_id = ?2 WHERE vm_id = ?1",
        params![vm_id, instance_id],
    )?;
    Ok(())
}
