//! The lock manager's schema, one `.sql` file per version, and its server-side functions, one
//! file per function. `{s}` stands for the quoted schema, `{n}` for its bare name (in the
//! notification channel).
//!
//! Shipped text never changes (the checksums in `pinned.rs` fail): a function that changes is
//! written to a new file under `functions/NNNN/`, where `NNNN` is the migration that replaces
//! it, and that migration installs it (`CREATE OR REPLACE FUNCTION`).

/// The name the versions are recorded under in `oc_schema`.
pub(crate) const COMPONENT: &str = "oc-locks";

/// The functions every lock operation is one call of, as migrations 1 and 2 installed them.
macro_rules! functions_0001 {
    () => {
        concat!(
            include_str!("functions/0001/lock_clock.sql"),
            include_str!("functions/0001/lock_now.sql"),
            include_str!("functions/0001/lock_ancestors.sql"),
            include_str!("functions/0001/lock_acquire.sql"),
            include_str!("functions/0001/lock_enqueue.sql"),
            include_str!("functions/0001/lock_abandon.sql"),
            include_str!("functions/0001/lock_own.sql"),
            include_str!("functions/0001/lock_release_owner.sql"),
            include_str!("functions/0001/lock_sweep.sql"),
        )
    };
}

/// The functions of migration 4 (decision 0048): every operation serialised with those on
/// overlapping resources only, tokens and tickets from sequences, counts as rows of changes.
macro_rules! functions_0004 {
    () => {
        concat!(
            include_str!("functions/0004/lock_ancestors.sql"),
            include_str!("functions/0004/lock_serialize.sql"),
            include_str!("functions/0004/lock_time.sql"),
            include_str!("functions/0004/lock_acquire.sql"),
            include_str!("functions/0004/lock_enqueue.sql"),
            include_str!("functions/0004/lock_abandon.sql"),
            include_str!("functions/0004/lock_own.sql"),
            include_str!("functions/0004/lock_release_owner.sql"),
            include_str!("functions/0004/lock_sweep.sql"),
        )
    };
}

/// The functions of migration 5 (decision 0053): the keys taken without a query, each acquire
/// and release one statement once they are held.
macro_rules! functions_0005 {
    () => {
        concat!(
            include_str!("functions/0005/lock_serialize.sql"),
            include_str!("functions/0005/lock_removed.sql"),
            include_str!("functions/0005/lock_acquire.sql"),
            include_str!("functions/0005/lock_own.sql"),
        )
    };
}

/// Each entry moves the schema one version up (entry `i` makes version `i + 1`).
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: locks, waiters, counters, and the functions every operation is one call of.
    concat!(include_str!("migrations/0001_locks.sql"), functions_0001!()),
    // 2: the manager's time is read after its row is locked, and never goes back (the
    // functions of 1 installed again, as this migration shipped).
    concat!(include_str!("migrations/0002_clock.sql"), functions_0001!()),
    // 3: idempotency keys (`oc_locks::IdempotencyKey`), per agent: the request and the locks
    // it was given, written in the transaction of the grant or release.
    include_str!("migrations/0003_lock_keys.sql"),
    // 4: no row every operation takes (decision 0048): keys per resource path instead of the
    // manager's row, tokens and tickets from sequences started above every one handed out,
    // counts as rows of changes; the functions replaced.
    concat!(
        include_str!("migrations/0004_no_hot_row.sql"),
        functions_0004!()
    ),
    // 5: fewer statements per operation (decision 0053): `lock_serialize`, `lock_acquire` and
    // `lock_own` replaced (same signatures and keys), `lock_removed` added; no table changes.
    concat!(
        include_str!("migrations/0005_fewer_statements.sql"),
        functions_0005!()
    ),
];
