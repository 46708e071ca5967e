//! One throwaway server per test process, and a fresh schema per store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use oc_postgres::testkit::{PgServer, postgres_for_tests};
use oc_postgres::{PgLockManager, PgLockOptions, PgOptions, PgTaskStore};
use oc_tasks::{Clock, ManualClock};

static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();

/// The process's server, started on first use; `None` when PostgreSQL is not installed (and
/// `OC_REQUIRE_POSTGRES` is not set).
pub(crate) fn server() -> Option<&'static PgServer> {
    SERVER.get_or_init(postgres_for_tests).as_ref()
}

/// Options for a schema no other store in this process uses.
pub(crate) fn fresh_options(pg: &PgServer) -> PgOptions {
    static N: AtomicUsize = AtomicUsize::new(0);
    let schema = format!("t{}", N.fetch_add(1, Ordering::Relaxed));
    PgOptions::new(&pg.url("postgres"))
        .unwrap()
        .schema(&schema)
        .unwrap()
}

/// A store in a fresh schema on `clock`.
pub(crate) fn task_store(pg: &PgServer, clock: ManualClock) -> PgTaskStore {
    PgTaskStore::connect(fresh_options(pg).clock(Arc::new(clock) as Arc<dyn Clock>)).unwrap()
}

/// A lock manager in a fresh schema on `clock`.
pub(crate) fn lock_manager(pg: &PgServer, clock: ManualClock) -> PgLockManager {
    let opts = fresh_options(pg).clock(Arc::new(clock) as Arc<dyn Clock>);
    PgLockManager::connect(PgLockOptions::new(opts)).unwrap()
}

/// This test binary, to run only `helper` (a test that does a child's part), on the server at
/// `url` in `schema`.
pub(crate) fn child(helper: &str, url: &str, schema: &str) -> std::process::Command {
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", helper, "--nocapture"])
        .env("OC_CHILD_PG_URL", url)
        .env("OC_CHILD_PG_SCHEMA", schema);
    c
}

/// In a child: the options its parent gave; `None` when this process is not a child.
pub(crate) fn child_options() -> Option<PgOptions> {
    let url = std::env::var("OC_CHILD_PG_URL").ok()?;
    let schema = std::env::var("OC_CHILD_PG_SCHEMA").ok()?;
    Some(PgOptions::new(&url).unwrap().schema(&schema).unwrap())
}

/// A server in `net`'s server namespace, listening on its address for the hosts, and the URL
/// the hosts reach it by (this process uses the server's Unix socket instead).
pub(crate) fn server_on(net: &oc_postgres::testkit::Network) -> (PgServer, String) {
    let pg = PgServer::start_with(&oc_postgres::testkit::ServerOptions {
        netns: Some(net.server_netns().to_owned()),
        listen: Some(net.server_addr()),
        trust: Some(net.cidr()),
        ..Default::default()
    })
    .unwrap();
    let url = format!(
        "host={} port=5432 user=postgres dbname=postgres",
        net.server_addr()
    );
    (pg, url)
}
