DROP FUNCTION hardware.place_mandelbox(text, text[], text[], boolean, bigint, text, bigint);
DROP FUNCTION hardware.room_for(text[], text[], text[]);
CREATE FUNCTION hardware.place_mandelbox(
    user_name      text,
    regions        text[],
    commit_hashes  text[],
    first_required boolean,
    user_limit     bigint,
    new_mandelbox  text,
    now_unix_ms    bigint,
    OUT held          bigint,
    OUT enabled       text[],
    OUT slot_instance text,
    OUT slot_ip       text,
    OUT slot_region   text,
    OUT slot_ami      text
)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1, hashtext(user_name));
    held := (SELECT count(*) FROM hardware.mandelbox_info m WHERE m.user_id = user_name);
    enabled := ARRAY(SELECT DISTINCT r.region_name FROM hardware.region_to_ami r
                     WHERE r.region_enabled AND r.region_name = ANY(regions));
    IF held >= user_limit OR (first_required AND NOT (regions[1] = ANY(enabled))) THEN
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
END
$$;
