//! [`PgOptions`]: where the server is, the schema, the pool size, the clock, TLS.

use std::sync::Arc;
use std::time::Duration;

use crate::errors::redact;

/// How connections are secured: not at all, or with TLS through rustls (feature `tls`).
#[derive(Clone, Default)]
pub(crate) enum Tls {
    #[default]
    Off,
    #[cfg(feature = "tls")]
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}
/// Connection settings shared by the PostgreSQL stores.
#[derive(Clone)]
pub struct PgOptions {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) schema: String,
    pub(crate) pool_size: usize,
    pub(crate) clock: Option<Arc<dyn oc_time::Clock>>,
    pub(crate) slow_threshold: Duration,
    pub(crate) tls: Tls,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password: only where and what.
        f.debug_struct("PgOptions")
            .field("hosts", &self.config.get_hosts().len())
            .field("dbname", &self.config.get_dbname())
            .field("user", &self.config.get_user())
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("clock", &self.clock.is_some())
            .field("tls", &!matches!(self.tls, Tls::Off))
            .finish()
    }
}

/// Default connections per store.
pub const DEFAULT_POOL_SIZE: usize = 4;
/// Default wait for a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl PgOptions {
    /// Options for the server at `url`: a `postgresql://` URL or `key=value` pairs, as libpq
    /// takes them. Sessions get `statement_timeout=30s`, `lock_timeout=10s` and
    /// `idle_in_transaction_session_timeout=30s`.
    pub fn new(url: &str) -> Result<Self, oc_tasks::Error> {
        let mut config: tokio_postgres::Config =
            url.parse()
                .map_err(|e: tokio_postgres::Error| oc_tasks::Error::InvalidInput {
                    field: "database url",
                    reason: redact(&e.to_string()),
                })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        config.options(
            "-c statement_timeout=30s -c lock_timeout=10s -c idle_in_transaction_session_timeout=30s",
        );
        if config.get_application_name().is_none() {
            config.application_name("oc");
        }
        Ok(PgOptions {
            config,
            schema: "oc".to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            clock: None,
            slow_threshold: oc_tasks::DEFAULT_SLOW_THRESHOLD,
            tls: default_tls(),
        })
    }

    /// The PostgreSQL schema holding the tables (default `oc`): letters, digits and `_`,
    /// starting with a letter or `_`, at most 63 bytes.
    pub fn schema(mut self, schema: &str) -> Result<Self, oc_tasks::Error> {
        let ok = !schema.is_empty()
            && schema.len() <= 63
            && schema.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(oc_tasks::Error::InvalidInput {
                field: "schema",
                reason: format!(
                    "{schema:?} must be 1-63 of [A-Za-z0-9_], not starting with a digit"
                ),
            });
        }
        self.schema = schema.to_ascii_lowercase();
        Ok(self)
    }

    /// Where the server is, for messages: hosts (or socket directories) and ports, the
    /// database and the schema; never a password.
    pub fn target(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports = self.config.get_ports();
        let port = ports.first().copied().unwrap_or(5432);
        format!(
            "{}:{port}/{} (schema {})",
            hosts.join(","),
            self.config
                .get_dbname()
                .or(self.config.get_user())
                .unwrap_or("postgres"),
            self.schema
        )
    }

    /// The schema the tables live in.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// Connections per store (default 4, at least 1).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// Trusts the certificate authorities in the PEM file at `path` (instead of the web PKI's)
    /// for TLS to the server; ask for TLS in the URL (`sslmode=require`).
    #[cfg(feature = "tls")]
    pub fn tls_ca_file(mut self, path: &std::path::Path) -> Result<Self, oc_tasks::Error> {
        use rustls_pki_types::pem::PemObject;
        let bad = |reason: String| oc_tasks::Error::InvalidInput {
            field: "certificate authority file",
            reason: format!("{}: {reason}", path.display()),
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in
            rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?
        {
            roots
                .add(cert.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate in it".into()));
        }
        self.tls = rustls_tls(roots);
        Ok(self)
    }

    /// Calls at least this slow are counted as slow statements (default 1 s, the seed's).
    pub fn slow_threshold(mut self, d: Duration) -> Self {
        self.slow_threshold = d;
        self
    }

    /// How long to wait for the server when connecting (default 5 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.connect_timeout(d);
        self
    }

    /// Reads time from `clock` instead of the database's clock: for tests that move time by
    /// hand. In production leave it unset, so that every host's leases and expiries are
    /// judged by the one database clock.
    pub fn clock(mut self, clock: Arc<dyn oc_time::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
}
/// TLS with the web PKI's roots when built with `tls`; used only where the URL asks for it
/// (`sslmode=prefer`, the default, falls back to plain text when the server has no TLS).
fn default_tls() -> Tls {
    #[cfg(feature = "tls")]
    {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        rustls_tls(roots)
    }
    #[cfg(not(feature = "tls"))]
    Tls::Off
}

#[cfg(feature = "tls")]
fn rustls_tls(roots: rustls::RootCertStore) -> Tls {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    match config {
        Ok(c) => Tls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(c)),
        // ring supports the default protocol versions; nothing else can fail here.
        Err(_) => Tls::Off,
    }
}
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passwords_never_reach_a_message() {
        let opts = PgOptions::new("postgresql://agent:hunter2@db.internal/work").unwrap();
        assert!(!format!("{opts:?}").contains("hunter2"));
        assert!(!opts.target().contains("hunter2"));
        assert_eq!(opts.target(), "db.internal:5432/work (schema oc)");
    }

    #[test]
    fn bad_urls_and_schemas_are_invalid_input() {
        for url in [
            "postgresql://[::1",
            "host=x port=notaport",
            "sslmode=sometimes",
        ] {
            let e = PgOptions::new(url).unwrap_err();
            assert!(e.is_invalid_input(), "{url}: {e}");
        }
        let opts = PgOptions::new("host=/tmp").unwrap();
        for schema in ["", "1abc", "a-b", "a;drop", &"x".repeat(64)] {
            let e = opts.clone().schema(schema).unwrap_err();
            assert!(e.is_invalid_input(), "{schema:?}: {e}");
        }
        assert_eq!(opts.schema("Team_A").unwrap().schema_name(), "team_a");
    }
}
