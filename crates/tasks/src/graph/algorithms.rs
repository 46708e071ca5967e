//! The graph algorithms every store runs, so that they agree by construction: the path search
//! that refuses a cycle, the check of a batch, the tasks a cascading delete takes, the plan of
//! a submission. Backends reach them through [`crate::backend`].
//!
//! The two that walk stored edges, [`PathSearch`] and [`Doomed`], do no I/O: the store asks
//! what they need next, reads it, and feeds it back, so that a synchronous store (memory,
//! SQLite) and an asynchronous one (PostgreSQL, one query a step on its runtime) run the very
//! same algorithm.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{Created, OnDependents, Unique};
use crate::{Error, Result, Task, TaskId};

/// The path search that refuses a cycle, breadth first, level by level, with no I/O of its own:
/// the store asks which tasks' dependency edges it needs next ([`PathSearch::wanted`]), reads
/// them however it reads (a call, a query, an `await`), and feeds them back
/// ([`PathSearch::feed`]) until the search is over; then [`PathSearch::path`] is the path from
/// `from` to `to` along dependency edges (`from` depends on … depends on `to`), if any.
///
/// A store runs it before adding the edge `to → from` (`to` depends on `from`): a path means
/// the edge would close the cycle `to → from → … → to` ([`cycle_error`]).
///
/// ```
/// # use oc_tasks::{TaskId, backend::PathSearch};
/// # let id = |s: &str| TaskId::new(s).unwrap();
/// let edges = [(id("a"), id("b")), (id("b"), id("c"))];
/// let mut search = PathSearch::new(&id("a"), &id("c"));
/// while let Some(level) = search.wanted() {
///     let found: Vec<_> = edges.iter().filter(|(t, _)| level.contains(t)).cloned().collect();
///     search.feed(found);
/// }
/// assert_eq!(search.path(), Some(vec![id("a"), id("b"), id("c")]));
/// ```
#[derive(Debug, Clone)]
pub struct PathSearch {
    to: TaskId,
    /// The tasks of the level whose edges are wanted next.
    frontier: Vec<TaskId>,
    seen: HashSet<TaskId>,
    /// How each task seen was reached: the task that depends on it.
    came_from: HashMap<TaskId, TaskId>,
    path: Option<Vec<TaskId>>,
}

impl PathSearch {
    /// A search for a path from `from` to `to`.
    pub fn new(from: &TaskId, to: &TaskId) -> Self {
        PathSearch {
            to: to.clone(),
            frontier: vec![from.clone()],
            seen: HashSet::from([from.clone()]),
            came_from: HashMap::new(),
            path: None,
        }
    }

    /// The tasks whose dependency edges the search needs next; `None` once it is over.
    pub fn wanted(&self) -> Option<&[TaskId]> {
        (self.path.is_none() && !self.frontier.is_empty()).then_some(self.frontier.as_slice())
    }

    /// Feeds the dependency edges `(task, on)` of the tasks [`wanted`](Self::wanted), in the
    /// order the store read them (which decides the path when several are as short).
    pub fn feed(&mut self, edges: impl IntoIterator<Item = (TaskId, TaskId)>) {
        let mut next = Vec::new();
        for (task, on) in edges {
            if self.seen.insert(on.clone()) {
                self.came_from.insert(on.clone(), task);
                if on == self.to {
                    let mut path = VecDeque::from([on]);
                    while let Some(prev) = path.front().and_then(|p| self.came_from.get(p)) {
                        path.push_front(prev.clone());
                    }
                    self.path = Some(path.into());
                    break;
                }
                next.push(on);
            }
        }
        self.frontier = next;
    }

    /// The path found, `from` first and `to` last; `None` when `to` cannot be reached (or the
    /// search is not over).
    pub fn path(self) -> Option<Vec<TaskId>> {
        self.path
    }
}

/// The error for an edge `task → on` that would close a cycle, given the path from `on` to
/// `task` ([`PathSearch`]).
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

