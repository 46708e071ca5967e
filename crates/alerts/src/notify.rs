//! Notification channels: the log, a generic JSON webhook, Slack, PagerDuty Events v2, email
//! over SMTP, and Prometheus Alertmanager's v2 API.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use oc_jsonl::{JsonlWriter, WriterOptions};
use oc_time::Timestamp;
use serde_json::{Value, json};

use crate::engine::{Kind, Notification};
use crate::rule::Severity;

/// Why a delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// True when retrying cannot help (the receiver refused the request as malformed).
    pub permanent: bool,
    /// What happened.
    pub reason: String,
}

impl SendError {
    /// A failure worth retrying (network, timeout, HTTP 5xx or 429).
    pub fn transient(reason: impl Into<String>) -> Self {
        SendError {
            permanent: false,
            reason: reason.into(),
        }
    }

    /// A failure retrying cannot fix.
    pub fn permanent(reason: impl Into<String>) -> Self {
        SendError {
            permanent: true,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Delivers notifications somewhere. Implementations block for at most their own timeout;
/// the [`Dispatcher`](crate::Dispatcher) calls them from a worker thread and retries.
pub trait Notifier: Send + Sync {
    /// What it is, for errors and statistics (`slack`, `pagerduty`, …).
    fn kind(&self) -> &'static str;
    /// Sends one notification.
    fn send(&self, n: &Notification) -> Result<(), SendError>;
}

impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    fn send(&self, n: &Notification) -> Result<(), SendError> {
        (**self).send(n)
    }
}

/// The one-line title every channel shows: the summary, or the rule's name.
fn title(n: &Notification) -> &str {
    if n.alert.summary.is_empty() {
        &n.alert.rule
    } else {
        &n.alert.summary
    }
}

/// The message: the description, or the summary.
fn message(n: &Notification) -> &str {
    if n.alert.description.is_empty() {
        title(n)
    } else {
        &n.alert.description
    }
}

/// Appends every notification as a JSON line (`alerts.jsonl` in the data directory, by
/// default), where `oc logs`-style readers can query them.
#[derive(Debug)]
pub struct LogNotifier {
    writer: JsonlWriter,
}

impl LogNotifier {
    /// Appends to `path` (created if needed).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SendError> {
        let writer = JsonlWriter::open(path, WriterOptions::default())
            .map_err(|e| SendError::permanent(e.to_string()))?;
        Ok(LogNotifier { writer })
    }
}

impl Notifier for LogNotifier {
    fn kind(&self) -> &'static str {
        "log"
    }
    fn send(&self, n: &Notification) -> Result<(), SendError> {
        let level = match (n.kind, n.alert.severity) {
            (Kind::Resolved, _) => "info",
            (Kind::Firing, Severity::Low | Severity::Medium) => "warn",
            (Kind::Firing, _) => "error",
        };
        let line = json!({
            "timestamp": Timestamp::now(),
            "level": level,
            "message": format!("alert {}: {}", status(n), title(n)),
            "data": n,
        });
        self.writer
            .append(&line)
            .map_err(|e| SendError::transient(e.to_string()))
    }
}

/// `RESOLVED ` before the texts of a resolution, so that it does not read as a new alert.
fn resolved_prefix(n: &Notification) -> &'static str {
    match n.kind {
        Kind::Firing => "",
        Kind::Resolved => "RESOLVED ",
    }
}

fn status(n: &Notification) -> &'static str {
    match n.kind {
        Kind::Firing => "firing",
        Kind::Resolved => "resolved",
    }
}

/// POSTs JSON with a timeout; 2xx is success, 4xx (but 429) is permanent.
#[derive(Debug, Clone)]
struct Http {
    url: String,
    agent: ureq::Agent,
}

impl Http {
    fn new(url: &str, timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Http {
            url: url.to_owned(),
            agent,
        }
    }

    fn post(&self, body: &Value) -> Result<(), SendError> {
        let res = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes());
        match res {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => Err(
                SendError::permanent(format!("{} refused it: HTTP {}", self.url, r.status())),
            ),
            Ok(r) => Err(SendError::transient(format!(
                "{}: HTTP {}",
                self.url,
                r.status()
            ))),
            Err(e) => Err(SendError::transient(format!("{}: {e}", self.url))),
        }
    }
}

/// Default time one HTTP or SMTP attempt may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A generic JSON webhook: `{"version": "1", "status": "firing"|"resolved", "repeat": bool,
/// "alert": {...}}`, the alert as [`Alert`](crate::Alert) serialises.
#[derive(Debug, Clone)]
pub struct WebhookNotifier(Http);

