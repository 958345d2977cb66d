//! Schema migrations of the store, keyed on `PRAGMA user_version` (the schema itself is
//! described in the [store module's doc](super)). Each entry runs in its own transaction
//! that also sets the version, so a failed migration leaves the previous version intact.

use rusqlite::Connection;

use super::StoreError;

/// Schema migrations, applied in order. Never edit a shipped entry; append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE images (
    id                 INTEGER PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    file_name          TEXT NOT NULL UNIQUE,
    source_format      TEXT NOT NULL,
    virtual_size_bytes INTEGER NOT NULL,
    sha256             TEXT NOT NULL,
    owner_uid          INTEGER NOT NULL,
    created_at         INTEGER NOT NULL
);
CREATE TABLE vms (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    image_id     INTEGER NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
    cpus         INTEGER NOT NULL,
    memory_mib   INTEGER NOT NULL,
    disk_bytes   INTEGER NOT NULL,
    state        TEXT NOT NULL,
    owner_uid    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    overlay_file TEXT NOT NULL UNIQUE
);
CREATE INDEX vms_image_id ON vms(image_id);
"#,
    r#"
ALTER TABLE vms ADD COLUMN ssh_port INTEGER;
ALTER TABLE vms ADD COLUMN reason TEXT;
CREATE UNIQUE INDEX vms_ssh_port ON vms(ssh_port) WHERE ssh_port IS NOT NULL;
CREATE TABLE vm_runtime (
    vm_id          INTEGER PRIMARY KEY REFERENCES vms(id) ON DELETE CASCADE,
    pid            INTEGER NOT NULL,
    pid_start_time INTEGER NOT NULL,
    accelerator    TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    run_dir        TEXT NOT NULL
);
CREATE TABLE events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms   INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    vm      TEXT,
    image   TEXT,
    state   TEXT,
    message TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE isos (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    file_name  TEXT NOT NULL UNIQUE,
    size_bytes INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    owner_uid  INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
ALTER TABLE images ADD COLUMN sealed INTEGER NOT NULL DEFAULT 1;
ALTER TABLE images ADD COLUMN firmware TEXT NOT NULL DEFAULT 'bios';
ALTER TABLE vms ADD COLUMN iso_id INTEGER REFERENCES isos(id);
ALTER TABLE vms ADD COLUMN firmware TEXT NOT NULL DEFAULT 'bios';
ALTER TABLE vms ADD COLUMN install INTEGER NOT NULL DEFAULT 0;
CREATE INDEX vms_iso_id ON vms(iso_id);
"#,
    r#"
CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL,
    uid            INTEGER UNIQUE,
    password       TEXT,
    created_at     INTEGER NOT NULL,
    max_vms        INTEGER,
    max_running    INTEGER,
    max_vcpus      INTEGER,
    max_memory_mib INTEGER,
    max_disk_bytes INTEGER
);
CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    name         TEXT,
    digest       BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    parent_id    INTEGER
);
CREATE INDEX tokens_user_id ON tokens(user_id);
CREATE INDEX tokens_parent_id ON tokens(parent_id);
INSERT INTO users (name, role, uid, created_at)
    SELECT CASE u WHEN 0 THEN 'root' ELSE 'uid-' || u END,
           CASE u WHEN 0 THEN 'admin' ELSE 'user' END, u, CAST(strftime('%s', 'now') AS INTEGER)
    FROM (SELECT owner_uid AS u FROM vms UNION SELECT owner_uid FROM images
          UNION SELECT owner_uid FROM isos);
ALTER TABLE vms ADD COLUMN owner_id INTEGER REFERENCES users(id);
ALTER TABLE vms ADD COLUMN expires_at INTEGER;
ALTER TABLE vms ADD COLUMN on_expiry TEXT;
ALTER TABLE vms ADD COLUMN session_id INTEGER;
UPDATE vms SET owner_id = (SELECT id FROM users WHERE uid = vms.owner_uid);
CREATE INDEX vms_owner_id ON vms(owner_id);
ALTER TABLE images ADD COLUMN owner_id INTEGER REFERENCES users(id);
ALTER TABLE images ADD COLUMN public INTEGER NOT NULL DEFAULT 1;
UPDATE images SET owner_id = (SELECT id FROM users WHERE uid = images.owner_uid);
ALTER TABLE isos ADD COLUMN owner_id INTEGER REFERENCES users(id);
UPDATE isos SET owner_id = (SELECT id FROM users WHERE uid = isos.owner_uid);
ALTER TABLE events ADD COLUMN actor TEXT;
ALTER TABLE events ADD COLUMN owner TEXT;
ALTER TABLE events ADD COLUMN audience_id INTEGER;
ALTER TABLE events ADD COLUMN public INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
ALTER TABLE vms ADD COLUMN description TEXT;
"#,
    r#"
ALTER TABLE images ADD COLUMN os TEXT NOT NULL DEFAULT 'other';
ALTER TABLE images ADD COLUMN description TEXT NOT NULL DEFAULT '';
"#,
    r#"
CREATE INDEX events_public_seq ON events(public, seq);
CREATE INDEX events_audience_seq ON events(audience_id, seq);
"#,
    r#"
