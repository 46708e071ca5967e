//! Following a log across hosts: one `LISTEN oc_files_<schema>` connection per store wakes
//! the callers of `wait` for the task a notification names (each append and restore notifies
//! its task once); `wait` also looks every second, so a lost notification costs a second.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio_postgres::AsyncMessage;

use crate::options::PgOptions;

/// How often `wait` looks again without a notification.
pub(super) const POLL: Duration = Duration::from_secs(1);

/// Notifications seen, per task being waited on.
#[derive(Debug, Default)]
pub(super) struct Follow {
    /// Per task waited on: waiters, notifications seen.
    seen: Mutex<HashMap<String, (usize, u64)>>,
    cond: Condvar,
}

impl Follow {
    /// A notification for `task` arrived.
    fn notified(&self, task: &str) {
        let mut seen = self.seen.lock();
        if let Some((_, n)) = seen.get_mut(task) {
            *n += 1;
            drop(seen);
            self.cond.notify_all();
        }
    }

    /// Registers a waiter of `task`; returns the notifications seen so far.
    pub(super) fn enter(&self, task: &str) -> u64 {
        let mut seen = self.seen.lock();
        let e = seen.entry(task.to_owned()).or_insert((0, 0));
        e.0 += 1;
        e.1
    }

    /// Unregisters a waiter of `task`.
    pub(super) fn leave(&self, task: &str) {
        let mut seen = self.seen.lock();
        if let Some(e) = seen.get_mut(task) {
            e.0 -= 1;
            if e.0 == 0 {
                seen.remove(task);
            }
        }
    }

    /// Waits until a notification for `task` beyond `since` arrives or `until`; returns the
    /// notifications seen.
    pub(super) fn wait(&self, task: &str, since: u64, until: Instant) -> u64 {
        let mut seen = self.seen.lock();
        loop {
            let now = seen.get(task).map_or(since, |e| e.1);
            if now != since || Instant::now() >= until {
                return now;
            }
            self.cond.wait_until(&mut seen, until);
        }
    }
}

/// Listens for the store's notifications, connecting again a second after the connection is
/// lost, until the runtime stops.
pub(super) async fn listen(follow: std::sync::Arc<Follow>, opts: PgOptions) {
    let channel = format!("oc_files_{}", opts.schema);
    loop {
        let f = follow.clone();
        let wake = move |m: AsyncMessage| {
            if let AsyncMessage::Notification(n) = m {
                f.notified(n.payload());
            }
        };
        if let Ok((client, driver)) = crate::pool::connect(&opts.config, &opts.tls, wake).await
            && client
                .batch_execute(&format!("LISTEN \"{channel}\""))
                .await
                .is_ok()
        {
            let _ = driver.await;
            drop(client);
        }
        tokio::time::sleep(POLL).await;
    }
}
