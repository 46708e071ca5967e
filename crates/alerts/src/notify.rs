//! Notification channels: the log, a generic JSON webhook, Slack, PagerDuty Events v2, email
//! over SMTP, and Prometheus Alertmanager's v2 API.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use oc_jsonl::{JsonlWriter, WriterOptions};
use oc_time::Timestamp;
use serde_json::{Value, json};

use crate::alert::{Kind, Notification};
use crate::redact::{redact, redact_url};
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
    /// A failure worth retrying (network, timeout, HTTP 5xx or 429); URLs and secret-named
    /// values in `reason` are hidden ([`redact`](crate::redact())).
    pub fn transient(reason: impl Into<String>) -> Self {
        SendError {
            permanent: false,
            reason: redact(&reason.into()),
        }
    }

    /// A failure retrying cannot fix; URLs and secret-named values in `reason` are hidden.
    pub fn permanent(reason: impl Into<String>) -> Self {
        SendError {
            permanent: true,
            reason: redact(&reason.into()),
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
    /// Sends one notification that `key` names: the same key for every attempt and every
    /// sender of this notification, so that a receiver that honours it keeps one. HTTP
    /// channels send it as the `Idempotency-Key` header; by default it is ignored.
    fn send_keyed(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        let _ = key;
        self.send(n)
    }
}

impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    fn send(&self, n: &Notification) -> Result<(), SendError> {
        (**self).send(n)
    }
    fn send_keyed(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        (**self).send_keyed(n, key)
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

/// POSTs JSON with a timeout; 2xx is success, 4xx (but 429) is permanent. Its URL is shown
/// only redacted (in errors and `Debug`): it often is the credential.
#[derive(Clone)]
struct Http {
    url: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("url", &redact_url(&self.url))
            .finish_non_exhaustive()
    }
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

    fn post(&self, body: &Value, key: Option<&str>) -> Result<(), SendError> {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let res = req.send(body.to_string().as_bytes());
        match res {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                Err(SendError::permanent(format!(
                    "{} refused it: HTTP {}",
                    redact_url(&self.url),
                    r.status()
                )))
            }
            Ok(r) => Err(SendError::transient(format!(
                "{}: HTTP {}",
                redact_url(&self.url),
                r.status()
            ))),
            // The library's error may quote the URL too: the whole message is redacted.
            Err(e) => Err(SendError::transient(format!(
                "{}: {e}",
                redact_url(&self.url)
            ))),
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

impl WebhookNotifier {
    fn body(n: &Notification) -> Value {
        json!({
            "version": "1",
            "status": status(n),
            "repeat": n.repeat,
            "alert": n.alert,
        })
    }
}

impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        "webhook"
    }
    fn send(&self, n: &Notification) -> Result<(), SendError> {
        self.0.post(&Self::body(n), None)
    }
    fn send_keyed(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        self.0.post(&Self::body(n), Some(key))
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

impl SlackNotifier {
    fn body(&self, n: &Notification) -> Value {
        let mut body = json!({ "text": Self::text(n) });
        if let Some(c) = &self.channel {
            body["channel"] = json!(c);
        }
        body
    }
}

impl Notifier for SlackNotifier {
    fn kind(&self) -> &'static str {
        "slack"
    }
    fn send(&self, n: &Notification) -> Result<(), SendError> {
        self.http.post(&self.body(n), None)
    }
    fn send_keyed(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        self.http.post(&self.body(n), Some(key))
    }
}

/// PagerDuty Events API v2: `trigger` while firing and `resolve` after, with the alert's
/// fingerprint as the stable `dedup_key`, so one incident opens and closes.
#[derive(Clone)]
pub struct PagerDutyNotifier {
    http: Http,
    routing_key: String,
}

impl std::fmt::Debug for PagerDutyNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The routing key is the integration's credential.
        f.debug_struct("PagerDutyNotifier")
            .field("http", &self.http)
            .field("routing_key", &"***")
            .finish()
    }
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
        self.http.post(&self.event(n), None)
    }
    fn send_keyed(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        self.http.post(&self.event(n), Some(key))
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
        self.http.post(&self.body(n, Timestamp::now()), None)
    }
    fn send_keyed(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        self.http.post(&self.body(n, Timestamp::now()), Some(key))
    }
}

/// Whether a TLS handshake failed (a certificate not trusted or not for this server, no
/// common protocol): `lettre` reports those as network errors, with rustls' error inside.
fn tls_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// How an email receiver protects its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP, then `STARTTLS` before anything else is sent (refused when the server does
    /// not offer it): the submission port, 587.
    StartTls,
    /// TLS from the first byte ("implicit TLS", SMTPS): port 465.
    Tls,
    /// No TLS: only for a relay on the same machine or network.
    None,
}

