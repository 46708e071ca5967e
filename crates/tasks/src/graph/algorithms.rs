//! The graph algorithms every store runs, so that they agree by construction: the path search
//! that refuses a cycle, the check of a batch, the tasks a cascading delete takes, the plan of
//! a submission. Backends reach them through [`crate::backend`].

use std::collections::{HashMap, HashSet, VecDeque};

use super::{Created, OnDependents, Unique};
use crate::{Error, Result, Task, TaskId};

/// The path from `from` to `to` along dependency edges (`from` depends on … depends on
/// `to`), found breadth first, level by level: `deps_of` returns the edges `(task, on)` of
/// the tasks it is given. `None` when `to` cannot be reached.
///
/// A store calls it before adding the edge `to → from` (`to` depends on `from`): a path means
/// the edge would close the cycle `to → from → … → to`.
pub fn find_path(
    from: &TaskId,
    to: &TaskId,
    mut deps_of: impl FnMut(&[TaskId]) -> Result<Vec<(TaskId, TaskId)>>,
) -> Result<Option<Vec<TaskId>>> {
    let mut came_from: HashMap<TaskId, TaskId> = HashMap::new();
    let mut frontier = vec![from.clone()];
    let mut seen: HashSet<TaskId> = HashSet::from([from.clone()]);
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for (task, on) in deps_of(&frontier)? {
            if seen.insert(on.clone()) {
                came_from.insert(on.clone(), task);
                if &on == to {
                    let mut path = VecDeque::from([on]);
                    while let Some(prev) = path.front().and_then(|p| came_from.get(p)) {
                        path.push_front(prev.clone());
                    }
                    return Ok(Some(path.into()));
                }
                next.push(on);
            }
        }
        frontier = next;
    }
    Ok(None)
}

/// The error for an edge `task → on` that would close a cycle, given the path from `on` to
/// `task` ([`find_path`]).
pub fn cycle_error(task: &TaskId, path: Vec<TaskId>) -> Error {
    let mut cycle = vec![task.clone()];
    cycle.extend(path);
    Error::Cycle { cycle }
}

/// Checks the graph fields of a batch of new tasks against each other: no self-dependency,
/// no duplicate dependency, and no cycle among the batch (a new task can only depend on
/// tasks that exist or come in the same batch, so only the batch can close a cycle).
pub(crate) fn check_batch(tasks: &[Task]) -> Result<()> {
    if tasks
        .iter()
        .all(|t| t.depends_on.is_empty() && t.parent.is_none())
    {
        return Ok(());
    }
    let ids: HashMap<&TaskId, &Task> = tasks.iter().map(|t| (&t.id, t)).collect();
    for t in tasks {
        let mut seen = HashSet::new();
        for d in &t.depends_on {
            if d == &t.id {
                return Err(Error::Cycle {
                    cycle: vec![t.id.clone(), t.id.clone()],
                });
            }
            if !seen.insert(d) {
                return Err(Error::InvalidInput {
                    field: "depends_on",
                    reason: format!("task {} names dependency {d} twice", t.id),
                });
            }
        }
        if t.parent.as_ref() == Some(&t.id) {
            return Err(Error::InvalidInput {
                field: "parent",
                reason: format!("task {} cannot be its own parent", t.id),
            });
        }
    }
    // Cycles within the batch: Kahn's algorithm over the batch's own edges, in O(n + e);
    // whatever it cannot order lies on or behind a cycle, which is then walked to name it.
    let mut waiting: HashMap<&TaskId, usize> = HashMap::new();
    let mut dependents: HashMap<&TaskId, Vec<&TaskId>> = HashMap::new();
    for t in tasks {
        let inner: Vec<&TaskId> = t
            .depends_on
            .iter()
            .filter(|d| ids.contains_key(d))
            .collect();
        waiting.insert(&t.id, inner.len());
        for d in inner {
            dependents.entry(d).or_default().push(&t.id);
        }
    }
    let mut free: Vec<&TaskId> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    while let Some(done) = free.pop() {
        waiting.remove(done);
        for d in dependents.get(done).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    free.push(d);
                }
            }
        }
    }
    let Some(start) = waiting.keys().min().copied() else {
        return Ok(());
    };
    // Every task left waits on another task left: follow them until one repeats.
    let mut walk: Vec<&TaskId> = vec![start];
    loop {
        let last = walk[walk.len() - 1];
        let Some(next) = ids
            .get(last)
            .and_then(|t| t.depends_on.iter().find(|d| waiting.contains_key(d)))
        else {
            return Ok(());
        };
        if let Some(at) = walk.iter().position(|w| *w == next) {
            let mut cycle: Vec<TaskId> = walk[at..].iter().map(|t| (*t).clone()).collect();
            cycle.push(next.clone());
            return Err(Error::Cycle { cycle });
        }
        walk.push(next);
    }
}