impl WebhookNotifier {
    /// POSTs to `url`, each attempt within `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Self {
        WebhookNotifier(Http::new(url, timeout))
    }
}

impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        "webhook"
    }
    fn send(&self, n: &Notification) -> Result<(), SendError> {
        self.0.post(&json!({
            "version": "1",
            "status": status(n),
            "repeat": n.repeat,
            "alert": n.alert,
        }))
    }
}

/// A Slack incoming webhook: `{"text": "[severity] title: message"}` (the seed's format),
/// with the channel when one is set.
#[derive(Debug, Clone)]
pub struct SlackNotifier {
    http: Http,
    channel: Option<String>,
}

impl SlackNotifier {
    /// POSTs to the incoming-webhook `url`; `channel` overrides the webhook's own.
    pub fn new(url: &str, channel: Option<&str>, timeout: Duration) -> Self {
        SlackNotifier {
            http: Http::new(url, timeout),
            channel: channel.map(str::to_owned),
        }
    }

    /// The text Slack shows.
    pub fn text(n: &Notification) -> String {
        let resolved = resolved_prefix(n);
        format!(
            "{resolved}[{}] {}: {}",
            n.alert.severity,
            title(n),
            message(n)
        )
    }
}

impl Notifier for SlackNotifier {
    fn kind(&self) -> &'static str {
        "slack"
    }
    fn send(&self, n: &Notification) -> Result<(), SendError> {
        let mut body = json!({ "text": Self::text(n) });
        if let Some(c) = &self.channel {
            body["channel"] = json!(c);
        }
        self.http.post(&body)
    }
}

/// PagerDuty Events API v2: `trigger` while firing and `resolve` after, with the alert's
/// fingerprint as the stable `dedup_key`, so one incident opens and closes.
#[derive(Debug, Clone)]
pub struct PagerDutyNotifier {
    http: Http,
    routing_key: String,
}

/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

impl PagerDutyNotifier {
    /// Sends events for the integration `routing_key` to `url` ([`PAGERDUTY_URL`]).
    pub fn new(url: &str, routing_key: &str, timeout: Duration) -> Self {
        PagerDutyNotifier {
            http: Http::new(url, timeout),
            routing_key: routing_key.to_owned(),
        }
    }

    /// The event body.
    pub fn event(&self, n: &Notification) -> Value {
        let a = &n.alert;
        let dedup_key = format!("oc-{}", a.fingerprint);
        match n.kind {
            Kind::Resolved => json!({
                "routing_key": self.routing_key,
                "event_action": "resolve",
                "dedup_key": dedup_key,
            }),
            Kind::Firing => json!({
                "routing_key": self.routing_key,
                "event_action": "trigger",
                "dedup_key": dedup_key,
                "payload": {
                    "summary": format!("{}: {}", title(n), message(n)),
                    "source": "opencode-tools",
                    "severity": match a.severity {
                        Severity::Critical => "critical",
                        Severity::High => "error",
                        Severity::Medium => "warning",
                        Severity::Low => "info",
                    },
                    "timestamp": a.active_since,
                    "component": a.rule,
                    "custom_details": { "value": a.value, "labels": a.labels },
                },
            }),
        }
    }
}

impl Notifier for PagerDutyNotifier {
    fn kind(&self) -> &'static str {
        "pagerduty"
    }
    fn send(&self, n: &Notification) -> Result<(), SendError> {
        self.http.post(&self.event(n))
    }
}

/// Prometheus Alertmanager, through `POST /api/v2/alerts`: labels (with `alertname` and
/// `severity`), annotations (`summary`, `description`), `startsAt` and `endsAt`.
/// Alertmanager then groups, routes and silences on its side.
///
/// Alertmanager resolves an alert by itself at its `endsAt` (or after its `resolve_timeout`,
/// 5 minutes, when there is none), so a firing alert is sent with `endsAt` = now + the hold:
/// longer than the engine's repeat interval, so that the repeat arrives first. A resolution
/// carries the time it resolved.
#[derive(Debug, Clone)]
pub struct AlertmanagerNotifier {
    http: Http,
    hold: Duration,
}

impl AlertmanagerNotifier {
    /// Sends to the Alertmanager at `base` (`http://127.0.0.1:9093`); firing alerts are held
    /// 4 hours and 2 minutes (the default repeat interval, and a margin).
    pub fn new(base: &str, timeout: Duration) -> Self {
        let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
        AlertmanagerNotifier {
            http: Http::new(&url, timeout),
            hold: Duration::from_secs(4 * 3600 + 120),
        }
    }

