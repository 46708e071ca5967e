//! Email through a real SMTP server (`aiosmtpd`, run by the Python of `OC_SMTP_PYTHON`) that
//! requires STARTTLS and authentication, with a certificate from an authority the test makes:
//! delivery, a wrong password (permanent), an untrusted certificate (permanent), a closed port
//! (transient), implicit TLS, a plain local relay, and the configuration's secrets.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use oc_alerts::notify::{EmailNotifier, EmailSettings, Notifier, SmtpSecurity};
use oc_alerts::{Config, Kind, Severity};
use serde_json::Value;

use crate::channels::note;

/// The Python with `aiosmtpd` installed, or `None` to skip (a failure under
/// `OC_REQUIRE_SMTP_SERVER`).
fn python() -> Option<PathBuf> {
    match std::env::var_os("OC_SMTP_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("OC_REQUIRE_SMTP_SERVER").is_some() => {
            panic!("OC_REQUIRE_SMTP_SERVER is set but OC_SMTP_PYTHON names no Python")
        }
        None => None,
    }
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `tests/smtp/server.py`; stopped (its stdin closed, then killed) when dropped.
struct Smtp {
    child: Child,
    out: BufReader<ChildStdout>,
    addr: String,
}

impl Smtp {
    fn start(python: &Path, certs: &Path, mode: &[&str]) -> Smtp {
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(["--port", &port.to_string()])
            .arg("--cert")
            .arg(certs.join("server.crt"))
            .arg("--key")
            .arg(certs.join("server.key"))
            .args(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "READY", "the SMTP server did not start");
        Smtp {
            child,
            out,
            addr: format!("127.0.0.1:{port}"),
        }
    }

    /// The next message the server accepted.
    fn received(&mut self) -> Value {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn settings(addr: &str, certs: &Path, security: SmtpSecurity, password: &str) -> EmailSettings {
    let mut s = EmailSettings::new(
        addr,
        "oc@example.com",
        &["ops@example.com", "dev@example.com"],
    );
    s.security = security;
    s.credentials = Some(("oc".into(), password.into()));
    s.ca_pem = Some(std::fs::read(certs.join("ca.crt")).unwrap());
    s.timeout = Duration::from_secs(10);
    s
}

#[test]
fn email_goes_out_over_starttls_with_authentication_and_refusals_are_classified() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    oc_lincheck::pki::test_pki(dir.path()).unwrap();
    let mut smtp = Smtp::start(&py, dir.path(), &[]);
    let mut n = note(Kind::Firing, Severity::Critical);
    n.alert.description = "line one\n.starts with a dot".into();

    let email = EmailNotifier::new(settings(
        &smtp.addr,
        dir.path(),
        SmtpSecurity::StartTls,
        "s3cret",
    ));
    email.unwrap().send(&n).unwrap();
    let got = smtp.received();
    assert_eq!(got["from"], "oc@example.com");
    assert_eq!(
        got["to"],
        serde_json::json!(["ops@example.com", "dev@example.com"])
    );
    assert_eq!(
        (got["tls"].as_bool(), got["authenticated"].as_bool()),
        (Some(true), Some(true))
    );
    let data = got["data"].as_str().unwrap();
    assert!(
        data.contains("Subject: [CRITICAL] High task failure rate"),
        "{data}"
    );
    assert!(
        data.contains("line one\r\n.starts with a dot"),
        "the dot survives: {data:?}"
    );

    let wrong = EmailNotifier::new(settings(
        &smtp.addr,
        dir.path(),
        SmtpSecurity::StartTls,
        "nope",
    ))
    .unwrap()
    .send(&n)
    .unwrap_err();
    assert!(wrong.permanent, "a wrong password is permanent: {wrong}");
    assert!(wrong.reason.contains("535"), "{wrong}");

    let mut untrusted = settings(&smtp.addr, dir.path(), SmtpSecurity::StartTls, "s3cret");
    untrusted.ca_pem = Some(std::fs::read(dir.path().join("stranger.crt")).unwrap());
    let err = EmailNotifier::new(untrusted).unwrap().send(&n).unwrap_err();
    assert!(
        err.permanent,
        "an untrusted certificate is permanent: {err}"
    );

    // Without TLS the server refuses to authenticate, and the password is never sent.
    let mut plain = settings(&smtp.addr, dir.path(), SmtpSecurity::None, "s3cret");
    plain.credentials = None;
    let err = EmailNotifier::new(plain).unwrap().send(&n).unwrap_err();
    assert!(err.permanent, "{err}");

    let closed = format!("127.0.0.1:{}", free_port());
    let err = EmailNotifier::new(settings(
        &closed,
        dir.path(),
        SmtpSecurity::StartTls,
        "s3cret",
    ))
    .unwrap()
    .send(&n)
    .unwrap_err();
    assert!(!err.permanent, "a closed port is transient: {err}");
    assert!(err.reason.contains(&closed), "{err}");
}

#[test]
fn implicit_tls_and_a_plain_local_relay_deliver() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    oc_lincheck::pki::test_pki(dir.path()).unwrap();
    let mut tls = Smtp::start(&py, dir.path(), &["--implicit"]);
    let n = note(Kind::Resolved, Severity::High);
    EmailNotifier::new(settings(&tls.addr, dir.path(), SmtpSecurity::Tls, "s3cret"))
        .unwrap()
        .send(&n)
        .unwrap();
    let got = tls.received();
    assert_eq!(got["tls"].as_bool(), Some(true));
    assert!(
        got["data"]
            .as_str()
            .unwrap()
            .contains("Subject: RESOLVED [HIGH] High task failure rate")
    );

