//! `web.*`: the status pages over a SQLite store of 1,000,000 tasks, answered in process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use oc_benches::tasks;
use oc_locks::{LockManager, SqliteLockManager};
use oc_tasks::TaskStore;

use crate::{Figures, median};

/// web.*: the status pages over a SQLite store of 1,000,000 tasks (100,000 with `--quick`),
/// answered in process (`Web::respond`, no socket): the overview read afresh and shared, the
/// first page of tasks unfiltered and filtered, one task's page. Milliseconds, median of 20.
pub(crate) fn figures(runs: usize, quick: bool) -> anyhow::Result<()> {
    use oc_web::{Method, Request, Web};
    let n = if quick { 100_000 } else { 1_000_000 };
    let label = if quick { "100k" } else { "1m" };
    let (store, dir) = tasks::fresh()?;
    tasks::create_many(&store, n, 11)?;
    let store: Arc<dyn TaskStore> = Arc::new(store);
    for _ in 0..100 {
        store.claim_next("agent-3", Duration::from_secs(3600))?;
    }
    let locks: Arc<dyn LockManager> =
        Arc::new(SqliteLockManager::open(dir.path().join("opencode.db"))?);
    let files: Arc<dyn oc_jsonl::TaskFileStore> = Arc::new(oc_jsonl::DirFileStore::new(dir.path()));
    let web = |store: &Arc<dyn TaskStore>| {
        let life =
            oc_hooks::TaskLifecycle::new(Arc::clone(store), Arc::new(oc_hooks::Hooks::new()));
        Web::new(life, Arc::clone(&locks)).files(Arc::clone(&files))
    };
    let some_id = store
        .list(&oc_tasks::TaskQuery::new(oc_tasks::TaskFilter::new()).limit(1))?
        .tasks
        .first()
        .map(|t| t.id.to_string())
        .context("a task")?;
    let time = |w: &Web, target: &str| -> anyhow::Result<f64> {
        let started = std::time::Instant::now();
        let r = w.respond(&Request::new(Method::Get, target));
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(r.status == 200, "{target} answered {}", r.status);
        Ok(ms)
    };
    let mut f = Figures::default();
    for _ in 0..runs {
        let (mut cold, mut shared, mut page, mut filtered, mut task) =
            (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..20 {
            let w = web(&store);
            cold.push(time(&w, "/")?);
            shared.push(time(&w, "/")?);
            page.push(time(&w, "/ui/tasks")?);
            filtered.push(time(&w, "/ui/tasks?status=running&owner=agent-3")?);
            task.push(time(&w, &format!("/ui/tasks/{some_id}"))?);
        }
        f.add(format!("web.overview_{label}"), "ms", median(cold));
        f.add(format!("web.overview_shared_{label}"), "ms", median(shared));
        f.add(format!("web.tasks_page_{label}"), "ms", median(page));
        f.add(
            format!("web.tasks_filtered_{label}"),
            "ms",
            median(filtered),
        );
        f.add(format!("web.task_page_{label}"), "ms", median(task));
    }
    f.emit();
    Ok(())
}
