//! Queries on the `events` table.

use rusqlite::{params, Connection, Row};

use super::StoreError;

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Sequence number.
    pub seq: u64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `EventKind` as snake_case.
    pub kind: String,
    /// VM involved.
    pub vm: Option<String>,
    /// Image involved.
    pub image: Option<String>,
    /// New state, for state changes.
    pub state: Option<String>,
    /// Detail.
    pub message: String,
    /// Account that caused it.
    pub actor: Option<String>,
    /// Account owning the object.
    pub owner: Option<String>,
    /// Who may see it.
    pub audience: Audience,
}

/// Who may see an event besides admins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Audience {
    /// This account (`users.id`).
    pub user_id: Option<i64>,
    /// Every account.
    pub public: bool,
}

/// Whose events a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Every event.
    Admin,
    /// Events of this account (`users.id`) and public ones.
    User(i64),
}

impl Viewer {
    /// Whether this viewer may see an event for `audience`.
    pub fn sees(self, audience: Audience) -> bool {
        match self {
            Viewer::Admin => true,
            Viewer::User(id) => audience.public || audience.user_id == Some(id),
        }
    }
}

/// What `insert_event` needs.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `EventKind` as snake_case.
    pub kind: String,
    /// VM involved.
    pub vm: Option<String>,
    /// Image involved.
    pub image: Option<String>,
    /// New state.
    pub state: Option<String>,
    /// Detail.
    pub message: String,
    /// Account that caused it.
    pub actor: Option<String>,
    /// Account owning the object.
    pub owner: Option<String>,
    /// Who may see it.
    pub audience: Audience,
}

/// Appends an event, returning its sequence number.
pub fn insert_event(conn: &Connection, e: &NewEvent) -> Result<u64, StoreError> {
    conn.execute(
        "INSERT INTO events (at_ms, kind, vm, image, state, message, actor, owner, audience_id, public)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![e.at_ms, e.kind, e.vm, e.image, e.state, e.message, e.actor, e.owner,
            e.audience.user_id, e.audience.public],
    )?;
    Ok(conn.last_insert_rowid() as u64)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: row.get::<_, i64>(0)? as u64,
        at_ms: row.get(1)?,
        kind: row.get(2)?,
        vm: row.get(3)?,
        image: row.get(4)?,
        state: row.get(5)?,
        message: row.get(6)?,
        actor: row.get(7)?,
        owner: row.get(8)?,
        audience: Audience {
            user_id: row.get(9)?,
            public: row.get(10)?,
        },
    })
}

/// Events `viewer` may see with `seq > since`, oldest first, at most `limit`.
pub fn list_events(
    conn: &Connection,
    viewer: Viewer,
    since: u64,
    limit: u64,
) -> Result<Vec<EventRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at_ms, kind, vm, image, state, message, actor, owner, audience_id, public
         FROM events WHERE seq > ?1 AND (?3 IS NULL OR public = 1 OR audience_id = ?3)
         ORDER BY seq LIMIT ?2",
    )?;
    let user = match viewer {
        Viewer::Admin => None,
        Viewer::User(id) => Some(id),
    };
    let rows = stmt
        .query_map(params![since as i64, limit as i64, user], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Deletes all but the newest `keep` events; returns how many were deleted. Sequence numbers
/// are never reused (AUTOINCREMENT), so `since` stays meaningful.
pub fn prune_events(conn: &Connection, keep: u64) -> Result<u64, StoreError> {
    let n = conn.execute(
        "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?1",
        [keep as i64],
    )?;
    Ok(n as u64)
}
