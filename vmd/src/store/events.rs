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
}

/// Appends an event, returning its sequence number.
pub fn insert_event(conn: &Connection, e: &NewEvent) -> Result<u64, StoreError> {
    conn.execute(
        "INSERT INTO events (at_ms, kind, vm, image, state, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![e.at_ms, e.kind, e.vm, e.image, e.state, e.message],
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
    })
}

/// Events with `seq > since`, oldest first, at most `limit`.
pub fn list_events(conn: &Connection, since: u64, limit: u64) -> Result<Vec<EventRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at_ms, kind, vm, image, state, message FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![since as i64, limit as i64], from_row)?
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