    /// Holds firing alerts for `d` (set it above the engine's repeat interval).
    #[must_use]
    pub fn hold(mut self, d: Duration) -> Self {
        self.hold = d;
        self
    }

    /// The body at `now`: a list with the one alert.
    pub fn body(&self, n: &Notification, now: Timestamp) -> Value {
        let a = &n.alert;
        let ends = match n.kind {
            Kind::Firing => now.saturating_add(self.hold),
            Kind::Resolved => a.since,
        };
        json!([{
            "labels": a.match_labels(),
            "annotations": { "summary": title(n), "description": message(n) },
            "startsAt": a.active_since.to_rfc3339_seconds(),
            "endsAt": ends.to_rfc3339_seconds(),
        }])
    }
}

impl Notifier for AlertmanagerNotifier {
    fn kind(&self) -> &'static str {
        "alertmanager"
    }
    fn send(&self, n: &Notification) -> Result<(), SendError> {
        self.http.post(&self.body(n, Timestamp::now()))
    }
}

/// Email over plain SMTP (a local relay; no TLS or authentication): subject
/// `[SEVERITY] title`, the message as body.
#[derive(Debug, Clone)]
pub struct EmailNotifier {
    server: String,
    from: String,
    to: Vec<String>,
    timeout: Duration,
}

impl EmailNotifier {
    /// Sends through the SMTP server at `server` (`host:port`) from `from` to `to`.
    pub fn new(server: &str, from: &str, to: &[&str], timeout: Duration) -> Self {
        EmailNotifier {
            server: server.to_owned(),
            from: from.to_owned(),
            to: to.iter().map(|s| (*s).to_owned()).collect(),
            timeout,
        }
    }

    /// The subject line.
    pub fn subject(n: &Notification) -> String {
        let resolved = resolved_prefix(n);
        format!(
            "{resolved}[{}] {}",
            n.alert.severity.as_str().to_uppercase(),
            title(n)
        )
    }

    fn dialogue(&self, n: &Notification) -> std::io::Result<Result<(), SendError>> {
        let addr = self
            .server
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let stream = TcpStream::connect_timeout(&addr, self.timeout)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut w = stream;
        // Reads a (possibly multi-line) reply; returns its code.
        let mut reply = |expect: u16| -> std::io::Result<Result<(), SendError>> {
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(Err(SendError::transient("the SMTP server hung up")));
                }
                if line.as_bytes().get(3) != Some(&b'-') {
                    break;
                }
            }
            let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            Ok(match code {
                c if c == expect => Ok(()),
                500..=599 => Err(SendError::permanent(format!("SMTP: {}", line.trim_end()))),
                _ => Err(SendError::transient(format!("SMTP: {}", line.trim_end()))),
            })
        };
        macro_rules! step {
            ($expect:expr) => {
                if let Err(e) = reply($expect)? {
                    return Ok(Err(e));
                }
            };
            ($cmd:expr, $expect:expr) => {
                w.write_all($cmd.as_bytes())?;
                step!($expect)
            };
        }
        step!(220);
        step!("HELO opencode-tools\r\n", 250);
        step!(format!("MAIL FROM:<{}>\r\n", self.from), 250);
        for to in &self.to {
            step!(format!("RCPT TO:<{to}>\r\n"), 250);
        }
        step!("DATA\r\n", 354);
        let mut body = String::new();
        for line in message(n).lines() {
            // Dot-stuffing: a line starting with a dot gets another.
            if line.starts_with('.') {
                body.push('.');
            }
            body.push_str(line);
            body.push_str("\r\n");
        }
        let subject: String = Self::subject(n)
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let msg = format!(
            "From: <{}>\r\nTo: {}\r\nSubject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}.\r\n",
            self.from,
            self.to
                .iter()
                .map(|t| format!("<{t}>"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        step!(msg, 250);
        w.write_all(b"QUIT\r\n")?;
        Ok(Ok(()))
    }
}

impl Notifier for EmailNotifier {
    fn kind(&self) -> &'static str {
        "email"
    }
    fn send(&self, n: &Notification) -> Result<(), SendError> {
        match self.dialogue(n) {
            Ok(res) => res,
            Err(e) => Err(SendError::transient(format!("SMTP {}: {e}", self.server))),
        }
    }
}
