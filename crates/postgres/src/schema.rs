//! Forward-only migrations in the store's own PostgreSQL schema, run once even when several
//! hosts start at once.

use tokio_postgres::Client;

/// Runs `migrations[current..]` of `component` in `schema`, in one transaction serialised by
/// an advisory lock on the schema, and returns the version found before. `{s}` in a migration
/// stands for the schema. A schema newer than `migrations` is refused: `Err(Ok(found))`.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: &str,
    component: &str,
    migrations: &[&str],
) -> Result<Result<i64, i64>, tokio_postgres::Error> {
    let latest = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    // Almost always the schema is current: say so with two reads, without the lock or DDL.
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("\"{schema}\".oc_schema")],
        )
        .await?
        .get(0);
    if exists {
        let current: Option<i64> = client
            .query_opt(
                &format!("SELECT version FROM \"{schema}\".oc_schema WHERE component = $1"),
                &[&component],
            )
            .await?
            .map(|r| r.get(0));
        if current == Some(latest) {
            return Ok(Ok(latest));
        }
    }
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&crate::keys::migrate_key(schema)],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         CREATE TABLE IF NOT EXISTS \"{schema}\".oc_schema (
             component text PRIMARY KEY,
             version   bigint NOT NULL
         );"
    ))
    .await?;
    let current: i64 = tx
        .query_opt(
            &format!("SELECT version FROM \"{schema}\".oc_schema WHERE component = $1"),
            &[&component],
        )
        .await?
        .map(|r| r.get(0))
        .unwrap_or(0);
    if current > latest {
        return Ok(Err(current));
    }
    let quoted = format!("\"{schema}\"");
    for sql in &migrations[usize::try_from(current).unwrap_or(0)..] {
        tx.batch_execute(&sql.replace("{s}", &quoted)).await?;
    }
    tx.execute(
        &format!(
            "INSERT INTO \"{schema}\".oc_schema (component, version) VALUES ($1, $2)
             ON CONFLICT (component) DO UPDATE SET version = excluded.version"
        ),
        &[&component, &latest],
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(current))
}
