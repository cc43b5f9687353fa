-- Placement by expected end (PLACEMENT=lifetime, SPEC §5): every user's past sessions
-- (lengths only), what the prediction job last predicted from them, and instances that
-- know when their last session is expected to end.

-- Past sessions: one row per mandelbox that ended having been used (not ALLOCATED),
-- whoever deleted its row (the host protocol, the lifecycle, psql); mandelboxes that go
-- with their instance's row were cut short by their host and say nothing of a habit.
-- The last 20 of each user are kept, none older than SESSION_HISTORY_DAYS (the
-- lifecycle purges).
CREATE TABLE hardware.session_history (
    id                  bigserial        PRIMARY KEY,
    user_id             varchar          NOT NULL,
    region_name         varchar          NOT NULL,
    started_utc_unix_ms bigint           NOT NULL,
    ended_utc_unix_ms   bigint           NOT NULL,
    length_secs         double precision NOT NULL CHECK (length_secs >= 0)
);

CREATE INDEX session_history_by_user ON hardware.session_history (user_id, ended_utc_unix_ms);
CREATE INDEX session_history_by_end ON hardware.session_history (ended_utc_unix_ms);

CREATE FUNCTION hardware.record_sessions() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
BEGIN
    INSERT INTO hardware.session_history
        (user_id, region_name, started_utc_unix_ms, ended_utc_unix_ms, length_secs)
    SELECT g.user_id, i.location, g.creation_time_utc_unix_ms, now_ms,
           greatest(now_ms - g.creation_time_utc_unix_ms, 0) / 1000.0
    FROM gone g JOIN hardware.instance_info i USING (instance_name)
    WHERE g.status <> 'ALLOCATED';
    RETURN NULL;
END
$$;

CREATE TRIGGER mandelbox_info_sessions
    AFTER DELETE ON hardware.mandelbox_info
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION hardware.record_sessions();

