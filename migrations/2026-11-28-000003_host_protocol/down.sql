ALTER TABLE hardware.instance_info RESET (fillfactor);
DROP INDEX hardware.instance_info_assignable;
CREATE INDEX instance_info_assignable
    ON hardware.instance_info (location, commit_hash, free_slots, instance_name)
    WHERE status = 'ACTIVE' AND last_updated_utc_unix_ms <> -1 AND free_slots > 0;
DROP TRIGGER instance_info_status_changed ON hardware.instance_info;
DROP FUNCTION hardware.stamp_instance_status_change();
DROP INDEX hardware.instance_info_host_token;
ALTER TABLE hardware.instance_info
    DROP COLUMN status_changed_utc_unix_ms,
    DROP COLUMN host_token_sha256,
    DROP COLUMN bootstrap_secret_hash;
