//! Creating, checking and changing tasks: the state machine, updates, check-and-set, deletes.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Factory, LEASE, START, id, new, setup, token};
use crate::{
    Change, Error, NewTask, Task, TaskFilter, TaskPatch, TaskQuery, TaskStatus, TaskStore,
};

/// Creating stores every field as given, with version 1 and the clock's time.
pub fn check_create_and_get(make: Factory<'_>) {
    let (s, _) = setup(make);
    let t = s
        .create(
            new("a")
                .description("the description")
                .owner("agent-1")
                .priority(7)
                .meta("lang", "rust")
                .meta("nested", json!({"k": [1, 2]}))
                .max_attempts(5),
        )
        .unwrap();
    assert_eq!(t.status, TaskStatus::Pending);
    assert_eq!(t.version, 1);
    assert_eq!((t.created_at, t.updated_at), (START, START));
    let got = s.get(&t.id).unwrap().expect("created task is found");
    assert_eq!(got, t, "get returns exactly what create returned");
    assert_eq!(got.description.as_deref(), Some("the description"));
    assert_eq!(got.metadata["nested"], json!({"k": [1, 2]}));
    assert_eq!(got.max_attempts, 5);
    assert_eq!(s.get(&id("missing")).unwrap(), None);
    assert!(s.require(&id("missing")).unwrap_err().is_not_found());
    let generated = s.create(NewTask::new("no id")).unwrap();
    assert!(generated.id.as_str().starts_with("task_"));
}

/// Bad input is refused with a typed error and stores nothing.
pub fn check_rejects_bad_input(make: Factory<'_>) {
    let (s, _) = setup(make);
    for bad in [
        NewTask::new(""),
        NewTask::new("x").max_attempts(0),
        NewTask::new("a\0b"),
    ] {
        let e = s.create(bad).unwrap_err();
        assert!(e.is_invalid_input(), "{e}");
    }
    let t = s.create(new("a")).unwrap();
    let e = s.claim(&t.id, "", LEASE).unwrap_err();
    assert!(e.is_invalid_input(), "empty owner: {e}");
    let e = s.claim(&t.id, "a", Duration::ZERO).unwrap_err();
    assert!(e.is_invalid_input(), "zero lease: {e}");
    let e = s.list(&TaskQuery::default().limit(0)).unwrap_err();
    assert!(e.is_invalid_input(), "zero limit: {e}");
    assert_eq!(s.count(&TaskFilter::new()).unwrap(), 1);
    assert_eq!(
        s.get(&t.id).unwrap().unwrap(),
        t,
        "a refused change leaves the task alone"
    );
}

/// Duplicate ids are refused; `create_many` inserts all or nothing.
pub fn check_duplicates_and_batches(make: Factory<'_>) {
    let (s, _) = setup(make);
    s.create(new("a")).unwrap();
    let e = s.create(new("a")).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    let e = s
        .create_many(vec![new("b"), new("c"), new("a")])
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    let e = s.create_many(vec![new("d"), new("d")]).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert_eq!(
        s.count(&TaskFilter::new()).unwrap(),
        1,
        "failed batches insert nothing"
    );
    let made = s
        .create_many((0..50).map(|i| new(&format!("n{i:02}"))).collect())
        .unwrap();
    assert_eq!(made.len(), 50);
    assert_eq!(s.count(&TaskFilter::new()).unwrap(), 51);
}

