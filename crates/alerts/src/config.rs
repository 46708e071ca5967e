//! The TOML alert configuration: built-in thresholds, declarative rules, the repeat interval.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::deliver::{Receiver, RetryPolicy};
use crate::notify::{
    AlertmanagerNotifier, DEFAULT_TIMEOUT, EmailNotifier, EmailSettings, LogNotifier,
    PAGERDUTY_URL, PagerDutyNotifier, SlackNotifier, SmtpSecurity, WebhookNotifier,
};
use crate::redact::{redact, redact_url, secret_name};
use crate::rule::{Condition, Op, Rule, Selector, Severity, Thresholds, builtin_rules};
use crate::{Error, Result};

/// Rules and evaluation settings, from [`Config::load`] or [`Config::default`] (the
/// built-in rules with the seed's thresholds).
///
/// ```
/// let cfg = oc_alerts::Config::parse(r#"
/// repeat_interval = "1h"
/// [thresholds]
/// failure_rate = 0.25
///
/// [[rule]]
/// name = "ManyPendingTasks"
/// severity = "medium"
/// for = "10m"
/// metric = "opencode_tasks"
/// match = { status = "pending" }
/// op = ">"
/// threshold = 100
/// labels = { team = "agents" }
/// summary = "{{value}} tasks wait"
/// "#, "inline")?;
/// assert_eq!(cfg.rules.len(), 7); // six built-in, one declared
/// assert_eq!(cfg.repeat_interval, std::time::Duration::from_secs(3600));
/// # Ok::<(), oc_alerts::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Every rule, built-in ones first.
    pub rules: Vec<Rule>,
    /// How often a still-firing alert is re-sent.
    pub repeat_interval: Duration,
    /// How often the background evaluator runs.
    pub interval: Duration,
    /// Where notifications go; none configured: the log only.
    pub receivers: Vec<ReceiverSpec>,
    /// How deliveries are retried.
    pub retry: RetryPolicy,
}

/// One `[[receiver]]` of the configuration. Its `Debug` shows the URL redacted
/// ([`redact_url`](crate::redact_url)) and no secret (routing key, password).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSpec {
    /// Unique name (`oc alerts test NAME`).
    pub name: String,
    /// `log`, `webhook`, `slack`, `pagerduty`, `email` or `alertmanager`.
    pub kind: String,
    /// Endpoint: the webhook, Slack or PagerDuty URL, or the Alertmanager base URL.
    pub url: Option<String>,
    /// Slack: the channel.
    pub channel: Option<String>,
    /// PagerDuty: the integration's routing key.
    pub routing_key: Option<String>,
    /// Email: the SMTP server, `host:port`.
    pub server: Option<String>,
    /// Email: the sender.
    pub from: Option<String>,
    /// Email: the recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Email: `starttls` (the default; `tls` on port 465) or `tls` (implicit TLS), or `none`
    /// for a relay on the same machine.
    pub security: Option<String>,
    /// Email: the user name to authenticate as (with a password from `password_env` or
    /// `password_file`).
    pub username: Option<String>,
    /// Email: the environment variable holding the password.
    pub password_env: Option<String>,
    /// Email: the file holding the password (its first line; a relative path is under the
    /// data directory).
    pub password_file: Option<String>,
    /// Email: a PEM file of the authority that signed the server's certificate, trusted
    /// instead of the web PKI's roots (a relative path is under the data directory).
    pub ca_file: Option<String>,
    /// Refused with a clear message: secrets stay out of the configuration.
    #[serde(default)]
    pub password: Option<String>,
    /// Log: the JSONL file (default `alerts.jsonl` in the data directory).
    pub path: Option<String>,
    /// Lowest severity received (default by kind: see [`Receiver::new`]).
    pub min_severity: Option<Severity>,
    /// Time one attempt may take (default 10 s).
    pub timeout: Option<String>,
}

