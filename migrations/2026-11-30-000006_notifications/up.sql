-- Notifications, so that every server process learns at once what any process (or psql)
-- changed: `webserver_capacity` when capacity may have appeared (an instance inserted or
-- becoming ACTIVE, a mandelbox ended), `webserver_regions` when the enabled regions may
-- have changed. Statement-level where a statement may touch many rows: one notification
-- per statement, and PostgreSQL folds identical ones within a transaction.

CREATE FUNCTION hardware.notify_capacity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('webserver_capacity', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER instance_info_capacity_added
    AFTER INSERT ON hardware.instance_info
    FOR EACH STATEMENT EXECUTE FUNCTION hardware.notify_capacity();

CREATE TRIGGER instance_info_capacity_activated
    AFTER UPDATE OF status, mandelbox_capacity ON hardware.instance_info
    FOR EACH ROW
    WHEN (NEW.status = 'ACTIVE' AND (OLD.status IS DISTINCT FROM NEW.status
          OR NEW.mandelbox_capacity > OLD.mandelbox_capacity))
    EXECUTE FUNCTION hardware.notify_capacity();

CREATE TRIGGER mandelbox_info_capacity_freed
    AFTER DELETE ON hardware.mandelbox_info
    FOR EACH STATEMENT EXECUTE FUNCTION hardware.notify_capacity();

CREATE FUNCTION hardware.notify_regions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('webserver_regions', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER region_to_ami_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON hardware.region_to_ami
    FOR EACH STATEMENT EXECUTE FUNCTION hardware.notify_regions();
