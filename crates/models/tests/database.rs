//! The schema and queries against a real PostgreSQL server, a fresh database per test.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use models::{
    AmiId, CommitHash, Db, DbError, InstanceName, InstanceStatus, MandelboxStatus, PoolOptions,
    Region, UnixMillis, instance, mandelbox, migrations, region_to_ami,
};
use test_support::{InstanceRow, TestDatabase};

#[test]
fn migrations_build_an_empty_database_and_are_idempotent() {
    let db = TestDatabase::empty();
    let mut conn = db.connect();
    let embedded = migrations::embedded_versions().unwrap();
    assert!(!embedded.is_empty());
    assert_eq!(migrations::pending(&mut conn).unwrap(), embedded);

    assert_eq!(migrations::run_pending(&mut conn).unwrap(), embedded);
    assert!(migrations::pending(&mut conn).unwrap().is_empty());
    // Running again applies nothing and fails nothing.
    assert!(migrations::run_pending(&mut conn).unwrap().is_empty());
}

#[test]
fn rows_written_with_only_the_original_columns_are_valid() {
    let db = TestDatabase::new();
    // As psql or an older host service would write them.
    db.execute(
        "INSERT INTO hardware.instance_info
             (instance_name, cloud_provider_id, aws_ami_id, location, status, commit_hash,
              aws_instance_type)
         VALUES ('us-east-1-main-abcdef0-uid-0123456789', 'aws-i-0abc', 'ami-1',
                 'us-east-1', 'PRE_CONNECTION', 'abc', 'g4dn.xlarge');
         INSERT INTO hardware.mandelbox_info (mandelbox_id, user_id, instance_name, status)
         VALUES ('6f1c2e1a-1b2c-4d3e-8f90-0123456789ab', 'alice',
                 'us-east-1-main-abcdef0-uid-0123456789', 'ALLOCATED');",
    );
    let mut conn = db.connect();
    let name = InstanceName::parse("us-east-1-main-abcdef0-uid-0123456789").unwrap();
    let row = instance::find(&mut conn, &name).unwrap().unwrap();
    assert_eq!(row.status, InstanceStatus::PreConnection);
    assert_eq!(row.mandelbox_capacity, 0);
    assert_eq!(row.last_updated_utc_unix_ms, UnixMillis::NEVER);
    assert_eq!(row.ip, None);
    assert_eq!(
        (
            row.memory_remaining_kb,
            row.nanocpus_remaining,
            row.gpu_vram_remaining_kb
        ),
        (2000, 1024, 1024)
    );
    // The default creation time is now, in milliseconds.
    let age = UnixMillis::now().as_millis() - row.creation_time_utc_unix_ms.as_millis();
    assert!((0..60_000).contains(&age), "creation time off by {age} ms");

    let boxes = mandelbox::on_instance(&mut conn, &name).unwrap();
    assert_eq!(boxes.len(), 1);
    assert_eq!(boxes[0].status, MandelboxStatus::Allocated);
    assert_eq!(boxes[0].user_id.as_str(), "alice");
}

#[test]
fn typed_rows_round_trip() {
    let db = TestDatabase::new();
    let mut conn = db.connect();
    let new = instance::NewInstance {
        instance_name: InstanceName::parse("us-west-1-main-abcdef0-uid-aaaaaaaaaa").unwrap(),
        cloud_provider_id: "aws-i-1".to_owned(),
        creation_time_utc_unix_ms: UnixMillis::from_millis(1_700_000_000_000),
        aws_ami_id: AmiId::parse("ami-2").unwrap(),
        location: Region::parse("us-west-1").unwrap(),
        status: InstanceStatus::Active,
        commit_hash: CommitHash::parse("deadbeef").unwrap(),
        aws_instance_type: "g4dn.xlarge".to_owned(),
        bootstrap_secret_hash: None,
    };
    let stored = instance::insert(&mut conn, &new).unwrap();
    assert_eq!(stored.instance_name, new.instance_name);
    assert_eq!(
        stored.creation_time_utc_unix_ms.as_millis(),
        1_700_000_000_000
    );
    assert_eq!(stored.status, InstanceStatus::Active);
    assert_eq!(
        instance::find(&mut conn, &new.instance_name).unwrap(),
        Some(stored)
    );
}

#[test]
fn enabled_regions_are_distinct_sorted_and_leave_out_disabled_ones() {
    let db = TestDatabase::new();
    db.execute(
        "INSERT INTO hardware.region_to_ami
             (region_name, client_commit_hash, ami_id, ami_active, region_enabled)
         VALUES ('us-west-1', 'a', 'ami-a', true, true),
                ('us-east-1', 'a', 'ami-b', true, true),
                ('us-east-1', 'b', 'ami-c', false, true),
                ('ap-south-1', 'a', 'ami-d', true, false);",
    );
    let regions = region_to_ami::enabled_regions(&mut db.connect()).unwrap();
    let names: Vec<&str> = regions.iter().map(Region::as_str).collect();
    assert_eq!(names, ["us-east-1", "us-west-1"]);
}

