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

/// The columns [`from_row`] reads.
const COLUMNS: &str =
    "seq, at_ms, kind, vm, image, state, message, actor, owner, audience_id, public";

/// Events `viewer` may see with `seq > since`, oldest first, at most `limit`.
///
/// A user's page is the merge of two index walks (public events, and the user's own), each
/// already in `seq` order, so it reads about `limit` rows however many events other users
/// have: never a scan of the whole table under the store's lock.
pub fn list_events(
    conn: &Connection,
    viewer: Viewer,
    since: u64,
    limit: u64,
) -> Result<Vec<EventRow>, StoreError> {
    // `seq` is an i64 in SQLite: past i64::MAX nothing is newer.
    let since = i64::try_from(since).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = match viewer {
        Viewer::Admin => {
            let mut stmt = conn.prepare_cached(&admin_query())?;
            let rows = stmt.query_map(params![since, limit], from_row)?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
        Viewer::User(id) => {
            let mut stmt = conn.prepare_cached(&user_query())?;
            let rows = stmt.query_map(params![since, limit, id], from_row)?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
    };
    Ok(rows)
}

/// Every event after ?1, at most ?2.
fn admin_query() -> String {
    format!("SELECT {COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
}

/// The public events and user ?3's own after ?1, at most ?2.
fn user_query() -> String {
    format!(
        "SELECT {COLUMNS} FROM events WHERE public = 1 AND seq > ?1
         UNION ALL
         SELECT {COLUMNS} FROM events WHERE audience_id = ?3 AND public = 0 AND seq > ?1
         ORDER BY seq LIMIT ?2"
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A store at the current schema with `n` events of user 1 and `n` of user 2, one in
    /// ten public.
    fn store_with_events(n: i64) -> Connection {
        let mut conn = Connection::open_in_memory().expect("open");
        super::super::migrations::migrate(&mut conn).expect("migrate");
        for i in 0..2 * n {
            conn.execute(
                "INSERT INTO events (at_ms, kind, message, audience_id, public)
                 VALUES (?1, 'vm_created', 'm', ?2, ?3)",
                params![i, 1 + i % 2, i64::from(i % 10 == 0)],
            )
            .expect("insert");
        }
        conn
    }

    #[test]
    fn a_user_sees_public_events_and_their_own_in_order() {
        let conn = store_with_events(50);
        let rows = list_events(&conn, Viewer::User(1), 0, 1000).expect("list");
        assert!(
            rows.windows(2).all(|w| w[0].seq < w[1].seq),
            "not in seq order"
        );
        assert!(rows
            .iter()
            .all(|r| r.audience.public || r.audience.user_id == Some(1)));
        // 50 of user 1's, plus user 2's public ones (every tenth event is public; user 1's
        // public ones are counted once).
        let expected = (0..100).filter(|i| i % 2 == 0 || i % 10 == 0).count();
        assert_eq!(rows.len(), expected);
        let page = list_events(&conn, Viewer::User(1), rows[9].seq, 5).expect("page");
        assert_eq!(page, rows[10..15].to_vec());
        assert_eq!(
            list_events(&conn, Viewer::Admin, 0, 1000)
                .expect("all")
                .len(),
            100
        );
    }

    #[test]
    fn a_since_past_i64_max_is_an_empty_page_not_the_oldest_events() {
        let conn = store_with_events(5);
        for since in [i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
            assert!(list_events(&conn, Viewer::User(1), since, 10)
                .expect("list")
                .is_empty());
            assert!(list_events(&conn, Viewer::Admin, since, 10)
                .expect("list")
                .is_empty());
        }
    }

    /// The plan of a user's page walks indexes only: it never scans the events table, so
    /// one user's history requests cannot hold the store's lock for a table scan.
    #[test]
    fn a_users_page_walks_indexes_without_scanning_the_table() {
        let conn = store_with_events(5);
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", user_query()))
            .expect("plan");
        let plan: Vec<String> = stmt
            .query_map(params![0, 10, 1], |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan");
        let text = plan.join("\n");
        assert!(
            !plan.iter().any(|l| l.starts_with("SCAN events")),
            "a table scan:\n{text}"
        );
        assert!(text.contains("events_public_seq"), "{text}");
        assert!(text.contains("events_audience_seq"), "{text}");
        assert!(!text.contains("TEMP B-TREE"), "a sort of all rows:\n{text}");
    }
}
