//! Queries on the `vms` table.

use std::collections::HashMap;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row};
use vm_proto::types::{Labels, PortForward, Protocol, VmState};

use super::cloud_init::CloudInitRow;
use super::{NicRow, StoreError};

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
    /// Lifecycle state (decoded by [`StateColumn`]).
    pub state: VmState,
    /// Owning account.
    pub owner: Owner,
    /// Unix seconds.
    pub created_at: i64,
    /// File under `overlays/`.
    pub overlay_file: String,
    /// Whether the VM has the user-mode NIC.
    pub user_net: bool,
    /// Lifetime: deadline, action, session.
    pub expiry: Expiry,
    /// Why crashed / why the last start failed.
    pub reason: Option<String>,
    /// The QEMU process, while one exists.
    pub runtime: Option<RuntimeRow>,
    /// The inserted ISO: (id, name, file under `isos/`).
    pub iso: Option<(i64, String, String)>,
    /// `bios` or `uefi`.
    pub firmware: String,
    /// The install VM of an unsealed image (its disk is standalone, not an overlay).
    pub install: bool,
    /// Free text for people (`NULL`: none).
    pub description: Option<String>,
    /// Labels (decoded by [`LabelsColumn`]).
    pub labels: Labels,
    /// The cloud-init seed settings (`vm_cloud_init`), if the VM gets a seed.
    pub cloud_init: Option<CloudInitRow>,
    /// NICs on lab networks, in guest order (`vm_nics`).
    pub nics: Vec<NicRow>,
    /// Port forwards on the user-mode NIC (`port_forwards`).
    pub ports: Vec<PortForward>,
    /// The warm template this VM is a clone of.
    pub template: Option<TemplateRef>,
    /// The next start restores the template's saved moment (a clone after create or wipe).
    pub restore_pending: bool,
}

/// A clone's template, as its VM row carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRef {
    /// `templates.id`.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its directory under `templates/`.
    pub dir: String,
    /// Its RAM file's seal (`templates.ram_seal`).
    pub ram_seal: String,
}

impl VmRow {
    /// The host port forwarded to the guest's ssh port on loopback, if any.
    pub fn ssh_port(&self) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| {
                p.protocol == Protocol::Tcp && p.guest_port == 22 && p.host_address == "127.0.0.1"
            })
            .map(|p| p.host_port)
    }
}

/// The settings `vm.set` changes, written together by [`set_settings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// vCPUs.
    pub cpus: u32,
    /// Guest memory.
    pub memory_mib: u64,
    /// Virtual disk size.
    pub disk_bytes: u64,
    /// Free text; `None` clears it.
    pub description: Option<String>,
    /// Labels (the whole set).
    pub labels: Labels,
}

/// The account that owns an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `users.id`.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its linked uid.
    pub uid: Option<u32>,
}

/// A VM's lifetime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expiry {
    /// Unix seconds.
    pub deadline: Option<i64>,
    /// `remove`, `wipe` or `stop` (decoded by the manager).
    pub action: Option<String>,
    /// The login session the VM ends with: `(token id, its expiry)`; the expiry is `None`
    /// when the session is gone (logged out), which ends the VM now.
    pub session: Option<(i64, Option<i64>)>,
}

