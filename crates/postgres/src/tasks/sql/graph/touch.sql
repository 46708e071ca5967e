-- A write to task `$1` that is not a transition (an edge added or dropped): the version
-- bumped, `waiting` moved by `$2`, at `$3` (or the database's time).
UPDATE {s}.tasks SET waiting = waiting + $2, version = version + 1,
    updated_at = coalesce($3::bigint, {db_now}) WHERE id = $1
