-- What the schema's constraints cannot check: the last value of the token sequence and the
-- highest token in use or recorded, up to ten tasks whose count of unfinished dependencies disagrees with their edges, and
-- the statuses whose kept count disagrees with the tasks.
SELECT (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
        FROM {s}.task_tokens),
       greatest((SELECT coalesce(max(lease_token), 0) FROM {s}.tasks),
                (SELECT coalesce(max(token), 0) FROM {s}.task_history)),
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
