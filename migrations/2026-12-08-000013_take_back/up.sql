-- The take-back (SPEC §7): an instance the adaptive policy consolidates is marked
-- DRAINING without asking its host, so that nothing new lands there while its sessions
-- go on, and the fleet may make it ACTIVE again instead of launching one (a booted
-- instance brings its free slots now; a launch brings them a boot later, and pays for
-- them meanwhile). Its host is asked to drain once it is empty, or once an operator's
-- drain, an image upgrade, a dying heartbeat or the lifecycle makes the drain final.
ALTER TABLE hardware.instance_info
    ADD COLUMN reclaimable boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT instance_info_reclaimable_drains CHECK (NOT reclaimable OR status = 'DRAINING');
