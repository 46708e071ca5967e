//! The statements an alert store prepares on every connection. `{s}` is the quoted schema;
//! `{now}` the time in milliseconds: the injected clock's (the last parameter) or the
//! database's.

use tokio_postgres::{Client, Statement};

use crate::pool::Prepare;

/// The name of the one lease row.
pub(super) const LEASE: &str = "evaluator";

/// The statements an alert store prepares on each connection.
pub(crate) struct AlertStatements {
    pub(super) load: Statement,
    pub(super) lease: Statement,
    pub(super) holds: Statement,
    pub(super) upsert: Statement,
    pub(super) remove: Statement,
    pub(super) enqueue: Statement,
    pub(super) prune: Statement,
    pub(super) outbox: Statement,
    pub(super) delivered: Statement,
    pub(super) silences: Statement,
    pub(super) add_silence: Statement,
    pub(super) expire_silence: Statement,
    pub(super) release: Statement,
}

/// The time: `$n` when given (a test clock), else the database's clock.
fn now(n: usize) -> String {
    format!("COALESCE(${n}::bigint, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)")
}

impl Prepare for AlertStatements {
    async fn prepare(c: &Client, schema: &str) -> std::result::Result<Self, tokio_postgres::Error> {
        let s = format!("\"{schema}\"");
        let p = |sql: String| {
            let sql = sql.replace("{s}", &s);
            async move { c.prepare(&sql).await }
        };
        Ok(AlertStatements {
            // Bounded: rules times their label sets, never near this.
            load: p("SELECT body FROM {s}.alert_states ORDER BY fingerprint LIMIT 100000".into())
                .await?,
            // Granted when free, lapsed, or already the holder's (who keeps its token); the
            // row lock serialises holders racing for it.
            lease: p(format!(
                "INSERT INTO {{s}}.alert_lease AS l (name, holder, token, expires_at)
                 VALUES ('{LEASE}', $1, $2, {} + $3)
                 ON CONFLICT (name) DO UPDATE
                    SET holder = excluded.holder,
                        token = CASE WHEN l.holder = excluded.holder THEN l.token
                                     ELSE excluded.token END,
                        expires_at = excluded.expires_at
                  WHERE l.holder = excluded.holder OR l.expires_at <= excluded.expires_at - $3
                 RETURNING token, expires_at",
                now(4)
            ))
            .await?,
            // In a commit's transaction: the lease row stays locked until the commit ends, so
            // no holder takes it over half-way.
            holds: p(format!(
                "SELECT 1 FROM {{s}}.alert_lease
                  WHERE name = '{LEASE}' AND token = $1 AND expires_at > {}
                  FOR UPDATE",
                now(2)
            ))
            .await?,
            upsert: p("INSERT INTO {s}.alert_states (fingerprint, body)
                       SELECT * FROM unnest($1::text[], $2::jsonb[])
                       ON CONFLICT (fingerprint) DO UPDATE SET body = excluded.body"
                .into())
            .await?,
            remove: p("DELETE FROM {s}.alert_states WHERE fingerprint = ANY($1::text[])".into())
                .await?,
            // Numbered in the order given.
            enqueue: p("INSERT INTO {s}.alert_outbox (receiver, body)
                        SELECT r, b FROM unnest($1::text[], $2::jsonb[])
                               WITH ORDINALITY AS t(r, b, n)
                        ORDER BY n"
                .into())
            .await?,
            // Delivered rows are kept a day, for whoever looks into a double notification.
            prune: p(format!(
                "DELETE FROM {{s}}.alert_outbox WHERE delivered_at < {} - 86400000",
                now(1)
            ))
            .await?,
            outbox: p(format!(
                "SELECT o.id, o.receiver, o.body FROM {{s}}.alert_outbox o
                  WHERE o.delivered_at IS NULL
                    AND EXISTS (SELECT 1 FROM {{s}}.alert_lease
                                 WHERE name = '{LEASE}' AND token = $1 AND expires_at > {})
                  ORDER BY o.id LIMIT $2",
                now(3)
            ))
            .await?,
            delivered: p(format!(
                "UPDATE {{s}}.alert_outbox SET delivered_at = {}
                  WHERE id = ANY($1::bigint[]) AND delivered_at IS NULL",
                now(2)
            ))
            .await?,
            // The newest 10,000 at most (far more than anyone keeps).
            silences: p(
                "SELECT * FROM (SELECT id, matchers, starts_at, ends_at, comment
                                          FROM {s}.alert_silences ORDER BY id DESC LIMIT 10000) n
                          ORDER BY id"
                    .into(),
            )
            .await?,
            // Silences that ended before this one starts are of no more use.
            add_silence: p(
                "WITH gone AS (DELETE FROM {s}.alert_silences WHERE ends_at < $2)
                            INSERT INTO {s}.alert_silences (matchers, starts_at, ends_at, comment)
                            VALUES ($1, $2, $3, $4) RETURNING id"
                    .into(),
            )
            .await?,
            expire_silence: p("UPDATE {s}.alert_silences SET ends_at = LEAST(ends_at, $2)
                                WHERE id = $1 RETURNING id"
                .into())
            .await?,
            release: p(format!(
                "DELETE FROM {{s}}.alert_lease WHERE name = '{LEASE}' AND token = $1"
            ))
            .await?,
        })
    }
}
