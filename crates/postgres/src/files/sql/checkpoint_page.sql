-- `$3` checkpoints of task `$1` after skipping the newest `$2`, newest first, with their
-- files' names, lengths and hashes in the order a data directory's manifest lists them.
SELECT c.id, c.created_at, c.description,
       coalesce(array_agg(f.name ORDER BY array_position(ARRAY['state.json', 'logs.jsonl', 'decisions.jsonl'], f.name)) FILTER (WHERE f.name IS NOT NULL), '{}'),
       coalesce(array_agg(f.bytes ORDER BY array_position(ARRAY['state.json', 'logs.jsonl', 'decisions.jsonl'], f.name)) FILTER (WHERE f.name IS NOT NULL), '{}'),
       coalesce(array_agg(encode(f.sha256, 'hex') ORDER BY array_position(ARRAY['state.json', 'logs.jsonl', 'decisions.jsonl'], f.name)) FILTER (WHERE f.name IS NOT NULL), '{}')
  FROM (SELECT * FROM {s}.checkpoints WHERE task = $1 ORDER BY id DESC OFFSET $2 LIMIT $3) c
  LEFT JOIN {s}.checkpoint_files f ON f.task = c.task AND f.id = c.id
 GROUP BY c.id, c.created_at, c.description
 ORDER BY c.id DESC
