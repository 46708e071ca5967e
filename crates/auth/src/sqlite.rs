//! `SqliteTokenStore`: static tokens in the shared SQLite file (`<data-dir>/opencode.db`).
//!
//! One table, `oc_auth_tokens`, beside the task store's and the lock manager's, migrated by
//! this crate alone under its own row of `oc_schema` through `oc_sqlite` (decision 0006). Every
//! call reads the file, so a token revoked by another process is refused on the next call.
//! Every commit is synced (`synchronous=FULL`): writes are rare (a creation, a revocation,
//! `last_used_at` once a minute per token), and a revocation must survive a power loss.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use oc_sqlite::{Connect, Durability};
use oc_time::{Clock, SystemClock, Timestamp};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row};

use crate::backend::MINT_ATTEMPTS;
use crate::backend::{
    Minted, Presented, Secret, StoredToken, TokenInfo, check_agent, check_id, judge, mint,
    scope_of, tenant_of, touch_due,
};
use crate::tokens::not_found;
use crate::{AuthError, Identity, Scope, Tenant, TokenStore, Verifier};

const COMPONENT: &str = "oc-auth";
const MIGRATIONS: &[&str] = &[
    // 1: static tokens, by public id; the secret's SHA-256, never the secret.
    "CREATE TABLE oc_auth_tokens (
        id           TEXT PRIMARY KEY NOT NULL,
        hash         BLOB NOT NULL CHECK (length(hash) = 32),
        agent        TEXT NOT NULL,
        scope        TEXT NOT NULL CHECK (scope IN ('read', 'work', 'admin')),
        tenant       TEXT,
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER,
        revoked_at   INTEGER,
        last_used_at INTEGER
    ) WITHOUT ROWID;",
];

const COLUMNS: &str =
    "id, agent, scope, tenant, created_at, expires_at, revoked_at, last_used_at, hash";

/// A [`TokenStore`] in a SQLite file, shared by every process that opens it (feature
/// `sqlite`).
///
/// ```
/// use oc_auth::{Scope, SqliteTokenStore, TokenStore, Verifier};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("opencode.db");
/// let a = SqliteTokenStore::open(&path)?;
/// let b = SqliteTokenStore::open(&path)?; // as another process would
/// let (token, info) = a.create("agent-7", Scope::Work, None, None)?;
/// assert_eq!(b.verify(token.expose())?.agent, "agent-7");
/// a.revoke(&info.id)?;
/// assert!(b.verify(token.expose()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SqliteTokenStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SqliteTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTokenStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl fmt::Display) -> AuthError {
    AuthError::Backend(format!("sqlite: {e}"))
}

fn sqlite(e: rusqlite::Error) -> AuthError {
    backend(e)
}

fn plumbing(e: oc_sqlite::Error) -> AuthError {
    match e {
        oc_sqlite::Error::Sqlite(e) => sqlite(e),
        other => backend(other),
    }
}

/// Retries while SQLite reports the file busy (another process's transaction).
fn retry<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> Result<T, AuthError> {
    oc_sqlite::retry_busy(oc_sqlite::is_busy, &mut f).map_err(sqlite)
}

fn ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

/// A row as read: its columns, checked once the statement is done.
struct Raw {
    id: String,
    agent: String,
    scope: String,
    tenant: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    hash: Vec<u8>,
}

fn raw(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        id: r.get(0)?,
        agent: r.get(1)?,
        scope: r.get(2)?,
        tenant: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
        last_used_at: r.get(7)?,
        hash: r.get(8)?,
    })
}

impl Raw {
    fn stored(self) -> Result<StoredToken, AuthError> {
        let hash: [u8; 32] = self.hash.as_slice().try_into().map_err(|_| {
            AuthError::Backend(format!("token {} has a hash of the wrong length", self.id))
        })?;
        Ok(StoredToken {
            info: TokenInfo {
                scope: scope_of(&self.scope)?,
                tenant: tenant_of(self.tenant.as_deref())?,
                id: self.id,
                agent: self.agent,
                created_at: Timestamp::from_millis(self.created_at),
                expires_at: ts(self.expires_at),
                revoked_at: ts(self.revoked_at),
                last_used_at: ts(self.last_used_at),
            },
            hash,
        })
    }
}

fn find(c: &Connection, id: &str) -> rusqlite::Result<Option<Raw>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM oc_auth_tokens WHERE id = ?1"
    ))?
    .query_row([id], raw)
    .optional()
}

