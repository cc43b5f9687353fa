-- The host service protocol: single-use bootstrap secrets (argon2 hashes only), host
-- credentials (SHA-256 of a random token: heartbeats stay cheap), and when an instance
-- last changed status (for the lingering timeout). All nullable: rows written by older
-- tools stay valid.

ALTER TABLE hardware.instance_info
    ADD COLUMN bootstrap_secret_hash varchar,
    ADD COLUMN host_token_sha256 varchar,
    ADD COLUMN status_changed_utc_unix_ms bigint;

CREATE UNIQUE INDEX instance_info_host_token
    ON hardware.instance_info (host_token_sha256) WHERE host_token_sha256 IS NOT NULL;

CREATE FUNCTION hardware.stamp_instance_status_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.status_changed_utc_unix_ms := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    RETURN NEW;
END
$$;

CREATE TRIGGER instance_info_status_changed
    BEFORE UPDATE OF status ON hardware.instance_info
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION hardware.stamp_instance_status_change();

-- Heartbeats touch no indexed column, so they can be HOT updates: the assignable index
-- stops naming last_updated_utc_unix_ms (assignment still filters on it), and pages
-- keep room for the new row versions.
DROP INDEX hardware.instance_info_assignable;
CREATE INDEX instance_info_assignable
    ON hardware.instance_info (location, commit_hash, free_slots, instance_name)
    WHERE status = 'ACTIVE' AND free_slots > 0;
ALTER TABLE hardware.instance_info SET (fillfactor = 70);