    let mut relay = Smtp::start(&py, dir.path(), &["--plain"]);
    let mut s = EmailSettings::new(&relay.addr, "oc@example.com", &["ops@example.com"]);
    s.security = SmtpSecurity::None;
    EmailNotifier::new(s).unwrap().send(&n).unwrap();
    assert_eq!(relay.received()["tls"].as_bool(), Some(false));
}

/// Implicit TLS on the SMTPS port, STARTTLS elsewhere, unless told otherwise.
#[test]
fn security_defaults_follow_the_port() {
    let of =
        |server: &str| EmailSettings::new(server, "a@example.com", &["b@example.com"]).security;
    assert_eq!(of("smtp.example.com:465"), SmtpSecurity::Tls);
    assert_eq!(of("smtp.example.com:587"), SmtpSecurity::StartTls);
    assert_eq!(of("127.0.0.1:25"), SmtpSecurity::StartTls);
    for bad in ["no-port", ":25", "host:smtp"] {
        let e = EmailNotifier::new(EmailSettings::new(bad, "a@example.com", &["b@example.com"]));
        assert!(e.is_err_and(|e| e.contains(bad)), "{bad}");
    }
    let e = EmailNotifier::new(EmailSettings::new(
        "h:25",
        "not an address",
        &["b@example.com"],
    ));
    assert!(e.is_err_and(|e| e.contains("not an address")));
}

/// The configuration names where secrets are, never holds them; its mistakes are clear.
#[test]
fn the_configuration_keeps_secrets_out_and_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = |extra: &str| {
        format!(
            "[[receiver]]\nname = \"mail\"\nkind = \"email\"\nserver = \"smtp.example.com:587\"\n\
             from = \"oc@example.com\"\nto = [\"ops@example.com\"]\nusername = \"oc\"\n{extra}"
        )
    };
    let build = |toml: &str| -> Result<(), String> {
        let cfg = Config::parse(toml, "test").map_err(|e| e.to_string())?;
        cfg.build_receivers(dir.path())
            .map(drop)
            .map_err(|e| e.to_string())
    };
    let e = build(&receiver("password = \"hunter2\"")).unwrap_err();
    assert!(
        e.contains("password_env") && e.contains("password_file"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "the secret is not repeated: {e}");
    let e = build(&receiver(
        "password_env = \"OC_TEST_SURELY_UNSET_PASSWORD\"",
    ))
    .unwrap_err();
    assert!(e.contains("OC_TEST_SURELY_UNSET_PASSWORD"), "{e}");
    let e = build(&receiver("password_file = \"missing.txt\"")).unwrap_err();
    assert!(e.contains("missing.txt"), "{e}");
    let e = build(&receiver("password_file = \"pw.txt\"\nsecurity = \"none\"")).unwrap_err();
    assert!(
        e.contains("only sent over TLS") || e.contains("pw.txt"),
        "{e}"
    );
    std::fs::File::create(dir.path().join("pw.txt"))
        .unwrap()
        .write_all(b"s3cret\n")
        .unwrap();
    let e = build(&receiver("password_file = \"pw.txt\"\nsecurity = \"none\"")).unwrap_err();
    assert!(e.contains("only sent over TLS"), "{e}");
    let e = build(&receiver("password_file = \"pw.txt\"\nsecurity = \"ssl\"")).unwrap_err();
    assert!(e.contains("\"ssl\""), "{e}");
    build(&receiver("password_file = \"pw.txt\"")).unwrap();
    let e = build(&receiver(
        "password_file = \"pw.txt\"\nca_file = \"none.pem\"",
    ))
    .unwrap_err();
    assert!(e.contains("none.pem"), "{e}");
}

/// The configuration's email receiver, with its password from a file and the test's
/// authority, delivers through the real server.
#[test]
fn a_configured_email_receiver_delivers() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    oc_lincheck::pki::test_pki(dir.path()).unwrap();
    let mut smtp = Smtp::start(&py, dir.path(), &[]);
    std::fs::write(dir.path().join("smtp-password"), "s3cret\n").unwrap();
    let cfg = Config::parse(
        &format!(
            "[[receiver]]\nname = \"mail\"\nkind = \"email\"\nserver = \"{}\"\n\
             from = \"oc@example.com\"\nto = [\"ops@example.com\"]\nusername = \"oc\"\n\
             password_file = \"smtp-password\"\nca_file = \"ca.crt\"\ntimeout = \"10s\"\n",
            smtp.addr
        ),
        "test",
    )
    .unwrap();
    let dispatcher = oc_alerts::Dispatcher::new(
        cfg.build_receivers(dir.path()).unwrap(),
        oc_alerts::RetryPolicy::default(),
    )
    .unwrap();
    dispatcher
        .send_now("mail", &note(Kind::Firing, Severity::High))
        .unwrap()
        .unwrap();
    assert_eq!(smtp.received()["authenticated"].as_bool(), Some(true));
}
