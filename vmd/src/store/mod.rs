//! The SQLite store: the daemon's persistent record of images and VMs.
//!
//! # Schema (version 1, `PRAGMA user_version = 1`)
//! ```sql
//! CREATE TABLE images (
//!     id                 INTEGER PRIMARY KEY,
//!     name               TEXT NOT NULL UNIQUE,  -- DNS label
//!     file_name          TEXT NOT NULL UNIQUE,  -- file under images/
//!     source_format      TEXT NOT NULL,         -- format of the uploaded bytes
//!     virtual_size_bytes INTEGER NOT NULL,
//!     sha256             TEXT NOT NULL,         -- of the uploaded bytes
//!     owner_uid          INTEGER NOT NULL,
//!     created_at         INTEGER NOT NULL       -- unix seconds
//! );
//! CREATE TABLE vms (
//!     id           INTEGER PRIMARY KEY,
//!     name         TEXT NOT NULL UNIQUE,
//!     image_id     INTEGER NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
//!     cpus         INTEGER NOT NULL,
//!     memory_mib   INTEGER NOT NULL,
//!     disk_bytes   INTEGER NOT NULL,            -- virtual size of the overlay
//!     state        TEXT NOT NULL,               -- vm_proto::types::VmState::as_str
//!     owner_uid    INTEGER NOT NULL,
//!     created_at   INTEGER NOT NULL,
//!     overlay_file TEXT NOT NULL UNIQUE         -- file under overlays/
//! );
//! ```
//! Version 2 adds the runtime:
//! ```sql
//! ALTER TABLE vms ADD COLUMN ssh_port INTEGER;   -- unique when set
//! ALTER TABLE vms ADD COLUMN reason TEXT;        -- why crashed / why the last start failed
//! CREATE TABLE vm_runtime (                      -- one row while a QEMU process exists
//!     vm_id          INTEGER PRIMARY KEY REFERENCES vms(id) ON DELETE CASCADE,
//!     pid            INTEGER NOT NULL,
//!     pid_start_time INTEGER NOT NULL,           -- /proc/PID/stat starttime: guards pid reuse
//!     accelerator    TEXT NOT NULL,
//!     started_at     INTEGER NOT NULL,
//!     run_dir        TEXT NOT NULL               -- holds qmp, console and vnc sockets
//! );
//! CREATE TABLE events (
//!     seq     INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, survives restarts
//!     at_ms   INTEGER NOT NULL,
//!     kind    TEXT NOT NULL,
//!     vm      TEXT, image TEXT, state TEXT,   -- image: the ISO's name for iso_* kinds
//!     message TEXT NOT NULL
//! );
//! ```
//! Version 3 adds the ISO library and bases made from ISOs:
//! ```sql
//! CREATE TABLE isos (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
//!     file_name TEXT NOT NULL UNIQUE, size_bytes INTEGER NOT NULL, sha256 TEXT NOT NULL,
//!     owner_uid INTEGER NOT NULL, created_at INTEGER NOT NULL);
//! ALTER TABLE images ADD COLUMN sealed INTEGER NOT NULL DEFAULT 1;      -- 0 while installing
//! ALTER TABLE images ADD COLUMN firmware TEXT NOT NULL DEFAULT 'bios';  -- bios | uefi
//! ALTER TABLE vms ADD COLUMN iso_id INTEGER REFERENCES isos(id);        -- inserted CD, if any
//! ALTER TABLE vms ADD COLUMN firmware TEXT NOT NULL DEFAULT 'bios';
//! ALTER TABLE vms ADD COLUMN install INTEGER NOT NULL DEFAULT 0;        -- 1: install VM of an
//!     -- unsealed image: its disk is a standalone blank qcow2 that sealing turns into the base
//! ```
//! Version 4 adds accounts, tokens, ownership by account and ephemeral VMs:
//! ```sql
//! CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids are never reused
//!     name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,         -- admin | user
//!     uid INTEGER UNIQUE,                                    -- linked local uid
//!     password TEXT,                                         -- argon2id PHC string
//!     created_at INTEGER NOT NULL,
//!     max_vms, max_running, max_vcpus, max_memory_mib, max_disk_bytes INTEGER);
//!     -- quota overrides: NULL = the configured default, -1 = unlimited
//! CREATE TABLE tokens (id INTEGER PRIMARY KEY AUTOINCREMENT,
//!     user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
//!     kind TEXT NOT NULL,                                    -- api | session
//!     name TEXT, digest BLOB NOT NULL,                       -- SHA-256 of the secret
//!     created_at INTEGER NOT NULL, expires_at INTEGER, last_used_at INTEGER,
//!     parent_id INTEGER);  -- the token or session it was made with: ends with it
//! -- one account per owner uid found (uid 0: root, admin; others: uid-N, renamed to the
//! -- login name at start-up)
//! ALTER TABLE vms ADD COLUMN owner_id INTEGER REFERENCES users(id);  -- owner_uid: unused
//! ALTER TABLE vms ADD COLUMN expires_at INTEGER;   -- unix seconds, the VM's deadline
//! ALTER TABLE vms ADD COLUMN on_expiry TEXT;       -- remove | wipe | stop
//! ALTER TABLE vms ADD COLUMN session_id INTEGER;   -- tokens.id of the session it ends with
//! ALTER TABLE images ADD COLUMN owner_id INTEGER REFERENCES users(id);
//! ALTER TABLE images ADD COLUMN public INTEGER NOT NULL DEFAULT 1;
//! ALTER TABLE isos ADD COLUMN owner_id INTEGER REFERENCES users(id);
//! ALTER TABLE events ADD COLUMN actor TEXT;        -- account that caused it
//! ALTER TABLE events ADD COLUMN owner TEXT;        -- account owning the object
//! ALTER TABLE events ADD COLUMN audience_id INTEGER; -- users.id that may see it (and admins)
//! ALTER TABLE events ADD COLUMN public INTEGER NOT NULL DEFAULT 0;  -- every user may see it
//! ```
//! Version 5 adds descriptions (`vm.create`, `vm.set`):
//! ```sql
//! ALTER TABLE vms ADD COLUMN description TEXT;     -- free text for people; NULL: none
//! ```
//! Version 6 adds the OS family and description of images (`image.set`):
//! ```sql
//! ALTER TABLE images ADD COLUMN os TEXT NOT NULL DEFAULT 'other';  -- OsFamily::as_str
//! ALTER TABLE images ADD COLUMN description TEXT NOT NULL DEFAULT ''; -- '' for none
//! -- then, in Rust, each existing image's os is OsFamily::guess(name)
//! ```
//! Version 7 indexes the events a user may see, so a user's page of `events.list` merges
//! two index walks instead of scanning every user's events:
//! ```sql
//! CREATE INDEX events_public_seq ON events(public, seq);
//! CREATE INDEX events_audience_seq ON events(audience_id, seq);
//! ```
//! Version 9 adds lab networks, NICs on them and port forwards (the `ssh_port` column moves
//! into `port_forwards` as a TCP forward to guest port 22):
//! ```sql
//! CREATE TABLE networks (id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: names bridges
//!     name TEXT NOT NULL UNIQUE,
//!     owner_id INTEGER NOT NULL REFERENCES users(id), shared INTEGER NOT NULL DEFAULT 0,
//!     subnet TEXT NOT NULL,                                  -- CIDR, vm_proto Subnet
//!     dhcp INTEGER NOT NULL DEFAULT 0, nat INTEGER NOT NULL DEFAULT 0,
//!     created_at INTEGER NOT NULL);
//! CREATE TABLE vm_nics (vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
//!     position INTEGER NOT NULL,                             -- guest order, from 0
//!     network_id INTEGER NOT NULL REFERENCES networks(id) ON DELETE RESTRICT,
//!     mac TEXT NOT NULL UNIQUE, PRIMARY KEY (vm_id, position), UNIQUE (vm_id, network_id));
//! CREATE TABLE port_forwards (vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
//!     protocol TEXT NOT NULL,                                -- tcp | udp
//!     host_address TEXT NOT NULL, host_port INTEGER NOT NULL, guest_port INTEGER NOT NULL,
//!     UNIQUE (protocol, host_port));
//! ALTER TABLE vms ADD COLUMN user_net INTEGER NOT NULL DEFAULT 1;  -- has the user-mode NIC
//! ALTER TABLE vms DROP COLUMN ssh_port;
//! ```
//! Version 10 adds warm templates and marks their clones:
//! ```sql
//! CREATE TABLE templates (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
//!     owner_id INTEGER NOT NULL REFERENCES users(id), shared INTEGER NOT NULL DEFAULT 0,
//!     image_id INTEGER NOT NULL REFERENCES images(id), source_vm TEXT NOT NULL,
//!     cpus, memory_mib, disk_bytes, firmware, user_net,     -- what every clone has
//!     seed INTEGER NOT NULL,                                -- clones have a seed drive
//!     accelerator TEXT NOT NULL, qemu_version TEXT NOT NULL,
//!     dir TEXT NOT NULL UNIQUE,                             -- under templates/
//!     ram_seal TEXT NOT NULL,                               -- RAM file's size:mtime at save
//!     created_at INTEGER NOT NULL);
//! ALTER TABLE vms ADD COLUMN template_id INTEGER REFERENCES templates(id);
//! ALTER TABLE vms ADD COLUMN restore_pending INTEGER NOT NULL DEFAULT 0;  -- next start restores
//! ```
//! # Rules
//! - WAL journal, `foreign_keys = ON`, `busy_timeout` 5 s.
//! - Migrations are an ordered list (`migrations.rs`); the index + 1 of the last applied one
//!   is `user_version`. A database newer than this binary is refused rather than guessed at.
//! - Every change runs in a transaction ([`Store::with_tx`]); file moves that must agree with a
//!   row happen inside that transaction, before commit.
//! - Disk full: a [`WriteGuard`] (the space reserve) hears of every write and of every write
//!   that failed with `SQLITE_FULL`, and releases space. Writes that keep the store in step
//!   with QEMU (state, runtime rows, events) use [`Store::with_tx_retry`], which runs once more
//!   after space was made. A `vms.state` value this binary does not know is a decode error
//!   ([`StateColumn`]), never guessed at.
//! - The runtime row is written before QEMU is spawned (pid 0, the run directory named by
//!   the start token) and updated with the pid right after, so a crash of vmd at any point
//!   leaves a record that start-up adoption can resolve.
//! - The connection sits behind a std `Mutex`; callers are blocking tasks (`spawn_blocking`),
//!   never async code, so the lock is never held across an `.await`.

