DROP TRIGGER region_to_ami_changed ON hardware.region_to_ami;
DROP FUNCTION hardware.notify_regions();
DROP TRIGGER mandelbox_info_capacity_freed ON hardware.mandelbox_info;
DROP TRIGGER instance_info_capacity_activated ON hardware.instance_info;
DROP TRIGGER instance_info_capacity_added ON hardware.instance_info;
DROP FUNCTION hardware.notify_capacity();
