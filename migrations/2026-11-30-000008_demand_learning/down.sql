DROP TRIGGER instance_info_booted ON hardware.instance_info;
DROP FUNCTION hardware.record_boot();
DROP TABLE hardware.boot_samples;
DROP TRIGGER mandelbox_info_departures ON hardware.mandelbox_info;
DROP FUNCTION hardware.record_departures();
DROP TABLE hardware.departures;
DROP TRIGGER mandelbox_info_arrival ON hardware.mandelbox_info;
DROP FUNCTION hardware.record_arrival();
DROP TABLE hardware.arrivals;