impl SqliteTokenStore {
    /// Opens (creating and migrating if needed) the database at `path`, on the system clock.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuthError> {
        Self::open_with_clock(path, Arc::new(SystemClock))
    }

    /// Opens the database at `path`, judging creation, expiry and use by `clock`.
    pub fn open_with_clock(
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuthError> {
        let path = path.as_ref();
        let connect = Connect::new(
            Duration::from_secs(5),
            Durability::default().sync_every_commit(true),
        );
        let busy = |e: &oc_sqlite::Error| e.is_busy();
        let mut conn = oc_sqlite::retry_busy(busy, || connect.writer(path)).map_err(plumbing)?;
        oc_sqlite::retry_busy(busy, || {
            oc_sqlite::migrate(&mut conn, COMPONENT, MIGRATIONS)
        })
        .map_err(|e| match e {
            oc_sqlite::Error::SchemaTooNew { found, supported } => AuthError::Backend(format!(
                "{}: the tokens' schema is at version {found}, newer than this build's {supported}",
                path.display()
            )),
            other => plumbing(other),
        })?;
        Ok(SqliteTokenStore {
            path: path.to_owned(),
            conn: Mutex::new(conn),
            clock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Verifier for SqliteTokenStore {
    fn verify(&self, bearer: &str) -> Result<Identity, AuthError> {
        let presented = Presented::parse(bearer)?;
        let now = self.clock.now();
        let conn = self.conn.lock();
        let row = retry(|| find(&conn, &presented.id))?
            .map(Raw::stored)
            .transpose()?;
        let who = judge(&presented, row.as_ref(), now)?;
        if let Some(row) = row
            && touch_due(row.info.last_used_at, now)
        {
            let every = crate::backend::LAST_USED_EVERY.as_millis() as i64;
            retry(|| {
                conn.prepare_cached(
                    "UPDATE oc_auth_tokens SET last_used_at = ?2
                      WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at <= ?2 - ?3)",
                )?
                .execute((&row.info.id, now.as_millis(), every))
            })?;
        }
        Ok(who)
    }
}

impl TokenStore for SqliteTokenStore {
    fn create(
        &self,
        agent: &str,
        scope: Scope,
        tenant: Option<Tenant>,
        expires_at: Option<Timestamp>,
    ) -> Result<(Secret, TokenInfo), AuthError> {
        check_agent(agent)?;
        let conn = self.conn.lock();
        for _ in 0..MINT_ATTEMPTS {
            let Minted { id, hash, secret } = mint()?;
            let info = TokenInfo {
                id,
                agent: agent.to_owned(),
                scope,
                tenant: tenant.clone(),
                created_at: self.clock.now(),
                expires_at,
                revoked_at: None,
                last_used_at: None,
            };
            let inserted = retry(|| {
                conn.prepare_cached(
                    "INSERT INTO oc_auth_tokens (id, hash, agent, scope, tenant, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
                )?
                .execute((
                    &info.id,
                    &hash[..],
                    &info.agent,
                    scope.as_str(),
                    info.tenant.as_ref().map(Tenant::as_str),
                    info.created_at.as_millis(),
                    info.expires_at.map(Timestamp::as_millis),
                ))
            })?;
            if inserted == 1 {
                return Ok((secret, info));
            }
        }
        Err(AuthError::Backend(
            "every id drawn for a new token was taken".to_owned(),
        ))
    }

    fn list(&self) -> Result<Vec<TokenInfo>, AuthError> {
        let conn = self.conn.lock();
        let rows = retry(|| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM oc_auth_tokens ORDER BY created_at, id"
            ))?
            .query_map([], raw)?
            .collect::<rusqlite::Result<Vec<Raw>>>()
        })?;
        rows.into_iter()
            .map(|r| r.stored().map(|s| s.info))
            .collect()
    }

    fn get(&self, id: &str) -> Result<Option<TokenInfo>, AuthError> {
        check_id(id)?;
        let conn = self.conn.lock();
        retry(|| find(&conn, id))?
            .map(|r| r.stored().map(|s| s.info))
            .transpose()
    }

    fn revoke(&self, id: &str) -> Result<TokenInfo, AuthError> {
        check_id(id)?;
        let now = self.clock.now();
        let conn = self.conn.lock();
        retry(|| {
            conn.prepare_cached(
                "UPDATE oc_auth_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            )?
            .execute((id, now.as_millis()))
        })?;
        retry(|| find(&conn, id))?
            .ok_or_else(|| not_found(id))?
            .stored()
            .map(|s| s.info)
    }
}
