//! Giving back a keyed grant whose answer was lost (`release_forgetting`, decision 0043): under
//! the key's advisory lock and the paths' (as a release takes them), in one transaction.

use oc_locks::backend::is_acquire;
use oc_locks::{IDEMPOTENCY_KEY_TTL, IdempotencyKey, Lock, Result};

use super::PgLockManager;
use super::row::{corrupt, row_lock};

impl PgLockManager {
    /// `release_forgetting`: takes the key's lock, reads its row (a release's is refused and
    /// kept), deletes it, takes the paths' locks of every recorded lock at once (as
    /// `lock_serialize` orders them, after the key's as every keyed call does), and releases
    /// one hold of each recorded lock whose owner's lock still bears the recorded token and
    /// lives (`lock_own`, which takes the same path locks again, already held).
    pub(super) fn release_forgetting_tx(&self, key: &IdempotencyKey) -> Result<Vec<Lock>> {
        let (schema, clock) = (self.opts.pg.schema.clone(), self.clock_ms());
        let k = key.clone();
        let out = self.pool.transaction(move |t, st| {
            Box::pin(async move {
                t.execute(&st.key_lock, &[&schema, &k.agent(), &k.key()])
                    .await?;
                let row = t.query_one(&st.now, &[&clock]).await?;
                let now: i64 = inner!(row.try_get(0).map_err(|e| corrupt("(now)", e)));
                let ttl = i64::try_from(IDEMPOTENCY_KEY_TTL.as_millis()).unwrap_or(i64::MAX);
                let oldest = now.saturating_sub(ttl);
                let known = t
                    .query_opt(&st.key_read, &[&k.agent(), &k.key(), &oldest])
                    .await?;
                let granted: Vec<Lock> = match known {
                    None => Vec::new(),
                    Some(r) => {
                        let (request, result): (String, String) = match (r.try_get(0), r.try_get(1))
                        {
                            (Ok(a), Ok(b)) => (a, b),
                            _ => return Ok(Err(corrupt("(idempotency key)", "unreadable row"))),
                        };
                        if !is_acquire(&request) {
                            return Ok(Err(k.conflict()));
                        }
                        inner!(
                            serde_json::from_str(&result)
                                .map_err(|e| corrupt("(idempotency key)", e))
                        )
                    }
                };
                // A lapsed key is forgotten too (it counts as unknown, and would be replaced).
                t.execute(&st.key_forget, &[&k.agent(), &k.key()]).await?;
                if granted.is_empty() {
                    return Ok(Ok((Vec::new(), false)));
                }
                let paths: Vec<String> = granted.iter().map(|l| l.resource.to_string()).collect();
                t.execute(&st.serialize, &[&paths]).await?;
                let (mut released, mut freed) = (Vec::with_capacity(granted.len()), false);
                for g in &granted {
                    let (r, o) = (g.resource.to_string(), g.owner.to_string());
                    let Some(held) = t.query_opt(&st.own_token, &[&r, &o]).await? else {
                        continue;
                    };
                    let token: i64 = inner!(held.try_get(0).map_err(|e| corrupt(&r, e)));
                    let expires_at: i64 = inner!(held.try_get(1).map_err(|e| corrupt(&r, e)));
                    if u64::try_from(token).ok() != Some(g.token) || expires_at <= now {
                        continue;
                    }
                    let none: Option<i64> = None;
                    let rows = t.query(&st.own, &[&r, &o, &none, &clock]).await?;
                    let Some(first) = rows.first() else {
                        return Ok(Err(corrupt(&r, "no outcome")));
                    };
                    let outcome: String =
                        inner!(first.try_get(0).map_err(|e| corrupt("(outcome)", e)));
                    match outcome.as_str() {
                        "released" => released.push(inner!(row_lock(first, 1))),
                        // Lapsed by the time `lock_own` read (it never reads an earlier time
                        // than a grant on an overlapping resource): removed, not given back.
                        "expired" => freed = true,
                        _ => {}
                    }
                }
                Ok(Ok((released, freed)))
            })
        });
        let (released, freed) = out.map_err(crate::errors::lock_error)??;
        if freed || released.iter().any(|l| l.holds == 0) {
            self.freed.wake();
        }
        self.tick();
        Ok(released)
    }
}
