//! Trying again when another connection holds the database.

use std::time::Duration;

/// Attempts at an operation that keeps finding the database busy (the first one included).
pub const BUSY_ATTEMPTS: u32 = 5;

/// SQLite reported the database busy or locked: another connection (thread or process) holds
/// what this one needs, and trying again later may succeed.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Runs `f` up to [`BUSY_ATTEMPTS`] times while its error is one `busy` says is busy, sleeping
/// 20, 40, 80 and 160 ms between attempts. The busy timeout already waited inside each attempt;
/// this covers what SQLite does not retry itself (opening, WAL recovery, lock upgrades).
///
/// Generic over the caller's error type so that each store keeps its own; `busy` is usually a
/// function item, so nothing is boxed or called indirectly on the path of every statement.
///
/// ```
/// let mut calls = 0;
/// let out: Result<u32, rusqlite::Error> = oc_sqlite::retry_busy(oc_sqlite::is_busy, || {
///     calls += 1;
///     Ok(7)
/// });
/// assert_eq!((out.unwrap(), calls), (7, 1));
/// ```
#[inline]
pub fn retry_busy<T, E>(
    busy: impl Fn(&E) -> bool,
    mut f: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut attempt = 0;
    loop {
        match f() {
            Err(e) if attempt + 1 < BUSY_ATTEMPTS && busy(&e) => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(10 << attempt));
            }
            other => return other,
        }
    }
}
