DROP TABLE sales.email_templates;
DROP TABLE hardware.mandelbox_info;
DROP TABLE hardware.instance_info;
DROP TABLE hardware.region_to_ami;
DROP SCHEMA sales;
DROP SCHEMA hardware;
