// @generated automatically by Diesel CLI.

pub mod hardware {
    diesel::table! {
        hardware.boot_samples (instance_name) {
            instance_name -> Varchar,
            region_name -> Varchar,
            booted_utc_unix_ms -> Int8,
            boot_ms -> Int8,
        }
    }

    diesel::table! {
        hardware.deployment (one_row) {
            one_row -> Bool,
            deployment_id -> Varchar,
        }
    }

    diesel::table! {
        hardware.expired_mandelbox (mandelbox_id) {
            mandelbox_id -> Varchar,
            instance_name -> Varchar,
            removed_utc_unix_ms -> Int8,
        }
    }

    diesel::table! {
        hardware.instance_info (instance_name) {
            instance_name -> Varchar,
            cloud_provider_id -> Varchar,
            creation_time_utc_unix_ms -> Int8,
            memory_remaining_kb -> Int8,
            nanocpus_remaining -> Int8,
            gpu_vram_remaining_kb -> Int8,
            mandelbox_capacity -> Int8,
            last_updated_utc_unix_ms -> Int8,
            ip -> Varchar,
            aws_ami_id -> Varchar,
            location -> Varchar,
            status -> Varchar,
            commit_hash -> Varchar,
            aws_instance_type -> Varchar,
            mandelbox_count -> Int8,
            free_slots -> Nullable<Int8>,
            bootstrap_secret_hash -> Nullable<Varchar>,
            host_token_sha256 -> Nullable<Varchar>,
            status_changed_utc_unix_ms -> Nullable<Int8>,
            emptied_utc_unix_ms -> Nullable<Int8>,
            terminating_utc_unix_ms -> Nullable<Int8>,
            expected_end_utc_unix_ms -> Int8,
            reclaimable -> Bool,
        }
    }

    diesel::table! {
        hardware.lifecycle_clock (one_row) {
            one_row -> Bool,
            last_pass_utc_unix_ms -> Int8,
            up_since_utc_unix_ms -> Int8,
        }
    }

    diesel::table! {
        hardware.mandelbox_info (mandelbox_id) {
            mandelbox_id -> Varchar,
            user_id -> Varchar,
            instance_name -> Varchar,
            status -> Varchar,
            creation_time_utc_unix_ms -> Int8,
            expected_end_utc_unix_ms -> Nullable<Int8>,
        }
    }

    diesel::table! {
        hardware.rate_limit_windows (client, window_start) {
            client -> Varchar,
            window_start -> Int8,
            hits -> Int4,
        }
    }

    diesel::table! {
        hardware.region_session_lengths (region_name) {
            region_name -> Varchar,
            points -> Array<Nullable<Float8>>,
            expected_secs -> Float8,
            computed_utc_unix_ms -> Int8,
        }
    }

    diesel::table! {
        hardware.region_to_ami (region_name, client_commit_hash) {
            region_name -> Varchar,
            client_commit_hash -> Varchar,
            ami_id -> Varchar,
            ami_active -> Bool,
            region_enabled -> Bool,
        }
    }

    diesel::table! {
        hardware.session_history (id) {
            id -> Int8,
            user_id -> Varchar,
            region_name -> Varchar,
            started_utc_unix_ms -> Int8,
            ended_utc_unix_ms -> Int8,
            length_secs -> Float8,
        }
    }

    diesel::table! {
        hardware.session_prediction (user_id) {
            user_id -> Varchar,
            expected_secs -> Float8,
            computed_utc_unix_ms -> Int8,
        }
    }

    diesel::table! {
        hardware.unmet_demand (user_id) {
            user_id -> Varchar,
            region_name -> Varchar,
            expires_utc_unix_ms -> Int8,
            waiting_until_utc_unix_ms -> Int8,
        }
    }

    diesel::joinable!(mandelbox_info -> instance_info (instance_name));

    diesel::allow_tables_to_appear_in_same_query!(
        boot_samples,
        deployment,
        expired_mandelbox,
        instance_info,
        lifecycle_clock,
        mandelbox_info,
        rate_limit_windows,
        region_session_lengths,
        region_to_ami,
        session_history,
        session_prediction,
        unmet_demand,
    );
}