ALTER TABLE vms ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE images ADD COLUMN cloud_init INTEGER NOT NULL DEFAULT 0;
CREATE TABLE vm_cloud_init (
    vm_id         INTEGER PRIMARY KEY REFERENCES vms(id) ON DELETE CASCADE,
    user_name     TEXT NOT NULL,
    ssh_keys      TEXT NOT NULL DEFAULT '[]',
    password_hash TEXT,
    user_data     TEXT,
    instance_id   TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE networks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    owner_id   INTEGER NOT NULL REFERENCES users(id),
    shared     INTEGER NOT NULL DEFAULT 0,
    subnet     TEXT NOT NULL,
    dhcp       INTEGER NOT NULL DEFAULT 0,
    nat        INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE vm_nics (
    vm_id      INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    network_id INTEGER NOT NULL REFERENCES networks(id) ON DELETE RESTRICT,
    mac        TEXT NOT NULL UNIQUE,
    PRIMARY KEY (vm_id, position),
    UNIQUE (vm_id, network_id)
);
CREATE INDEX vm_nics_network ON vm_nics(network_id);
CREATE TABLE port_forwards (
    vm_id        INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    protocol     TEXT NOT NULL CHECK (protocol IN ('tcp', 'udp')),
    host_address TEXT NOT NULL,
    host_port    INTEGER NOT NULL,
    guest_port   INTEGER NOT NULL,
    UNIQUE (protocol, host_port)
);
CREATE INDEX port_forwards_vm ON port_forwards(vm_id);
ALTER TABLE vms ADD COLUMN user_net INTEGER NOT NULL DEFAULT 1;
INSERT INTO port_forwards (vm_id, protocol, host_address, host_port, guest_port)
    SELECT id, 'tcp', '127.0.0.1', ssh_port, 22 FROM vms WHERE ssh_port IS NOT NULL;
DROP INDEX vms_ssh_port;
ALTER TABLE vms DROP COLUMN ssh_port;
"#,
    r#"
CREATE TABLE templates (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    owner_id     INTEGER NOT NULL REFERENCES users(id),
    shared       INTEGER NOT NULL DEFAULT 0,
    image_id     INTEGER NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
    source_vm    TEXT NOT NULL,
    cpus         INTEGER NOT NULL,
    memory_mib   INTEGER NOT NULL,
    disk_bytes   INTEGER NOT NULL,
    firmware     TEXT NOT NULL,
    user_net     INTEGER NOT NULL,
    seed         INTEGER NOT NULL,
    accelerator  TEXT NOT NULL,
    qemu_version TEXT NOT NULL,
    dir          TEXT NOT NULL UNIQUE,
    ram_seal     TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
ALTER TABLE vms ADD COLUMN template_id INTEGER REFERENCES templates(id) ON DELETE RESTRICT;
ALTER TABLE vms ADD COLUMN restore_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX vms_template ON vms(template_id);
"#,
];

/// A step in Rust that runs after a migration's SQL, in its transaction.
type Fixup = fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>;

/// Fix-ups by the schema version whose SQL they follow. Never edit a shipped entry.
const FIXUPS: &[(i64, Fixup)] = &[(6, |tx| super::images::guess_os_families(tx))];

/// The schema version this binary writes.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > schema_version() {
        return Err(StoreError::TooNew {
            found,
            supported: schema_version(),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        let err = |source| StoreError::Migrate { version, source };
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        for (_, fixup) in FIXUPS.iter().filter(|(v, _)| *v == version) {
            fixup(&tx).map_err(err)?;
        }
        tx.pragma_update(None, "user_version", version)
            .map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_9_moves_ssh_ports_into_port_forwards() {
        let mut conn = Connection::open_in_memory().expect("db");
        for sql in &MIGRATIONS[..8] {
            conn.execute_batch(sql).expect("older schema");
        }
        conn.pragma_update(None, "user_version", 8)
            .expect("version");
        conn.execute_batch(
            "INSERT INTO images (id, name, file_name, source_format, virtual_size_bytes, sha256,
                owner_uid, created_at) VALUES (1, 'img', 'img.qcow2', 'qcow2', 1, '', 0, 0);
             INSERT INTO vms (id, name, image_id, cpus, memory_mib, disk_bytes, state, owner_uid,
                created_at, overlay_file, ssh_port)
                VALUES (3, 'web', 1, 1, 64, 1, 'stopped', 0, 0, 'web.qcow2', 2222),
                       (4, 'db', 1, 1, 64, 1, 'stopped', 0, 0, 'db.qcow2', NULL);",
        )
        .expect("rows");
        migrate(&mut conn).expect("migrate");
        let forwards: Vec<(i64, String, String, i64, i64)> = conn
            .prepare(
                "SELECT vm_id, protocol, host_address, host_port, guest_port FROM port_forwards",
            )
            .expect("prepare")
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(forwards, [(3, "tcp".into(), "127.0.0.1".into(), 2222, 22)]);
        let user_net: i64 = conn
            .query_row("SELECT user_net FROM vms WHERE id = 4", [], |r| r.get(0))
            .expect("user_net");
        assert_eq!(user_net, 1, "existing VMs keep their user-mode NIC");
    }
}
