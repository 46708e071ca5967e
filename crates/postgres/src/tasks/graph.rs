//! The work graph's writes: edges added and removed, tasks deleted with what depends on them,
//! each a transaction of its own under the tasks' advisory locks (see [`task_lock_key`]).

use oc_tasks::backend::{Doomed, PathSearch, cycle_error};
use oc_tasks::{Error, OnDependents, Result, Task, TaskId, TaskStatus};
use tokio_postgres::Transaction;

use super::PgTaskStore;
use super::row::{corrupt, row_task};
use super::sql::render;
use crate::errors::task_error;
use crate::keys::{graph_lock_key, task_lock_key};

/// Why a graph transaction stopped: the database failed, or the request was refused.
pub(super) enum TxErr {
    Pg(tokio_postgres::Error),
    Task(Error),
}

impl From<tokio_postgres::Error> for TxErr {
    fn from(e: tokio_postgres::Error) -> Self {
        TxErr::Pg(e)
    }
}

impl From<Error> for TxErr {
    fn from(e: Error) -> Self {
        TxErr::Task(e)
    }
}

pub(super) type GraphFuture<'a, X> =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<X, TxErr>> + Send + 'a>>;

/// The text of the graph's statements for one schema, rendered once per store (they run as
/// text inside the graph's transactions, each planned for its own parameters), from the files
/// under `sql/graph/`.
pub(super) struct GraphSql {
    /// The quoted schema, for the task locks' keys.
    schema: String,
    lock_graph: String,
    lock_task_shared: String,
    lock_task_key: String,
    status: String,
    lock_task: String,
    touch: String,
    edges_from: String,
    add_edge: String,
    remove_edge: String,
    below: String,
    release_deleted: String,
    orphan: String,
    delete: String,
}

impl GraphSql {
    /// The statements for schema `s` (quoted).
    pub(super) fn new(s: &str) -> Self {
        let r = |template: &str| render(template, s, &[]);
        GraphSql {
            schema: s.to_owned(),
            lock_graph: r(include_str!("sql/graph/lock_graph.sql")),
            lock_task_shared: r(include_str!("sql/graph/lock_task_shared.sql")),
            lock_task_key: r(include_str!("sql/graph/lock_task_key.sql")),
            status: r(include_str!("sql/graph/status.sql")),
            lock_task: r(include_str!("sql/graph/lock_task.sql")),
            touch: r(include_str!("sql/graph/touch.sql")),
            edges_from: r(include_str!("sql/graph/edges_from.sql")),
            add_edge: r(include_str!("sql/graph/add_edge.sql")),
            remove_edge: r(include_str!("sql/graph/remove_edge.sql")),
            below: r(include_str!("sql/graph/below.sql")),
            release_deleted: r(include_str!("sql/graph/release_deleted.sql")),
            orphan: r(include_str!("sql/graph/orphan.sql")),
            delete: r(include_str!("sql/graph/delete.sql")),
        }
    }
}

impl std::fmt::Debug for GraphSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSql")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// The status of task `id` (if it exists), read after taking its task lock shared (see
/// [`task_lock_key`]).
pub(super) async fn shared_status(
    t: &Transaction<'_>,
    g: &GraphSql,
    id: &TaskId,
) -> std::result::Result<Option<String>, TxErr> {
    t.execute(&g.lock_task_shared, &[&task_lock_key(&g.schema, id)])
        .await?;
    Ok(t.query_opt(&g.status, &[&id.as_str()])
        .await?
        .map(|r| r.get::<_, String>(0)))
}

/// The task `id`, locked for update until the transaction ends.
pub(super) async fn lock_task(
    t: &Transaction<'_>,
    g: &GraphSql,
    id: &TaskId,
) -> std::result::Result<Option<Task>, TxErr> {
    let row = t.query_opt(&g.lock_task, &[&id.as_str()]).await?;
    Ok(row.map(|r| row_task(&r, 0)).transpose()?)
}

/// A write to `id` that is not a transition (an edge added or dropped): the version bumped,
/// `waiting` moved by `waiting`.
pub(super) async fn touch(
    t: &Transaction<'_>,
    g: &GraphSql,
    id: &TaskId,
    now: Option<i64>,
    waiting: i32,
) -> std::result::Result<(), TxErr> {
    t.execute(&g.touch, &[&id.as_str(), &waiting, &now]).await?;
    Ok(())
}

