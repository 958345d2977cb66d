//! Queries on the `users` table, and the quota use of one account.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row};
use vm_proto::types::{Quota, Role, Usage, VmState};

use super::StoreError;

/// One row of `users`.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Primary key (never reused).
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Stored role.
    pub role: Role,
    /// Linked local uid.
    pub uid: Option<u32>,
    /// argon2id PHC string.
    pub password: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Quota overrides.
    pub limits: Limits,
}

impl std::fmt::Debug for UserRow {
    /// Never shows the password hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

/// One stored quota override.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Limit {
    /// No override: the configured default applies.
    #[default]
    Default,
    /// No limit.
    Unlimited,
    /// This limit.
    Max(u64),
}

impl Limit {
    /// The limit in force given the configured default.
    pub fn resolve(self, default: Option<u64>) -> Option<u64> {
        match self {
            Limit::Default => default,
            Limit::Unlimited => None,
            Limit::Max(n) => Some(n),
        }
    }

    /// As the API shows an override alone (`None`: no override or unlimited).
    pub fn as_override(self) -> Option<u64> {
        match self {
            Limit::Max(n) => Some(n),
            _ => None,
        }
    }
}

impl FromSql for Limit {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(match value {
            ValueRef::Null => Limit::Default,
            v => match v.as_i64()? {
                n if n < 0 => Limit::Unlimited,
                n => Limit::Max(n as u64),
            },
        })
    }
}

impl ToSql for Limit {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Limit::Default => ToSqlOutput::from(rusqlite::types::Null),
            Limit::Unlimited => ToSqlOutput::from(-1i64),
            Limit::Max(n) => ToSqlOutput::from(i64::try_from(*n).unwrap_or(i64::MAX)),
        })
    }
}

/// The five quota overrides of an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// VMs owned.
    pub vms: Limit,
    /// VMs with a process.
    pub running: Limit,
    /// vCPUs of VMs with a process.
    pub vcpus: Limit,
    /// Memory of VMs with a process, MiB.
    pub memory_mib: Limit,
    /// Disk, bytes.
    pub disk_bytes: Limit,
}

impl Limits {
    /// The limits in force over the configured `defaults`.
    pub fn resolve(&self, defaults: &Quota) -> Quota {
        Quota {
            max_vms: self.vms.resolve(defaults.max_vms),
            max_running: self.running.resolve(defaults.max_running),
            max_vcpus: self.vcpus.resolve(defaults.max_vcpus),
            max_memory_mib: self.memory_mib.resolve(defaults.max_memory_mib),
            max_disk_bytes: self.disk_bytes.resolve(defaults.max_disk_bytes),
        }
    }

    /// The overrides as the API shows them.
    pub fn overrides(&self) -> Quota {
        Quota {
            max_vms: self.vms.as_override(),
            max_running: self.running.as_override(),
            max_vcpus: self.vcpus.as_override(),
            max_memory_mib: self.memory_mib.as_override(),
            max_disk_bytes: self.disk_bytes.as_override(),
        }
    }
}

/// The `users.role` column: the one place a stored role is decoded.
pub struct RoleColumn(pub Role);

impl FromSql for RoleColumn {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        Role::parse(text)
            .map(RoleColumn)
            .ok_or_else(|| FromSqlError::Other(format!("unknown role {text:?}").into()))
    }
}

impl ToSql for RoleColumn {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_str()))
    }
}

const SELECT: &str = "SELECT id, name, role, uid, password, created_at, max_vms, max_running,
    max_vcpus, max_memory_mib, max_disk_bytes FROM users";

fn from_row(row: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get(0)?,
        name: row.get(1)?,
        role: row.get::<_, RoleColumn>(2)?.0,
        uid: row.get(3)?,
        password: row.get(4)?,
        created_at: row.get(5)?,
        limits: Limits {
            vms: row.get(6)?,
            running: row.get(7)?,
            vcpus: row.get(8)?,
            memory_mib: row.get(9)?,
            disk_bytes: row.get(10)?,
        },
    })
}

/// What `insert_user` needs.
#[derive(Clone)]
pub struct NewUser {
    /// Unique name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Linked uid.
    pub uid: Option<u32>,
    /// argon2id PHC string.
    pub password: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Inserts an account, returning its id.
pub fn insert_user(conn: &Connection, u: &NewUser) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO users (name, role, uid, password, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![u.name, RoleColumn(u.role), u.uid, u.password, u.created_at],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The account called `name`.
pub fn user_by_name(conn: &Connection, name: &str) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("{SELECT} WHERE name = ?1");
    Ok(conn.query_row(&sql, [name], from_row).optional()?)
}

/// The account with id `id`.
pub fn user_by_id(conn: &Connection, id: i64) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("{SELECT} WHERE id = ?1");
    Ok(conn.query_row(&sql, [id], from_row).optional()?)
}

