//! `SCALING_POLICY=adaptive` against PostgreSQL: the buffer learned from the arrivals and
//! boots the database recorded, and consolidation, which drains the least-loaded
//! instance while its sessions go on (its host asked once they have ended, and until
//! then taken back before a launch).
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cloud_interface::provider::MockCloudProvider;
use host_agent::DrainEndpoint;
use models::{Db, PoolOptions, Region, UnixMillis};
use scaling::adaptive::{self, AdaptiveBounds, Observed};
use scaling::sizing::Decision;
use scaling::{Fleet, FleetMetrics, FleetSettings, Learning, ScalingPolicy};
use test_support::{InstanceRow, TestDatabase};

const REGION: &str = "us-east-1";
const AMI: &str = "ami-current";
const COMMIT: &str = "abcdef0123456789";

fn region() -> Region {
    Region::parse(REGION).unwrap()
}

fn adaptive_settings(host_port: u16) -> FleetSettings {
    FleetSettings {
        policy: ScalingPolicy::Adaptive {
            min: 2,
            max: 100,
            margin: adaptive::Sigmas::DEFAULT,
        },
        host_service_port: host_port,
        drain_timeout: Duration::from_millis(500),
        check_interval: Duration::from_millis(10),
        branch: "test".to_owned(),
        // What the tests' instances hold, as a provider would say.
        launch_capacity: Some(10),
        ..FleetSettings::new(url::Url::parse("http://127.0.0.1:7730/").unwrap())
    }
}

fn fleet(db: &TestDatabase, cloud: MockCloudProvider, settings: FleetSettings) -> Fleet {
    Fleet::new(
        Db::new(db.url(), PoolOptions::default()),
        Arc::new(cloud),
        settings,
        FleetMetrics::new(&app_metrics::Registry::new()),
    )
    .unwrap()
}

fn setup() -> TestDatabase {
    let db = TestDatabase::new();
    db.execute(&format!(
        "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
         VALUES ('{REGION}', '{COMMIT}', '{AMI}', true)"
    ));
    db
}

/// An `ACTIVE` instance with `sessions` of `capacity` slots taken (long ago: they are
/// not recent arrivals).
fn add(db: &TestDatabase, name: &str, capacity: i64, sessions: i64) {
    db.add_instance(
        &InstanceRow::new(name)
            .cloud_id(&format!("mock-i-{name}"))
            .created_at(0)
            .capacity(capacity)
            .heard_at(1)
            .ip("127.0.0.1")
            .ami(AMI)
            .region(REGION)
            .commit_hash(COMMIT)
            .host_token(&format!("host_test-{name}")),
    );
    for _ in 0..sessions {
        db.execute(&format!(
            "INSERT INTO hardware.mandelbox_info
                 (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms)
             VALUES (gen_random_uuid()::text, 'user', '{name}', 'RUNNING', 0)"
        ));
    }
}

/// `count` arrivals spread over the last `span` seconds.
fn arrivals(db: &TestDatabase, count: i64, span_secs: i64) {
    let now = UnixMillis::now().as_millis();
    db.execute(&format!(
        "INSERT INTO hardware.arrivals (region_name, at_utc_unix_ms)
         SELECT '{REGION}', {now} - n * {span_secs} * 1000 / {count} - 1
         FROM generate_series(0, {count} - 1) AS n"
    ));
}

