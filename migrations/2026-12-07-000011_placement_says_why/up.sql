-- The placement says why it placed nothing (SPEC §5): every rule of assignment that the
-- database decides (the per-user limit, the enabled regions and the first required one,
-- the "assignable" predicate, commit hashes, room other transactions hold) is decided
-- here, once, and the caller only maps the answer to its refusal.
--
-- VOLATILE matters: each query below takes a fresh snapshot, so the count that follows
-- the user's lock sees what the user's previous request committed, and each look for
-- room sees what was committed before it.
--
-- `regions` are tried in order, each with the commit hash at the same position (NULL:
-- none to match there, skip it); only enabled regions are tried, and when
-- `first_required` the first region must itself be enabled (its followers are only its
-- fallback). Rows other transactions hold are passed over, never waited for.
--
-- Answers, in this order of precedence:
--   slot_*                      placed: the instance's name, IP, region and image;
--   'USER_ALREADY_ACTIVE'       the user already holds `user_limit` mandelboxes;
--   'REGION_NOT_ENABLED'        no region asked is enabled (or the first, if required);
--   'ROOM_HELD'                 an instance that could take it has room, but other
--                               transactions hold it right now: ask again shortly;
--   'NO_INSTANCE_AVAILABLE'     no instance of the enabled regions has room;
--   'COMMIT_HASH_MISMATCH'      some have room, none for the commit hashes asked.
-- `first_region` is the first enabled region asked, whose capacity a refusal concerns.
DROP FUNCTION hardware.place_mandelbox(text, text[], text[], boolean, bigint, text, bigint);

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

-- Whether an assignable instance (ACTIVE, heard from, with a free slot; rows other
-- transactions hold count) serves one of the (region, commit hash) pairs asked, in an
-- enabled region.
CREATE FUNCTION hardware.room_for(regions text[], commit_hashes text[], enabled text[])
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT EXISTS (
        SELECT 1
        FROM unnest(regions, commit_hashes) AS asked(region, commit_hash)
        JOIN hardware.instance_info inst
          ON inst.location = asked.region AND inst.commit_hash = asked.commit_hash
        WHERE asked.region = ANY(enabled)
          AND inst.status = 'ACTIVE' AND inst.last_updated_utc_unix_ms <> -1
          AND inst.free_slots > 0)
$$;
