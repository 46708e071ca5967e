//! `sqlite.*`: the raw SQLite workloads on the benchmark schema.

use oc_benches::sqlite;

use crate::{Figures, MIB, per_sec};

/// sqlite.*: the original's sequence on one fresh database per run.
pub(crate) fn figures(runs: usize) -> anyhow::Result<()> {
    let mut f = Figures::default();
    for _ in 0..runs {
        let mut db = sqlite::open_fresh()?;
        let d = sqlite::batch_insert(&mut db)?;
        f.add("sqlite.batch_insert", "rows/s", per_sec(sqlite::ROWS, d));
        let d = sqlite::single_read(&mut db)?;
        f.add("sqlite.single_read", "reads/s", per_sec(sqlite::READS, d));
        let d = sqlite::range_query(&mut db)?;
        f.add(
            "sqlite.range_query",
            "queries/s",
            per_sec(sqlite::RANGES, d),
        );
        let d = sqlite::update(&mut db)?;
        f.add("sqlite.update", "updates/s", per_sec(sqlite::UPDATES, d));
        let (d, rows) = sqlite::full_scan(&mut db)?;
        f.add("sqlite.full_scan", "rows/s", per_sec(rows, d));
        let (main, wal) = sqlite::sizes(&db);
        f.add("sqlite.db_size", "MiB", main as f64 / MIB);
        f.add("sqlite.db_size_wal", "MiB", wal as f64 / MIB);
        let closed = sqlite::size_after_close(db);
        f.add("sqlite.db_size_closed", "MiB", closed as f64 / MIB);
    }
    f.emit();
    Ok(())
}