mod cloud_init;
mod events;
mod images;
mod isos;
mod migrations;
mod networks;
mod templates;
mod tokens;
mod users;
mod vms;

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, Transaction};

use migrations::migrate;
pub use migrations::schema_version;

pub use cloud_init::{set_cloud_init, set_instance_id, CloudInitRow};
pub use events::{insert_event, list_events, prune_events, Audience, EventRow, NewEvent, Viewer};
pub use images::{
    count_images, delete_image, get_image, get_image_by_id, image_users, insert_image, list_images,
    seal_image, set_image_info, ImageInfo, ImageRow, NewImage, OsColumn,
};
pub use isos::{delete_iso, get_iso, insert_iso, iso_users, list_isos, IsoRow, NewIso};
pub use networks::{
    all_nics, all_ports, count_networks_of, delete_network, delete_nic, delete_port, get_network,
    insert_network, insert_nic, insert_port, list_networks, nics_of_vm, nics_on_network, port_user,
    ports_of_vm, set_user_net, NetworkRow, NicRow,
};
pub use templates::{
    all_clones, clones_of, delete_template, get_template, insert_template, list_templates,
    set_restore_pending, TemplateRow,
};
pub use tokens::{
    count_tokens, delete_token, delete_tokens_of, insert_token, list_tokens, prune_expired_tokens,
    token_by_id, touch_token, NewToken, TokenRow,
};
pub use users::{
    delete_user, images_of, insert_user, list_users, running_memory_mib, transfer_shared,
    update_user, usage, user_by_id, user_by_name, user_by_uid, vms_of, Limit, Limits, NewUser,
    UserRow,
};
pub use vms::{
    clear_runtime, count_vms, delete_vm, expired_vms, get_vm, insert_vm, list_vms, next_expiry,
    set_expiry, set_iso, set_runtime, set_settings, set_state, Expiry, LabelsColumn, NewVm, Owner,
    RuntimeRow, Settings, StateColumn, TemplateRef, VmRow,
};

