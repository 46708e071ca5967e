//! Checks every [`AlertStore`] must pass (feature `testkit`): states committed and loaded,
//! the lease renewed and taken over, commits under a lost lease refused, the outbox delivered
//! once, silences numbered and ended.
//!
//! Each check panics with a message naming what failed. [`check_all`] runs them all; a store's
//! own tests call it with a function making two handles on one fresh, empty store (two
//! [`FileAlertStore`](crate::FileAlertStore)s on one path, two connections to one database).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cloned_ref_to_slice_refs
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_time::Timestamp;

use crate::alert::{Alert, Kind, Matcher, Notification, Silence, State};
use crate::rule::Severity;
use crate::store::{AlertStore, Lease, Outgoing};

/// Two handles on one fresh, empty store.
pub type Pair = (Arc<dyn AlertStore>, Arc<dyn AlertStore>);

/// Runs every check, each on a fresh pair from `fresh`. `ttl` is the lease's duration in the
/// hand-over check: short, since a store whose leases are exclusive makes the second holder
/// wait for it to lapse.
pub fn check_all(fresh: &mut dyn FnMut() -> Pair, ttl: Duration) {
    let (a, _) = fresh();
    states_round_trip(&*a);
    let (a, _) = fresh();
    renewal_keeps_the_token(&*a);
    let (a, b) = fresh();
    takeover_refuses_the_old_lease(&*a, &*b, ttl);
    let (a, _) = fresh();
    outbox_is_delivered_once(&*a);
    let (a, b) = fresh();
    silences_are_shared(&*a, &*b);
}

/// An alert of rule `rule` in `state`, with fingerprint `fp`.
pub fn alert(rule: &str, fp: &str, state: State) -> Alert {
    let now = Timestamp::now();
    Alert {
        rule: rule.to_owned(),
        severity: Severity::High,
        labels: [("team".to_owned(), "agents".to_owned())].into(),
        state,
        value: 1.5,
        summary: format!("{rule} summary"),
        description: String::new(),
        active_since: now,
        since: now,
        notified_at: None,
        fingerprint: fp.to_owned(),
    }
}

/// A firing notification of `a` for `receiver`.
pub fn outgoing(receiver: &str, a: &Alert) -> Outgoing {
    Outgoing {
        receiver: receiver.to_owned(),
        notification: Notification {
            kind: Kind::Firing,
            repeat: false,
            alert: a.clone(),
        },
    }
}

fn lease(store: &dyn AlertStore, holder: &str) -> Lease {
    store
        .lease(holder, Duration::from_secs(60))
        .expect("lease")
        .unwrap_or_else(|| panic!("a free store refused its lease to {holder}"))
}

fn sorted(mut v: Vec<Alert>) -> Vec<Alert> {
    v.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    v
}

/// Changed states are written, replaced and removed by commits, and loaded back as written.
pub fn states_round_trip(store: &dyn AlertStore) {
    assert!(store.load().unwrap().is_empty(), "a fresh store is empty");
    let l = lease(store, "h1");
    let (a, b) = (
        alert("A", "00a", State::Pending),
        alert("B", "00b", State::Firing),
    );
    assert!(store.commit(&l, &[a.clone(), b.clone()], &[], &[]).unwrap());
    assert_eq!(sorted(store.load().unwrap()), [a.clone(), b.clone()]);
    let a2 = Alert {
        state: State::Firing,
        notified_at: Some(Timestamp::now()),
        ..a.clone()
    };
    assert!(
        store
            .commit(&l, &[a2.clone()], &["00b".into()], &[])
            .unwrap()
    );
    assert_eq!(
        store.load().unwrap(),
        [a2],
        "replaced, and the gone one removed"
    );
}

/// The same holder keeps its token and moves its deadline; another holder's token differs.
pub fn renewal_keeps_the_token(store: &dyn AlertStore) {
    let first = lease(store, "h1");
    std::thread::sleep(Duration::from_millis(20));
    let again = lease(store, "h1");
    assert_eq!(first.token, again.token, "a renewal keeps the token");
    assert!(
        again.until >= first.until,
        "a renewal moves the deadline on"
    );
    assert!(store.commit(&again, &[], &[], &[]).unwrap());
    assert!(
        store.commit(&first, &[], &[], &[]).unwrap(),
        "the token is what counts"
    );
}

