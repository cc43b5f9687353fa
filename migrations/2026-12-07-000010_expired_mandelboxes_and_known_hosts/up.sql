-- Mandelboxes the lifecycle removed because their host never reported them within the
-- allocation timeout (the client did not connect in time). Kept for a day, so that a
-- host's late report for one is answered 410 Gone, not 404 as for an id never issued.
CREATE TABLE hardware.expired_mandelbox (
    mandelbox_id        varchar NOT NULL PRIMARY KEY,
    instance_name       varchar NOT NULL,
    removed_utc_unix_ms bigint  NOT NULL
);

CREATE INDEX expired_mandelbox_by_time ON hardware.expired_mandelbox (removed_utc_unix_ms);

-- `webserver_hosts` whenever a host credential is issued, changed or withdrawn, so that
-- every server process refreshes its set of known credentials (heartbeats with any
-- other are refused before they queue).
CREATE FUNCTION hardware.notify_hosts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('webserver_hosts', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER instance_info_host_token_changed
    AFTER UPDATE OF host_token_sha256 ON hardware.instance_info
    FOR EACH ROW
    WHEN (OLD.host_token_sha256 IS DISTINCT FROM NEW.host_token_sha256)
    EXECUTE FUNCTION hardware.notify_hosts();
