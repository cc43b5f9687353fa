-- The original production schema: table and column names are kept so that this
-- server can run against an existing database. Every timestamp is Unix time in
-- milliseconds.

CREATE SCHEMA IF NOT EXISTS hardware;
CREATE SCHEMA IF NOT EXISTS sales;

CREATE TABLE hardware.region_to_ami (
    region_name        varchar NOT NULL,
    client_commit_hash varchar NOT NULL,
    ami_id             varchar NOT NULL,
    ami_active         boolean NOT NULL DEFAULT false,
    region_enabled     boolean NOT NULL DEFAULT true,
    PRIMARY KEY (region_name, client_commit_hash),
    UNIQUE (region_name, ami_id)
);

-- At most one active AMI per region.
CREATE UNIQUE INDEX region_to_ami_one_active_per_region
    ON hardware.region_to_ami (region_name) WHERE ami_active;

CREATE TABLE hardware.instance_info (
    instance_name             varchar PRIMARY KEY,
    cloud_provider_id         varchar NOT NULL,
    creation_time_utc_unix_ms bigint  NOT NULL
        DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    memory_remaining_kb       bigint  NOT NULL DEFAULT 2000,
    nanocpus_remaining        bigint  NOT NULL DEFAULT 1024,
    gpu_vram_remaining_kb     bigint  NOT NULL DEFAULT 1024,
    mandelbox_capacity        bigint  NOT NULL DEFAULT 0 CHECK (mandelbox_capacity >= 0),
    last_updated_utc_unix_ms  bigint  NOT NULL DEFAULT -1,
    ip                        varchar NOT NULL DEFAULT '',
    aws_ami_id                varchar NOT NULL,
    location                  varchar NOT NULL,
    status                    varchar NOT NULL CHECK (status IN (
        'PRE_CONNECTION', 'ACTIVE', 'DRAINING', 'HOST_SERVICE_UNRESPONSIVE')),
    commit_hash               varchar NOT NULL,
    aws_instance_type         varchar NOT NULL
);

-- Assignment looks only at ACTIVE instances of one region and commit hash.
CREATE INDEX instance_info_assignable
    ON hardware.instance_info (location, commit_hash) WHERE status = 'ACTIVE';
-- Scaling groups instances by region and image.
CREATE INDEX instance_info_region_ami ON hardware.instance_info (location, aws_ami_id);

CREATE TABLE hardware.mandelbox_info (
    mandelbox_id              varchar PRIMARY KEY,
    user_id                   varchar NOT NULL,
    instance_name             varchar NOT NULL
        REFERENCES hardware.instance_info (instance_name) ON DELETE CASCADE,
    status                    varchar NOT NULL CHECK (status IN (
        'ALLOCATED', 'CONNECTING', 'RUNNING')),
    creation_time_utc_unix_ms bigint  NOT NULL
        DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint
);

-- Counting an instance's mandelboxes and a user's mandelboxes.
CREATE INDEX mandelbox_info_instance_name ON hardware.mandelbox_info (instance_name);
CREATE INDEX mandelbox_info_user_id ON hardware.mandelbox_info (user_id);

CREATE TABLE sales.email_templates (
    id    varchar PRIMARY KEY,
    title varchar NOT NULL,
    url   varchar NOT NULL DEFAULT '',
    body  text
);
