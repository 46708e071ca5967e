//! New tasks written: a batch without edges or keys in one statement, one with them in a
//! transaction that plans it against what is stored (`sql/insert.sql` either way).

use std::collections::{BTreeSet, HashMap, HashSet};

use oc_tasks::backend::{KeyedRequest, KeyedResult, metadata_text, plan_submit, retry_columns};
use oc_tasks::{
    Created, Error, EventKind, HistoryEntry, IdempotencyKey, Keyed, NewTask, Result, Task, TaskId,
    TaskStatus, Unique,
};
use tokio_postgres::types::ToSql;

use super::PgTaskStore;
use super::keyed::{Found, inner, key_begin, key_end};
use super::row::{corrupt, i64_of, result_text, row_task};
use super::transition::{CAS_ATTEMPTS, UNIQUE_KEY};
use crate::errors::{Failure, classify, task_error};
use crate::keys::task_lock_key_str;

/// The primary key of the tasks: a second task with the same id.
const PRIMARY_KEY: &str = "tasks_pkey";

/// The parameters of `sql/insert.sql`, by name: one array per column, one element per task.
#[derive(Default)]
struct InsertColumns {
    id: Vec<String>,
    name: Vec<String>,
    description: Vec<Option<String>>,
    status: Vec<String>,
    owner: Vec<Option<String>>,
    priority: Vec<i32>,
    metadata: Vec<String>,
    result: Vec<Option<String>>,
    error: Vec<Option<String>>,
    attempts: Vec<i64>,
    max_attempts: Vec<i64>,
    version: Vec<i64>,
    created_at: Vec<i64>,
    updated_at: Vec<i64>,
    started_at: Vec<Option<i64>>,
    finished_at: Vec<Option<i64>>,
    lease_token: Vec<Option<i64>>,
    lease_expires_at: Vec<Option<i64>>,
    parent: Vec<Option<String>>,
    /// The labels of each task as a JSON array (a column of arrays cannot be one parameter).
    labels: Vec<String>,
    run_at: Vec<Option<i64>>,
    retry_base_ms: Vec<Option<i64>>,
    retry_cap_ms: Vec<Option<i64>>,
    retry_jitter: Vec<Option<i32>>,
    unique_key: Vec<Option<String>>,
    unique_scope: Vec<Option<String>>,
    /// The count of unfinished dependencies of each task.
    waiting: Vec<i32>,
}

impl InsertColumns {
    /// The columns of `tasks`, whose counts of unfinished dependencies are `waiting`.
    fn new(tasks: &[Task], waiting: &[i32]) -> Result<Self> {
        let ts = |t: Option<oc_tasks::Timestamp>| t.map(|t| t.as_millis());
        let mut c = InsertColumns {
            waiting: waiting.to_vec(),
            ..InsertColumns::default()
        };
        for t in tasks {
            let (base, cap, jitter) = retry_columns(&t.retry);
            c.id.push(t.id.to_string());
            c.name.push(t.name.clone());
            c.description.push(t.description.clone());
            c.status.push(t.status.as_str().to_owned());
            c.owner.push(t.owner.clone());
            c.priority.push(t.priority);
            c.metadata.push(metadata_text(t));
            c.result.push(result_text(t)?);
            c.error.push(t.error.clone());
            c.attempts.push(i64::from(t.attempts));
            c.max_attempts.push(i64::from(t.max_attempts));
            c.version.push(i64_of(t.version));
            c.created_at.push(t.created_at.as_millis());
            c.updated_at.push(t.updated_at.as_millis());
            c.started_at.push(ts(t.started_at));
            c.finished_at.push(ts(t.finished_at));
            c.lease_token.push(t.lease.map(|l| i64_of(l.token)));
            c.lease_expires_at.push(ts(t.lease.map(|l| l.expires_at)));
            c.parent.push(t.parent.as_ref().map(|p| p.to_string()));
            c.labels
                .push(serde_json::Value::from(t.labels.clone()).to_string());
            c.run_at.push(ts(t.run_at));
            c.retry_base_ms.push(base);
            c.retry_cap_ms.push(cap);
            c.retry_jitter
                .push(jitter.and_then(|j| i32::try_from(j).ok()));
            c.unique_key.push(t.unique.as_ref().map(|u| u.key.clone()));
            c.unique_scope
                .push(t.unique.as_ref().map(|u| u.scope.as_str().to_owned()));
        }
        Ok(c)
    }

    /// The parameters in the order of `sql/insert.sql` (`$1` … `$27`).
    fn params(&self) -> [&(dyn ToSql + Sync); 27] {
        [
            &self.id,
            &self.name,
            &self.description,
            &self.status,
            &self.owner,
            &self.priority,
            &self.metadata,
            &self.result,
            &self.error,
            &self.attempts,
            &self.max_attempts,
            &self.version,
            &self.created_at,
            &self.updated_at,
            &self.started_at,
            &self.finished_at,
            &self.lease_token,
            &self.lease_expires_at,
            &self.parent,
            &self.labels,
            &self.run_at,
            &self.retry_base_ms,
            &self.retry_cap_ms,
            &self.retry_jitter,
            &self.unique_key,
            &self.unique_scope,
            &self.waiting,
        ]
    }
}

