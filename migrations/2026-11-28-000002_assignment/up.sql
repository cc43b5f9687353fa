-- Assignment without scans: each instance keeps the count of its mandelboxes, kept
-- true by a trigger whoever writes mandelbox_info (this server, psql, older tools),
-- and its free slots, so that the fullest instance with room is one index probe.

ALTER TABLE hardware.instance_info
    ADD COLUMN mandelbox_count bigint NOT NULL DEFAULT 0;

UPDATE hardware.instance_info AS i
SET mandelbox_count = (
    SELECT count(*) FROM hardware.mandelbox_info AS m WHERE m.instance_name = i.instance_name
);

ALTER TABLE hardware.instance_info
    ADD COLUMN free_slots bigint GENERATED ALWAYS AS (mandelbox_capacity - mandelbox_count) STORED;

CREATE FUNCTION hardware.count_instance_mandelboxes() RETURNS trigger
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

CREATE TRIGGER mandelbox_info_counts
    AFTER INSERT OR DELETE ON hardware.mandelbox_info
    FOR EACH ROW EXECUTE FUNCTION hardware.count_instance_mandelboxes();

CREATE TRIGGER mandelbox_info_moves
    AFTER UPDATE OF instance_name ON hardware.mandelbox_info
    FOR EACH ROW WHEN (OLD.instance_name IS DISTINCT FROM NEW.instance_name)
    EXECUTE FUNCTION hardware.count_instance_mandelboxes();

-- The candidates of an assignment, fullest (fewest free slots) first.
DROP INDEX hardware.instance_info_assignable;
CREATE INDEX instance_info_assignable
    ON hardware.instance_info (location, commit_hash, free_slots, instance_name)
    WHERE status = 'ACTIVE' AND last_updated_utc_unix_ms <> -1 AND free_slots > 0;

-- Request counts per client and minute, shared by every server process.
CREATE TABLE hardware.rate_limit_windows (
    client       varchar NOT NULL,
    window_start bigint  NOT NULL,
    hits         integer NOT NULL,
    PRIMARY KEY (client, window_start)
);
