//! `PgTokenStore`: the static bearer tokens of `oc token` on PostgreSQL (`oc_auth::TokenStore`),
//! shared by every `oc serve` of a fleet.
//!
//! One table, `auth_tokens`, in the schema of the options it is connected with: the default
//! one, since a token chooses the tenant. Every call reads the row, so a token revoked by any
//! host is refused by every host on its next call. Time is the database's clock
//! (`clock_timestamp()`), or [`PgOptions::clock`] in tests. One concept per file: the schema
//! (`migrations.rs`, `migrations/*.sql`), the statements (`statements.rs`, `sql/*.sql`); this
//! file holds the store.

use std::sync::Arc;

use oc_auth::backend::{
    LAST_USED_EVERY, MINT_ATTEMPTS, Minted, Presented, Secret, StoredToken, TokenInfo, check_agent,
    check_id, judge, mint, scope_of, tenant_of, touch_due,
};
use oc_auth::{AuthError, Identity, Scope, Tenant, TokenStore, Verifier};
use oc_time::Timestamp;
use tokio_postgres::Row;

use crate::errors::auth_error;
use crate::options::PgOptions;
use crate::pool::{Conn, Pool};
use crate::schema::migrate;

mod migrations;
mod statements;

use migrations::COMPONENT;
pub(crate) use migrations::MIGRATIONS;
use statements::AuthStatements;

/// A [`TokenStore`] on PostgreSQL: every host connected to the same database and schema
/// accepts the same tokens, and refuses a revoked one on its next call.
///
/// Connect it with the default tenant's options (schema `oc` unless told otherwise): tokens
/// are global, each naming its tenant.
pub struct PgTokenStore {
    pool: Pool<AuthStatements>,
    opts: PgOptions,
}

impl std::fmt::Debug for PgTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTokenStore")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

fn millis(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::as_millis)
}

/// A row that does not read back as written.
fn corrupt(e: impl std::fmt::Display) -> AuthError {
    AuthError::Backend(format!("postgres: a token does not read back: {e}"))
}

fn stored(r: &Row) -> Result<StoredToken, AuthError> {
    let get_ts = |i: usize| -> Result<Option<Timestamp>, AuthError> {
        Ok(r.try_get::<_, Option<i64>>(i)
            .map_err(corrupt)?
            .map(Timestamp::from_millis))
    };
    let hash: Vec<u8> = r.try_get(8).map_err(corrupt)?;
    Ok(StoredToken {
        info: TokenInfo {
            id: r.try_get(0).map_err(corrupt)?,
            agent: r.try_get(1).map_err(corrupt)?,
            scope: scope_of(r.try_get(2).map_err(corrupt)?)?,
            tenant: tenant_of(r.try_get::<_, Option<&str>>(3).map_err(corrupt)?)?,
            created_at: Timestamp::from_millis(r.try_get(4).map_err(corrupt)?),
            expires_at: get_ts(5)?,
            revoked_at: get_ts(6)?,
            last_used_at: get_ts(7)?,
        },
        hash: hash
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("a hash of the wrong length"))?,
    })
}

impl PgTokenStore {
    /// Connects to the server of `opts` and migrates the token table of its schema (once,
    /// whatever other hosts do at the same time).
    pub fn connect(opts: PgOptions) -> Result<Self, AuthError> {
        let pool = Pool::new(&opts, "tokens").map_err(|e| {
            AuthError::Backend(format!("postgres: cannot start the client thread: {e}"))
        })?;
        let schema = opts.schema.clone();
        let found = pool
            .dedicated(
                move |mut c| async move { migrate(&mut c, &schema, COMPONENT, MIGRATIONS).await },
            )
            .map_err(auth_error)?;
        if let Err(found) = found {
            return Err(AuthError::Backend(format!(
                "postgres: the schema {} is at version {found} of its tokens, newer than this \
                 build's {}",
                opts.schema,
                MIGRATIONS.len()
            )));
        }
        Ok(PgTokenStore { pool, opts })
    }

