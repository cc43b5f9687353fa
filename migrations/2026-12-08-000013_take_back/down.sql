-- The take-back.
ALTER TABLE hardware.instance_info DROP COLUMN reclaimable;
