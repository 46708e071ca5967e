//! Crash-safe JSONL logs and per-task persistence (planned).
//!
//! `oc-jsonl` will provide `JsonlWriter` with selectable durability, a streaming `JsonlReader`,
//! rotation, and the per-task `state.json`, `logs.jsonl`, `decisions.jsonl` and checkpoint layers.
//! See `ARCHITECTURE.md` and issue 4; nothing is exported yet.
