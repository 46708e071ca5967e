//! Waiting for work on PostgreSQL: a waiting claim on one store handle (a host) is woken by
//! the notification of another handle's write, long before its poll bound; completing a
//! dependency and a backoff ending wake it too.

use std::time::Duration;

use oc_postgres::PgTaskStore;
use oc_tasks::testkit::{LONG_POLL, WAKE_WITHIN, wake_after};
use oc_tasks::{NewTask, RetryPolicy, TaskStatus, TaskStore};

use crate::server::{fresh_options, server};

/// Two handles on one fresh schema, as two hosts would have; `None` without PostgreSQL.
fn two_hosts() -> Option<(PgTaskStore, PgTaskStore)> {
    let Some(pg) = server() else {
        eprintln!("skipped: no PostgreSQL");
        return None;
    };
    let opts = fresh_options(pg);
    let a = PgTaskStore::connect(opts.clone()).unwrap();
    let b = PgTaskStore::connect(opts).unwrap();
    Some((a, b))
}

#[test]
fn a_create_on_another_host_wakes_a_waiter_not_its_poll() {
    let Some((a, b)) = two_hosts() else { return };
    let (got, after) = wake_after(
        &a,
        &["gpu"],
        Duration::from_secs(60),
        Duration::from_millis(500),
        &|| {
            b.create(NewTask::new("plain")).unwrap();
            b.create(NewTask::new("gpu").label("gpu")).unwrap();
        },
    );
    let got = got.expect("the waiter claims the labelled task");
    assert!(got.labels.iter().any(|l| l == "gpu"));
    assert!(
        after < WAKE_WITHIN,
        "woken by NOTIFY, not by the {LONG_POLL:?} poll: {after:?} after the create"
    );
}

#[test]
fn completing_a_dependency_on_another_host_wakes_a_waiter() {
    let Some((a, b)) = two_hosts() else { return };
    let dep = b.create(NewTask::new("dep")).unwrap();
    let c = b.claim_next("b", Duration::from_secs(60)).unwrap().unwrap();
    assert_eq!(c.id, dep.id);
    let after_dep = b
        .create(NewTask::new("after").depends_on(dep.id.clone()))
        .unwrap();
    let (got, after) = wake_after(
        &a,
        &[],
        Duration::from_secs(60),
        Duration::from_millis(500),
        &|| {
            b.complete(&dep.id, c.lease.map(|l| l.token), None).unwrap();
        },
    );
    assert_eq!(got.map(|t| t.id), Some(after_dep.id));
    assert!(after < WAKE_WITHIN, "{after:?}");
}

#[test]
fn a_backoff_ending_wakes_a_waiter_on_another_host() {
    let Some((a, b)) = two_hosts() else { return };
    let t = b
        .create(NewTask::new("flaky").retry(RetryPolicy::backoff(
            Duration::from_millis(1500),
            Duration::from_secs(2),
        )))
        .unwrap();
    let c = b.claim_next("b", Duration::from_secs(60)).unwrap().unwrap();
    let (got, after) = wake_after(
        &a,
        &[],
        Duration::from_secs(60),
        Duration::from_millis(300),
        &|| {
            let failed = b.fail(&t.id, c.lease.map(|l| l.token), "flaked").unwrap();
            assert_eq!(failed.status, TaskStatus::Pending);
            assert!(failed.run_at.is_some(), "backed off");
        },
    );
    assert_eq!(got.map(|x| x.id), Some(t.id));
    assert!(
        after < WAKE_WITHIN,
        "woken at the run_at the notification named: {after:?}"
    );
}
