-- Whether a claim that found nothing skipped ready tasks someone held locked (`$1` the time
-- or NULL, `$2` labels required, `$3` labels excluded).
SELECT EXISTS (
    SELECT 1 FROM {s}.tasks c, (SELECT coalesce($1::bigint, {db_now}) AS ms) n
    WHERE {ready} AND c.labels @> $2::text[] AND NOT (c.labels && $3::text[]))