#[test]
fn a_region_has_at_most_one_active_ami() {
    let db = TestDatabase::new();
    let mut conn = db.connect();
    let row = |hash: &str, ami: &str| region_to_ami::RegionAmi {
        region_name: Region::parse("us-east-1").unwrap(),
        client_commit_hash: CommitHash::parse(hash).unwrap(),
        ami_id: AmiId::parse(ami).unwrap(),
        ami_active: true,
        region_enabled: true,
    };
    assert!(region_to_ami::insert_if_absent(&mut conn, &row("a", "ami-a")).unwrap());
    assert!(!region_to_ami::insert_if_absent(&mut conn, &row("a", "ami-a")).unwrap());
    let second_active = region_to_ami::insert_if_absent(&mut conn, &row("b", "ami-b"));
    // ON CONFLICT DO NOTHING also covers the one-active index: nothing is inserted.
    assert!(!second_active.unwrap());
    assert_eq!(
        region_to_ami::for_region(&mut conn, &Region::parse("us-east-1").unwrap())
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn constraints_refuse_unknown_statuses_and_cascade_deletes() {
    let db = TestDatabase::new();
    db.add_instance(&InstanceRow::new("i1"));
    db.execute(
        "INSERT INTO hardware.mandelbox_info (mandelbox_id, user_id, instance_name, status)
         VALUES ('6f1c2e1a-1b2c-4d3e-8f90-0123456789ab', 'alice', 'i1', 'RUNNING');",
    );
    use diesel::connection::SimpleConnection;
    let mut conn = db.connect();
    let bad = conn.batch_execute("UPDATE hardware.instance_info SET status = 'ON_FIRE'");
    assert!(bad.is_err());
    let bad = conn.batch_execute("UPDATE hardware.mandelbox_info SET status = 'DONE'");
    assert!(bad.is_err());

    conn.batch_execute("DELETE FROM hardware.instance_info WHERE instance_name = 'i1'")
        .unwrap();
    let gone = mandelbox::on_instance(&mut conn, &InstanceName::parse("i1").unwrap()).unwrap();
    assert!(gone.is_empty());
}

#[tokio::test]
async fn pool_runs_queries_off_the_executor_and_reports_an_absent_database() {
    let db = TestDatabase::new();
    let options = PoolOptions {
        max_size: 2,
        connection_timeout: Duration::from_secs(2),
        ..PoolOptions::default()
    };
    let pool = Db::new(db.url(), options);
    pool.ping().await.unwrap();
    let regions = pool
        .run(|conn| Ok(region_to_ami::enabled_regions(conn)?))
        .await;
    assert!(regions.unwrap().is_empty());

    db.drop_now();
    assert!(matches!(pool.ping().await, Err(DbError::Unavailable(_))));

    let nowhere = Db::new("postgres://nobody@127.0.0.1:1/none", options);
    assert!(matches!(nowhere.ping().await, Err(DbError::Unavailable(_))));
}

#[test]
fn mandelbox_counts_follow_inserts_moves_and_deletes_whoever_writes_them() {
    let db = TestDatabase::new();
    db.add_instance(&InstanceRow::new("a").capacity(3));
    db.add_instance(&InstanceRow::new("b").capacity(3));
    db.execute(
        "INSERT INTO hardware.mandelbox_info (mandelbox_id, user_id, instance_name, status)
         VALUES ('m1', 'u1', 'a', 'RUNNING'), ('m2', 'u2', 'a', 'RUNNING'),
                ('m3', 'u3', 'b', 'RUNNING');",
    );
    let counts = |db: &TestDatabase| {
        (
            db.number(
                "SELECT mandelbox_count AS n FROM hardware.instance_info WHERE instance_name = 'a'",
            ),
            db.number(
                "SELECT free_slots AS n FROM hardware.instance_info WHERE instance_name = 'a'",
            ),
            db.number(
                "SELECT mandelbox_count AS n FROM hardware.instance_info WHERE instance_name = 'b'",
            ),
        )
    };
    assert_eq!(counts(&db), (2, 1, 1));
    db.execute("UPDATE hardware.mandelbox_info SET instance_name = 'b' WHERE mandelbox_id = 'm1'");
    assert_eq!(counts(&db), (1, 2, 2));
    db.execute(
        "UPDATE hardware.mandelbox_info SET status = 'CONNECTING' WHERE mandelbox_id = 'm2'",
    );
    assert_eq!(counts(&db), (1, 2, 2));
    db.execute("DELETE FROM hardware.mandelbox_info WHERE mandelbox_id = 'm2'");
    assert_eq!(counts(&db), (0, 3, 2));
    // Deleting an instance cascades to its mandelboxes without tripping the trigger.
    db.execute("DELETE FROM hardware.instance_info WHERE instance_name = 'b'");
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.mandelbox_info"),
        0
    );
    let violations = models::invariants::violations(&mut db.connect(), 1).unwrap();
    assert!(violations.is_clean(), "{violations:?}");
}

#[test]
fn rate_limit_windows_slide_and_old_ones_are_purged() {
    use models::rate_limit::{self, WINDOW_MILLIS};
    let db = TestDatabase::new();
    let mut conn = db.connect();
    let start = UnixMillis::from_millis(1_700_000_040_000 - 1_700_000_040_000 % WINDOW_MILLIS);
    let at = |offset: i64| UnixMillis::from_millis(start.as_millis() + offset);

    for _ in 0..4 {
        rate_limit::hit(&mut conn, "a", at(1_000)).unwrap();
    }
    let hits = rate_limit::hit(&mut conn, "a", at(2_000)).unwrap();
    assert_eq!(
        (hits.current, hits.previous, hits.elapsed_millis),
        (5, 0, 2_000)
    );
    assert_eq!(
        rate_limit::hit(&mut conn, "b", at(2_000)).unwrap().current,
        1
    );

    // A quarter into the next window, three quarters of the previous one still count.
    let hits = rate_limit::hit(&mut conn, "a", at(WINDOW_MILLIS + WINDOW_MILLIS / 4)).unwrap();
    assert_eq!((hits.current, hits.previous), (1, 5));
    assert!((hits.in_last_minute() - (5.0 * 0.75 + 1.0)).abs() < 1e-9);

    // Two windows later the first one no longer counts and is purged.
    assert_eq!(
        rate_limit::purge_stale(&mut conn, at(2 * WINDOW_MILLIS)).unwrap(),
        2
    );
    let hits = rate_limit::hit(&mut conn, "a", at(2 * WINDOW_MILLIS)).unwrap();
    assert_eq!((hits.current, hits.previous), (1, 1));
}

#[test]
fn pool_sessions_carry_their_lock_timeout_and_commit_mode() {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    use diesel::RunQueryDsl;
    let db = TestDatabase::new();
    let show = |pool: &Db, name: &str| {
        diesel::sql_query(format!("SELECT current_setting('{name}') AS value"))
            .get_result::<Setting>(&mut pool.get().unwrap())
            .unwrap()
            .value
    };
    let durable = Db::new(db.url(), PoolOptions::default());
    assert_eq!(show(&durable, "lock_timeout"), "5s");
    assert_eq!(show(&durable, "synchronous_commit"), "on");
    let telemetry = Db::new(
        db.url(),
        PoolOptions {
            synchronous_commit: false,
            lock_timeout: Duration::ZERO,
            ..PoolOptions::default()
        },
    );
    assert_eq!(show(&telemetry, "synchronous_commit"), "off");
    assert_eq!(show(&telemetry, "lock_timeout"), "0");
}

#[test]
fn heartbeats_are_hot_updates() {
    use diesel::Connection;
    use models::instance::{Metrics, heartbeat};
    #[derive(diesel::QueryableByName)]
    struct Counts {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        updated: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        hot: i64,
    }
    use diesel::RunQueryDsl;
    let db = TestDatabase::new();
    db.add_instance(
        &InstanceRow::new("a")
            .capacity(4)
            .heard_at(0)
            .host_token_digest("digest-a"),
    );
    let mut conn = db.connect();
    let metrics = Metrics {
        memory_remaining_kb: 1,
        nanocpus_remaining: 2,
        gpu_vram_remaining_kb: 3,
    };
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        for _ in 0..3 {
            let beat = heartbeat(conn, "digest-a", metrics, false, UnixMillis::now())?;
            assert_eq!(beat.unwrap().as_str(), "a");
        }
        let counts: Counts = diesel::sql_query(
            "SELECT pg_stat_get_xact_tuples_updated('hardware.instance_info'::regclass) AS updated,
                    pg_stat_get_xact_tuples_hot_updated('hardware.instance_info'::regclass) AS hot",
        )
        .get_result(conn)?;
        assert_eq!(
            (counts.updated, counts.hot),
            (3, 3),
            "every heartbeat is a HOT update"
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(
        heartbeat(&mut conn, "unknown", metrics, false, UnixMillis::now()).unwrap(),
        None
    );
}