impl PgTaskStore {
    pub(super) fn submit(&self, new: Vec<NewTask>) -> Result<Vec<Created>> {
        let now = self.db_now()?;
        let tasks = new
            .into_iter()
            .map(|n| n.into_task(now))
            .collect::<Result<Vec<_>>>()?;
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let graph = tasks
            .iter()
            .any(|t| !t.depends_on.is_empty() || t.parent.is_some() || t.unique.is_some());
        if graph {
            return self.submit_graph(tasks);
        }
        // Without edges or keys, only ids can clash: one statement.
        plan_submit(tasks.clone(), |_| Ok(None), |_| Ok(false))?;
        self.insert(&tasks)?;
        let created: Vec<Created> = tasks
            .into_iter()
            .map(|task| Created {
                task,
                duplicate: false,
            })
            .collect();
        trace_created(&created);
        Ok(created)
    }

    /// Inserts tasks without graph edges or unique keys (so none can conflict but by id), in
    /// one statement.
    pub(super) fn insert(&self, tasks: &[Task]) -> Result<()> {
        let columns = InsertColumns::new(tasks, &vec![0; tasks.len()])?;
        let out = self.pool.call(move |c| async move {
            c.client.execute(&c.stmts.insert, &columns.params()).await
        });
        match out {
            Ok(_) => Ok(()),
            Err(f) => {
                let ids: Vec<TaskId> = tasks.iter().map(|t| t.id.clone()).collect();
                Err(self.insert_error(f, &ids))
            }
        }
    }

    /// `submit_many` of a batch with dependencies, parents or unique keys: one transaction
    /// that takes shared task locks on the stored tasks it refers to and the holders of its
    /// keys (see [`task_lock_key`]), reads their statuses after them, plans
    /// the batch from them ([`oc_tasks::backend::plan_submit`]), and inserts the tasks, each
    /// with its count of unfinished dependencies, and their edges. A concurrent creation of
    /// the same key makes the insert fail; the whole transaction is then tried again, and
    /// finds the new holder.
    fn submit_graph(&self, tasks: Vec<Task>) -> Result<Vec<Created>> {
        Ok(self.submit_graph_keyed(tasks, None)?.value)
    }

    /// `submit_many_keyed`: the transaction of [`Self::submit_graph`] under the key.
    pub(super) fn submit_keyed_tx(
        &self,
        key: &IdempotencyKey,
        new: Vec<NewTask>,
    ) -> Result<Keyed<Vec<Created>>> {
        let request = KeyedRequest::Submit { tasks: &new }.fingerprint()?;
        let now = self.db_now()?;
        let tasks = new
            .into_iter()
            .map(|n| n.into_task(now))
            .collect::<Result<Vec<_>>>()?;
        self.submit_graph_keyed(tasks, Some((key.clone(), request)))
    }