/// The account linked to local uid `uid`.
pub fn user_by_uid(conn: &Connection, uid: u32) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("{SELECT} WHERE uid = ?1");
    Ok(conn.query_row(&sql, [uid], from_row).optional()?)
}

/// Every account, by name.
pub fn list_users(conn: &Connection) -> Result<Vec<UserRow>, StoreError> {
    let sql = format!("{SELECT} ORDER BY name");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Deletes account `id` (its tokens go with it).
pub fn delete_user(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM users WHERE id = ?1", [id])?;
    Ok(())
}

/// Writes role, uid, password hash and limits of `u` (by id) and renames it.
pub fn update_user(conn: &Connection, u: &UserRow) -> Result<(), StoreError> {
    let l = &u.limits;
    conn.execute(
        "UPDATE users SET name = ?2, role = ?3, uid = ?4, password = ?5, max_vms = ?6,
            max_running = ?7, max_vcpus = ?8, max_memory_mib = ?9, max_disk_bytes = ?10
         WHERE id = ?1",
        params![
            u.id,
            u.name,
            RoleColumn(u.role),
            u.uid,
            u.password,
            l.vms,
            l.running,
            l.vcpus,
            l.memory_mib,
            l.disk_bytes
        ],
    )?;
    Ok(())
}

/// The states counted as running for quotas (a QEMU process exists).
fn process_states() -> String {
    VmState::ALL
        .into_iter()
        .filter(|s| s.has_process())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

/// What account `user_id` uses now.
pub fn usage(conn: &Connection, user_id: i64) -> Result<Usage, StoreError> {
    let sql = format!(
        "SELECT COUNT(*),
            COALESCE(SUM(state IN ({p})), 0),
            COALESCE(SUM(CASE WHEN state IN ({p}) THEN cpus ELSE 0 END), 0),
            COALESCE(SUM(CASE WHEN state IN ({p}) THEN memory_mib ELSE 0 END), 0),
            COALESCE(SUM(disk_bytes), 0)
         FROM vms WHERE owner_id = ?1",
        p = process_states()
    );
    let (vms, running, vcpus, memory_mib, vm_disk): (i64, i64, i64, i64, i64) =
        conn.query_row(&sql, [user_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
    let image_disk: i64 = conn.query_row(
        "SELECT COALESCE(SUM(virtual_size_bytes), 0) FROM images WHERE owner_id = ?1 AND public = 0",
        [user_id],
        |r| r.get(0),
    )?;
    // A template holds its guest's RAM on disk (its disk layer was a VM's, counted there).
    let template_ram: i64 = conn.query_row(
        "SELECT COALESCE(SUM(memory_mib), 0) * 1048576 FROM templates WHERE owner_id = ?1",
        [user_id],
        |r| r.get(0),
    )?;
    Ok(Usage {
        vms: vms as u64,
        running: running as u64,
        vcpus: vcpus as u64,
        memory_mib: memory_mib as u64,
        disk_bytes: (vm_disk + image_disk + template_ram) as u64,
    })
}

/// Memory of every VM with a process, MiB (host admission).
pub fn running_memory_mib(conn: &Connection) -> Result<u64, StoreError> {
    let sql = format!(
        "SELECT COALESCE(SUM(memory_mib), 0) FROM vms WHERE state IN ({})",
        process_states()
    );
    Ok(conn.query_row(&sql, [], |r| r.get::<_, i64>(0))? as u64)
}

/// Names of the VMs owned by `user_id`.
pub fn vms_of(conn: &Connection, user_id: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT name FROM vms WHERE owner_id = ?1 ORDER BY name")?;
    let rows = stmt
        .query_map([user_id], |r| r.get(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Names of the private images owned by `user_id`.
pub fn images_of(conn: &Connection, user_id: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM images WHERE owner_id = ?1 AND public = 0 ORDER BY name",
    )?;
    let rows = stmt
        .query_map([user_id], |r| r.get(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Gives the public images and the ISOs of account `from` to account `to` (before `from` is
/// removed: what every user relies on stays).
pub fn transfer_shared(conn: &Connection, from: i64, to: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE images SET owner_id = ?2 WHERE owner_id = ?1 AND public = 1",
        [from, to],
    )?;
    conn.execute(
        "UPDATE isos SET owner_id = ?2 WHERE owner_id = ?1",
        [from, to],
    )?;
    conn.execute(
        "UPDATE networks SET owner_id = ?2 WHERE owner_id = ?1 AND shared = 1",
        [from, to],
    )?;
    conn.execute(
        "UPDATE templates SET owner_id = ?2 WHERE owner_id = ?1 AND shared = 1",
        [from, to],
    )?;
    Ok(())
}
