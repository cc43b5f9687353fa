DROP FUNCTION hardware.place_mandelbox(text, text[], text[], boolean, bigint, text, bigint, boolean);
CREATE FUNCTION hardware.place_mandelbox(
    user_name      text,
    regions        text[],
    commit_hashes  text[],
    first_required boolean,
    user_limit     bigint,
    new_mandelbox  text,
    now_unix_ms    bigint,
    OUT refusal       text,
    OUT first_region  text,
    OUT slot_instance text,
    OUT slot_ip       text,
    OUT slot_region   text,
    OUT slot_ami      text
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    enabled text[];
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
    FOR n IN 1 .. coalesce(array_length(regions, 1), 0) LOOP
        CONTINUE WHEN commit_hashes[n] IS NULL OR NOT (regions[n] = ANY(enabled));
        SELECT inst.instance_name, inst.ip, inst.location, inst.aws_ami_id
        INTO slot_instance, slot_ip, slot_region, slot_ami
        FROM hardware.instance_info inst
        WHERE inst.location = regions[n] AND inst.commit_hash = commit_hashes[n]
          AND inst.status = 'ACTIVE' AND inst.last_updated_utc_unix_ms <> -1
          AND inst.free_slots > 0
        ORDER BY inst.free_slots, inst.instance_name
        LIMIT 1
        FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
            INSERT INTO hardware.mandelbox_info
                (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms)
            VALUES (new_mandelbox, user_name, slot_instance, 'ALLOCATED', now_unix_ms);
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

DROP INDEX hardware.instance_info_by_expected_end;
DROP TRIGGER mandelbox_info_expected_end ON hardware.mandelbox_info;
DROP FUNCTION hardware.instance_expected_end();
CREATE OR REPLACE FUNCTION hardware.count_instance_mandelboxes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE hardware.instance_info
        SET mandelbox_count = mandelbox_count - 1,
            emptied_utc_unix_ms = CASE WHEN mandelbox_count = 1
                THEN (extract(epoch FROM clock_timestamp()) * 1000)::bigint
                ELSE emptied_utc_unix_ms END
        WHERE instance_name = OLD.instance_name;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE hardware.instance_info
        SET mandelbox_count = mandelbox_count + 1
        WHERE instance_name = NEW.instance_name;
    END IF;
    RETURN NULL;
END
$$;
ALTER TABLE hardware.instance_info DROP COLUMN expected_end_utc_unix_ms;
ALTER TABLE hardware.mandelbox_info DROP COLUMN expected_end_utc_unix_ms;
DROP TABLE hardware.region_session_lengths;
DROP TABLE hardware.session_prediction;
DROP TRIGGER session_history_trimmed ON hardware.session_history;
DROP FUNCTION hardware.trim_session_history();
DROP TRIGGER mandelbox_info_sessions ON hardware.mandelbox_info;
DROP FUNCTION hardware.record_sessions();
DROP TABLE hardware.session_history;
