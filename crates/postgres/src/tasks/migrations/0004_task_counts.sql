CREATE TABLE {s}.task_counts (status text NOT NULL, delta bigint NOT NULL);
    INSERT INTO {s}.task_counts (status, delta)
        SELECT status, count(*) FROM {s}.tasks GROUP BY status;
    CREATE FUNCTION {s}.task_counts_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {s}.task_counts (status, delta)
            SELECT status, count(*) FROM added GROUP BY status;
        RETURN NULL;
    END $$;
    CREATE FUNCTION {s}.task_counts_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {s}.task_counts (status, delta)
            SELECT status, -count(*) FROM removed GROUP BY status;
        RETURN NULL;
    END $$;
    CREATE FUNCTION {s}.task_counts_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {s}.task_counts (status, delta) VALUES (OLD.status, -1), (NEW.status, 1);
        RETURN NULL;
    END $$;
    CREATE TRIGGER task_counts_added AFTER INSERT ON {s}.tasks
        REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION {s}.task_counts_added();
    CREATE TRIGGER task_counts_removed AFTER DELETE ON {s}.tasks
        REFERENCING OLD TABLE AS removed
        FOR EACH STATEMENT EXECUTE FUNCTION {s}.task_counts_removed();
    CREATE TRIGGER task_counts_moved AFTER UPDATE OF status ON {s}.tasks
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
        EXECUTE FUNCTION {s}.task_counts_moved();
    CREATE INDEX tasks_waiting ON {s}.tasks (id) WHERE status = 'pending' AND waiting > 0;
    CREATE INDEX tasks_scheduled ON {s}.tasks (run_at)
        WHERE status = 'pending' AND waiting = 0 AND run_at IS NOT NULL;