-- Whoever adds history (a session's end, an import), a user keeps their last 20.
CREATE FUNCTION hardware.trim_session_history() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM hardware.session_history h
    USING (SELECT DISTINCT user_id FROM added) AS u
    WHERE h.user_id = u.user_id
      AND h.id NOT IN (SELECT k.id FROM hardware.session_history k
                       WHERE k.user_id = u.user_id
                       ORDER BY k.ended_utc_unix_ms DESC, k.id DESC
                       LIMIT 20);
    RETURN NULL;
END
$$;

CREATE TRIGGER session_history_trimmed
    AFTER INSERT ON hardware.session_history
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION hardware.trim_session_history();

-- What the prediction job (scaling::predictions) last predicted: the expected length of
-- each user's next session, and each region's distribution for users it knows nothing of.
CREATE TABLE hardware.session_prediction (
    user_id              varchar          PRIMARY KEY,
    expected_secs        double precision NOT NULL CHECK (expected_secs >= 0),
    computed_utc_unix_ms bigint           NOT NULL
);

CREATE TABLE hardware.region_session_lengths (
    region_name          varchar            PRIMARY KEY,
    -- Quantiles of the region's session lengths at the midpoints of 20 equal steps.
    points               double precision[] NOT NULL,
    expected_secs        double precision   NOT NULL CHECK (expected_secs >= 0),
    computed_utc_unix_ms bigint             NOT NULL
);

-- A mandelbox's expected end (NULL: placed without one), and each instance's: the
-- latest of its mandelboxes' (0 for none), kept by the counting trigger.
ALTER TABLE hardware.mandelbox_info ADD COLUMN expected_end_utc_unix_ms bigint;
ALTER TABLE hardware.instance_info
    ADD COLUMN expected_end_utc_unix_ms bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION hardware.count_instance_mandelboxes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE hardware.instance_info
        SET mandelbox_count = mandelbox_count - 1,
            emptied_utc_unix_ms = CASE WHEN mandelbox_count = 1
                THEN (extract(epoch FROM clock_timestamp()) * 1000)::bigint
                ELSE emptied_utc_unix_ms END,
            expected_end_utc_unix_ms = CASE
                WHEN OLD.expected_end_utc_unix_ms IS NULL
                  OR OLD.expected_end_utc_unix_ms < expected_end_utc_unix_ms
                THEN expected_end_utc_unix_ms
                ELSE (SELECT coalesce(max(m.expected_end_utc_unix_ms), 0)
                      FROM hardware.mandelbox_info m
                      WHERE m.instance_name = OLD.instance_name
                        AND m.mandelbox_id <> OLD.mandelbox_id)
            END
        WHERE instance_name = OLD.instance_name;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE hardware.instance_info
        SET mandelbox_count = mandelbox_count + 1,
            expected_end_utc_unix_ms = greatest(expected_end_utc_unix_ms,
                                                coalesce(NEW.expected_end_utc_unix_ms, 0))
        WHERE instance_name = NEW.instance_name;
    END IF;
    RETURN NULL;
END
$$;

-- A mandelbox re-predicted (it outlived its expected end): its instance's expected end
-- is the latest of its mandelboxes' again.
CREATE FUNCTION hardware.instance_expected_end() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE hardware.instance_info i
    SET expected_end_utc_unix_ms = (SELECT coalesce(max(m.expected_end_utc_unix_ms), 0)
                                    FROM hardware.mandelbox_info m
                                    WHERE m.instance_name = i.instance_name)
    WHERE i.instance_name = NEW.instance_name;
    RETURN NULL;
END
$$;

CREATE TRIGGER mandelbox_info_expected_end
    AFTER UPDATE OF expected_end_utc_unix_ms ON hardware.mandelbox_info
    FOR EACH ROW
    WHEN (OLD.expected_end_utc_unix_ms IS DISTINCT FROM NEW.expected_end_utc_unix_ms)
    EXECUTE FUNCTION hardware.instance_expected_end();

-- The candidates of a placement by expected end: the tightest instance a session will
-- not outlive is one probe, and so is the one it extends least. Like
-- instance_info_assignable, it names no column a heartbeat writes (heartbeats stay HOT).
CREATE INDEX instance_info_by_expected_end
    ON hardware.instance_info (location, commit_hash, expected_end_utc_unix_ms, free_slots,
                               instance_name)
    WHERE status = 'ACTIVE' AND free_slots > 0;

-- The placement (see 2026-12-07-000011 for its answers), and with `by_end`
-- (PLACEMENT=lifetime) by expected end: among the instances that may take the session
-- (the same eligibility, regions in the same order, the same locks), the one whose
-- expected end (that of its last session) the new session's does not pass, soonest
-- first; when it would outlive them all, the one whose life it extends least (the
-- latest expected end); packing breaks ties, and takes over when only empty instances
-- have room or the user has no prediction of their own. The new session's expected
-- end (now + the user's predicted length, else the region's) is recorded either way,
-- so that its instance's expected end stays true: a region's mean says nothing about
-- which session ends first, and placing by it paid more than packing (the fleet
-- model, on traces without returning users).
DROP FUNCTION hardware.place_mandelbox(text, text[], text[], boolean, bigint, text, bigint);

CREATE FUNCTION hardware.place_mandelbox(
    user_name      text,
    regions        text[],
    commit_hashes  text[],
    first_required boolean,
    user_limit     bigint,
    new_mandelbox  text,
    now_unix_ms    bigint,
    by_end         boolean,
    OUT refusal       text,
    OUT first_region  text,
    OUT slot_instance text,
    OUT slot_ip       text,
    OUT slot_region   text,
    OUT slot_ami      text
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    enabled  text[];
    user_end bigint;
    new_end  bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(1, hashtext(user_name));
    IF (SELECT count(*) FROM hardware.mandelbox_info m WHERE m.user_id = user_name)
           >= user_limit THEN
        refusal := 'USER_ALREADY_ACTIVE';
        RETURN;
    END IF;
    enabled := ARRAY(SELECT DISTINCT r.region_name FROM hardware.region_to_ami r
                     WHERE r.region_enabled AND r.region_name = ANY(regions));
    first_region := (SELECT asked.name FROM unnest(regions) WITH ORDINALITY AS asked(name, pos)
                     WHERE asked.name = ANY(enabled) ORDER BY asked.pos LIMIT 1);
    IF first_region IS NULL OR (first_required AND first_region IS DISTINCT FROM regions[1]) THEN
        first_region := NULL;
        refusal := 'REGION_NOT_ENABLED';
        RETURN;
    END IF;
    IF by_end THEN
        user_end := (SELECT now_unix_ms + (p.expected_secs * 1000)::bigint
                     FROM hardware.session_prediction p WHERE p.user_id = user_name);
    END IF;
    FOR n IN 1 .. coalesce(array_length(regions, 1), 0) LOOP
        CONTINUE WHEN commit_hashes[n] IS NULL OR NOT (regions[n] = ANY(enabled));
        -- Its expected end: the user's, else what the region's sessions last.
        new_end := NULL;
        IF by_end THEN
            new_end := coalesce(user_end,
                                (SELECT now_unix_ms + (r.expected_secs * 1000)::bigint
                                 FROM hardware.region_session_lengths r
                                 WHERE r.region_name = regions[n]));
        END IF;
        slot_instance := NULL;
        IF user_end IS NOT NULL THEN
            -- The instance it will not outlive, expected to end soonest after it.
            SELECT inst.instance_name, inst.ip, inst.location, inst.aws_ami_id
            INTO slot_instance, slot_ip, slot_region, slot_ami
            FROM hardware.instance_info inst
            WHERE inst.location = regions[n] AND inst.commit_hash = commit_hashes[n]
              AND inst.status = 'ACTIVE' AND inst.last_updated_utc_unix_ms <> -1
              AND inst.free_slots > 0
              AND inst.expected_end_utc_unix_ms >= new_end
            ORDER BY inst.expected_end_utc_unix_ms, inst.free_slots, inst.instance_name
            LIMIT 1
            FOR UPDATE SKIP LOCKED;
            IF NOT FOUND THEN
                -- It outlives them all: the one whose life it extends least.
                SELECT inst.instance_name, inst.ip, inst.location, inst.aws_ami_id
                INTO slot_instance, slot_ip, slot_region, slot_ami
                FROM hardware.instance_info inst
                WHERE inst.location = regions[n] AND inst.commit_hash = commit_hashes[n]
                  AND inst.status = 'ACTIVE' AND inst.last_updated_utc_unix_ms <> -1
                  AND inst.free_slots > 0
                  AND inst.expected_end_utc_unix_ms > 0
                ORDER BY inst.expected_end_utc_unix_ms DESC, inst.free_slots,
                         inst.instance_name
                LIMIT 1
                FOR UPDATE SKIP LOCKED;
            END IF;
        END IF;
        IF slot_instance IS NULL THEN
            -- Packed: the fullest (and, by expected end, the rest: empty instances).
            SELECT inst.instance_name, inst.ip, inst.location, inst.aws_ami_id
            INTO slot_instance, slot_ip, slot_region, slot_ami
            FROM hardware.instance_info inst
            WHERE inst.location = regions[n] AND inst.commit_hash = commit_hashes[n]
              AND inst.status = 'ACTIVE' AND inst.last_updated_utc_unix_ms <> -1
              AND inst.free_slots > 0
            ORDER BY inst.free_slots, inst.instance_name
            LIMIT 1
            FOR UPDATE SKIP LOCKED;
        END IF;
        IF slot_instance IS NOT NULL THEN
            INSERT INTO hardware.mandelbox_info
                (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms,
                 expected_end_utc_unix_ms)
            VALUES (new_mandelbox, user_name, slot_instance, 'ALLOCATED', now_unix_ms,
                    new_end);
            RETURN;
        END IF;
    END LOOP;
    -- Nothing free and unheld. Room for this request that others hold?
    IF hardware.room_for(regions, commit_hashes, enabled) THEN
        refusal := 'ROOM_HELD';
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM hardware.instance_info inst
                   WHERE inst.location = ANY(enabled)
                     AND inst.status = 'ACTIVE' AND inst.last_updated_utc_unix_ms <> -1
                     AND inst.free_slots > 0) THEN
        refusal := 'NO_INSTANCE_AVAILABLE';
        RETURN;
    END IF;
    -- Room this request can use may have appeared (an instance registering) after the
    -- look above: it must not be taken for room of another commit hash.
    refusal := CASE WHEN hardware.room_for(regions, commit_hashes, enabled)
                    THEN 'ROOM_HELD' ELSE 'COMMIT_HASH_MISMATCH' END;
END
$$;