/// The tasks a delete of `root` removes under `mode`, `root` first, worked out with no I/O of
/// its own: the store asks whose dependents and children the walk needs next
/// ([`Doomed::wanted`]), reads them, and feeds them back ([`Doomed::feed`]) until the walk is
/// over; [`Doomed::tasks`] is then the list. With a cascade, the walk takes what depends on
/// `root` or is its child, transitively; with [`OnDependents::Refuse`], feeding any for `root`
/// is [`Error::HasDependents`]; with [`OnDependents::DropEdges`], it takes `root` alone.
#[derive(Debug, Clone)]
pub struct Doomed {
    root: TaskId,
    mode: OnDependents,
    /// The tasks taken, in the order they were found.
    doomed: Vec<TaskId>,
    /// How many of them have had their dependents fed.
    walked: usize,
}

impl Doomed {
    /// The walk for a delete of `root` under `mode`.
    pub fn new(root: &TaskId, mode: OnDependents) -> Self {
        Doomed {
            root: root.clone(),
            mode,
            doomed: vec![root.clone()],
            walked: 0,
        }
    }

    /// The task whose dependents and children the walk needs next; `None` once it is over.
    pub fn wanted(&self) -> Option<&TaskId> {
        match self.mode {
            OnDependents::DropEdges => None,
            OnDependents::Refuse | OnDependents::Cascade => self.doomed.get(self.walked),
        }
    }