impl Expiry {
    /// When the VM's lifetime ends: the earlier of its deadline and its session's end.
    pub fn ends_at(&self, now: i64) -> Option<i64> {
        let session_end = self.session.map(|(_, end)| end.unwrap_or(now));
        match (self.deadline, session_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// One row of `vm_runtime`: the QEMU process of a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeRow {
    /// QEMU's pid.
    pub pid: u32,
    /// Its start time in clock ticks since boot (pid reuse guard).
    pub pid_start_time: u64,
    /// `kvm` or `tcg`.
    pub accelerator: String,
    /// Unix seconds.
    pub started_at: i64,
    /// Directory of its sockets.
    pub run_dir: String,
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
    pub state: VmState,
    /// Owning account (`users.id`).
    pub owner_id: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// File under `overlays/`.
    pub overlay_file: String,
    /// Whether the VM has the user-mode NIC.
    pub user_net: bool,
    /// Deadline, unix seconds.
    pub expires_at: Option<i64>,
    /// `remove`, `wipe` or `stop`.
    pub on_expiry: Option<String>,
    /// Session token id it ends with.
    pub session_id: Option<i64>,
    /// Inserted ISO id.
    pub iso_id: Option<i64>,
    /// `bios` or `uefi`.
    pub firmware: String,
    /// Install VM of an unsealed image.
    pub install: bool,
    /// Free text for people.
    pub description: Option<String>,
    /// Labels.
    pub labels: Labels,
    /// The template it is a clone of (`templates.id`); its first start restores.
    pub template_id: Option<i64>,
}

const SELECT: &str = "SELECT v.id, v.name, v.image_id, i.name, i.file_name, v.cpus, v.memory_mib,
    v.disk_bytes, v.state, v.owner_id, v.created_at, v.overlay_file, v.user_net, v.reason,
    r.pid, r.pid_start_time, r.accelerator, r.started_at, r.run_dir,
    s.id, s.name, s.file_name, v.firmware, v.install,
    COALESCE(o.name, 'uid-' || v.owner_uid), o.uid, v.expires_at, v.on_expiry, v.session_id,
    t.id, t.expires_at, v.description, v.labels,
    c.user_name, c.ssh_keys, c.password_hash, c.user_data, c.instance_id,
    tp.id, tp.name, tp.dir, v.restore_pending, tp.ram_seal
    FROM vms v JOIN images i ON i.id = v.image_id LEFT JOIN vm_runtime r ON r.vm_id = v.id
    LEFT JOIN isos s ON s.id = v.iso_id LEFT JOIN users o ON o.id = v.owner_id
    LEFT JOIN tokens t ON t.id = v.session_id LEFT JOIN vm_cloud_init c ON c.vm_id = v.id
    LEFT JOIN templates tp ON tp.id = v.template_id";

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
        state: row.get::<_, StateColumn>(8)?.0,
        owner: Owner {
            id: row.get::<_, Option<i64>>(9)?.unwrap_or(0),
            name: row.get(24)?,
            uid: row.get(25)?,
        },
        expiry: expiry_from(row)?,
        created_at: row.get(10)?,
        overlay_file: row.get(11)?,
        user_net: row.get(12)?,
        reason: row.get(13)?,
        runtime: match row.get::<_, Option<u32>>(14)? {
            Some(pid) => Some(RuntimeRow {
                pid,
                pid_start_time: row.get::<_, i64>(15)? as u64,
                accelerator: row.get(16)?,
                started_at: row.get(17)?,
                run_dir: row.get(18)?,
            }),
            None => None,
        },
        iso: match row.get::<_, Option<i64>>(19)? {
            Some(id) => Some((id, row.get(20)?, row.get(21)?)),
            None => None,
        },
        firmware: row.get(22)?,
        install: row.get(23)?,
        description: row.get(31)?,
        labels: row.get::<_, LabelsColumn>(32)?.0,
        cloud_init: super::cloud_init::from_row(row, 33)?,
        nics: Vec::new(),
        ports: Vec::new(),
        template: match row.get::<_, Option<i64>>(38)? {
            Some(id) => Some(TemplateRef {
                id,
                name: row.get(39)?,
                dir: row.get(40)?,
                ram_seal: row.get(42)?,
            }),
            None => None,
        },
        restore_pending: row.get(41)?,
    })
}

fn expiry_from(row: &Row<'_>) -> rusqlite::Result<Expiry> {
    let session = match row.get::<_, Option<i64>>(28)? {
        None => None,
        Some(id) => match row.get::<_, Option<i64>>(29)? {
            // A session token without expiry cannot exist; treat it as far away.
            Some(_) => Some((id, Some(row.get::<_, Option<i64>>(30)?.unwrap_or(i64::MAX)))),
            None => Some((id, None)),
        },
    };
    Ok(Expiry {
        deadline: row.get(26)?,
        action: row.get(27)?,
        session,
    })
}

/// Inserts a VM, returning its id.
pub fn insert_vm(conn: &Connection, vm: &NewVm) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO vms (name, image_id, cpus, memory_mib, disk_bytes, state, owner_id, created_at, overlay_file, user_net,
            iso_id, firmware, install, expires_at, on_expiry, session_id, description, labels, owner_uid,
            template_id, restore_pending)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            COALESCE((SELECT uid FROM users WHERE id = ?7), -1), ?19, ?19 IS NOT NULL)",
        params![
            vm.name,
            vm.image_id,
            vm.cpus,
            vm.memory_mib as i64,
            vm.disk_bytes as i64,
            StateColumn(vm.state),
            vm.owner_id,
            vm.created_at,
            vm.overlay_file,
            vm.user_net,
            vm.iso_id,
            vm.firmware,
            vm.install,
            vm.expires_at,
            vm.on_expiry,
            vm.session_id,
            vm.description,
            LabelsColumn(vm.labels.clone()),
            vm.template_id
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The VM called `name`, if any.
pub fn get_vm(conn: &Connection, name: &str) -> Result<Option<VmRow>, StoreError> {
    let sql = format!("{SELECT} WHERE v.name = ?1");
    let row = conn.query_row(&sql, [name], from_row).optional()?;
    row.map(|row| with_links(conn, row)).transpose()
}

/// `row` with its NICs and port forwards.
fn with_links(conn: &Connection, mut row: VmRow) -> Result<VmRow, StoreError> {
    row.nics = super::nics_of_vm(conn, row.id)?;
    row.ports = super::ports_of_vm(conn, row.id)?;
    Ok(row)
}

/// Every VM (`owner` `None`) or those of one account, by name.
pub fn list_vms(conn: &Connection, owner: Option<i64>) -> Result<Vec<VmRow>, StoreError> {
    let sql = format!("{SELECT} WHERE ?1 IS NULL OR v.owner_id = ?1 ORDER BY v.name");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([owner], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut nics: HashMap<i64, Vec<NicRow>> = HashMap::new();
    for nic in super::all_nics(conn)? {
        nics.entry(nic.vm_id).or_default().push(nic);
    }
    let mut ports: HashMap<i64, Vec<PortForward>> = HashMap::new();
    for (vm_id, port) in super::all_ports(conn)? {
        ports.entry(vm_id).or_default().push(port);
    }
    Ok(rows
        .into_iter()
        .map(|mut row| {
            row.nics = nics.remove(&row.id).unwrap_or_default();
            row.ports = ports.remove(&row.id).unwrap_or_default();
            row
        })
        .collect())
}

/// Writes the settings of VM `id` (vCPUs, memory, disk size, description, labels).
pub fn set_settings(conn: &Connection, id: i64, settings: &Settings) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE vms SET cpus = ?2, memory_mib = ?3, disk_bytes = ?4, description = ?5,
            labels = ?6 WHERE id = ?1",
        params![
            id,
            settings.cpus,
            settings.memory_mib as i64,
            settings.disk_bytes as i64,
            settings.description,
            LabelsColumn(settings.labels.clone())
        ],
    )?;
    Ok(())
}