impl std::fmt::Debug for ReceiverSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("ReceiverSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("channel", &self.channel)
            .field("routing_key", &hidden(&self.routing_key))
            .field("server", &self.server)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .field("password", &hidden(&self.password))
            .field("path", &self.path)
            .field("min_severity", &self.min_severity)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrySpec {
    attempts: Option<u32>,
    backoff: Option<String>,
    max_backoff: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rules: builtin_rules(&Thresholds::default()),
            repeat_interval: Duration::from_secs(4 * 3600),
            interval: Duration::from_secs(60),
            receivers: Vec::new(),
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default = "yes")]
    builtin: bool,
    #[serde(default)]
    thresholds: Thresholds,
    repeat_interval: Option<String>,
    interval: Option<String>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleSpec>,
    #[serde(default, rename = "receiver")]
    receivers: Vec<ReceiverSpec>,
    retry: Option<RetrySpec>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    severity: Severity,
    #[serde(rename = "for")]
    pending: Option<String>,
    metric: Option<String>,
    #[serde(default, rename = "match")]
    matches: BTreeMap<String, String>,
    numerator: Option<Selector>,
    denominator: Option<Selector>,
    op: Op,
    threshold: f64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    summary: Option<String>,
    #[serde(default)]
    description: String,
}

fn duration(what: &str, s: &str) -> Result<Duration> {
    humantime::parse_duration(s).map_err(|e| Error::Invalid {
        what: what.to_owned(),
        reason: format!("{s:?} is not a duration like 90s, 5m or 4h: {e}"),
    })
}

/// A TOML error as a message that names the line, column and key but never shows the text
/// there: the parser's own rendering quotes the offending line (`password = hunter2`), so it
/// is rebuilt from the message and position, with anything quoted from the line's value hidden.
fn parse_error(e: &toml::de::Error, text: &str) -> String {
    let mut message = e.message().trim().replace('\n', "; ");
    let Some(span) = e.span() else {
        return redact(&message);
    };
    let at = span.start.min(text.len());
    let before = text.get(..at).unwrap_or("");
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, v)| (k.trim().trim_matches('"'), v));
    let secret = |k: &str| {
        let last = k.rsplit('.').next().unwrap_or(k);
        secret_name(last) || last == "url"
    };
    if let Some((_, value)) = key.filter(|(k, _)| secret(k)) {
        // `invalid type: integer `31337``: a secret's value quoted from the line is hidden.
        let quoted: Vec<String> = message
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        for q in quoted {
            if !q.is_empty() && value.contains(q.as_str()) {
                message = message.replace(&format!("`{q}`"), "`***`");
            }
        }
    }
    let place = match key {
        Some((k, _)) if !k.is_empty() && k.len() <= 64 && !k.contains(char::is_control) => {
            let secret = if secret(k) {
                ", a secret whose value is never shown"
            } else {
                ""
            };
            format!("line {line_no}, column {column}, key `{k}`{secret}")
        }
        _ => format!("line {line_no}, column {column}"),
    };
    redact(&format!("{place}: {message}"))
}

impl Config {
    /// Reads and checks the TOML file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            origin: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and checks TOML `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let spec: FileSpec = toml::from_str(text).map_err(|e| Error::Config {
            origin: origin.to_owned(),
            reason: parse_error(&e, text),
        })?;
        // A reason may quote a value: a URL or a secret-named field in it is hidden.
        let in_file = |e: Error| Error::Config {
            origin: origin.to_owned(),
            reason: redact(&e.to_string()),
        };
        let mut cfg = Config {
            rules: if spec.builtin {
                builtin_rules(&spec.thresholds)
            } else {
                Vec::new()
            },
            ..Config::default()
        };
        if let Some(r) = &spec.repeat_interval {
            cfg.repeat_interval = duration("repeat_interval", r).map_err(in_file)?;
        }
        if let Some(i) = &spec.interval {
            cfg.interval = duration("interval", i).map_err(in_file)?;
            if cfg.interval.is_zero() {
                return Err(in_file(Error::Invalid {
                    what: "interval".into(),
                    reason: "must be above zero".into(),
                }));
            }
        }
        for r in spec.rules {
            let rule = r.into_rule().map_err(in_file)?;
            rule.validate().map_err(in_file)?;
            cfg.rules.push(rule);
        }
        if let Some(r) = spec.retry {
            if let Some(a) = r.attempts {
                cfg.retry.attempts = a.max(1);
            }
            if let Some(b) = &r.backoff {
                cfg.retry.backoff = duration("retry.backoff", b).map_err(in_file)?;
            }
            if let Some(m) = &r.max_backoff {
                cfg.retry.max_backoff = duration("retry.max_backoff", m).map_err(in_file)?;
            }
        }
        for r in &spec.receivers {
            r.check().map_err(in_file)?;
            if spec.receivers.iter().filter(|o| o.name == r.name).count() > 1 {
                return Err(in_file(Error::Invalid {
                    what: format!("receiver {:?}", r.name),
                    reason: "defined twice".into(),
                }));
            }
        }
        cfg.receivers = spec.receivers;
        Ok(cfg)
    }

    /// The configured receivers, or a log receiver on `<data_dir>/alerts.jsonl` when none is.
    pub fn build_receivers(&self, data_dir: &Path) -> Result<Vec<Receiver>> {
        if self.receivers.is_empty() {
            let log =
                LogNotifier::open(data_dir.join("alerts.jsonl")).map_err(|e| Error::Invalid {
                    what: "receiver \"log\"".into(),
                    reason: e.reason,
                })?;
            return Ok(vec![Receiver::new("log", log)]);
        }
        // Alertmanager holds a firing alert until the repeat is due, and a margin.
        let hold = self.repeat_interval + 2 * self.interval;
        self.receivers
            .iter()
            .map(|r| r.build(data_dir, hold))
            .collect()
    }
}