/// Once `b` holds the lease (at once, or after `a`'s lapsed), `a`'s commit writes nothing and
/// its outbox reads empty, and the rows `a` committed are `b`'s to send.
pub fn takeover_refuses_the_old_lease(a: &dyn AlertStore, b: &dyn AlertStore, ttl: Duration) {
    let la = a.lease("h-a", ttl).unwrap().expect("a free store leases");
    let x = alert("X", "0x1", State::Firing);
    assert!(
        a.commit(&la, &[x.clone()], &[], &[outgoing("r", &x)])
            .unwrap()
    );
    let deadline = Instant::now() + ttl * 10 + Duration::from_secs(5);
    let lb = loop {
        if let Some(l) = b.lease("h-b", ttl).unwrap() {
            break l;
        }
        assert!(Instant::now() < deadline, "the lease never lapsed");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(la.token, lb.token, "a new holder, a new token");
    let y = alert("Y", "0y1", State::Firing);
    assert!(
        !a.commit(&la, &[y.clone()], &["0x1".into()], &[outgoing("r", &y)])
            .unwrap(),
        "a commit under a lost lease is refused"
    );
    assert_eq!(a.load().unwrap(), [x.clone()], "and wrote nothing");
    assert!(a.outbox(&la, 10).unwrap().is_empty(), "nor sends");
    let rows = b.outbox(&lb, 10).unwrap();
    assert_eq!(
        rows.len(),
        1,
        "the old holder's row is the new one's: {rows:?}"
    );
    assert_eq!(rows[0].notification.alert, x);
    assert!(b.commit(&lb, &[], &[], &[]).unwrap());
    // A released lease is free at once.
    b.release(&lb).unwrap();
    let again = a.lease("h-a", ttl).unwrap().expect("free after a release");
    assert_ne!(again.token, lb.token);
    assert!(!b.commit(&lb, &[], &[], &[]).unwrap());
}

/// Rows come oldest first with increasing ids, and once marked delivered never again.
pub fn outbox_is_delivered_once(store: &dyn AlertStore) {
    let l = lease(store, "h1");
    let (a, b) = (
        alert("A", "00a", State::Firing),
        alert("B", "00b", State::Firing),
    );
    assert!(
        store
            .commit(
                &l,
                &[a.clone()],
                &[],
                &[outgoing("r1", &a), outgoing("r2", &a)]
            )
            .unwrap()
    );
    assert!(
        store
            .commit(&l, &[b.clone()], &[], &[outgoing("r1", &b)])
            .unwrap()
    );
    let rows = store.outbox(&l, 10).unwrap();
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.receiver.as_str(), r.notification.alert.rule.as_str()))
        .collect();
    assert_eq!(got, [("r1", "A"), ("r2", "A"), ("r1", "B")]);
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id), "{rows:?}");
    assert_eq!(rows[0].notification.kind, Kind::Firing);
    assert_eq!(store.outbox(&l, 2).unwrap().len(), 2, "n bounds the rows");
    store.delivered(&l, &[rows[0].id, rows[2].id]).unwrap();
    let left = store.outbox(&l, 10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, rows[1].id);
    store.delivered(&l, &[rows[1].id]).unwrap();
    store.delivered(&l, &[rows[1].id]).unwrap();
    assert!(store.outbox(&l, 10).unwrap().is_empty(), "delivered once");
    let c = alert("C", "00c", State::Firing);
    assert!(
        store
            .commit(&l, &[c.clone()], &[], &[outgoing("r1", &c)])
            .unwrap()
    );
    let next = store.outbox(&l, 10).unwrap();
    assert!(next[0].id > rows[2].id, "ids are never reused");
}

/// Silences added on one handle are read on the other, numbered upwards, and end when
/// expired.
pub fn silences_are_shared(a: &dyn AlertStore, b: &dyn AlertStore) {
    let now = Timestamp::now();
    let s = |comment: &str| Silence {
        id: 0,
        matchers: vec![Matcher::parse("alertname=X").unwrap()],
        starts_at: now,
        ends_at: now.saturating_add(Duration::from_secs(3600)),
        comment: comment.to_owned(),
    };
    let first = a.add_silence(&s("one")).unwrap();
    let second = b.add_silence(&s("two")).unwrap();
    assert!(second.id > first.id, "{first:?} {second:?}");
    assert_eq!(first.comment, "one");
    assert_eq!(first.matchers, s("one").matchers);
    let seen = b.silences().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen.iter().find(|x| x.id == first.id), Some(&first));
    assert!(b.expire_silence(first.id, now).unwrap());
    assert!(
        !b.expire_silence(second.id + 100, now).unwrap(),
        "no such silence"
    );
    let ended = a.silences().unwrap();
    let e = ended.iter().find(|x| x.id == first.id);
    assert!(e.is_none_or(|e| e.ends_at <= now), "{ended:?}");
    assert!(
        ended.iter().any(|x| x.id == second.id && x.ends_at > now),
        "the other goes on"
    );
}
