-- Checkpoint `$2` of task `$1` (created at `$3`, described by `$4`, under idempotency key `$5`
-- or none): its row, and a copy of
-- the task's state, log and decisions as the files a data directory holds (`state.json`,
-- `logs.jsonl` and `decisions.jsonl`, each line ending with a newline), with their lengths and
-- SHA-256. One statement, so one snapshot: the three files are of one moment. Beside the log
-- and the decisions, what a restore would otherwise read from each line (its time, its level
-- or agent), the SHA-256 of the file they describe, and the log's generation and next
-- sequence number (decision 0038). Answers the manifest, in the order a data directory's lists
-- the files.
WITH cp AS (
    INSERT INTO {s}.checkpoints (task, id, created_at, description, idem_key)
    VALUES ($1, $2, $3, $4, $5::text)
    RETURNING task, id
), t AS (
    SELECT f.state, f.generation, f.log_next FROM {s}.file_tasks f WHERE f.task = $1
), logs AS (
    SELECT convert_to(string_agg(e.body || E'\n', '' ORDER BY e.seq), 'UTF8') AS body,
           array_agg(e.ts ORDER BY e.seq) AS ts, array_agg(e.level ORDER BY e.seq) AS levels,
           min(e.seq) AS first
      FROM {s}.log_entries e WHERE e.task = $1 HAVING count(*) > 0
), decs AS (
    SELECT convert_to(string_agg(d.body || E'\n', '' ORDER BY d.seq), 'UTF8') AS body,
           array_agg(d.ts ORDER BY d.seq) AS ts, array_agg(d.agent ORDER BY d.seq) AS agents
      FROM {s}.decisions d WHERE d.task = $1 HAVING count(*) > 0
), files AS (
    SELECT 'state.json' AS name, t.state AS body, false AS lines, NULL::bigint[] AS ts,
           NULL::smallint[] AS levels, NULL::text[] AS agents, NULL::bigint AS generation,
           NULL::bigint AS next_seq
      FROM t WHERE t.state IS NOT NULL
    UNION ALL
    SELECT 'logs.jsonl', logs.body, true, logs.ts, logs.levels, NULL, t.generation,
           CASE WHEN logs.first = 1 THEN t.log_next END
      FROM logs LEFT JOIN t ON true
    UNION ALL
    SELECT 'decisions.jsonl', decs.body, true, decs.ts, NULL, decs.agents, NULL, NULL
      FROM decs
), stored AS (
    INSERT INTO {s}.checkpoint_files (task, id, name, bytes, sha256, body, lines_sha256, ts,
                                      levels, agents, generation, next_seq)
    SELECT cp.task, cp.id, files.name, length(files.body), h.sha256, files.body,
           CASE WHEN files.lines THEN h.sha256 END, files.ts, files.levels, files.agents,
           files.generation, files.next_seq
      FROM cp, files, LATERAL (SELECT sha256(files.body) AS sha256 OFFSET 0) h
    RETURNING name, bytes, sha256
)
SELECT stored.name, stored.bytes, encode(stored.sha256, 'hex')
  FROM stored
 ORDER BY array_position(ARRAY['state.json', 'logs.jsonl', 'decisions.jsonl'], stored.name)
