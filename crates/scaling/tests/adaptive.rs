//! `SCALING_POLICY=adaptive` against PostgreSQL: the buffer learned from the arrivals and
//! boots the database recorded, and consolidation, which drains the least-loaded
//! instance through its host while its sessions go on.
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
        policy: ScalingPolicy::Adaptive { min: 2, max: 100 },
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
async fn too_much_room_drains_the_least_loaded_instance_and_its_sessions_stay() {
    let db = setup();
    let mut drain = DrainEndpoint::start(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    add(&db, "a", 10, 3);
    add(&db, "b", 10, 1);
    add(&db, "c", 10, 4);
    trust(&drain, &["a", "b", "c"]);
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
    let now = UnixMillis::now().as_millis();
    db.execute(&format!(
        "INSERT INTO hardware.departures (region_name, at_utc_unix_ms)
         SELECT '{REGION}', {now} - n * 1000 FROM generate_series(1, 10) AS n"
    ));
    let report = fleet(
        &db,
        MockCloudProvider::new(),
        adaptive_settings(drain.port()),
    )
    .check(&region(), None, Duration::from_secs(5))
    .await
    .unwrap();
    let b = models::InstanceName::parse("b").unwrap();
    assert_eq!(report.decision, Decision::Consolidate(b.clone()));
    assert_eq!(report.drained, vec![b]);
    tokio::time::timeout(Duration::from_secs(5), drain.requested())
        .await
        .unwrap();
    // Nothing new lands there; its sessions are where they were.
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.instance_info WHERE instance_name = 'b' AND status = 'DRAINING'"),
        1
    );
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.mandelbox_info WHERE instance_name = 'b'"),
        1
    );
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.instance_info WHERE status = 'ACTIVE'"),
        2
    );
}
