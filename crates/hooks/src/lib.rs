//! Task lifecycle hooks (planned).
//!
//! `oc-hooks` will provide `TaskEvent`, a hook registry with vetoing before-hooks and isolated after-hooks,
//! and `TaskLifecycle`, which composes an `oc_tasks::TaskStore`, the hooks and the task log.
//! See `ARCHITECTURE.md` and issue 5; nothing is exported yet.