impl SmtpSecurity {
    /// `starttls`, `tls` or `none`.
    pub fn parse(s: &str) -> Option<SmtpSecurity> {
        match s {
            "starttls" => Some(SmtpSecurity::StartTls),
            "tls" => Some(SmtpSecurity::Tls),
            "none" => Some(SmtpSecurity::None),
            _ => None,
        }
    }
}

/// Where and how an [`EmailNotifier`] sends.
#[derive(Clone)]
pub struct EmailSettings {
    /// The SMTP server, `host:port`.
    pub server: String,
    /// The sender's address.
    pub from: String,
    /// The recipients' addresses.
    pub to: Vec<String>,
    /// `STARTTLS` (the default), implicit TLS (the default on port 465), or none.
    pub security: SmtpSecurity,
    /// The user name and password to authenticate with (`AUTH PLAIN` or `LOGIN`, only over
    /// TLS).
    pub credentials: Option<(String, String)>,
    /// The authority to trust for the server's certificate, as PEM, instead of the web PKI's
    /// roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Time one delivery may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettings")
            .field("server", &self.server)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("ca_pem", &self.ca_pem.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl EmailSettings {
    /// Sending through `server` (`host:port`) from `from` to `to`, over implicit TLS on port
    /// 465 and `STARTTLS` elsewhere, without authentication, trusting the web PKI.
    pub fn new(server: &str, from: &str, to: &[&str]) -> EmailSettings {
        EmailSettings {
            server: server.to_owned(),
            from: from.to_owned(),
            to: to.iter().map(|s| (*s).to_owned()).collect(),
            security: if server.ends_with(":465") {
                SmtpSecurity::Tls
            } else {
                SmtpSecurity::StartTls
            },
            credentials: None,
            ca_pem: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Email through an SMTP server with `lettre` (rustls, `STARTTLS` or implicit TLS, `AUTH`,
/// timeouts): subject `[SEVERITY] title`, the message as a plain-text body. A refusal the
/// server gives as permanent (5xx: a wrong password, an unknown recipient), a certificate that
/// is not trusted or a server without `STARTTLS` is a permanent failure; a closed port, a
/// timeout or a 4xx reply is transient, retried.
pub struct EmailNotifier {
    server: String,
    from: lettre::message::Mailbox,
    to: Vec<lettre::message::Mailbox>,
    transport: lettre::SmtpTransport,
}

impl std::fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("server", &self.server)
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl EmailNotifier {
    /// A notifier with `settings`, checked now: the addresses, the server's `host:port`, the
    /// authority's PEM. The error says which is wrong.
    pub fn new(settings: EmailSettings) -> Result<EmailNotifier, String> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
        let mailbox = |a: &str| {
            a.parse::<lettre::message::Mailbox>()
                .map_err(|e| format!("{a:?} is not an email address: {e}"))
        };
        let from = mailbox(&settings.from)?;
        let to = settings
            .to
            .iter()
            .map(|a| mailbox(a))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err("no recipients".into());
        }
        let (host, port) = settings
            .server
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| format!("server {:?} is not host:port", settings.server))?;
        let tls = || -> Result<TlsParameters, String> {
            let mut b = TlsParameters::builder(host.to_owned());
            if let Some(pem) = &settings.ca_pem {
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| format!("the authority is not a PEM certificate: {e}"))?;
                b = b
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| format!("cannot set up TLS: {e}"))
        };
        let mut builder = lettre::SmtpTransport::builder_dangerous(host)
            .port(port)
            .timeout(Some(settings.timeout))
            .hello_name(lettre::transport::smtp::extension::ClientId::Domain(
                "opencode-tools".into(),
            ))
            .tls(match settings.security {
                SmtpSecurity::StartTls => Tls::Required(tls()?),
                SmtpSecurity::Tls => Tls::Wrapper(tls()?),
                SmtpSecurity::None => Tls::None,
            });
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(EmailNotifier {
            server: settings.server,
            from,
            to,
            transport: builder.build(),
        })
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

    fn message(&self, n: &Notification) -> Result<lettre::Message, SendError> {
        let subject: String = Self::subject(n)
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN);
        for to in &self.to {
            b = b.to(to.clone());
        }
        b.body(message(n).to_owned())
            .map_err(|e| SendError::permanent(format!("cannot build the email: {e}")))
    }
}

impl Notifier for EmailNotifier {
    fn kind(&self) -> &'static str {
        "email"
    }
    fn send(&self, n: &Notification) -> Result<(), SendError> {
        use lettre::Transport;
        let msg = self.message(n)?;
        self.transport.send(&msg).map(drop).map_err(|e| {
            let reason = format!("SMTP {}: {e}", self.server);
            // Retrying cannot fix a refusal the server calls permanent, an untrusted
            // certificate, or a server that cannot do what was asked (no STARTTLS, no AUTH).
            if e.is_permanent() || e.is_tls() || e.is_client() || tls_refused(&e) {
                SendError::permanent(reason)
            } else {
                SendError::transient(reason)
            }
        })
    }
}
