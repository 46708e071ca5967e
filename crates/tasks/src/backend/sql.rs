//! SQL text the SQL stores (SQLite, PostgreSQL) share, so their listings agree: the search
//! pattern, the order of a listing and the keyset condition of its next page. Written for the
//! columns `priority`, `created_at` and `id` of the task tables, in the dialect both accept.

use crate::Order;

/// The SQL `LIKE` pattern (with `\` as the escape character) that matches `text` anywhere.
pub fn like_anywhere(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The SQL `ORDER BY` of a listing in `order` (over the columns `priority`, `created_at`, `id`),
/// with a leading space.
pub fn order_by_sql(order: Order) -> &'static str {
    match order {
        Order::Newest => " ORDER BY created_at DESC, id DESC",
        Order::Oldest => " ORDER BY created_at, id",
        Order::Priority => " ORDER BY priority DESC, created_at, id",
    }
}

/// The SQL condition "after the cursor" in `order`, given the placeholders of the cursor's
/// position; `priority` is only asked for in priority order (an unused placeholder has no type).
pub fn after_sql(
    order: Order,
    created: &str,
    id: &str,
    priority: impl FnOnce() -> String,
) -> String {
    match order {
        Order::Newest => format!("(created_at, id) < ({created}, {id})"),
        Order::Oldest => format!("(created_at, id) > ({created}, {id})"),
        Order::Priority => {
            // `priority <= p` first: a range start an index in claim order can seek to.
            let p = priority();
            format!(
                "(priority <= {p} AND (priority < {p} OR (created_at, id) > ({created}, {id})))"
            )
        }
    }
}
