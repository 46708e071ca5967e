//! Checkpoints: the files a data directory holds, built by the server from the task's rows
//! in one snapshot, with their SHA-256 and each line's time and level or agent; listed newest
//! first; restored in one transaction by `files_restore`, which verifies every file first and
//! then reads no line it kept those for (decision 0038); deleted. A checkpoint made under an
//! idempotency key records it in its row (`idem_key`, unique per task; decision 0043).

use oc_jsonl::{
    Checkpoint, CheckpointFile, Error, KeyedCheckpoint, MAX_CHECKPOINT_FILE_BYTES, MAX_DESCRIPTION,
    Result,
};
use oc_time::Timestamp;
use tokio_postgres::Row;

use super::row::{signed, unsigned};
use super::{PgFileStore, check_text};
use crate::errors::{Class, Failure, classify, files_error};

/// How many checkpoints may be created within one millisecond (`cp-<millis>-0` ...), as on
/// disk.
const MAX_PER_MILLI: u32 = 1000;
/// How often a creation is tried again when another took its id or its snapshot lost a race.
const TRIES: usize = 5;

/// What a creation's transaction found or made.
enum Made {
    /// The checkpoint already made under the key (a `checkpoint_by_key.sql` row).
    Known(Row),
    /// A new checkpoint: its id and its files (`checkpoint_create.sql`'s rows).
    New(String, Vec<Row>),
}

impl PgFileStore {
    /// A checkpoint row of `checkpoint_page.sql` as a manifest.
    fn manifest(&self, task: &str, r: &Row) -> Result<Checkpoint> {
        let bad = |e: tokio_postgres::Error| self.corrupt(task, "checkpoints", e);
        let id: String = r.try_get(0).map_err(bad)?;
        let names: Vec<String> = r.try_get(3).map_err(bad)?;
        let bytes: Vec<i64> = r.try_get(4).map_err(bad)?;
        let hashes: Vec<String> = r.try_get(5).map_err(bad)?;
        Ok(Checkpoint {
            created_at: Timestamp::from_millis(r.try_get(1).map_err(bad)?),
            description: r.try_get(2).map_err(bad)?,
            task_id: task.to_owned(),
            files: names
                .into_iter()
                .zip(bytes)
                .zip(hashes)
                .map(|((name, bytes), sha256)| CheckpointFile {
                    name,
                    bytes: unsigned(bytes),
                    sha256,
                })
                .collect(),
            id,
        })
    }