impl PgTaskStore {
    /// Runs `f` in a transaction of its own (see `Pool::transaction`); a slow one is counted
    /// as `op`.
    pub(super) fn graph_tx<X: Send + 'static>(
        &self,
        op: &'static str,
        f: impl for<'a> FnOnce(&'a Transaction<'a>) -> GraphFuture<'a, X> + Send + 'static,
    ) -> Result<X> {
        let started = std::time::Instant::now();
        let out = self.pool.transaction(move |t, _| {
            Box::pin(async move {
                match f(t).await {
                    Ok(x) => Ok(Ok(x)),
                    Err(TxErr::Task(e)) => Ok(Err(e)),
                    Err(TxErr::Pg(e)) => Err(e),
                }
            })
        });
        self.slow.record(op, started.elapsed(), self.clock_ms());
        out.map_err(task_error)?
    }

    pub(super) fn add_edge(&self, task: &TaskId, on: &TaskId) -> Result<Task> {
        let (g, now) = (self.graph_sql.clone(), self.clock_ms());
        let (task, on) = (task.clone(), on.clone());
        self.graph_tx("add_dependency", move |t| {
            Box::pin(async move {
                // Edges are added one at a time: two could close a cycle together.
                t.execute(&g.lock_graph, &[&graph_lock_key(&g.schema)])
                    .await?;
                // The dependency's task lock (shared), then its status, then the task's row.
                let on_status = shared_status(t, &g, &on).await?;
                let Some(prev) = lock_task(t, &g, &task).await? else {
                    return Err(Error::NotFound { id: task }.into());
                };
                if task == on {
                    return Err(Error::Cycle {
                        cycle: vec![task.clone(), task],
                    }
                    .into());
                }
                let Some(on_status) = on_status else {
                    return Err(Error::MissingReference {
                        field: "depends_on",
                        id: on,
                    }
                    .into());
                };
                if prev.depends_on.contains(&on) {
                    return Ok(prev);
                }
                // The shared path search, one query a level.
                let mut search = PathSearch::new(&on, &task);
                while let Some(level) = search.wanted() {
                    let ids: Vec<&str> = level.iter().map(TaskId::as_str).collect();
                    let rows = t.query(&g.edges_from, &[&ids]).await?;
                    let mut edges = Vec::with_capacity(rows.len());
                    for r in rows {
                        let (a, b): (String, String) = (r.get(0), r.get(1));
                        let (Ok(a), Ok(b)) = (TaskId::new(a.clone()), TaskId::new(b)) else {
                            return Err(corrupt(&a, "bad edge").into());
                        };
                        edges.push((a, b));
                    }
                    search.feed(edges);
                }
                if let Some(path) = search.path() {
                    return Err(cycle_error(&task, path).into());
                }
                t.execute(&g.add_edge, &[&task.as_str(), &on.as_str()])
                    .await?;
                let blocks = i32::from(on_status != "completed");
                touch(t, &g, &task, now, blocks).await?;
                lock_task(t, &g, &task)
                    .await?
                    .ok_or_else(|| Error::NotFound { id: task }.into())
            })
        })
    }

    pub(super) fn remove_edge(&self, task: &TaskId, on: &TaskId) -> Result<Task> {
        let (g, now) = (self.graph_sql.clone(), self.clock_ms());
        let (task, on) = (task.clone(), on.clone());
        self.graph_tx("remove_dependency", move |t| {
            Box::pin(async move {
                let on_status = shared_status(t, &g, &on).await?;
                let Some(prev) = lock_task(t, &g, &task).await? else {
                    return Err(Error::NotFound { id: task }.into());
                };
                let removed = t
                    .execute(&g.remove_edge, &[&task.as_str(), &on.as_str()])
                    .await?;
                if removed == 0 {
                    return Ok(prev);
                }
                let unblocks = i32::from(on_status.as_deref() != Some("completed"));
                touch(t, &g, &task, now, -unblocks).await?;
                lock_task(t, &g, &task)
                    .await?
                    .ok_or_else(|| Error::NotFound { id: task }.into())
            })
        })
    }

    pub(super) fn delete_tasks(
        &self,
        id: &TaskId,
        expect: Option<u64>,
        on_dependents: OnDependents,
    ) -> Result<Vec<Task>> {
        let (g, now) = (self.graph_sql.clone(), self.clock_ms());
        let id = id.clone();
        self.graph_tx("delete", move |t| {
            Box::pin(async move {
                t.execute(&g.lock_task_key, &[&task_lock_key(&g.schema, &id)])
                    .await?;
                let Some(prev) = lock_task(t, &g, &id).await? else {
                    return Err(Error::NotFound { id }.into());
                };
                if let Some(expected) = expect
                    && expected != prev.version
                {
                    return Err(Error::VersionMismatch {
                        id,
                        expected,
                        actual: prev.version,
                    }
                    .into());
                }
                // The shared delete walk, locking each task it takes (in the order it takes
                // them) before reading what is below it; the root is locked already, and a
                // task deleted meanwhile has nothing below it.
                let mut walk = Doomed::new(&id, on_dependents);
                let mut doomed = vec![prev];
                while let Some(d) = walk.wanted() {
                    let d = d.clone();
                    if d != id {
                        t.execute(&g.lock_task_key, &[&task_lock_key(&g.schema, &d)])
                            .await?;
                        let Some(x) = lock_task(t, &g, &d).await? else {
                            walk.feed(Vec::new())?;
                            continue;
                        };
                        doomed.push(x);
                    }
                    let below: Vec<TaskId> = t
                        .query(&g.below, &[&d.as_str()])
                        .await?
                        .iter()
                        .filter_map(|r| TaskId::new(r.get::<_, String>(0)).ok())
                        .collect();
                    walk.feed(below)?;
                }
                let gone: Vec<String> = doomed.iter().map(|x| x.id.to_string()).collect();
                for x in &doomed {
                    let xid = x.id.as_str();
                    // Whoever is left stops waiting for it and loses it as a parent.
                    let unblocks = i32::from(x.status != TaskStatus::Completed);
                    t.execute(&g.release_deleted, &[&xid, &gone, &unblocks, &now])
                        .await?;
                    t.execute(&g.orphan, &[&xid, &gone, &now]).await?;
                    t.execute(&g.delete, &[&xid]).await?;
                }
                Ok(doomed)
            })
        })
    }
}
