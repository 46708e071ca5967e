-- Records that collector `$2` acknowledged task `$1`'s log up to generation `$3`, seq `$4`.
INSERT INTO {s}.ship_cursors (task, collector, generation, seq) VALUES ($1, $2, $3, $4)
    ON CONFLICT (task, collector) DO UPDATE SET generation = excluded.generation, seq = excluded.seq
