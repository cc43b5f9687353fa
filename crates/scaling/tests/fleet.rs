//! Fleet scaling against PostgreSQL with the mocked cloud: what is launched, drained and
//! terminated, what is recorded, and what two processes deciding at once do.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use assignment::{ScaleCheck, ScalingHook};
use cloud_interface::provider::MockCloudProvider;
use cloud_interface::{
    BootConfig, CloudError, CloudInstance, CloudInstanceId, CloudProvider, LaunchRequest,
    LaunchToken,
};
use host_agent::DrainEndpoint;
use local_cloud::{LocalOptions, LocalProvider};
use models::{AmiId, Db, InstanceName, PoolOptions, Region};
use scaling::sizing::Decision;
use scaling::{Fleet, FleetMetrics, FleetScaler, FleetSettings, PassReport};
use secrecy::ExposeSecret;
use test_support::{InstanceRow, TestDatabase};

const REGION: &str = "us-east-1";
const AMI: &str = "ami-current";
const COMMIT: &str = "abcdef0123456789";

fn region(name: &str) -> Region {
    Region::parse(name).unwrap()
}

fn ami(name: &str) -> AmiId {
    AmiId::parse(name).unwrap()
}

fn settings(host_port: u16) -> FleetSettings {
    FleetSettings {
        host_service_port: host_port,
        launch_backoff: Duration::from_millis(10),
        drain_timeout: Duration::from_millis(500),
        check_interval: Duration::from_millis(10),
        branch: "test".to_owned(),
        // What the tests' instances hold, as a provider would say.
        launch_capacity: Some(10),
        ..FleetSettings::new(url::Url::parse("http://127.0.0.1:7730/").unwrap())
    }
}

fn metrics() -> FleetMetrics {
    FleetMetrics::new(&app_metrics::Registry::new())
}

fn fleet_with(db: &TestDatabase, cloud: MockCloudProvider, settings: FleetSettings) -> Fleet {
    Fleet::new(
        Db::new(db.url(), PoolOptions::default()),
        Arc::new(cloud),
        settings,
        metrics(),
    )
    .unwrap()
}

fn id(stored: &str) -> CloudInstanceId {
    CloudInstanceId::stored(stored)
}

/// A region whose active image is AMI for COMMIT.
fn serve_region(db: &TestDatabase, name: &str) {
    db.execute(&format!(
        "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
         VALUES ('{name}', '{COMMIT}', '{AMI}', true)"
    ));
}

/// An instance with `mandelboxes` of `capacity` slots taken.
fn add(db: &TestDatabase, name: &str, image: &str, status: &str, capacity: i64, mandelboxes: i64) {
    add_in(
        db,
        REGION,
        name,
        image,
        status,
        capacity,
        mandelboxes,
        "127.0.0.1",
    );
}

#[allow(clippy::too_many_arguments, reason = "a row has many columns")]
fn add_in(
    db: &TestDatabase,
    region: &str,
    name: &str,
    image: &str,
    status: &str,
    capacity: i64,
    mandelboxes: i64,
    ip: &str,
) {
    db.add_instance(
        &InstanceRow::new(name)
            .cloud_id(&format!("mock-i-{name}"))
            .created_at(0)
            .capacity(capacity)
            .heard_at(1)
            .ip(ip)
            .ami(image)
            .region(region)
            .status(status)
            .commit_hash(COMMIT)
            .host_token(&format!("host_test-{name}")),
    );
    for _ in 0..mandelboxes {
        db.execute(&format!(
            "INSERT INTO hardware.mandelbox_info
                 (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms)
             VALUES (gen_random_uuid()::text, 'user', '{name}', 'RUNNING', 0)"
        ));
    }
}

fn count(db: &TestDatabase, filter: &str) -> i64 {
    db.number(&format!(
        "SELECT count(*) AS n FROM hardware.instance_info WHERE {filter}"
    ))
}

/// A cloud that starts instances (counting them) and terminates what it is told.
fn launching_cloud(started: Arc<AtomicUsize>) -> MockCloudProvider {
    let mut cloud = MockCloudProvider::new();
    cloud.expect_start_instance().returning(move |request| {
        let n = started.fetch_add(1, Ordering::SeqCst);
        Ok(id(&format!("i-{n:04}-{}", request.name)))
    });
    cloud
        .expect_list_instances()
        .returning(|_, _| Ok(Vec::new()));
    cloud
}

