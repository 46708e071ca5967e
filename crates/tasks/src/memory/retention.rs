//! Retention in memory: every retirable task whose dependents and children go too, in one hold
//! of the mutex (batches are counted as the SQL stores would take them).

use std::collections::HashMap;

use super::MemoryTaskStore;
use crate::backend::{finished_by, prunable, retirable};
use crate::{ArchivedTask, PruneReport, Result, RetentionPolicy, Retire, TaskId};

impl MemoryTaskStore {
    pub(super) fn prune(&self, policy: &RetentionPolicy) -> Result<PruneReport> {
        policy.validate()?;
        let mut st = self.state.lock();
        let now = self.clock.now();
        let cutoff = policy.cutoff(now);
        let mut report = PruneReport::new(cutoff, policy.retire);
        let mut below: HashMap<&TaskId, Vec<TaskId>> = HashMap::new();
        for t in st.tasks.values() {
            for d in &t.depends_on {
                below.entry(d).or_default().push(t.id.clone());
            }
            if let Some(p) = &t.parent {
                below.entry(p).or_default().push(t.id.clone());
            }
        }
        let (mut candidates, mut old) = (Vec::new(), 0);
        for t in st.tasks.values().filter(|t| t.created_at <= cutoff) {
            report.scanned += 1;
            old += u64::from(finished_by(t, cutoff));
            if retirable(t, cutoff) {
                let b = below.get(&t.id).cloned().unwrap_or_default();
                candidates.push((t.id.clone(), b));
            }
        }
        let gone = prunable(&candidates);
        report.kept = old - gone.len() as u64;
        report.pruned = gone.len() as u64;
        report.batches = gone.len().div_ceil(policy.batch) as u64;
        for id in gone {
            let history = st.history.remove(&id).unwrap_or_default();
            if let Some(task) = st.tasks.remove(&id)
                && policy.retire == Retire::Archive
            {
                let archived = ArchivedTask {
                    task,
                    history,
                    archived_at: now,
                };
                st.archive.insert(id, archived);
            }
        }
        Ok(report)
    }
}