/// Every (status, change) pair follows the state machine; refused changes alter nothing.
pub fn check_state_machine(make: Factory<'_>) {
    let (s, _) = setup(make);
    let changes = || {
        vec![
            Change::Start { agent: "ag".into() },
            Change::Claim {
                owner: "ag".into(),
                ttl: LEASE,
            },
            Change::Complete {
                token: None,
                result: Some(json!(1)),
            },
            Change::Fail {
                token: None,
                error: "boom".into(),
            },
            Change::Cancel,
            Change::Retry,
        ]
    };
    // Bring a fresh task into each status through started (lease-free) runs.
    let into = |name: &str, status: TaskStatus| -> Task {
        let t = s.create(new(name)).unwrap();
        let path: &[Change] = match status {
            TaskStatus::Pending => &[],
            TaskStatus::Running => &[Change::Start { agent: "ag".into() }],
            TaskStatus::Completed => &[
                Change::Start { agent: "ag".into() },
                Change::Complete {
                    token: None,
                    result: None,
                },
            ],
            TaskStatus::Failed => &[
                Change::Start { agent: "ag".into() },
                Change::Fail {
                    token: None,
                    error: "e".into(),
                },
            ],
            TaskStatus::Cancelled => &[Change::Cancel],
        };
        let mut t = t;
        for c in path {
            t = s.apply(&t.id, c.clone(), None).unwrap();
        }
        assert_eq!(t.status, status);
        t
    };
    let mut n = 0;
    for from in TaskStatus::ALL {
        for change in changes() {
            n += 1;
            let t = into(&format!("sm{n}"), from);
            let to = change.target().expect("status changes only");
            match s.apply(&t.id, change.clone(), None) {
                Ok(after) => {
                    assert!(
                        from.can_transition_to(to),
                        "{from} -{}-> allowed",
                        change.name()
                    );
                    assert_eq!(after.status, to);
                    assert_eq!(after.version, t.version + 1, "version bumps");
                }
                Err(e) => {
                    assert!(
                        !from.can_transition_to(to),
                        "{from} -{}-> refused: {e}",
                        change.name()
                    );
                    assert!(
                        matches!(e, Error::InvalidTransition { from: f, to: tt, .. } if f == from && tt == to),
                        "{e}"
                    );
                    assert_eq!(
                        s.get(&t.id).unwrap().unwrap(),
                        t,
                        "refused change wrote nothing"
                    );
                }
            }
        }
    }
}

/// A change writes only its own fields; metadata patches merge.
pub fn check_updates_keep_untouched_fields(make: Factory<'_>) {
    let (s, clock) = setup(make);
    let t = s
        .create(
            new("a")
                .description("d")
                .owner("o")
                .priority(3)
                .meta("keep", 1),
        )
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let t = s.claim(&t.id, "agent", LEASE).unwrap();
    assert_eq!((t.description.as_deref(), t.priority), (Some("d"), 3));
    assert_eq!(t.metadata["keep"], json!(1));
    assert_eq!(
        t.owner.as_deref(),
        Some("agent"),
        "claiming makes the agent the owner"
    );
    assert_eq!(
        t.started_at,
        Some(START.saturating_add(Duration::from_secs(1)))
    );
    let t = s
        .update(
            &t.id,
            TaskPatch::new().merge_metadata(
                json!({"added": true, "keep": null})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .unwrap();
    assert_eq!(Value::Object(t.metadata.clone()), json!({"added": true}));
    assert_eq!(
        t.lease.map(|l| l.token),
        Some(token(&t)),
        "update keeps the lease"
    );
    assert_eq!(t.status, TaskStatus::Running);
    let t = s.update(&t.id, TaskPatch::new().priority(9)).unwrap();
    assert_eq!((t.priority, t.description.as_deref()), (9, Some("d")));
    clock.advance(Duration::from_secs(2));
    let done = s
        .complete(&t.id, Some(token(&t)), Some(json!({"ok": true})))
        .unwrap();
    assert_eq!(done.description.as_deref(), Some("d"));
    assert_eq!(Value::Object(done.metadata.clone()), json!({"added": true}));
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert_eq!(done.run_duration(), Some(Duration::from_secs(2)));
    assert_eq!(done.version, 5);
    assert_eq!(s.get(&t.id).unwrap().unwrap(), done);
}

/// `expect_version` makes any change a check-and-set.
pub fn check_version_check_and_set(make: Factory<'_>) {
    let (s, _) = setup(make);
    let t = s.create(new("a")).unwrap();
    let e = s
        .apply(&t.id, Change::Cancel, Some(t.version + 1))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::VersionMismatch {
                expected: 2,
                actual: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_conflict());
    let e = s.delete(&t.id, Some(9)).unwrap_err();
    assert!(matches!(e, Error::VersionMismatch { .. }), "{e}");
    assert_eq!(s.get(&t.id).unwrap().unwrap(), t);
    let t2 = s.apply(&t.id, Change::Cancel, Some(t.version)).unwrap();
    assert_eq!(t2.version, 2);
}

/// Deleting returns the task and removes it.
pub fn check_delete(make: Factory<'_>) {
    let (s, _) = setup(make);
    let t = s.create(new("d")).unwrap();
    let t = s.start(&t.id, "w").unwrap();
    assert_eq!(s.delete(&t.id, None).unwrap(), t);
    assert_eq!(s.get(&t.id).unwrap(), None);
    assert!(s.delete(&t.id, None).unwrap_err().is_not_found());
    assert!(s.cancel(&t.id).unwrap_err().is_not_found());
}
