//! Waking waiting claims across hosts: one `LISTEN oc_tasks_<schema>` connection per store
//! bumps its [`ReadySignal`] on each notification (every write that leaves a task pending with
//! nothing to wait for notifies, on commit: migration 5), and sets a timed wake when the
//! payload names a `run_at` ahead. A lost connection costs the waiters their poll bound.

use std::sync::Arc;
use std::time::Duration;

use oc_tasks::{ReadySignal, Timestamp};
use tokio_postgres::AsyncMessage;

use crate::options::PgOptions;

/// How long to wait before connecting again after the listening connection is lost.
const RECONNECT: Duration = Duration::from_secs(1);

/// The channel the tasks of `schema` notify on (PostgreSQL cuts names at 63 bytes, and so
/// does the trigger).
pub(super) fn channel(schema: &str) -> String {
    let mut c = format!("oc_tasks_{schema}");
    c.truncate(63);
    c
}

/// What a notification's payload asks of the signal: a wake now (empty, or not a time), or
/// at the `run_at` it names.
fn on_payload(signal: &ReadySignal, payload: &str) {
    match payload.parse::<i64>() {
        Ok(ms) => signal.ready_at(Timestamp::from_millis(ms)),
        Err(_) => signal.bump(),
    }
}

/// Listens for the store's notifications, connecting again a second after the connection is
/// lost, until the runtime stops. Each time it starts listening it bumps the signal, so a
/// waiter that looked before the notifications could reach it looks again.
pub(super) async fn listen(signal: Arc<ReadySignal>, opts: PgOptions) {
    let channel = channel(&opts.schema);
    loop {
        let s = signal.clone();
        let wake = move |m: AsyncMessage| {
            if let AsyncMessage::Notification(n) = m {
                on_payload(&s, n.payload());
            }
        };
        if let Ok((client, driver)) = crate::pool::connect(&opts.config, &opts.tls, wake).await
            && client
                .batch_execute(&format!("LISTEN \"{channel}\""))
                .await
                .is_ok()
        {
            signal.bump();
            let _ = driver.await;
            drop(client);
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_fit_postgres_names_and_payloads_wake() {
        assert_eq!(channel("oc"), "oc_tasks_oc");
        assert_eq!(channel(&"s".repeat(63)).len(), 63);
        let s = ReadySignal::new();
        let g = s.generation();
        on_payload(&s, "");
        assert_ne!(s.generation(), g);
        let g = s.generation();
        on_payload(&s, "not a time");
        assert_ne!(s.generation(), g);
    }
}