/// The tasks a delete of `root` removes under `mode`, `root` first: with a cascade, also what
/// depends on it or is its child, transitively (`below` lists those of one task); with
/// [`OnDependents::Refuse`], [`Error::HasDependents`] when `root` has any.
pub fn doomed(
    root: &TaskId,
    mode: OnDependents,
    mut below: impl FnMut(&TaskId) -> Result<Vec<TaskId>>,
) -> Result<Vec<TaskId>> {
    let mut doomed = vec![root.clone()];
    let mut i = 0;
    while i < doomed.len() {
        let under = below(&doomed[i])?;
        match mode {
            OnDependents::Refuse if !under.is_empty() => {
                return Err(Error::HasDependents {
                    id: root.clone(),
                    dependents: under,
                });
            }
            OnDependents::Cascade => {
                for d in under {
                    if !doomed.contains(&d) {
                        doomed.push(d);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(doomed)
}

/// Plans a [`TaskStore::submit_many`](crate::TaskStore::submit_many) of `tasks` (built by
/// [`NewTask::into_task`](crate::NewTask::into_task)), the same way on every backend:
///
/// 1. the batch's own edges are checked (no self-dependency, no duplicate, no cycle, no task
///    its own parent) and its ids must differ;
/// 2. a task whose unique key is held, by a stored task (`holder`) or an earlier task of the
///    batch, becomes a duplicate of its holder, and the batch's edges to it point at the
///    holder instead;
/// 3. every dependency and parent must be in the batch or stored (`exists`).
///
/// Returns one [`Created`] per task, in order; the ones with `duplicate == false` are to be
/// inserted, with their final edges.
pub fn plan_submit(
    tasks: Vec<Task>,
    mut holder: impl FnMut(&str) -> Result<Option<Task>>,
    mut exists: impl FnMut(&TaskId) -> Result<bool>,
) -> Result<Vec<Created>> {
    check_batch(&tasks)?;
    let mut seen_ids = HashSet::with_capacity(tasks.len());
    for t in &tasks {
        if !seen_ids.insert(&t.id) {
            return Err(Error::AlreadyExists { id: t.id.clone() });
        }
    }
    drop(seen_ids);
    if tasks
        .iter()
        .all(|t| t.depends_on.is_empty() && t.parent.is_none() && t.unique.is_none())
    {
        // Nothing to look up: every task is new as it is.
        return Ok(tasks
            .into_iter()
            .map(|task| Created {
                task,
                duplicate: false,
            })
            .collect());
    }
    let mut out: Vec<Created> = Vec::with_capacity(tasks.len());
    let mut held: HashMap<String, usize> = HashMap::new();
    let mut renamed: HashMap<TaskId, TaskId> = HashMap::new();
    for t in tasks {
        if let Some(key) = Unique::held_by(&t) {
            if let Some(&i) = held.get(key) {
                renamed.insert(t.id.clone(), out[i].task.id.clone());
                out.push(Created {
                    task: out[i].task.clone(),
                    duplicate: true,
                });
                continue;
            }
            if let Some(h) = holder(key)? {
                renamed.insert(t.id.clone(), h.id.clone());
                out.push(Created {
                    task: h,
                    duplicate: true,
                });
                continue;
            }
            held.insert(key.to_owned(), out.len());
        }
        out.push(Created {
            task: t,
            duplicate: false,
        });
    }
    if !renamed.is_empty() {
        for c in out.iter_mut().filter(|c| !c.duplicate) {
            let t = &mut c.task;
            for d in &mut t.depends_on {
                if let Some(to) = renamed.get(d) {
                    *d = to.clone();
                }
            }
            t.depends_on.sort();
            t.depends_on.dedup();
            if let Some(to) = t.parent.as_ref().and_then(|p| renamed.get(p)) {
                t.parent = Some(to.clone());
            }
        }
        let fresh: Vec<Task> = out
            .iter()
            .filter(|c| !c.duplicate)
            .map(|c| c.task.clone())
            .collect();
        check_batch(&fresh)?;
    }
    let batch: HashSet<TaskId> = out
        .iter()
        .filter(|c| !c.duplicate)
        .map(|c| c.task.id.clone())
        .collect();
    let mut known: HashSet<TaskId> = HashSet::new();
    for c in out.iter().filter(|c| !c.duplicate) {
        let t = &c.task;
        let refs = t
            .depends_on
            .iter()
            .map(|d| ("depends_on", d))
            .chain(t.parent.iter().map(|p| ("parent", p)));
        for (field, r) in refs {
            if batch.contains(r) || known.contains(r) {
                continue;
            }
            if !exists(r)? {
                return Err(Error::MissingReference {
                    field,
                    id: r.clone(),
                });
            }
            known.insert(r.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TaskId {
        TaskId::new(s).unwrap()
    }

    #[test]
    fn paths_and_cycles_are_named() {
        let edges = [("a", "b"), ("b", "c"), ("c", "d"), ("x", "a")];
        let deps = |f: &[TaskId]| {
            Ok(edges
                .iter()
                .filter(|(t, _)| f.iter().any(|x| x.as_str() == *t))
                .map(|(t, o)| (id(t), id(o)))
                .collect())
        };
        assert_eq!(
            find_path(&id("a"), &id("d"), deps).unwrap(),
            Some(vec![id("a"), id("b"), id("c"), id("d")])
        );
        assert_eq!(find_path(&id("d"), &id("a"), deps).unwrap(), None);
        // d → a would close d → a → b → c → d.
        let path = find_path(&id("a"), &id("d"), deps).unwrap().unwrap();
        let e = cycle_error(&id("d"), path);
        assert_eq!(e.to_string(), "dependency cycle: d -> a -> b -> c -> d");
    }
}
