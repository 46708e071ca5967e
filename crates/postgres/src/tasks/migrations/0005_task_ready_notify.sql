CREATE FUNCTION {s}.task_ready_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- Sent on commit only, once per distinct payload in a transaction: the earliest
        -- `run_at` is the payload (empty when ready now), so waiters can wake at it.
        PERFORM pg_notify(left('oc_tasks_' || TG_TABLE_SCHEMA, 63), coalesce(NEW.run_at::text, ''));
        RETURN NULL;
    END $$;
    CREATE TRIGGER task_ready_inserted AFTER INSERT ON {s}.tasks
        FOR EACH ROW WHEN (NEW.status = 'pending' AND NEW.waiting = 0)
        EXECUTE FUNCTION {s}.task_ready_notify();
    CREATE TRIGGER task_ready_updated AFTER UPDATE ON {s}.tasks
        FOR EACH ROW WHEN (NEW.status = 'pending' AND NEW.waiting = 0)
        EXECUTE FUNCTION {s}.task_ready_notify();
