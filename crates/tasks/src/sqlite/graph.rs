//! The dependency edges as the graph functions read them, and dropping one.

use rusqlite::{Connection, Transaction};

use super::rows::corrupt;
use crate::{Result, TaskId};

/// The dependency edges `(task, on)` of the tasks in `ids`.
pub(super) fn edges_of(c: &Connection, ids: &[TaskId]) -> Result<Vec<(TaskId, TaskId)>> {
    let mut stmt = c.prepare_cached("SELECT depends_on FROM task_deps WHERE task_id = ?1")?;
    let mut out = Vec::new();
    for id in ids {
        let mut rows = stmt.query([id.as_str()])?;
        while let Some(r) = rows.next()? {
            let on: String = r.get(0)?;
            out.push((
                id.clone(),
                TaskId::new(on.clone()).map_err(|e| corrupt(&on, e))?,
            ));
        }
    }
    Ok(out)
}

/// The tasks that depend on `id` or are its children.
pub(super) fn dependents(c: &Connection, id: &TaskId) -> Result<Vec<TaskId>> {
    let mut stmt = c.prepare_cached(
        "SELECT task_id FROM task_deps WHERE depends_on = ?1
         UNION SELECT id FROM tasks WHERE parent = ?1 ORDER BY 1",
    )?;
    let rows = stmt.query_map([id.as_str()], |r| r.get::<_, String>(0))?;
    rows.map(|r| {
        let s = r?;
        TaskId::new(s.clone()).map_err(|e| corrupt(&s, e))
    })
    .collect()
}

/// Drops the edge `task → on`; `task` waits for one dependency fewer if `on` is unfinished.
pub(super) fn drop_edge(tx: &Transaction<'_>, task: &str, on: &str) -> Result<()> {
    let n = tx
        .prepare_cached("DELETE FROM task_deps WHERE task_id = ?1 AND depends_on = ?2")?
        .execute((task, on))?;
    if n == 1 {
        tx.prepare_cached(
            "UPDATE tasks SET waiting = waiting - 1
             WHERE id = ?1 AND (SELECT status FROM tasks WHERE id = ?2) <> 'completed'",
        )?
        .execute((task, on))?;
    }
    Ok(())
}
