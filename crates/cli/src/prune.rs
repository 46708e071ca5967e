//! `oc db prune`: the retention policy of finished tasks (docs/decisions/0051), run once.

use std::time::Duration;

use oc_tasks::{RetentionPolicy, Retire, TaskStore};

use crate::output::{Output, thousands};

pub(crate) fn run(
    store: &dyn TaskStore,
    older_than: Duration,
    archive: bool,
    batch: usize,
    out: &mut Output,
) -> anyhow::Result<()> {
    let policy = if archive {
        RetentionPolicy::archive_older_than(older_than)
    } else {
        RetentionPolicy::delete_older_than(older_than)
    }
    .batch(batch);
    // Checked here too, so that a bad batch is a usage error before the database is touched.
    policy
        .validate()
        .map_err(|e| crate::UsageError(e.to_string()))?;
    let report = store.prune_finished(&policy)?;
    out.emit("db.prune", &report, |w, o| {
        if o.quiet {
            return Ok(());
        }
        let how = match report.retire {
            Retire::Delete => "deleted",
            Retire::Archive => "archived",
        };
        writeln!(
            w,
            "{} finished task(s) {how} (finished at or before {}), in {} batch(es)",
            thousands(report.pruned),
            report.cutoff,
            report.batches
        )?;
        writeln!(
            w,
            "{} kept: a task that stays depends on them or is their child, or they hold a key \
             for ever; {} looked at",
            thousands(report.kept),
            thousands(report.scanned)
        )
    })
}