impl ReceiverSpec {
    /// An email receiver's notifier: its settings, with the password read from the
    /// environment or its file and the authority from its file under `data_dir`; with no
    /// `data_dir` (checking the configuration), everything but the secrets and files.
    fn email(
        &self,
        data_dir: Option<&Path>,
        timeout: Duration,
    ) -> std::result::Result<EmailNotifier, String> {
        if self.password.is_some() {
            return Err(
                "a password does not belong in the configuration: name the environment \
                        variable that holds it (`password_env`) or a file (`password_file`)"
                    .into(),
            );
        }
        let need = |v: &Option<String>, field: &str| {
            v.clone()
                .ok_or_else(|| format!("an email receiver needs `{field}`"))
        };
        if self.to.is_empty() {
            return Err("an email receiver needs `to`".into());
        }
        let to: Vec<&str> = self.to.iter().map(String::as_str).collect();
        let mut settings = EmailSettings::new(
            &need(&self.server, "server")?,
            &need(&self.from, "from")?,
            &to,
        );
        settings.timeout = timeout;
        if let Some(s) = &self.security {
            settings.security = SmtpSecurity::parse(s)
                .ok_or_else(|| format!("security {s:?} is not starttls, tls or none"))?;
        }
        let password = match (&self.password_env, &self.password_file) {
            (Some(_), Some(_)) => {
                return Err("give the password once: `password_env` or `password_file`".into());
            }
            (Some(_), None) | (None, Some(_)) if data_dir.is_none() => Some(String::new()),
            (Some(var), None) => Some(std::env::var(var).map_err(|_| {
                format!("the environment variable {var:?} (password_env) is not set")
            })?),
            (None, Some(file)) => {
                let path = data_dir.unwrap_or(Path::new("")).join(file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    format!(
                        "cannot read the password file {} (password_file): {e}",
                        path.display()
                    )
                })?;
                Some(text.lines().next().unwrap_or("").to_owned())
            }
            (None, None) => None,
        };
        settings.credentials = match (&self.username, password) {
            (Some(u), Some(p)) => {
                if settings.security == SmtpSecurity::None {
                    return Err(
                        "a password is only sent over TLS: set `security` to starttls or tls"
                            .into(),
                    );
                }
                Some((u.clone(), p))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(
                    "`username` needs a password (`password_env` or `password_file`)".into(),
                );
            }
            (None, Some(_)) => return Err("a password needs `username`".into()),
        };
        if let (Some(file), Some(dir)) = (&self.ca_file, data_dir) {
            let path = dir.join(file);
            settings.ca_pem = Some(std::fs::read(&path).map_err(|e| {
                format!(
                    "cannot read the authority {} (ca_file): {e}",
                    path.display()
                )
            })?);
        }
        EmailNotifier::new(settings)
    }

    /// Checks kind, required fields and timeout, touching no file.
    fn check(&self) -> Result<()> {
        if self.password.is_some() {
            // Whatever the kind: a password left in the file is refused, not ignored.
            return Err(Error::Invalid {
                what: format!("receiver {:?}", self.name),
                reason: "a password does not belong in the configuration: name the environment \
                         variable that holds it (`password_env`) or a file (`password_file`)"
                    .into(),
            });
        }
        if self.kind == "email" {
            // The secrets and the authority are read when the receiver is built.
            return self
                .email(None, DEFAULT_TIMEOUT)
                .map(drop)
                .map_err(|reason| Error::Invalid {
                    what: format!("receiver {:?}", self.name),
                    reason,
                });
        }
        if self.kind == "log" {
            if let Some(t) = &self.timeout {
                duration(&format!("receiver {:?}: timeout", self.name), t)?;
            }
            return Ok(());
        }
        self.build(Path::new(""), Duration::ZERO).map(drop)
    }

    /// The receiver this describes; a relative log path is under `data_dir`; an Alertmanager
    /// holds firing alerts for `hold` (see [`AlertmanagerNotifier`]).
    pub fn build(&self, data_dir: &Path, hold: Duration) -> Result<Receiver> {
        let bad = |reason: String| Error::Invalid {
            what: format!("receiver {:?}", self.name),
            reason,
        };
        let need = |v: &Option<String>, field: &str| {
            v.clone()
                .ok_or_else(|| bad(format!("a {} receiver needs `{field}`", self.kind)))
        };
        let timeout = match &self.timeout {
            Some(t) => duration(&format!("receiver {:?}: timeout", self.name), t)?,
            None => DEFAULT_TIMEOUT,
        };
        let receiver = match self.kind.as_str() {
            "log" => {
                let path = data_dir.join(self.path.as_deref().unwrap_or("alerts.jsonl"));
                Receiver::new(
                    &self.name,
                    LogNotifier::open(path).map_err(|e| bad(e.reason))?,
                )
            }
            "webhook" => Receiver::new(
                &self.name,
                WebhookNotifier::new(&need(&self.url, "url")?, timeout),
            ),
            "slack" => Receiver::new(
                &self.name,
                SlackNotifier::new(&need(&self.url, "url")?, self.channel.as_deref(), timeout),
            ),
            "pagerduty" => Receiver::new(
                &self.name,
                PagerDutyNotifier::new(
                    self.url.as_deref().unwrap_or(PAGERDUTY_URL),
                    &need(&self.routing_key, "routing_key")?,
                    timeout,
                ),
            ),
            "email" => Receiver::new(
                &self.name,
                self.email(Some(data_dir), timeout).map_err(bad)?,
            ),
            "alertmanager" => Receiver::new(
                &self.name,
                AlertmanagerNotifier::new(&need(&self.url, "url")?, timeout).hold(hold),
            ),
            other => {
                return Err(bad(format!(
                    "unknown kind {other:?} (log, webhook, slack, pagerduty, email, alertmanager)"
                )));
            }
        };
        Ok(match self.min_severity {
            Some(s) => receiver.min_severity(s),
            None => receiver,
        })
    }
}

impl RuleSpec {
    fn into_rule(self) -> Result<Rule> {
        let bad = |reason: &str| Error::Invalid {
            what: format!("rule {:?}", self.name),
            reason: reason.to_owned(),
        };
        let condition = match (self.metric, self.numerator, self.denominator) {
            (Some(metric), None, None) => Condition::metric(
                Selector {
                    metric,
                    labels: self.matches,
                },
                self.op,
                self.threshold,
            ),
            (None, Some(n), Some(d)) if self.matches.is_empty() => {
                Condition::ratio(n, d, self.op, self.threshold)
            }
            _ => {
                return Err(bad(
                    "give either `metric` (with an optional `match`) or both `numerator` and \
                     `denominator`",
                ));
            }
        };
        let mut rule = Rule::new(&self.name, self.severity, condition);
        if let Some(p) = &self.pending {
            rule.pending = duration(&format!("rule {:?}: for", self.name), p)?;
        }
        rule.labels = self.labels;
        if let Some(s) = self.summary {
            rule.summary = s;
        }
        rule.description = self.description;
        Ok(rule)
    }
}
