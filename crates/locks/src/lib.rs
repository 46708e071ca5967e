//! Lock manager for AI coding agents (planned).
//!
//! `oc-locks` will provide the `LockManager` trait with an in-memory and a SQLite implementation:
//! exclusive and shared modes, re-entrant holds, fencing tokens, TTL expiry, waiting with a deadline,
//! hierarchical resources and cheap statistics.
//! See `ARCHITECTURE.md` and issue 3; nothing is exported yet.
