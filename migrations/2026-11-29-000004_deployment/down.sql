DROP TABLE hardware.deployment;
