DROP TABLE hardware.rate_limit_windows;
DROP INDEX hardware.instance_info_assignable;
CREATE INDEX instance_info_assignable
    ON hardware.instance_info (location, commit_hash) WHERE status = 'ACTIVE';
DROP TRIGGER mandelbox_info_moves ON hardware.mandelbox_info;
DROP TRIGGER mandelbox_info_counts ON hardware.mandelbox_info;
DROP FUNCTION hardware.count_instance_mandelboxes();
ALTER TABLE hardware.instance_info DROP COLUMN free_slots;
ALTER TABLE hardware.instance_info DROP COLUMN mandelbox_count;
