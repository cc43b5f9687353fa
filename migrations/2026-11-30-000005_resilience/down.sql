CREATE OR REPLACE FUNCTION hardware.count_instance_mandelboxes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE hardware.instance_info
        SET mandelbox_count = mandelbox_count - 1
        WHERE instance_name = OLD.instance_name;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE hardware.instance_info
        SET mandelbox_count = mandelbox_count + 1
        WHERE instance_name = NEW.instance_name;
    END IF;
    RETURN NULL;
END
$$;
ALTER TABLE hardware.instance_info
    DROP COLUMN terminating_utc_unix_ms,
    DROP COLUMN emptied_utc_unix_ms;
DROP TABLE hardware.lifecycle_clock;