    /// Feeds the tasks that depend on the task [`wanted`](Self::wanted) or are its children.
    pub fn feed(&mut self, below: Vec<TaskId>) -> Result<()> {
        self.walked += 1;
        match self.mode {
            OnDependents::Refuse if !below.is_empty() => Err(Error::HasDependents {
                id: self.root.clone(),
                dependents: below,
            }),
            OnDependents::Cascade => {
                for d in below {
                    if !self.doomed.contains(&d) {
                        self.doomed.push(d);
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The tasks the delete removes, `root` first.
    pub fn tasks(self) -> Vec<TaskId> {
        self.doomed
    }
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
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> TaskId {
        TaskId::new(s).unwrap()
    }

    /// Runs a path search over `edges`, fed level by level in the order of `edges`.
    fn search(edges: &[(TaskId, TaskId)], from: &TaskId, to: &TaskId) -> Option<Vec<TaskId>> {
        let mut s = PathSearch::new(from, to);
        while let Some(level) = s.wanted() {
            let found: Vec<_> = edges
                .iter()
                .filter(|(t, _)| level.contains(t))
                .cloned()
                .collect();
            s.feed(found);
        }
        s.path()
    }

    /// Runs a delete walk over `edges` (`(task, on)`: `task` is below `on`).
    fn walk(edges: &[(TaskId, TaskId)], root: &TaskId, mode: OnDependents) -> Result<Vec<TaskId>> {
        let mut w = Doomed::new(root, mode);
        while let Some(t) = w.wanted() {
            let mut below: Vec<TaskId> = edges
                .iter()
                .filter(|(_, on)| on == t)
                .map(|(d, _)| d.clone())
                .collect();
            below.sort();
            below.dedup();
            w.feed(below)?;
        }
        Ok(w.tasks())
    }

    /// The path search as it was written before it was stepped, with a callback: the reference.
    fn reference_path(
        from: &TaskId,
        to: &TaskId,
        mut deps_of: impl FnMut(&[TaskId]) -> Vec<(TaskId, TaskId)>,
    ) -> Option<Vec<TaskId>> {
        let mut came_from: HashMap<TaskId, TaskId> = HashMap::new();
        let mut frontier = vec![from.clone()];
        let mut seen: HashSet<TaskId> = HashSet::from([from.clone()]);
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for (task, on) in deps_of(&frontier) {
                if seen.insert(on.clone()) {
                    came_from.insert(on.clone(), task);
                    if &on == to {
                        let mut path = VecDeque::from([on]);
                        while let Some(prev) = path.front().and_then(|p| came_from.get(p)) {
                            path.push_front(prev.clone());
                        }
                        return Some(path.into());
                    }
                    next.push(on);
                }
            }
            frontier = next;
        }
        None
    }

    /// The delete walk as it was written before it was stepped, with a callback: the reference.
    fn reference_doomed(
        root: &TaskId,
        mode: OnDependents,
        mut below: impl FnMut(&TaskId) -> Vec<TaskId>,
    ) -> Result<Vec<TaskId>> {
        let mut doomed = vec![root.clone()];
        let mut i = 0;
        while i < doomed.len() {
            let under = below(&doomed[i]);
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

    #[test]
    fn paths_and_cycles_are_named() {
        let edges: Vec<(TaskId, TaskId)> = [("a", "b"), ("b", "c"), ("c", "d"), ("x", "a")]
            .iter()
            .map(|(t, o)| (id(t), id(o)))
            .collect();
        assert_eq!(
            search(&edges, &id("a"), &id("d")),
            Some(vec![id("a"), id("b"), id("c"), id("d")])
        );
        assert_eq!(search(&edges, &id("d"), &id("a")), None);
        // d → a would close d → a → b → c → d.
        let path = search(&edges, &id("a"), &id("d")).unwrap();
        let e = cycle_error(&id("d"), path);
        assert_eq!(e.to_string(), "dependency cycle: d -> a -> b -> c -> d");
    }

    #[test]
    fn a_delete_walk_cascades_refuses_or_takes_the_root_alone() {
        let edges: Vec<(TaskId, TaskId)> = [("b", "a"), ("c", "b"), ("c", "a"), ("d", "x")]
            .iter()
            .map(|(t, o)| (id(t), id(o)))
            .collect();
        let a = id("a");
        assert_eq!(
            walk(&edges, &a, OnDependents::Cascade).unwrap(),
            [id("a"), id("b"), id("c")]
        );
        assert_eq!(
            walk(&edges, &a, OnDependents::DropEdges).unwrap(),
            [id("a")]
        );
        assert!(matches!(
            walk(&edges, &a, OnDependents::Refuse),
            Err(Error::HasDependents { dependents, .. }) if dependents == [id("b"), id("c")]
        ));
        assert_eq!(
            walk(&edges, &id("d"), OnDependents::Refuse).unwrap(),
            [id("d")]
        );
    }

    /// Random graphs over ten tasks (cycles allowed: the walks must stop on them too).
    fn graph() -> impl Strategy<Value = Vec<(TaskId, TaskId)>> {
        proptest::collection::vec((0..10u8, 0..10u8), 0..30).prop_map(|v| {
            v.into_iter()
                .map(|(a, b)| (id(&format!("t{a}")), id(&format!("t{b}"))))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn stepped_walks_answer_as_the_callback_forms_did(
            edges in graph(),
            a in 0..10u8,
            b in 0..10u8,
            cascade in any::<bool>(),
        ) {
            let (a, b) = (id(&format!("t{a}")), id(&format!("t{b}")));
            let deps_of = |f: &[TaskId]| -> Vec<(TaskId, TaskId)> {
                edges.iter().filter(|(t, _)| f.contains(t)).cloned().collect()
            };
            prop_assert_eq!(search(&edges, &a, &b), reference_path(&a, &b, deps_of));
            let below = |t: &TaskId| -> Vec<TaskId> {
                let mut v: Vec<TaskId> =
                    edges.iter().filter(|(_, on)| on == t).map(|(d, _)| d.clone()).collect();
                v.sort();
                v.dedup();
                v
            };
            let mode = if cascade { OnDependents::Cascade } else { OnDependents::Refuse };
            let got = walk(&edges, &a, mode).map_err(|e| e.to_string());
            let want = reference_doomed(&a, mode, below).map_err(|e| e.to_string());
            prop_assert_eq!(got, want);
        }
    }
}