/// A cloud that only lists: nothing of this deployment runs unrecorded.
fn listing_cloud() -> MockCloudProvider {
    let mut cloud = MockCloudProvider::new();
    cloud
        .expect_list_instances()
        .returning(|_, _| Ok(Vec::new()));
    cloud
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
async fn an_empty_region_launches_one_instance_and_records_it() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    let owner = Arc::new(std::sync::Mutex::new(None));
    let owner_seen = owner.clone();
    let mut cloud = MockCloudProvider::new();
    cloud
        .expect_start_instance()
        .times(1)
        .withf(|request| {
            let boot = BootConfig::from_user_data(request.user_data.expose_secret()).unwrap();
            request.region.as_str() == REGION
                && request.image.as_str() == AMI
                && request.instance_type == "g4dn.xlarge"
                && request
                    .name
                    .as_str()
                    .starts_with("us-east-1-test-abcdef0-uid-")
                && request.name.as_str().len() == "us-east-1-test-abcdef0-uid-".len() + 10
                && boot.instance_name == request.name
                && boot.webserver_url.as_str() == "http://127.0.0.1:7730/"
        })
        .returning(move |request| {
            *owner_seen.lock().unwrap() = Some(request.owner.clone());
            Ok(id("mock-i-0abc"))
        });
    let fleet = fleet_with(&db, cloud, settings(9));

    let report = fleet
        .check(&region(REGION), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.decision, Decision::Launch(1));
    assert_eq!(report.launched.len(), 1);
    let name = report.launched[0].as_str();
    assert_eq!(
        count(
            &db,
            &format!(
                "instance_name = '{name}' AND status = 'PRE_CONNECTION' AND cloud_provider_id = 'mock-i-0abc'
                 AND aws_ami_id = '{AMI}' AND commit_hash = '{COMMIT}' AND location = '{REGION}'
                 AND bootstrap_secret_hash IS NOT NULL"
            )
        ),
        1
    );
    // Tagged with the database's deployment id.
    let tagged = owner.lock().unwrap().clone().unwrap();
    assert_eq!(
        db.number(&format!(
            "SELECT count(*) AS n FROM hardware.deployment WHERE deployment_id = '{tagged}'"
        )),
        1
    );
    // The instance on its way counts: a second check launches nothing.
    let again = fleet
        .check(&region(REGION), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(again.decision, Decision::Nothing);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_shortfall_launches_many() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    add(&db, "full", AMI, "ACTIVE", 10, 10);
    let started = Arc::new(AtomicUsize::new(0));
    let fleet = fleet_with(
        &db,
        launching_cloud(started.clone()),
        FleetSettings {
            desired_free: 30,
            ..settings(9)
        },
    );
    let report = fleet
        .check(&region(REGION), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.decision, Decision::Launch(3));
    assert_eq!(started.load(Ordering::SeqCst), 3);
    assert_eq!(count(&db, "status = 'PRE_CONNECTION'"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn launches_stop_at_the_regions_cap() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    add(&db, "full", AMI, "ACTIVE", 10, 10);
    add(&db, "old-image", "ami-old", "DRAINING", 10, 1);
    let started = Arc::new(AtomicUsize::new(0));
    let fleet = fleet_with(
        &db,
        launching_cloud(started.clone()),
        FleetSettings {
            desired_free: 30,
            max_instances_per_region: Some(3),
            ..settings(9)
        },
    );
    let report = fleet
        .check(&region(REGION), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.decision, Decision::Launch(1));
    assert_eq!(count(&db, "true"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_launch_failures_are_retried_and_permanent_ones_leave_nothing() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut cloud = MockCloudProvider::new();
    let counter = attempts.clone();
    cloud.expect_start_instance().returning(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) < 2 {
            Err(CloudError::temporary("InsufficientInstanceCapacity", None))
        } else {
            Ok(id("mock-i-third-time"))
        }
    });
    let fleet = fleet_with(&db, cloud, settings(9));
    let report = fleet
        .check(&region(REGION), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(report.launched.len(), 1);
    assert_eq!(count(&db, "cloud_provider_id = 'mock-i-third-time'"), 1);

    let db = TestDatabase::new();
    serve_region(&db, REGION);
    let mut cloud = MockCloudProvider::new();
    cloud
        .expect_start_instance()
        .times(1)
        .returning(|_| Err(CloudError::permanent("InvalidAMIID.NotFound", None)));
    let fleet = fleet_with(&db, cloud, settings(9));
    let err = fleet
        .check(&region(REGION), None, Duration::from_secs(5))
        .await
        .unwrap_err();
    let chain = format!("{:?}", err);
    assert!(chain.contains("InvalidAMIID"), "{chain}");
    assert_eq!(count(&db, "true"), 0);

    // Temporary failures that never end give up after the configured attempts.
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    let mut cloud = MockCloudProvider::new();
    cloud
        .expect_start_instance()
        .times(4)
        .returning(|_| Err(CloudError::temporary("RequestLimitExceeded", None)));
    let fleet = fleet_with(&db, cloud, settings(9));
    assert!(
        fleet
            .check(&region(REGION), None, Duration::from_secs(5))
            .await
            .is_err()
    );
    assert_eq!(count(&db, "true"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_cannot_be_recorded_is_terminated() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    // Every insert into instance_info fails, as if the database refused the row.
    db.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON hardware.instance_info
             FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    let mut cloud = MockCloudProvider::new();
    cloud
        .expect_start_instance()
        .times(1)
        .returning(|_| Ok(id("mock-i-unrecorded")));
    cloud
        .expect_terminate_instances()
        .times(1)
        .withf(|region, ids| region.as_str() == REGION && ids == [id("mock-i-unrecorded")])
        .returning(|_, _| Ok(()));
    let fleet = fleet_with(&db, cloud, settings(9));
    let err = fleet
        .check(&region(REGION), None, Duration::from_secs(5))
        .await
        .unwrap_err();
    let chain = format!("{:?}", err);
    assert!(chain.contains("refused by the test"), "{chain}");
    assert_eq!(count(&db, "true"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_much_room_drains_one_empty_instance_through_its_host() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    let mut drain = DrainEndpoint::start(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    add(&db, "a-busy", AMI, "ACTIVE", 10, 2);
    add(&db, "b-empty", AMI, "ACTIVE", 10, 0);
    add(&db, "c-empty", AMI, "ACTIVE", 10, 0);
    trust(&drain, &["a-busy", "b-empty", "c-empty"]);
    // The cloud is not called: the host drains itself.
    let fleet = fleet_with(&db, MockCloudProvider::new(), settings(drain.port()));

    let report = fleet
        .check(&region(REGION), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.drained.len(), 1, "{report:?}");
    let drained = report.drained[0].as_str();
    assert!(drained.ends_with("-empty"), "{drained}");
    assert_eq!(count(&db, "status = 'DRAINING'"), 1);
    assert_eq!(
        count(&db, "instance_name = 'a-busy' AND status = 'ACTIVE'"),
        1
    );
    tokio::time::timeout(Duration::from_secs(5), drain.requested())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_host_is_terminated_through_the_cloud_and_removed() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    add(&db, "a-empty", AMI, "ACTIVE", 10, 0);
    add(&db, "b-empty", AMI, "ACTIVE", 10, 0);
    add(&db, "c-empty", AMI, "ACTIVE", 10, 0);
    let mut cloud = MockCloudProvider::new();
    cloud
        .expect_terminate_instances()
        .times(1)
        .withf(|region, ids| region.as_str() == REGION && ids == [id("mock-i-a-empty")])
        .returning(|_, _| Ok(()));
    // Port 9 on loopback: nothing listens.
    let fleet = fleet_with(&db, cloud, settings(9));
    let report = fleet
        .check(&region(REGION), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.terminated.len(), 1, "{report:?}");
    assert_eq!(count(&db, "instance_name = 'a-empty'"), 0);
    assert_eq!(count(&db, "true"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_empty_instances_are_drained() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    // Lots of room, none of it empty.
    add(&db, "a", AMI, "ACTIVE", 20, 1);
    add(&db, "b", AMI, "ACTIVE", 20, 1);
    let fleet = fleet_with(&db, MockCloudProvider::new(), settings(9));
    let report = fleet
        .check(&region(REGION), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.decision, Decision::Nothing);

    // An instance that gains a mandelbox between the decision and the drain is spared.
    let name = models::InstanceName::parse("a").unwrap();
    assert_eq!(fleet.drain_if_empty(&name).await.unwrap(), None);
    assert_eq!(count(&db, "status = 'ACTIVE'"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_images_and_disabled_regions_drain_every_empty_instance() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    let mut drain = DrainEndpoint::start(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    add(&db, "old-1", "ami-old", "ACTIVE", 10, 0);
    add(&db, "old-2", "ami-old", "ACTIVE", 10, 0);
    add(&db, "old-busy", "ami-old", "ACTIVE", 10, 3);
    add(&db, "cur-1", AMI, "ACTIVE", 10, 0);
    // A region that is no longer served.
    db.execute(&format!(
        "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active, region_enabled)
         VALUES ('eu-west-1', '{COMMIT}', 'ami-eu', true, false)"
    ));
    add_in(
        &db,
        "eu-west-1",
        "eu-1",
        "ami-eu",
        "ACTIVE",
        10,
        0,
        "127.0.0.1",
    );
    trust(&drain, &["old-1", "old-2", "old-busy", "cur-1", "eu-1"]);
    let fleet = fleet_with(&db, listing_cloud(), settings(drain.port()));

    let reports = fleet.run_pass().await.unwrap().checks;
    let drained: Vec<String> = reports
        .iter()
        .flat_map(|r| r.drained.iter().map(|n| n.as_str().to_owned()))
        .collect();
    let mut drained_sorted = drained.clone();
    drained_sorted.sort();
    assert_eq!(drained_sorted, ["eu-1", "old-1", "old-2"], "{reports:?}");
    assert_eq!(
        count(&db, "instance_name = 'old-busy' AND status = 'ACTIVE'"),
        1
    );
    assert_eq!(
        count(&db, "instance_name = 'cur-1' AND status = 'ACTIVE'"),
        1
    );
    tokio::time::timeout(Duration::from_secs(5), drain.requested())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn regions_are_sized_each_on_their_own() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    serve_region(&db, "us-west-1");
    // us-east-1 has a good buffer; us-west-1 is full.
    add(&db, "east", AMI, "ACTIVE", 20, 0);
    add_in(&db, "us-west-1", "west", AMI, "ACTIVE", 10, 10, "127.0.0.1");
    let started = Arc::new(AtomicUsize::new(0));
    let fleet = fleet_with(&db, launching_cloud(started.clone()), settings(9));
    let reports = fleet.run_pass().await.unwrap().checks;
    assert_eq!(started.load(Ordering::SeqCst), 1, "{reports:?}");
    assert_eq!(
        count(&db, "location = 'us-west-1' AND status = 'PRE_CONNECTION'"),
        1
    );
    assert_eq!(count(&db, "location = 'us-east-1'"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn autoscale_off_freezes_the_pass_and_the_hook() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    add(&db, "a", AMI, "ACTIVE", 10, 0);
    add(&db, "b", AMI, "ACTIVE", 10, 0);
    add(&db, "c", AMI, "ACTIVE", 10, 0);
    let fleet = Arc::new(fleet_with(
        &db,
        MockCloudProvider::new(),
        FleetSettings {
            autoscale: false,
            ..settings(9)
        },
    ));
    assert_eq!(fleet.run_pass().await.unwrap(), PassReport::default());
    // The same fleet through the hook: with autoscale on, it would drain an empty
    // instance (and the mock, expecting nothing, would fail the test).
    let scaler = FleetScaler::new(fleet.clone());
    scaler.check(ScaleCheck {
        region: region(REGION),
        ami: None,
    });
    scaler.idle().await;
    assert_eq!(count(&db, "status = 'ACTIVE'"), 3);
    assert_eq!(count(&db, "true"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_is_one_id_per_database_whatever_the_process() {
    let (db, other_db) = (TestDatabase::new(), TestDatabase::new());
    let fleets: Vec<Fleet> = (0..4)
        .map(|_| fleet_with(&db, MockCloudProvider::new(), settings(9)))
        .collect();
    let owners = futures_util::future::join_all(fleets.iter().map(Fleet::owner)).await;
    let owners: Vec<String> = owners.into_iter().map(Result::unwrap).collect();
    assert!(owners.iter().all(|o| *o == owners[0]), "{owners:?}");
    assert_eq!(
        uuid::Uuid::parse_str(&owners[0]).unwrap().get_version_num(),
        4
    );
    let other = fleet_with(&other_db, MockCloudProvider::new(), settings(9));
    assert_ne!(other.owner().await.unwrap(), owners[0]);
    // A configured owner wins.
    let configured = fleet_with(
        &db,
        MockCloudProvider::new(),
        FleetSettings {
            owner: Some("staging".to_owned()),
            ..settings(9)
        },
    );
    assert_eq!(configured.owner().await.unwrap(), "staging");
}

fn running(id: &str, name: &str, launched_secs_ago: u64) -> CloudInstance {
    CloudInstance {
        id: CloudInstanceId::stored(id),
        name: name.to_owned(),
        launched_at: SystemTime::now() - Duration::from_secs(launched_secs_ago),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_no_row_records_are_terminated_once_past_the_grace() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    // A second known region whose listing fails: logged, the rest goes on.
    db.execute(&format!(
        "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
         VALUES ('eu-west-1', '{COMMIT}', 'ami-eu', false)"
    ));
    // Recorded (cloud id `mock-i-kept`), with room to spare but not enough to drain.
    add(&db, "kept", AMI, "ACTIVE", 10, 0);
    let mut cloud = MockCloudProvider::new();
    cloud
        .expect_list_instances()
        .withf(|region, owner| region.as_str() == REGION && owner == "owner-under-test")
        .times(1)
        .returning(|_, _| {
            Ok(vec![
                running("mock-i-kept", "kept", 7200),
                running(
                    "mock-i-orphan",
                    "us-east-1-test-abcdef0-uid-0123456789",
                    3600,
                ),
                // Launched a moment ago: its row may be on its way.
                running("mock-i-young", "us-east-1-test-abcdef0-uid-abcdefghij", 5),
            ])
        });
    cloud
        .expect_list_instances()
        .withf(|region, _| region.as_str() == "eu-west-1")
        .times(1)
        .returning(|_, _| Err(CloudError::temporary("throttled", None)));
    cloud
        .expect_terminate_instances()
        .withf(|region, ids| region.as_str() == REGION && ids == [id("mock-i-orphan")])
        .times(1)
        .returning(|_, _| Ok(()));
    let fleet = fleet_with(
        &db,
        cloud,
        FleetSettings {
            desired_free: 10,
            orphan_grace: Duration::from_secs(600),
            owner: Some("owner-under-test".to_owned()),
            ..settings(9)
        },
    );
    let report = fleet.run_pass().await.unwrap();
    let orphans: Vec<&str> = report.orphans.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(orphans, ["mock-i-orphan"], "{report:?}");
    assert_eq!(
        count(&db, "instance_name = 'kept' AND status = 'ACTIVE'"),
        1
    );
}

/// The local cloud, end to end: an instance started for this deployment that no row
/// records (its launcher died before writing it) is found and ended; the recorded one
/// and another deployment's stay.
#[tokio::test(flavor = "multi_thread")]
async fn the_pass_ends_an_unrecorded_instance_on_the_local_cloud() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    let provider = Arc::new(LocalProvider::new(LocalOptions {
        host_port: 0,
        // The hosts stay booting: no webserver to register with here.
        boot_delay: Duration::from_secs(3600),
        ..LocalOptions::default()
    }));
    let settings = FleetSettings {
        orphan_grace: Duration::ZERO,
        // One booting instance is the whole buffer of 10.
        launch_capacity: Some(10),
        ..FleetSettings::new(url::Url::parse("http://127.0.0.1:9/").unwrap())
    };
    let fleet = Fleet::new(
        Db::new(db.url(), PoolOptions::default()),
        provider.clone(),
        settings,
        metrics(),
    )
    .unwrap();
    let owner = fleet.owner().await.unwrap();
    // The empty region gets its buffer instance, recorded.
    let report = fleet
        .check(&region(REGION), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.launched.len(), 1, "{report:?}");
    let recorded = report.launched[0].as_str().to_owned();
    let launch = |owner: &str, name: &str| LaunchRequest {
        region: region(REGION),
        image: ami(AMI),
        name: InstanceName::parse(name).unwrap(),
        instance_type: "g4dn.xlarge".to_owned(),
        user_data: BootConfig {
            instance_name: InstanceName::parse(name).unwrap(),
            webserver_url: url::Url::parse("http://127.0.0.1:9/").unwrap(),
            bootstrap_secret: "unused".to_owned().into(),
        }
        .to_user_data()
        .unwrap(),
        owner: owner.to_owned(),
        launch_token: LaunchToken::new(),
    };
    let orphan = provider
        .start_instance(&launch(&owner, "orphan"))
        .await
        .unwrap();
    let theirs = provider
        .start_instance(&launch("http://elsewhere.test/", "theirs"))
        .await
        .unwrap();

    let report = fleet.run_pass().await.unwrap();
    let ended: Vec<CloudInstanceId> = report.orphans.iter().map(|o| o.id.clone()).collect();
    assert_eq!(ended, [orphan], "{report:?}");
    assert_eq!(report.orphans[0].name, "orphan");
    let ours: Vec<String> = provider
        .list_instances(&region(REGION), &owner)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(ours, [recorded]);
    let elsewhere = provider
        .list_instances(&region(REGION), "http://elsewhere.test/")
        .await
        .unwrap();
    assert_eq!(elsewhere.len(), 1);
    assert_eq!(elsewhere[0].id, theirs);
    assert_eq!(count(&db, "true"), 1);
}

/// Many refusals at once, in two processes: one decision at a time per fleet, so the
/// shortfall is launched once, not once per refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checks_in_two_processes_launch_the_shortfall_once() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    add(&db, "full", AMI, "ACTIVE", 10, 8);
    let started = Arc::new(AtomicUsize::new(0));
    let slow_cloud = |started: Arc<AtomicUsize>| {
        let mut cloud = MockCloudProvider::new();
        cloud.expect_start_instance().returning(move |request| {
            // A slow cloud widens the window in which a second decision could race.
            std::thread::sleep(Duration::from_millis(150));
            let n = started.fetch_add(1, Ordering::SeqCst);
            Ok(id(&format!("i-{n}-{}", request.name)))
        });
        cloud
    };
    let first = Arc::new(fleet_with(&db, slow_cloud(started.clone()), settings(9)));
    let second = Arc::new(fleet_with(&db, slow_cloud(started.clone()), settings(9)));

    let mut checks = Vec::new();
    for i in 0..16 {
        let fleet = if i % 2 == 0 { &first } else { &second }.clone();
        checks.push(tokio::spawn(async move {
            fleet
                .check(&region(REGION), None, Duration::from_secs(20))
                .await
                .unwrap()
        }));
    }
    // And the hooks of both processes, folding their own bursts.
    let hooks = [
        FleetScaler::new(first.clone()),
        FleetScaler::new(second.clone()),
    ];
    for _ in 0..20 {
        for hook in &hooks {
            hook.check(ScaleCheck {
                region: region(REGION),
                ami: None,
            });
        }
    }
    let mut launched = 0;
    for check in checks {
        launched += check.await.unwrap().launched.len();
    }
    for hook in &hooks {
        hook.idle().await;
    }
    // 2 free of 10 wanted: one instance of 10 covers the shortfall, launched by one of
    // the checks or, when a hook's check decides first (seen under a loaded CI run), by
    // that hook; either way once.
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert!(launched <= 1, "{launched}");
    assert_eq!(count(&db, "status = 'PRE_CONNECTION'"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_skips_a_fleet_another_process_is_deciding() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    let pool = Db::new(db.url(), PoolOptions::default());
    let held = pool
        .advisory_lock(&format!("fleet:{REGION}:{AMI}"), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let fleet = fleet_with(&db, MockCloudProvider::new(), settings(9));
    let report = fleet
        .check(&region(REGION), Some(&ami(AMI)), Duration::from_millis(100))
        .await
        .unwrap();
    assert!(report.skipped);
    held.release().await;
}

/// A launch whose first try timed out after the cloud started the instance: the retry
/// carries the same launch token, so the cloud returns that instance, and one is recorded.
#[tokio::test(flavor = "multi_thread")]
async fn a_retried_launch_keeps_its_token_and_records_one_instance() {
    let db = TestDatabase::new();
    serve_region(&db, REGION);
    let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = tokens.clone();
    let mut cloud = MockCloudProvider::new();
    cloud
        .expect_start_instance()
        .times(2)
        .returning(move |request| {
            let mut seen = seen.lock().unwrap();
            seen.push(request.launch_token.clone());
            if seen.len() == 1 {
                // The instance started, but the answer was lost.
                Err(CloudError::temporary("RequestTimeout", None))
            } else {
                Ok(id("mock-i-started-once"))
            }
        });
    let fleet = fleet_with(&db, cloud, settings(9));
    let report = fleet
        .check(&region(REGION), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.launched.len(), 1);
    let tokens = tokens.lock().unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0], tokens[1], "one token across the retries");
    assert_eq!(count(&db, "cloud_provider_id = 'mock-i-started-once'"), 1);
}
