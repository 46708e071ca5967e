//! The one FFI call rusqlite does not wrap: `sqlite3_db_status` for page-cache hits and misses.
#![allow(unsafe_code)]

use rusqlite::{Connection, ffi};

/// Page-cache hits and misses of `conn` since it opened.
pub(crate) fn cache_hits_misses(conn: &Connection) -> (u64, u64) {
    (
        db_status(conn, ffi::SQLITE_DBSTATUS_CACHE_HIT),
        db_status(conn, ffi::SQLITE_DBSTATUS_CACHE_MISS),
    )
}

fn db_status(conn: &Connection, op: std::ffi::c_int) -> u64 {
    let mut current: std::ffi::c_int = 0;
    let mut highwater: std::ffi::c_int = 0;
    // SAFETY: `conn.handle()` is a valid open `sqlite3*` for as long as `conn` is borrowed, the
    // two out-pointers point at live locals, and `sqlite3_db_status` only reads counters of that
    // connection (it is safe to call on a connection in use by this thread, which owns it here).
    let rc = unsafe { ffi::sqlite3_db_status(conn.handle(), op, &mut current, &mut highwater, 0) };
    if rc == ffi::SQLITE_OK {
        u64::try_from(current).unwrap_or(0)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cache_activity() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        for _ in 0..10 {
            let _: i64 = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        }
        let (hits, _misses) = cache_hits_misses(&conn);
        assert!(hits > 0, "reads of a cached page count as hits");
    }
}
