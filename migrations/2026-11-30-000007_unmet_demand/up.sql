-- Unmet demand (SPEC §7): users refused for lack of capacity, or waiting for a slot, per
-- region, shared by every server process. A row counts until it expires (a minute after
-- the refusal, or the end of the wait if later) and while its user holds no mandelbox,
-- so nothing has to remove it when the user is served or goes away; the lifecycle job
-- purges expired rows. `waiting_until_utc_unix_ms` is the deadline of the user's wait
-- (0 if the user did not wait): until then the user is also counted as waiting.
CREATE TABLE hardware.unmet_demand (
    user_id                   varchar NOT NULL PRIMARY KEY,
    region_name               varchar NOT NULL,
    expires_utc_unix_ms       bigint  NOT NULL,
    waiting_until_utc_unix_ms bigint  NOT NULL DEFAULT 0
);

CREATE INDEX unmet_demand_by_region ON hardware.unmet_demand (region_name, expires_utc_unix_ms);