    /// The injected clock's time, or `None` for the database's.
    fn clock_ms(&self) -> Option<i64> {
        self.opts.clock.as_ref().map(|c| c.now().as_millis())
    }

    fn call<T: Send + 'static, Fut>(
        &self,
        f: impl FnOnce(Arc<Conn<AuthStatements>>) -> Fut + Send + 'static,
    ) -> Result<T, AuthError>
    where
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send,
    {
        self.pool.call(f).map_err(auth_error)
    }
}

impl Verifier for PgTokenStore {
    fn verify(&self, bearer: &str) -> Result<Identity, AuthError> {
        let presented = Presented::parse(bearer)?;
        let (id, now) = (presented.id.clone(), self.clock_ms());
        let row = self
            .call(move |c| async move { c.client.query_opt(&c.stmts.find, &[&id, &now]).await })?;
        let (found, now) = match &row {
            Some(r) => (
                Some(stored(r)?),
                Timestamp::from_millis(r.try_get(9).map_err(corrupt)?),
            ),
            None => (None, Timestamp::EPOCH),
        };
        let who = judge(&presented, found.as_ref(), now)?;
        if let Some(found) = found
            && touch_due(found.info.last_used_at, now)
        {
            let every = i64::try_from(LAST_USED_EVERY.as_millis()).unwrap_or(i64::MAX);
            let (id, at) = (found.info.id, now.as_millis());
            self.call(move |c| async move {
                c.client.execute(&c.stmts.touch, &[&id, &at, &every]).await
            })?;
        }
        Ok(who)
    }
}

impl TokenStore for PgTokenStore {
    fn create(
        &self,
        agent: &str,
        scope: Scope,
        tenant: Option<Tenant>,
        expires_at: Option<Timestamp>,
    ) -> Result<(Secret, TokenInfo), AuthError> {
        check_agent(agent)?;
        for _ in 0..MINT_ATTEMPTS {
            let Minted { id, hash, secret } = mint()?;
            let args = (
                id.clone(),
                hash.to_vec(),
                agent.to_owned(),
                scope.as_str(),
                tenant.as_ref().map(|t| t.as_str().to_owned()),
                self.clock_ms(),
                millis(expires_at),
            );
            let created = self.call(move |c| async move {
                let (id, hash, agent, scope, tenant, now, expires) = &args;
                c.client
                    .query_opt(
                        &c.stmts.insert,
                        &[id, hash, agent, scope, tenant, now, expires],
                    )
                    .await
            })?;
            let Some(created) = created else { continue };
            let info = TokenInfo {
                id,
                agent: agent.to_owned(),
                scope,
                tenant,
                created_at: Timestamp::from_millis(created.try_get(0).map_err(corrupt)?),
                expires_at,
                revoked_at: None,
                last_used_at: None,
            };
            return Ok((secret, info));
        }
        Err(AuthError::Backend(
            "every id drawn for a new token was taken".to_owned(),
        ))
    }

    fn list(&self) -> Result<Vec<TokenInfo>, AuthError> {
        let rows = self.call(|c| async move { c.client.query(&c.stmts.list, &[]).await })?;
        rows.iter().map(|r| stored(r).map(|s| s.info)).collect()
    }

    fn get(&self, id: &str) -> Result<Option<TokenInfo>, AuthError> {
        check_id(id)?;
        let (id, now) = (id.to_owned(), self.clock_ms());
        let row = self
            .call(move |c| async move { c.client.query_opt(&c.stmts.find, &[&id, &now]).await })?;
        row.map(|r| stored(&r).map(|s| s.info)).transpose()
    }

    fn revoke(&self, id: &str) -> Result<TokenInfo, AuthError> {
        check_id(id)?;
        let (key, now) = (id.to_owned(), self.clock_ms());
        let row =
            self.call(
                move |c| async move { c.client.query_opt(&c.stmts.revoke, &[&key, &now]).await },
            )?;
        match row {
            Some(r) => stored(&r).map(|s| s.info),
            None => Err(AuthError::NotFound {
                id: id.chars().take(40).collect(),
            }),
        }
    }
}