    /// A new checkpoint or, under a `key` already recorded for `task`, the one made under it
    /// (looked up in the creation's transaction; two creations racing on one key meet at the
    /// unique index `checkpoints_task_key`, and the loser's next try finds the winner's).
    pub(super) fn checkpoint(
        &self,
        task: &str,
        description: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<KeyedCheckpoint> {
        if description.len() > MAX_DESCRIPTION {
            return Err(Error::InvalidInput {
                field: "description",
                reason: format!(
                    "{} bytes; at most {MAX_DESCRIPTION} are kept",
                    description.len()
                ),
            });
        }
        check_text("description", description)?;
        // Listed by `tasks` from now on, whatever the checkpoint holds.
        let t = task.to_owned();
        self.call(move |c| async move { c.client.execute(&c.stmts.touch, &[&t]).await })?;
        let millis = now.as_millis().max(0);
        let mut tries = 0;
        loop {
            tries += 1;
            let (t, d, k) = (
                task.to_owned(),
                description.to_owned(),
                key.map(str::to_owned),
            );
            let out = self.pool.transaction(move |tx, st| {
                Box::pin(async move {
                    tx.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                        .await?;
                    if let Some(k) = &k
                        && let Some(r) = tx.query_opt(&st.checkpoint_by_key, &[&t, k]).await?
                    {
                        return Ok(Ok(Made::Known(r)));
                    }
                    let sizes = tx.query_opt(&st.checkpoint_sizes, &[&t]).await?;
                    if let Some(r) = sizes {
                        for (i, name) in ["state.json", "logs.jsonl", "decisions.jsonl"]
                            .into_iter()
                            .enumerate()
                        {
                            let n: i64 = r.try_get(i)?;
                            if unsigned(n) > MAX_CHECKPOINT_FILE_BYTES {
                                return Ok(Err(Error::InvalidInput {
                                    field: "checkpoint",
                                    reason: format!(
                                        "its {name} would be {n} bytes; at most \
                                         {MAX_CHECKPOINT_FILE_BYTES}"
                                    ),
                                }));
                            }
                        }
                    }
                    let prefix = format!("cp-{millis:013}-");
                    let taken: Vec<String> = tx
                        .query(&st.checkpoint_ids, &[&t, &prefix])
                        .await?
                        .iter()
                        .map(|r| r.try_get(0))
                        .collect::<std::result::Result<_, _>>()?;
                    let Some(id) = (0..MAX_PER_MILLI)
                        .map(|n| format!("{prefix}{n}"))
                        .find(|id| !taken.contains(id))
                    else {
                        return Ok(Err(Error::InvalidInput {
                            field: "checkpoint",
                            reason: format!(
                                "no free id: {MAX_PER_MILLI} checkpoints in the same millisecond"
                            ),
                        }));
                    };
                    let rows = tx
                        .query(&st.checkpoint_create, &[&t, &id, &millis, &d, &k])
                        .await?;
                    Ok(Ok(Made::New(id, rows)))
                })
            });
            match out {
                Ok(Ok(Made::Known(r))) => {
                    let cp = self.manifest(task, &r)?;
                    if cp.description != description {
                        return Err(Error::IdempotencyConflict {
                            task: task.to_owned(),
                            key: key.unwrap_or_default().to_owned(),
                        });
                    }
                    return Ok(KeyedCheckpoint {
                        checkpoint: cp,
                        replayed: true,
                    });
                }
                Ok(Ok(Made::New(id, rows))) => {
                    let bad = |e: tokio_postgres::Error| self.corrupt(task, "checkpoints", e);
                    let files = rows
                        .iter()
                        .map(|r| {
                            Ok(CheckpointFile {
                                name: r.try_get(0).map_err(bad)?,
                                bytes: unsigned(r.try_get(1).map_err(bad)?),
                                sha256: r.try_get(2).map_err(bad)?,
                            })
                        })
                        .collect::<Result<_>>()?;
                    return Ok(KeyedCheckpoint {
                        checkpoint: Checkpoint {
                            id,
                            task_id: task.to_owned(),
                            created_at: Timestamp::from_millis(millis),
                            description: description.to_owned(),
                            files,
                        },
                        replayed: false,
                    });
                }
                Ok(Err(e)) => return Err(e),
                Err(Failure::Pg(e))
                    if tries < TRIES
                        && (classify(&e).violates("checkpoints_pkey")
                            || classify(&e).violates("checkpoints_task_key")
                            || classify(&e) == Class::SerializationFailure) => {}
                Err(f) => return Err(files_error(f)),
            }
        }
    }

    pub(super) fn checkpoints_page(
        &self,
        task: &str,
        skip: usize,
        n: usize,
    ) -> Result<(Vec<Checkpoint>, bool)> {
        let (t, off, lim) = (task.to_owned(), signed(skip), signed(n).saturating_add(1));
        let rows = self.call(move |c| async move {
            c.client
                .query(&c.stmts.checkpoint_page, &[&t, &off, &lim])
                .await
        })?;
        let more = rows.len() > n;
        let page = rows
            .iter()
            .take(n)
            .map(|r| self.manifest(task, r))
            .collect::<Result<_>>()?;
        Ok((page, more))
    }

    pub(super) fn restore(&self, task: &str, id: &str) -> Result<Checkpoint> {
        let not_found = || Error::NotFound {
            what: format!("checkpoint {id} of task {task}"),
        };
        let (t, i) = (task.to_owned(), id.to_owned());
        let row = self.call(move |c| async move {
            c.client.query_opt(&c.stmts.checkpoint_get, &[&t, &i]).await
        })?;
        let cp = match row {
            Some(r) => self.manifest(task, &r)?,
            None => return Err(not_found()),
        };
        let (t, i) = (task.to_owned(), id.to_owned());
        let r = self
            .call(move |c| async move { c.client.query_one(&c.stmts.restore, &[&t, &i]).await })?;
        let bad = |e: tokio_postgres::Error| self.corrupt(task, "checkpoints", e);
        let outcome: String = r.try_get(0).map_err(bad)?;
        match outcome.as_str() {
            "ok" => Ok(cp),
            "not_found" => Err(not_found()),
            _ => {
                let name: Option<String> = r.try_get(1).map_err(bad)?;
                let reason: Option<String> = r.try_get(2).map_err(bad)?;
                Err(self.corrupt(
                    task,
                    &format!("checkpoints/{id}/{}", name.unwrap_or_default()),
                    reason.unwrap_or_else(|| outcome.clone()),
                ))
            }
        }
    }

    pub(super) fn delete(&self, task: &str, ids: &[String]) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (t, v) = (task.to_owned(), ids.to_vec());
        let rows = self.call(move |c| async move {
            c.client.query(&c.stmts.checkpoint_delete, &[&t, &v]).await
        })?;
        let gone: Vec<String> = rows
            .iter()
            .map(|r| {
                r.try_get(0)
                    .map_err(|e| self.corrupt(task, "checkpoints", e))
            })
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(gone.len());
        for id in ids {
            if gone.contains(id) && !out.contains(id) {
                out.push(id.clone());
            }
        }
        Ok(out)
    }
}
