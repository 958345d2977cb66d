//! Queries on the `tokens` table: API tokens and login sessions, stored as SHA-256 digests.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row};
use vm_proto::types::TokenKind;

use super::StoreError;

/// One row of `tokens`, with its user's name.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Primary key (never reused).
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Owner's name.
    pub user_name: String,
    /// Api or session.
    pub kind: TokenKind,
    /// Label.
    pub name: Option<String>,
    /// SHA-256 of the secret.
    pub digest: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `None`: never.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub last_used_at: Option<i64>,
}

impl std::fmt::Debug for TokenRow {
    /// Never shows the digest.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRow")
            .field("id", &self.id)
            .field("user", &self.user_name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The `tokens.kind` column.
struct KindColumn(TokenKind);

impl FromSql for KindColumn {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "api" => Ok(KindColumn(TokenKind::Api)),
            "session" => Ok(KindColumn(TokenKind::Session)),
            other => Err(FromSqlError::Other(
                format!("unknown token kind {other:?}").into(),
            )),
        }
    }
}

impl ToSql for KindColumn {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(match self.0 {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
        }))
    }
}

const SELECT: &str = "SELECT t.id, t.user_id, u.name, t.kind, t.name, t.digest, t.created_at,
    t.expires_at, t.last_used_at FROM tokens t JOIN users u ON u.id = t.user_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: row.get(0)?,
        user_id: row.get(1)?,
        user_name: row.get(2)?,
        kind: row.get::<_, KindColumn>(3)?.0,
        name: row.get(4)?,
        digest: row.get(5)?,
        created_at: row.get(6)?,
        expires_at: row.get(7)?,
        last_used_at: row.get(8)?,
    })
}

/// What `insert_token` needs.
#[derive(Clone)]
pub struct NewToken {
    /// Owner.
    pub user_id: i64,
    /// Api or session.
    pub kind: TokenKind,
    /// Label.
    pub name: Option<String>,
    /// SHA-256 of the secret.
    pub digest: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// The token or session it was made with (it ends with that one).
    pub parent_id: Option<i64>,
}

/// Inserts a token, returning its id.
pub fn insert_token(conn: &Connection, t: &NewToken) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO tokens (user_id, kind, name, digest, created_at, expires_at, parent_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            t.user_id,
            KindColumn(t.kind),
            t.name,
            t.digest,
            t.created_at,
            t.expires_at,
            t.parent_id
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Tokens of `user_id` of `kind`.
pub fn count_tokens(conn: &Connection, user_id: i64, kind: TokenKind) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM tokens WHERE user_id = ?1 AND kind = ?2",
        params![user_id, KindColumn(kind)],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// The ids in the trees rooted at the tokens `roots` selects (SQL selecting ids).
fn tree(roots: &str) -> String {
    format!(
        "WITH RECURSIVE tree(id) AS ({roots}
            UNION SELECT t.id FROM tokens t JOIN tree ON t.parent_id = tree.id)
         SELECT id FROM tree"
    )
}

/// Token `id`.
pub fn token_by_id(conn: &Connection, id: i64) -> Result<Option<TokenRow>, StoreError> {
    let sql = format!("{SELECT} WHERE t.id = ?1");
    Ok(conn.query_row(&sql, [id], from_row).optional()?)
}

/// Tokens of `user_id`, or everyone's (`None`), newest first.
pub fn list_tokens(conn: &Connection, user_id: Option<i64>) -> Result<Vec<TokenRow>, StoreError> {
    let sql = format!("{SELECT} WHERE ?1 IS NULL OR t.user_id = ?1 ORDER BY t.id DESC");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([user_id], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Deletes token `id` and every token made with it; whether `id` existed.
pub fn delete_token(conn: &Connection, id: i64) -> Result<bool, StoreError> {
    let existed = token_by_id(conn, id)?.is_some();
    let sql = format!("DELETE FROM tokens WHERE id IN ({})", tree("SELECT ?1"));
    conn.execute(&sql, [id])?;
    Ok(existed)
}

/// Deletes the tokens of `user_id` of `kind` (any kind: `None`), with every token made with
/// them; how many.
pub fn delete_tokens_of(
    conn: &Connection,
    user_id: i64,
    kind: Option<TokenKind>,
) -> Result<u64, StoreError> {
    let roots = "SELECT id FROM tokens WHERE user_id = ?1 AND (?2 IS NULL OR kind = ?2)";
    let sql = format!("DELETE FROM tokens WHERE id IN ({})", tree(roots));
    let n = conn.execute(&sql, params![user_id, kind.map(KindColumn)])?;
    Ok(n as u64)
}

/// Records a use of token `id` at `now`, at most once a minute (keeps writes rare).
pub fn touch_token(conn: &Connection, id: i64, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE tokens SET last_used_at = ?2
         WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2 - 60)",
        params![id, now],
    )?;
    Ok(())
}

/// Deletes tokens that expired before `now`; how many.
pub fn prune_expired_tokens(conn: &Connection, now: i64) -> Result<u64, StoreError> {
    let n = conn.execute(
        "DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at <= ?1",
        [now],
    )?;
    Ok(n as u64)
}
