-- Checkpoint `$2` of task `$1` (created at `$3`, described by `$4`): its row, and a copy of
-- the task's state, log and decisions as the files a data directory holds (`state.json`,
-- `logs.jsonl` and `decisions.jsonl`, each line ending with a newline), with their lengths and
-- SHA-256. One statement, so one snapshot: the three files are of one moment. Answers the
-- manifest, in the order a data directory's lists the files.
WITH cp AS (
    INSERT INTO {s}.checkpoints (task, id, created_at, description) VALUES ($1, $2, $3, $4)
    RETURNING task, id
), files AS (
    SELECT 1 AS ord, 'state.json' AS name, f.state AS body
      FROM {s}.file_tasks f WHERE f.task = $1 AND f.state IS NOT NULL
    UNION ALL
    SELECT 2, 'logs.jsonl', convert_to(string_agg(e.body || E'\n', '' ORDER BY e.seq), 'UTF8')
      FROM {s}.log_entries e WHERE e.task = $1 HAVING count(*) > 0
    UNION ALL
    SELECT 3, 'decisions.jsonl', convert_to(string_agg(d.body || E'\n', '' ORDER BY d.seq), 'UTF8')
      FROM {s}.decisions d WHERE d.task = $1 HAVING count(*) > 0
), stored AS (
    INSERT INTO {s}.checkpoint_files (task, id, name, bytes, sha256, body)
    SELECT cp.task, cp.id, files.name, length(files.body), sha256(files.body), files.body
      FROM cp, files
    RETURNING name, bytes, sha256
)
SELECT stored.name, stored.bytes, encode(stored.sha256, 'hex')
  FROM stored
 ORDER BY array_position(ARRAY['state.json', 'logs.jsonl', 'decisions.jsonl'], stored.name)