/// Sets the lifetime of VM `id` (deadline, action, session).
pub fn set_expiry(
    conn: &Connection,
    id: i64,
    deadline: Option<i64>,
    action: Option<&str>,
    session_id: Option<i64>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE vms SET expires_at = ?2, on_expiry = ?3, session_id = ?4 WHERE id = ?1",
        params![id, deadline, action, session_id],
    )?;
    Ok(())
}

/// Ids and names of the VMs whose lifetime ended by `now`: deadline passed, session expired
/// or gone.
pub fn expired_vms(conn: &Connection, now: i64) -> Result<Vec<(i64, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.id, v.name FROM vms v LEFT JOIN tokens t ON t.id = v.session_id
         WHERE (v.expires_at IS NOT NULL AND v.expires_at <= ?1)
            OR (v.session_id IS NOT NULL AND (t.id IS NULL OR t.expires_at <= ?1))
         ORDER BY v.name",
    )?;
    let rows = stmt
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The earliest future end of any VM's lifetime (deadline or session expiry), if any.
pub fn next_expiry(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn.query_row(
        "SELECT MIN(e) FROM (SELECT expires_at AS e FROM vms WHERE expires_at IS NOT NULL
            UNION ALL SELECT t.expires_at FROM vms v JOIN tokens t ON t.id = v.session_id)",
        [],
        |r| r.get(0),
    )?)
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

/// Sets state and reason of VM `id`.
pub fn set_state(
    conn: &Connection,
    id: i64,
    state: VmState,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE vms SET state = ?2, reason = ?3 WHERE id = ?1",
        params![id, StateColumn(state), reason],
    )?;
    Ok(())
}

/// Records the QEMU process of VM `id`.
pub fn set_runtime(conn: &Connection, id: i64, rt: &RuntimeRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO vm_runtime (vm_id, pid, pid_start_time, accelerator, started_at, run_dir)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, rt.pid, rt.pid_start_time as i64, rt.accelerator, rt.started_at, rt.run_dir],
    )?;
    Ok(())
}

/// Forgets the QEMU process of VM `id`.
pub fn clear_runtime(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM vm_runtime WHERE vm_id = ?1", [id])?;
    Ok(())
}

/// Inserts (`Some`) or ejects (`None`) the ISO of VM `id`.
pub fn set_iso(conn: &Connection, id: i64, iso_id: Option<i64>) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE vms SET iso_id = ?2 WHERE id = ?1",
        params![id, iso_id],
    )?;
    Ok(())
}

/// The `vms.state` column: the one place a stored state is decoded. A value this vmd does not
/// know is a decode error (the row is reported, never guessed at).
pub struct StateColumn(pub VmState);

impl FromSql for StateColumn {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        VmState::parse(text)
            .map(StateColumn)
            .ok_or_else(|| FromSqlError::Other(format!("unknown vm state {text:?}").into()))
    }
}

impl ToSql for StateColumn {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_str()))
    }
}

/// The `vms.labels` column (a JSON object of strings): the one place labels are decoded.
pub struct LabelsColumn(pub Labels);

impl FromSql for LabelsColumn {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        serde_json::from_str(value.as_str()?)
            .map(LabelsColumn)
            .map_err(|e| FromSqlError::Other(format!("bad labels column: {e}").into()))
    }
}

impl ToSql for LabelsColumn {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let text = serde_json::to_string(&self.0)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(ToSqlOutput::from(text))
    }
}
