-- A bad day loses no session.
--
-- The lifecycle remembers when its passes ran: only silence while the control plane was
-- up and taking heartbeats counts against a host. After a gap in the passes (the servers
-- or the database were down), every host gets a whole heartbeat timeout from the restart.
CREATE TABLE hardware.lifecycle_clock (
    one_row                  boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    -- When the last pass ran.
    last_pass_utc_unix_ms    bigint NOT NULL,
    -- Since when passes have run without a gap.
    up_since_utc_unix_ms     bigint NOT NULL
);

-- A draining instance is terminated for lingering only once it is empty, counting from
-- when its last mandelbox ended; and one being terminated is never revived by a late
-- heartbeat or registration. Both nullable: rows written by older tools stay valid.
ALTER TABLE hardware.instance_info
    ADD COLUMN emptied_utc_unix_ms bigint,
    ADD COLUMN terminating_utc_unix_ms bigint;

-- The count trigger also stamps when an instance's last mandelbox went.
CREATE OR REPLACE FUNCTION hardware.count_instance_mandelboxes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE hardware.instance_info
        SET mandelbox_count = mandelbox_count - 1,
            emptied_utc_unix_ms = CASE WHEN mandelbox_count = 1
                THEN (extract(epoch FROM clock_timestamp()) * 1000)::bigint
                ELSE emptied_utc_unix_ms END
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
