DROP TABLE hardware.unmet_demand;
