//! Idempotency keys: retries replay the first result and write nothing; keys are per agent,
//! refuse another request, lapse after [`IDEMPOTENCY_KEY_TTL`]; concurrent retries grant once.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::{Factory, LEASE, id, new, setup, token};
use crate::{
    Error, IDEMPOTENCY_KEY_TTL, IdempotencyKey, LabelFilter, NewTask, Task, TaskFilter, TaskStatus,
    TaskStore,
};

fn key(agent: &str, k: &str) -> IdempotencyKey {
    IdempotencyKey::new(agent, k).unwrap()
}

fn running(s: &dyn TaskStore) -> u64 {
    s.count(&TaskFilter::new().status(TaskStatus::Running))
        .unwrap()
}

fn conflict(e: Error, agent: &str, k: &str) {
    assert!(
        matches!(&e, Error::IdempotencyConflict { agent: a, key } if a == agent && key == k),
        "same key, another request: {e}"
    );
    assert!(e.is_conflict());
}

/// Keyed claims (next and by id), heartbeats, releases, completions, failures and creations:
/// a retry returns the first result and writes nothing; another request under the key is
/// refused; another agent's same key is its own; a refused change records no key.
pub fn check_idempotent_retries(make: Factory<'_>) {
    let (s, _clock) = setup(make);
    let any = LabelFilter::any();
    s.create(new("a").priority(2)).unwrap();
    s.create(new("b").priority(1)).unwrap();

    // Claim next: the retry gives back the same task with the same token.
    let k1 = key("w", "k1");
    let first = s.claim_next_keyed(&k1, "w", LEASE, &any).unwrap();
    assert!(!first.replayed);
    let a = first.value.expect("a is ready");
    assert_eq!(a.id, id("a"));
    let again = s.claim_next_keyed(&k1, "w", LEASE, &any).unwrap();
    assert!(again.replayed, "the retry is a replay");
    assert_eq!(
        again.value.as_ref(),
        Some(&a),
        "the first grant, token and all"
    );
    assert_eq!(running(&*s), 1, "the retry claimed nothing more");
    assert_eq!(s.history(&a.id).unwrap().len(), 2, "created, claimed: once");
    assert_eq!(s.get(&a.id).unwrap().unwrap(), a, "the task did not move");
    conflict(
        s.claim_next_keyed(&k1, "w", LEASE * 2, &any).unwrap_err(),
        "w",
        "k1",
    );
    conflict(
        s.claim_many_keyed(&k1, "w", LEASE, 2, &any).unwrap_err(),
        "w",
        "k1",
    );

    // The same key of another agent is another key.
    let v1 = key("v", "k1");
    let b = s.claim_next_keyed(&v1, "v", LEASE, &any).unwrap();
    assert!(!b.replayed, "another agent's key does not collide");
    let b = b.value.expect("b is ready");
    assert_eq!(b.id, id("b"));

    // Finishing: a retried completion replays and writes no second entry.
    let k2 = key("w", "k2");
    let done = s.complete_keyed(&k2, &a.id, Some(token(&a)), None).unwrap();
    assert!(!done.replayed);
    assert_eq!(done.value.status, TaskStatus::Completed);
    let again = s.complete_keyed(&k2, &a.id, Some(token(&a)), None).unwrap();
    assert!(again.replayed);
    assert_eq!(again.value, done.value);
    assert_eq!(s.history(&a.id).unwrap().len(), 3);
    // A claim retried after its task was finished gives the first grant, not a new claim.
    s.create(new("c")).unwrap();
    let late = s.claim_next_keyed(&k1, "w", LEASE, &any).unwrap();
    assert!(late.replayed);
    assert_eq!(late.value.as_ref(), Some(&a), "the first grant, as it was");
    assert_eq!(
        s.get(&id("c")).unwrap().unwrap().status,
        TaskStatus::Pending,
        "nothing new was claimed"
    );
    // A refused change records no key: the same key then serves a request that succeeds.
    let k3 = key("v", "k3");
    let e = s
        .fail_keyed(&k3, &b.id, Some(token(&b) + 1000), "boom")
        .unwrap_err();
    assert!(matches!(e, Error::LeaseLost { .. }), "{e}");
    let failed = s.fail_keyed(&k3, &b.id, Some(token(&b)), "boom").unwrap();
    assert!(!failed.replayed, "the refused call recorded nothing");
    let again = s.fail_keyed(&k3, &b.id, Some(token(&b)), "boom").unwrap();
    assert!(again.replayed);
    assert_eq!(again.value, failed.value);
    let h = s.history(&b.id).unwrap().len();

    // Claim by id, heartbeat, release.
    let c = id("c");
    let k4 = key("w", "k4");
    let claimed = s.claim_keyed(&k4, &c, "w", LEASE).unwrap().value;
    let again = s.claim_keyed(&k4, &c, "w", LEASE).unwrap();
    assert!(again.replayed);
    assert_eq!(
        token(&again.value),
        token(&claimed),
        "the token did not move"
    );
    let k5 = key("w", "k5");
    let hb = s
        .heartbeat_keyed(&k5, &c, token(&claimed), LEASE * 2)
        .unwrap()
        .value;
    assert!(
        s.heartbeat_keyed(&k5, &c, token(&claimed), LEASE * 2)
            .unwrap()
            .replayed
    );
    assert_eq!(s.get(&c).unwrap().unwrap().version, hb.version);
    let k6 = key("w", "k6");
    let released = s.release_keyed(&k6, &c, token(&claimed)).unwrap().value;
    assert_eq!(released.status, TaskStatus::Pending);
    let again = s.release_keyed(&k6, &c, token(&claimed)).unwrap();
    assert!(again.replayed);
    assert_eq!(s.get(&c).unwrap().unwrap(), released, "nothing changed");
    conflict(
        s.release_keyed(&k6, &c, token(&claimed) + 1).unwrap_err(),
        "w",
        "k6",
    );
    assert_eq!(s.history(&b.id).unwrap().len(), h);

    // Creation: a retry creates nothing, even without an id (the first id comes back).
    let k7 = key("w", "k7");
    let created = s.submit_keyed(&k7, NewTask::new("generated id")).unwrap();
    assert!(!created.replayed && !created.value.duplicate);
    let total = s.count(&TaskFilter::new()).unwrap();
    let again = s.submit_keyed(&k7, NewTask::new("generated id")).unwrap();
    assert!(again.replayed);
    assert_eq!(again.value, created.value, "the first answer");
    assert_eq!(
        s.count(&TaskFilter::new()).unwrap(),
        total,
        "nothing created"
    );
    assert_eq!(s.history(&created.value.task.id).unwrap().len(), 1);
    conflict(
        s.submit_keyed(&k7, NewTask::new("another name"))
            .unwrap_err(),
        "w",
        "k7",
    );
    // One key, one kind of call.
    conflict(
        s.claim_next_keyed(&k7, "w", LEASE, &any).unwrap_err(),
        "w",
        "k7",
    );
}