/// Failures of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening or configuring the database file failed.
    #[error("cannot open database {path}")]
    Open {
        /// The database file.
        path: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer vmd.
    #[error("database schema version {found} is newer than this vmd supports ({supported})")]
    TooNew {
        /// `user_version` found.
        found: i64,
        /// Highest version this binary knows.
        supported: i64,
    },
    /// A migration failed.
    #[error("cannot migrate database to schema version {version}")]
    Migrate {
        /// Version being applied.
        version: i64,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] rusqlite::Error),
}

/// What the store tells about its writes, so that space can be made when the file system
/// fills up (implemented by the space reserve).
pub trait WriteGuard: Send + Sync {
    /// Called before every write transaction (may release space).
    fn before_write(&self);
    /// Called when a write failed because the file system is full.
    fn on_full(&self);
}

/// The open database.
pub struct Store {
    conn: Mutex<Connection>,
    guard: Option<std::sync::Arc<dyn WriteGuard>>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        restrict(path);
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        let mut conn = conn;
        migrate(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
            guard: None,
        })
    }

    /// The same store, telling `guard` about its writes.
    pub fn with_guard(mut self, guard: std::sync::Arc<dyn WriteGuard>) -> Store {
        self.guard = Some(guard);
        self
    }

    /// Runs `f` on the connection (read-only use).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Poisoning only means another blocking task panicked mid-query; SQLite state is intact.
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }

    /// Runs `f` in a transaction, committing if it returns `Ok`, rolling back otherwise.
    pub fn with_tx<T, E>(&self, f: impl FnOnce(&Transaction) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        if let Some(guard) = &self.guard {
            guard.before_write();
        }
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction().map_err(StoreError::from)?;
        let value = f(&tx)?;
        tx.commit().map_err(|e| self.failed_write(e))?;
        Ok(value)
    }

    /// Like [`Store::with_tx`] for transactions that only touch the database (no files), and
    /// so can run again: when the file system is full, space is made and `f` runs once more.
    /// Used for the writes that keep the store in step with QEMU and for events.
    pub fn with_tx_retry<T, E>(&self, f: impl Fn(&Transaction) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError> + DiskFull,
    {
        match self.with_tx(&f) {
            Err(e) if e.is_disk_full() && self.guard.is_some() => self.with_tx(&f),
            other => other,
        }
    }

    fn failed_write(&self, err: rusqlite::Error) -> StoreError {
        let err = StoreError::from(err);
        if let (true, Some(guard)) = (err.is_disk_full(), &self.guard) {
            guard.on_full();
        }
        err
    }
}

