-- Which deployment this database belongs to. Launches are tagged with it, so the fleet
-- can tell an instance of its own that no row records (its launcher died between the
-- cloud call and the insert) from another deployment's. One row, written by the first
-- process that asks for it (so databases copied from a migrated template differ).
CREATE TABLE hardware.deployment (
    one_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (one_row),
    deployment_id VARCHAR NOT NULL
);