    /// [`Self::submit_graph`], recording `key` (with its request) in the same transaction or
    /// replaying what it recorded.
    fn submit_graph_keyed(
        &self,
        tasks: Vec<Task>,
        key: Option<(IdempotencyKey, String)>,
    ) -> Result<Keyed<Vec<Created>>> {
        for _ in 0..CAS_ATTEMPTS {
            let batch = tasks.clone();
            let ids: Vec<TaskId> = batch.iter().map(|t| t.id.clone()).collect();
            let schema = self.table_schema();
            let (key, name, clock) = (key.clone(), self.opts.schema.clone(), self.clock_ms());
            let out = self.pool.transaction(move |t, st| {
                Box::pin(async move {
                    let mut at = 0;
                    if let Some((k, request)) = &key {
                        match inner!(key_begin(t, st, &name, k, request, clock).await?) {
                            Found::New(now) => at = now,
                            Found::Replay(r) => {
                                return Ok(r.submit(k).map(|value| Keyed {
                                    value,
                                    replayed: true,
                                }));
                            }
                        }
                    }
                    let in_batch: HashSet<TaskId> = batch.iter().map(|t| t.id.clone()).collect();
                    let keys: Vec<String> = batch
                        .iter()
                        .filter_map(|t| Unique::held_by(t).map(str::to_owned))
                        .collect();
                    let mut holders: HashMap<String, Task> = HashMap::new();
                    let mut status: HashMap<TaskId, TaskStatus> = HashMap::new();
                    if !keys.is_empty() {
                        for r in t.query(&st.holders, &[&keys]).await? {
                            let h = match row_task(&r, 0) {
                                Ok(h) => h,
                                Err(e) => return Ok(Err(e)),
                            };
                            status.insert(h.id.clone(), h.status);
                            if let Some(k) = Unique::held_by(&h) {
                                holders.insert(k.to_owned(), h.clone());
                            }
                        }
                    }
                    let refs_out: Vec<String> = batch
                        .iter()
                        .flat_map(|t| t.depends_on.iter().chain(t.parent.iter()))
                        .filter(|r| !in_batch.contains(*r))
                        .chain(holders.values().map(|h| &h.id))
                        .map(|r| r.to_string())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    if !refs_out.is_empty() {
                        let keys: Vec<i64> = refs_out
                            .iter()
                            .map(|r| task_lock_key_str(&schema, r))
                            .collect();
                        status.clear();
                        t.query(&st.lock_refs, &[&keys]).await?;
                        for r in t.query(&st.read_refs, &[&refs_out]).await? {
                            let (id, s): (String, String) = (r.get(0), r.get(1));
                            match (TaskId::new(id.clone()), s.parse::<TaskStatus>()) {
                                (Ok(id), Ok(s)) => {
                                    status.insert(id, s);
                                }
                                _ => return Ok(Err(corrupt(&id, "bad id or status"))),
                            }
                        }
                    }
                    let planned = match plan_submit(
                        batch,
                        |key| Ok(holders.get(key).cloned()),
                        |id| Ok(status.contains_key(id)),
                    ) {
                        Ok(p) => p,
                        Err(e) => return Ok(Err(e)),
                    };
                    let fresh: Vec<Task> = planned
                        .iter()
                        .filter(|c| !c.duplicate)
                        .map(|c| c.task.clone())
                        .collect();
                    let fresh_ids: HashSet<&TaskId> = fresh.iter().map(|t| &t.id).collect();
                    let waiting: Vec<i32> = fresh
                        .iter()
                        .map(|t| {
                            let n = t
                                .depends_on
                                .iter()
                                .filter(|d| {
                                    fresh_ids.contains(d)
                                        || status.get(*d) != Some(&TaskStatus::Completed)
                                })
                                .count();
                            i32::try_from(n).unwrap_or(i32::MAX)
                        })
                        .collect();
                    if !fresh.is_empty() {
                        let columns = match InsertColumns::new(&fresh, &waiting) {
                            Ok(c) => c,
                            Err(e) => return Ok(Err(e)),
                        };
                        t.execute(&st.insert, &columns.params()).await?;
                        let (from, to): (Vec<String>, Vec<String>) = fresh
                            .iter()
                            .flat_map(|t| {
                                t.depends_on
                                    .iter()
                                    .map(|d| (t.id.to_string(), d.to_string()))
                            })
                            .unzip();
                        if !from.is_empty() {
                            t.execute(&st.edges, &[&from, &to]).await?;
                        }
                    }
                    if let Some((k, request)) = &key {
                        let result = KeyedResult::Submit(planned.clone());
                        inner!(key_end(t, st, k, request, &result, at).await?);
                    }
                    Ok(Ok(Keyed {
                        value: planned,
                        replayed: false,
                    }))
                })
            });
            match out {
                Ok(Ok(created)) => {
                    if !created.replayed {
                        trace_created(&created.value);
                    }
                    return Ok(created);
                }
                Ok(Err(e)) => return Err(e),
                Err(Failure::Pg(e)) if classify(&e).violates(UNIQUE_KEY) => continue,
                Err(f) => return Err(self.insert_error(f, &ids)),
            }
        }
        Err(Error::backend(
            "postgres",
            true,
            format!("unique keys kept changing under {CAS_ATTEMPTS} attempts"),
        ))
    }

    /// The error of an insert of `batch` that failed: a second task with an id names the first
    /// id of the batch that is stored now (the one the server refused, as rows are inserted in
    /// batch order).
    fn insert_error(&self, f: Failure, batch: &[TaskId]) -> Error {
        let Failure::Pg(e) = f else {
            return task_error(f);
        };
        if !classify(&e).violates(PRIMARY_KEY) {
            return task_error(Failure::Pg(e));
        }
        let ids: Vec<String> = batch.iter().map(|id| id.to_string()).collect();
        let sql = format!(
            "SELECT id FROM {}.tasks WHERE id = ANY($1::text[])",
            self.table_schema()
        );
        let stored: HashSet<String> = self
            .call("insert_conflict", move |c| async move {
                c.client.query(&sql, &[&ids]).await
            })
            .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
            .unwrap_or_default();
        match batch
            .iter()
            .find(|id| stored.contains(id.as_str()))
            .or(batch.first())
        {
            Some(id) => Error::AlreadyExists { id: id.clone() },
            None => task_error(Failure::Pg(e)),
        }
    }
}

/// Reports the creations the insert statement recorded in the history.
pub(super) fn trace_created(created: &[Created]) {
    if !HistoryEntry::traced() {
        return;
    }
    for c in created.iter().filter(|c| !c.duplicate) {
        HistoryEntry::new(EventKind::Created, None, &c.task).trace();
    }
}