/// The token the host of instance `name` holds in these tests; its digest is the row's
/// `host_token_sha256`, which signs drain requests.
fn trust(drain: &DrainEndpoint, names: &[&str]) {
    for name in names {
        drain.trust(host_agent::DrainKey::new(
            &models::InstanceName::parse(name).unwrap(),
            &secrecy::SecretString::from(format!("host_test-{name}")),
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_region_keeps_the_buffer_its_arrivals_and_boots_call_for() {
    let db = setup();
    add(&db, "a", 10, 0);
    // 60 arrivals in the last five minutes, none before: a steep ramp.
    arrivals(&db, 60, 290);
    let settings = adaptive_settings(9);
    let expected = adaptive::desired_free(
        &Observed {
            arrivals_short: 60,
            short_span: Learning::default().short_span,
            arrivals_long: 60,
            departures_long: 0,
            long_span: Learning::default().long_span,
            boot_time: None,
        },
        &AdaptiveBounds {
            min: 2,
            max: 100,
            default_boot_time: Learning::default().default_boot_time,
            reaction: settings.check_interval,
            margin: adaptive::Sigmas::DEFAULT,
        },
    );
    assert!(expected > 30, "{expected}");
    let mut cloud = MockCloudProvider::new();
    cloud.expect_start_instance().returning(|request| {
        Ok(cloud_interface::CloudInstanceId::stored(format!(
            "i-{}",
            request.name
        )))
    });
    cloud
        .expect_list_instances()
        .returning(|_, _| Ok(Vec::new()));
    let report = fleet(&db, cloud, settings)
        .check(&region(), None, Duration::from_secs(5))
        .await
        .unwrap();
    // 10 free of the wanted: the rest in instances of 10.
    let wanted = u32::try_from((expected - 10 + 9) / 10).unwrap();
    assert_eq!(report.decision, Decision::Launch(wanted), "{report:?}");
    assert_eq!(report.launched.len(), wanted as usize);

    // The fixed policy keeps its 10: nothing to launch.
    let fixed = FleetSettings {
        policy: ScalingPolicy::Fixed,
        ..adaptive_settings(9)
    };
    let quiet = setup();
    add(&quiet, "a", 10, 0);
    arrivals(&quiet, 60, 290);
    let report = fleet(&quiet, MockCloudProvider::new(), fixed)
        .check(&region(), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.decision, Decision::Nothing);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_much_room_consolidates_the_least_loaded_instance_whose_host_is_asked_once_empty() {
    let (db, mut drain) = hosts(&[("a", 3), ("b", 1), ("c", 4)]);
    // The fixed policy drains only empty instances: nothing.
    let fixed = FleetSettings {
        policy: ScalingPolicy::Fixed,
        ..adaptive_settings(drain.port())
    };
    let report = fleet(&db, MockCloudProvider::new(), fixed)
        .check(&region(), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.decision, Decision::Nothing);

    // A shrinking region (sessions ended, none began): the buffer is the minimum, 2, and
    // 22 free is more than an instance over, and still so without b's 9.
    shrinking(&db);
    let adaptive = fleet(
        &db,
        MockCloudProvider::new(),
        adaptive_settings(drain.port()),
    );
    let report = adaptive
        .check(&region(), None, Duration::from_secs(5))
        .await
        .unwrap();
    let b = models::InstanceName::parse("b").unwrap();
    assert_eq!(report.decision, Decision::Consolidate(b.clone()));
    assert_eq!(report.consolidated, vec![b.clone()]);
    assert!(report.drained.is_empty(), "{report:?}");
    // Nothing new lands there; its sessions are where they were; its host is not asked
    // (the check asks before it returns), so that it can be taken back.
    assert!(never_asked(&mut drain).await);
    assert_eq!(status_of(&db, "b"), ("DRAINING", true));
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.mandelbox_info WHERE instance_name = 'b'"),
        1
    );
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.instance_info WHERE status = 'ACTIVE'"),
        2
    );

    // Its session ends: the next check asks its host, and the drain is final.
    db.execute("DELETE FROM hardware.mandelbox_info WHERE instance_name = 'b'");
    let report = adaptive
        .check(&region(), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.drained, vec![b], "{report:?}");
    tokio::time::timeout(Duration::from_secs(5), drain.requested())
        .await
        .unwrap();
    assert_eq!(status_of(&db, "b"), ("DRAINING", false));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shortfall_takes_a_consolidated_instance_back_instead_of_launching() {
    let (db, mut drain) = hosts(&[("a", 3), ("b", 1), ("c", 4), ("d", 1)]);
    shrinking(&db);
    // b and d are consolidated (one each pass), d's session expected to end last.
    db.execute(&format!(
        "UPDATE hardware.mandelbox_info SET expected_end_utc_unix_ms = {}
         WHERE instance_name = 'd'",
        UnixMillis::now().as_millis() + 3_600_000
    ));
    let adaptive = fleet(
        &db,
        MockCloudProvider::new(),
        adaptive_settings(drain.port()),
    );
    for _ in 0..2 {
        adaptive
            .check(&region(), None, Duration::from_secs(5))
            .await
            .unwrap();
    }
    assert_eq!(status_of(&db, "b"), ("DRAINING", true));
    assert_eq!(status_of(&db, "d"), ("DRAINING", true));

    // The room is taken: 1 free of the 20 left. The check takes d back, not b, and
    // launches nothing (the mock cloud has no launch to give).
    db.execute(
        "INSERT INTO hardware.mandelbox_info
             (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms)
         SELECT gen_random_uuid()::text, 'busy', i, 'RUNNING', 0
         FROM (VALUES ('a'), ('a'), ('a'), ('a'), ('a'), ('a'), ('a'),
                      ('c'), ('c'), ('c'), ('c'), ('c')) AS t(i)",
    );
    db.execute("DELETE FROM hardware.departures");
    let fixed = FleetSettings {
        policy: ScalingPolicy::Fixed,
        desired_free: 5,
        ..adaptive_settings(drain.port())
    };
    let report = fleet(&db, MockCloudProvider::new(), fixed)
        .check(&region(), None, Duration::from_secs(5))
        .await
        .unwrap();
    let d = models::InstanceName::parse("d").unwrap();
    assert_eq!(
        report.decision,
        Decision::TakeBack {
            instances: vec![d.clone()],
            launch: 0
        }
    );
    assert_eq!(report.taken_back, vec![d]);
    assert!(report.launched.is_empty());
    assert_eq!(status_of(&db, "d"), ("ACTIVE", false));
    assert_eq!(status_of(&db, "b"), ("DRAINING", true));
    assert!(never_asked(&mut drain).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operators_drain_of_a_consolidated_instance_asks_its_host() {
    let (db, mut drain) = hosts(&[("a", 3), ("b", 1), ("c", 4)]);
    shrinking(&db);
    let adaptive = fleet(
        &db,
        MockCloudProvider::new(),
        adaptive_settings(drain.port()),
    );
    adaptive
        .check(&region(), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(status_of(&db, "b"), ("DRAINING", true));
    let outcome = adaptive
        .drain_by_operator(&models::InstanceName::parse("b").unwrap())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        scaling::OperatorDrainOutcome::Drained(scaling::DrainOutcome::Asked)
    );
    tokio::time::timeout(Duration::from_secs(5), drain.requested())
        .await
        .unwrap();
    assert_eq!(status_of(&db, "b"), ("DRAINING", false));
    // Asked again: it is draining already.
    let again = adaptive
        .drain_by_operator(&models::InstanceName::parse("b").unwrap())
        .await
        .unwrap();
    assert_eq!(again, scaling::OperatorDrainOutcome::AlreadyDraining);
}

/// Instances of 10 slots with these sessions, their hosts trusted by one drain
/// endpoint.
fn hosts(instances: &[(&str, i64)]) -> (TestDatabase, DrainEndpoint) {
    let db = setup();
    let drain = DrainEndpoint::start(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let names: Vec<&str> = instances.iter().map(|(name, _)| *name).collect();
    for (name, sessions) in instances {
        add(&db, name, 10, *sessions);
    }
    trust(&drain, &names);
    (db, drain)
}

/// No host was asked to drain: a check asks before it returns, so a short wait after
/// it tells.
async fn never_asked(drain: &mut DrainEndpoint) -> bool {
    tokio::time::timeout(Duration::from_millis(200), drain.requested())
        .await
        .is_err()
}

/// Ten departures in the last ten seconds and no arrivals: a region shrinking.
fn shrinking(db: &TestDatabase) {
    let now = UnixMillis::now().as_millis();
    db.execute(&format!(
        "INSERT INTO hardware.departures (region_name, at_utc_unix_ms)
         SELECT '{REGION}', {now} - n * 1000 FROM generate_series(1, 10) AS n"
    ));
}

/// Instance `name`'s status, and whether it is reclaimable.
fn status_of(db: &TestDatabase, name: &str) -> (&'static str, bool) {
    let code = db.number(&format!(
        "SELECT (CASE status WHEN 'ACTIVE' THEN 2 WHEN 'DRAINING' THEN 4 ELSE 0 END
                + reclaimable::int)::bigint AS n
         FROM hardware.instance_info WHERE instance_name = '{name}'"
    ));
    let status = match code / 2 {
        1 => "ACTIVE",
        2 => "DRAINING",
        _ => "other",
    };
    (status, code % 2 == 1)
}
