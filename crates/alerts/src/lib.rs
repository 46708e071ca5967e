//! Alerting for opencode-tools (planned).
//!
//! `oc-alerts` will provide alert rules with pending durations, states, silences and inhibition,
//! an evaluator, and notifiers (log, webhook, Slack, PagerDuty, email, Alertmanager).
//! See `ARCHITECTURE.md` and issue 7; nothing is exported yet.
