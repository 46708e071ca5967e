//! TLS to the server through rustls: a server with a certificate from a test authority,
//! clients that trust it (and one that does not), over TCP on 127.0.0.1.

use oc_postgres::testkit::{PgServer, ServerOptions, server_binaries};
use oc_postgres::{PgOptions, PgTaskStore};
use oc_tasks::{NewTask, TaskStore};

#[test]
fn tls_connections_verify_the_server_and_refuse_an_unknown_one() {
    if server_binaries().is_none() && std::env::var_os("OC_REQUIRE_POSTGRES").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    oc_lincheck::pki::test_pki(d).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pg = PgServer::start_with(&ServerOptions {
        listen: Some("127.0.0.1".into()),
        trust: Some("127.0.0.1/32".into()),
        port: Some(port),
        tls: Some((d.join("server.crt"), d.join("server.key"))),
        ..ServerOptions::default()
    })
    .unwrap();
    let url = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=require");

    let trusted = PgOptions::new(&url)
        .unwrap()
        .tls_ca_file(&d.join("ca.crt"))
        .unwrap();
    let store = PgTaskStore::connect(trusted).unwrap();
    store.create(NewTask::new("over tls")).unwrap();
    assert_eq!(store.stats(0).unwrap().total, 1);
    let encrypted = pg
        .psql("postgres", "SELECT count(*) FROM pg_stat_ssl WHERE ssl")
        .unwrap();
    assert!(encrypted.trim().parse::<u32>().unwrap() >= 1, "{encrypted}");

    let fooled = PgOptions::new(&url)
        .unwrap()
        .tls_ca_file(&d.join("stranger.crt"))
        .unwrap();
    let e = PgTaskStore::connect(fooled).unwrap_err();
    assert!(
        !e.is_retryable(),
        "a certificate we do not trust is not worth retrying: {e}"
    );
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    let missing = PgOptions::new(&url)
        .unwrap()
        .tls_ca_file(&d.join("nope.crt"));
    assert!(missing.unwrap_err().is_invalid_input());
}