/// Keys lapse after [`IDEMPOTENCY_KEY_TTL`]: a retry after that runs afresh.
pub fn check_idempotency_keys_lapse(make: Factory<'_>) {
    let (s, clock) = setup(make);
    let k = key("w", "k");
    let first = s.submit_keyed(&k, NewTask::new("x")).unwrap().value;
    clock.advance(IDEMPOTENCY_KEY_TTL - Duration::from_millis(1));
    let kept = s.submit_keyed(&k, NewTask::new("x")).unwrap();
    assert!(kept.replayed, "kept for the whole TTL");
    assert_eq!(kept.value, first);
    clock.advance(Duration::from_millis(1));
    let fresh = s.submit_keyed(&k, NewTask::new("x")).unwrap();
    assert!(!fresh.replayed, "lapsed after the TTL");
    assert_ne!(fresh.value.task.id, first.task.id, "a second task");
    // The lapsed key was replaced: it now replays the second call, and takes a new request
    // once lapsed again.
    assert_eq!(
        s.submit_keyed(&k, NewTask::new("x")).unwrap().value,
        fresh.value
    );
    clock.advance(IDEMPOTENCY_KEY_TTL);
    assert!(!s.submit_keyed(&k, NewTask::new("y")).unwrap().replayed);
}

/// Eight threads retry one keyed claim at once: exactly one grant, every thread told of it.
pub fn check_idempotent_claim_race(make: Factory<'_>) {
    let (s, _clock) = setup(make);
    s.create_many((0..16).map(|i| new(&format!("t{i:02}"))).collect())
        .unwrap();
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let k = key("w", "race");
    let got: Vec<(Task, bool)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let (s, barrier, k) = (s.clone(), barrier.clone(), k.clone());
                sc.spawn(move || {
                    barrier.wait();
                    let r = s
                        .claim_next_keyed(&k, "w", LEASE, &LabelFilter::any())
                        .unwrap();
                    (r.value.expect("work is ready"), r.replayed)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        got.iter().filter(|(_, replayed)| !replayed).count(),
        1,
        "one grant"
    );
    assert!(got.iter().all(|(t, _)| *t == got[0].0), "all told of it");
    assert_eq!(running(&*s), 1);
}

/// What a lost answer needs: a claim that claims nothing under
/// [`TaskStore::claim_many_keyed_granted`] records no key (a waiting claim's attempts), and
/// [`TaskStore::release_forgetting`] gives a keyed claim back and forgets its key in one
/// step, so a retry claims afresh; with a lease no longer the caller's it leaves the task
/// alone and forgets the key all the same.
pub fn check_idempotent_give_back(make: Factory<'_>) {
    let (s, _clock) = setup(make);
    let any = LabelFilter::any();
    let k = key("w", "wait");
    let none = s.claim_many_keyed_granted(&k, "w", LEASE, 1, &any).unwrap();
    assert!(!none.replayed && none.value.is_empty(), "nothing ready");
    s.create(new("a")).unwrap();
    let first = s.claim_many_keyed_granted(&k, "w", LEASE, 1, &any).unwrap();
    assert!(!first.replayed, "finding nothing recorded no key");
    let a = first.value.into_iter().next().expect("a is ready");
    let again = s.claim_next_keyed(&k, "w", LEASE, &any).unwrap();
    assert!(again.replayed, "a grant is recorded");
    assert_eq!(again.value.as_ref(), Some(&a));

    // The answer was lost: given back, the key forgotten, in one step.
    let back = s.release_forgetting(&k, &a.id, token(&a)).unwrap();
    let back = back.expect("the lease was the call's");
    assert_eq!(back.status, TaskStatus::Pending);
    assert_eq!(s.get(&a.id).unwrap().unwrap(), back);
    assert_eq!(
        s.history(&a.id).unwrap().len(),
        3,
        "created, claimed, released"
    );
    let fresh = s.claim_next_keyed(&k, "w", LEASE, &any).unwrap();
    assert!(
        !fresh.replayed,
        "the key was forgotten: the retry claims afresh"
    );
    let fresh = fresh.value.expect("a is ready again");
    assert_eq!(fresh.id, a.id);
    assert!(token(&fresh) > token(&a), "a new grant");

    // A lease that is no longer the call's: the task is left alone, the key forgotten.
    let gone = s.release_forgetting(&k, &a.id, token(&a)).unwrap();
    assert_eq!(gone, None, "the old token's lease is gone");
    assert_eq!(
        s.get(&a.id).unwrap().unwrap(),
        fresh,
        "the task did not move"
    );
    let after = s.claim_next_keyed(&k, "w", LEASE, &any).unwrap();
    assert!(!after.replayed, "forgotten all the same");
    assert_eq!(after.value, None, "nothing else is ready");
    assert_eq!(
        s.release_forgetting(&key("w", "other"), &id("missing"), 1)
            .unwrap(),
        None,
        "a missing task is nobody's lease"
    );

    // A key recorded empty by a plain keyed claim still replays.
    let k2 = key("w", "empty");
    assert!(!s.claim_next_keyed(&k2, "w", LEASE, &any).unwrap().replayed);
    s.create(new("b")).unwrap();
    let replay = s
        .claim_many_keyed_granted(&k2, "w", LEASE, 1, &any)
        .unwrap();
    assert!(
        replay.replayed && replay.value.is_empty(),
        "the first answer"
    );
    assert_eq!(
        s.get(&id("b")).unwrap().unwrap().status,
        TaskStatus::Pending
    );
}
