-- What the adaptive scaling policy (SPEC §7, SCALING_POLICY=adaptive) learns from, per
-- region, shared by every server process and filled by triggers, so mandelboxes and
-- registrations written by any process (or psql) count.
--
-- `arrivals`: one row per mandelbox assigned (its region and when), and `departures`,
-- one per mandelbox ended: append-only logs with no key, so concurrent assignments never
-- wait on each other for them; the lifecycle job purges what is older than the learning
-- window.
CREATE TABLE hardware.arrivals (
    region_name    varchar NOT NULL,
    at_utc_unix_ms bigint  NOT NULL
);

CREATE INDEX arrivals_by_region ON hardware.arrivals (region_name, at_utc_unix_ms);

CREATE FUNCTION hardware.record_arrival() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hardware.arrivals (region_name, at_utc_unix_ms)
    SELECT location, NEW.creation_time_utc_unix_ms
    FROM hardware.instance_info
    WHERE instance_name = NEW.instance_name;
    RETURN NULL;
END
$$;

CREATE TRIGGER mandelbox_info_arrival
    AFTER INSERT ON hardware.mandelbox_info
    FOR EACH ROW EXECUTE FUNCTION hardware.record_arrival();

CREATE TABLE hardware.departures (
    region_name    varchar NOT NULL,
    at_utc_unix_ms bigint  NOT NULL
);

CREATE INDEX departures_by_region ON hardware.departures (region_name, at_utc_unix_ms);

-- Statement-level: a session's end is one row, a lifecycle sweep many. Mandelboxes going
-- with their instance's row are not departures (their instance is gone too).
CREATE FUNCTION hardware.record_departures() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hardware.departures (region_name, at_utc_unix_ms)
    SELECT i.location, (extract(epoch FROM clock_timestamp()) * 1000)::bigint
    FROM gone JOIN hardware.instance_info i USING (instance_name);
    RETURN NULL;
END
$$;

CREATE TRIGGER mandelbox_info_departures
    AFTER DELETE ON hardware.mandelbox_info
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION hardware.record_departures();

-- `boot_samples`: how long each instance took from its launch (the row's creation) to
-- its host's registration (PRE_CONNECTION → ACTIVE).
CREATE TABLE hardware.boot_samples (
    instance_name        varchar NOT NULL PRIMARY KEY,
    region_name          varchar NOT NULL,
    booted_utc_unix_ms   bigint  NOT NULL,
    boot_ms              bigint  NOT NULL
);

CREATE INDEX boot_samples_by_region ON hardware.boot_samples (region_name, booted_utc_unix_ms);

CREATE FUNCTION hardware.record_boot() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
BEGIN
    INSERT INTO hardware.boot_samples (instance_name, region_name, booted_utc_unix_ms, boot_ms)
    VALUES (NEW.instance_name, NEW.location, now_ms,
            GREATEST(0, now_ms - NEW.creation_time_utc_unix_ms))
    ON CONFLICT (instance_name) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER instance_info_booted
    AFTER UPDATE OF status ON hardware.instance_info
    FOR EACH ROW
    WHEN (OLD.status = 'PRE_CONNECTION' AND NEW.status = 'ACTIVE')
    EXECUTE FUNCTION hardware.record_boot();
