-- The checkpoint of task `$1` created under idempotency key `$2`, as `checkpoint_page.sql`
-- gives each.
SELECT c.id, c.created_at, c.description,
       coalesce(array_agg(f.name ORDER BY array_position(ARRAY['state.json', 'logs.jsonl', 'decisions.jsonl'], f.name)) FILTER (WHERE f.name IS NOT NULL), '{}'),
       coalesce(array_agg(f.bytes ORDER BY array_position(ARRAY['state.json', 'logs.jsonl', 'decisions.jsonl'], f.name)) FILTER (WHERE f.name IS NOT NULL), '{}'),
       coalesce(array_agg(encode(f.sha256, 'hex') ORDER BY array_position(ARRAY['state.json', 'logs.jsonl', 'decisions.jsonl'], f.name)) FILTER (WHERE f.name IS NOT NULL), '{}')
  FROM {s}.checkpoints c
  LEFT JOIN {s}.checkpoint_files f ON f.task = c.task AND f.id = c.id
 WHERE c.task = $1 AND c.idem_key = $2
 GROUP BY c.id, c.created_at, c.description
