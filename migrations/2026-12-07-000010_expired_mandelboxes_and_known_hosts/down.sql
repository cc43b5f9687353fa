DROP TRIGGER instance_info_host_token_changed ON hardware.instance_info;
DROP FUNCTION hardware.notify_hosts();
DROP TABLE hardware.expired_mandelbox;
