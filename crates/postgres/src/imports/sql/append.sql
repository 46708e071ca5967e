-- Appends the lines `$7` (times `$4`, levels `$5`, agents `$6`; NULL for a malformed line) to
-- stream `$3` of task `$1` (`$2` of them, all of one request) after what it holds, through the group commit's own
-- function, in the caller's transaction. Answers the first sequence number given.
SELECT first_seq FROM {s}.files_append(ARRAY[$1::text], ARRAY[NULL::text], ARRAY[$3::text],
    array_fill(1, ARRAY[$2::integer]), $4::bigint[], $5::smallint[], $6::text[], $7::text[],
    NULL::bigint, false)