/// Errors that can say whether they mean "the file system is full".
pub trait DiskFull {
    /// Whether the failure was for want of space.
    fn is_disk_full(&self) -> bool;
}

impl DiskFull for StoreError {
    fn is_disk_full(&self) -> bool {
        matches!(
            self,
            StoreError::Query(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DiskFull
        )
    }
}

/// The database holds every user's objects: readable by the daemon only (WAL files inherit it).
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(err) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %err, "cannot restrict database permissions");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmd.db");
        Store::open(&path).expect("first open");
        let store = Store::open(&path).expect("second open");
        let version: i64 = store
            .read(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .expect("version");
        assert_eq!(version, schema_version());
    }

    #[test]
    fn version_3_owners_become_accounts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmd.db");
        let mut conn = Connection::open(&path).expect("open");
        let tx = conn.transaction().expect("tx");
        for sql in &migrations::MIGRATIONS[..3] {
            tx.execute_batch(sql).expect("old schema");
        }
        tx.execute_batch(
            "INSERT INTO images (name, file_name, source_format, virtual_size_bytes, sha256, owner_uid, created_at)
                VALUES ('base', 'base.qcow2', 'raw', 1, 'x', 0, 1);
             INSERT INTO vms (name, image_id, cpus, memory_mib, disk_bytes, state, owner_uid, created_at, overlay_file)
                VALUES ('a', 1, 1, 64, 1, 'stopped', 0, 1, 'a.qcow2'),
                       ('b', 1, 1, 64, 1, 'stopped', 4321, 1, 'b.qcow2');
             PRAGMA user_version = 3;",
        )
        .expect("old rows");
        tx.commit().expect("commit");
        drop(conn);
        let store = Store::open(&path).expect("migrate");
        let (a, b) = store
            .read(|c| Ok((get_vm(c, "a")?, get_vm(c, "b")?)))
            .expect("read");
        let (a, b) = (a.expect("a"), b.expect("b"));
        assert_eq!((a.owner.name.as_str(), a.owner.uid), ("root", Some(0)));
        assert_eq!(
            (b.owner.name.as_str(), b.owner.uid),
            ("uid-4321", Some(4321))
        );
        let root = store
            .read(|c| user_by_uid(c, 0))
            .expect("read")
            .expect("root");
        assert_eq!(root.role, vm_proto::types::Role::Admin);
        let image = store
            .read(|c| get_image(c, "base"))
            .expect("read")
            .expect("image");
        assert!(image.public && image.owner.id == root.id);
    }

    #[test]
    fn version_5_images_get_a_guessed_os_and_no_description() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmd.db");
        let mut conn = Connection::open(&path).expect("open");
        let tx = conn.transaction().expect("tx");
        for sql in &migrations::MIGRATIONS[..5] {
            tx.execute_batch(sql).expect("old schema");
        }
        tx.execute_batch(
            "INSERT INTO images (name, file_name, source_format, virtual_size_bytes, sha256, owner_uid, created_at)
                VALUES ('debian-12', 'd.qcow2', 'raw', 1, 'x', 0, 1),
                       ('win11', 'w.qcow2', 'raw', 1, 'x', 0, 1),
                       ('base', 'b.qcow2', 'raw', 1, 'x', 0, 1);
             PRAGMA user_version = 5;",
        )
        .expect("old rows");
        tx.commit().expect("commit");
        drop(conn);
        let store = Store::open(&path).expect("migrate");
        let images = store.read(list_images).expect("read");
        let got: Vec<_> = images
            .iter()
            .map(|i| (i.name.as_str(), i.os, i.description.as_str()))
            .collect();
        use vm_proto::types::OsFamily;
        assert_eq!(
            got,
            [
                ("base", OsFamily::Other, ""),
                ("debian-12", OsFamily::Debian, ""),
                ("win11", OsFamily::Windows, "")
            ]
        );
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmd.db");
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "user_version", 99)
            .expect("set version");
        drop(conn);
        let err = Store::open(&path).err().expect("must refuse");
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    }
}
