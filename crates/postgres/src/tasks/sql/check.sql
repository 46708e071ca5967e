-- What the schema's constraints cannot check: the lease-token counter and the highest token in
-- use, up to ten tasks whose count of unfinished dependencies disagrees with their edges, and
-- the statuses whose kept count disagrees with the tasks.
SELECT (SELECT value FROM {s}.tasks_meta WHERE key = 'lease_token'),
       (SELECT coalesce(max(lease_token), 0) FROM {s}.tasks),
       ARRAY(SELECT t.id FROM {s}.tasks t WHERE t.waiting <> (
           SELECT count(*) FROM {s}.task_deps d JOIN {s}.tasks x ON x.id = d.depends_on
           WHERE d.task_id = t.id AND x.status <> 'completed') ORDER BY 1 LIMIT 10),
       ARRAY(SELECT format('%s is %s, the tasks say %s', s, coalesce(k.n, 0),
                           coalesce(t.n, 0))
             FROM (SELECT status AS s, sum(delta) AS n FROM {s}.task_counts
                   GROUP BY status) k
             FULL JOIN (SELECT status AS s, count(*) AS n FROM {s}.tasks
                        GROUP BY status) t USING (s)
             WHERE coalesce(k.n, 0) <> coalesce(t.n, 0) ORDER BY 1)
