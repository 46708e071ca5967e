//! Forward-only migrations, one version per component in `oc_schema`.
//!
//! Several crates keep tables in the same database file (`oc-tasks`, `oc-locks`), so the schema
//! version cannot live in the single `PRAGMA user_version`; each component records its own row
//! in `oc_schema(component, version)` instead.

use rusqlite::{Connection, TransactionBehavior};

use crate::Error;

/// Brings `component`'s tables up to `migrations.len()`: entry `i` moves the schema from
/// version `i` to `i + 1` (never edit a shipped entry; append). Runs in one immediate
/// transaction, so that concurrent openers (other processes) wait for each other instead of
/// migrating twice. A file at a newer version is [`Error::SchemaTooNew`], left untouched.
///
/// ```
/// let mut c = rusqlite::Connection::open_in_memory()?;
/// let steps = ["CREATE TABLE t (x INTEGER)", "ALTER TABLE t ADD COLUMN y TEXT"];
/// oc_sqlite::migrate(&mut c, "example", &steps)?;
/// oc_sqlite::migrate(&mut c, "example", &steps)?; // nothing left to do
/// let v: i64 = c.query_row("SELECT version FROM oc_schema WHERE component = 'example'", [], |r| r.get(0))?;
/// assert_eq!(v, 2);
/// assert!(oc_sqlite::migrate(&mut c, "example", &steps[..1]).is_err(), "too new for a build knowing one step");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn migrate(conn: &mut Connection, component: &str, migrations: &[&str]) -> Result<(), Error> {
    let latest = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS oc_schema (
            component TEXT PRIMARY KEY NOT NULL,
            version   INTEGER NOT NULL
        )",
    )?;
    let current: i64 = tx.query_row(
        "SELECT coalesce((SELECT version FROM oc_schema WHERE component = ?1), 0)",
        [component],
        |r| r.get(0),
    )?;
    if current > latest {
        return Err(Error::SchemaTooNew {
            found: current,
            supported: latest,
        });
    }
    for sql in &migrations[usize::try_from(current).unwrap_or(0)..] {
        tx.execute_batch(sql)?;
    }
    tx.execute(
        "INSERT INTO oc_schema (component, version) VALUES (?1, ?2)
         ON CONFLICT (component) DO UPDATE SET version = excluded.version",
        (component, latest),
    )?;
    tx.commit()?;
    Ok(())
}
