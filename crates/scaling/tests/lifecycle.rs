//! The lifecycle rules against PostgreSQL, terminating through a mocked cloud that
//! records what it was asked, with a clock of the test's choosing.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloud_interface::CloudError;
use cloud_interface::provider::MockCloudProvider;
use models::{Db, PoolOptions, UnixMillis};
use scaling::lifecycle::{LifecyclePolicy, apply_rules};
use scaling::{Fleet, FleetMetrics, FleetSettings};
use test_support::{InstanceRow, TestDatabase};

const MINUTE: i64 = 60_000;

/// The tests' "now": the real time, as the status-change trigger uses the database's.
fn now() -> i64 {
    static NOW: std::sync::LazyLock<i64> =
        std::sync::LazyLock::new(|| UnixMillis::now().as_millis());
    *NOW
}

fn at(offset: i64) -> UnixMillis {
    UnixMillis::from_millis(now() + offset)
}

fn policy() -> LifecyclePolicy {
    LifecyclePolicy {
        heartbeat_timeout: Duration::from_secs(120),
        pre_connection_timeout: Duration::from_secs(900),
        lingering_timeout: Duration::from_secs(600),
        allocation_timeout: Duration::from_secs(90),
        drain_max_age: Duration::from_secs(12 * 3600),
        outage_gap: Duration::from_secs(60),
        arrivals_kept: Duration::from_secs(1800),
        session_history_kept: Duration::from_secs(90 * 86_400),
    }
}

/// The cloud the fleet terminates through: records the ids it was asked to end, fails
/// in the regions it is told to fail in, and takes `delay` per call.
#[derive(Default)]
struct Recorded {
    calls: Arc<Mutex<Vec<String>>>,
    failing_regions: Vec<&'static str>,
    delay: Duration,
}

impl Recorded {
    /// The fleet of `db`, terminating through this cloud.
    fn fleet(&self, db: &TestDatabase) -> Fleet {
        let (calls, failing, delay) =
            (self.calls.clone(), self.failing_regions.clone(), self.delay);
        let mut cloud = MockCloudProvider::new();
        cloud
            .expect_terminate_instances()
            .returning(move |region, ids| {
                // A slow cloud: the call blocks its worker, as a slow request would.
                std::thread::sleep(delay);
                if failing.contains(&region.as_str()) {
                    return Err(CloudError::temporary("cloud says no", None));
                }
                calls
                    .lock()
                    .unwrap()
                    .extend(ids.iter().map(|id| id.as_str().to_owned()));
                Ok(())
            });
        let settings = FleetSettings::new(url::Url::parse("http://127.0.0.1:7730/").unwrap());
        let metrics = FleetMetrics::new(&app_metrics::Registry::new());
        Fleet::new(pool(db), Arc::new(cloud), settings, metrics).unwrap()
    }
}

/// An instance in `status`, heard from `heard_ago` ms before now(), created `created_ago`
/// ms before now(), in that status since `changed_ago` ms before now() (or never recorded).
fn add(
    db: &TestDatabase,
    name: &str,
    status: &str,
    heard_ago: i64,
    created_ago: i64,
    changed_ago: Option<i64>,
) {
    add_in(
        db,
        "us-east-1",
        name,
        status,
        heard_ago,
        created_ago,
        changed_ago,
    );
}

fn add_in(
    db: &TestDatabase,
    region: &str,
    name: &str,
    status: &str,
    heard_ago: i64,
    created_ago: i64,
    changed_ago: Option<i64>,
) {
    let row = InstanceRow::new(name)
        .cloud_id(&format!("cloud-{name}"))
        .region(region)
        .status(status)
        .capacity(4)
        .heard_at(now() - heard_ago)
        .created_at(now() - created_ago);
    db.add_instance(&match changed_ago {
        Some(ago) => row.status_changed_at(now() - ago),
        None => row,
    });
}

/// A session on `instance`, created `ago` ms before now().
fn session(db: &TestDatabase, instance: &str, status: &str, ago: i64) {
    db.execute(&format!(
        "INSERT INTO hardware.mandelbox_info
             (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms)
         VALUES (gen_random_uuid()::text, 'u-' || gen_random_uuid(), '{instance}', '{status}', {})",
        now() - ago
    ));
}

/// The control plane has been up, passing regularly, since `ago` ms before now().
fn up_for(db: &TestDatabase, ago: i64) {
    db.execute(&format!(
        "INSERT INTO hardware.lifecycle_clock (last_pass_utc_unix_ms, up_since_utc_unix_ms)
         VALUES ({last}, {since})",
        last = now() - 30_000,
        since = now() - ago,
    ));
}

fn statuses(db: &TestDatabase) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "SELECT instance_name || '=' || status AS row FROM hardware.instance_info ORDER BY 1",
    )
    .load::<Row>(&mut db.connect())
    .unwrap()
    .into_iter()
    .map(|r| r.row)
    .collect()
}

fn pool(db: &TestDatabase) -> Db {
    Db::new(db.url(), PoolOptions::default())
}

async fn pass(
    db: &TestDatabase,
    terminator: &Recorded,
    now: UnixMillis,
) -> scaling::lifecycle::LifecycleReport {
    apply_rules(&pool(db), policy(), &terminator.fleet(db), now)
        .await
        .unwrap()
}

#[tokio::test]
async fn silent_active_instances_become_unresponsive() {
    let db = TestDatabase::new();
    up_for(&db, 60 * MINUTE);
    add(&db, "fresh", "ACTIVE", MINUTE, 10 * MINUTE, None);
    add(&db, "silent", "ACTIVE", 3 * MINUTE, 10 * MINUTE, None);
    add(&db, "booting", "PRE_CONNECTION", -now() - 1, MINUTE, None);
    let report = pass(&db, &Recorded::default(), at(0)).await;
    assert_eq!(report.marked_unresponsive, 1);
    assert_eq!(
        statuses(&db),
        [
            "booting=PRE_CONNECTION",
            "fresh=ACTIVE",
            "silent=HOST_SERVICE_UNRESPONSIVE"
        ]
    );
    // The change of status is stamped, in milliseconds.
    let stamped = db.number(
        "SELECT status_changed_utc_unix_ms AS n FROM hardware.instance_info WHERE instance_name = 'silent'",
    );
    assert!((UnixMillis::now().as_millis() - stamped).abs() < MINUTE);
}

#[tokio::test]
async fn an_outage_of_the_control_plane_is_not_the_hosts_silence() {
    let db = TestDatabase::new();
    // The last pass ran ten minutes ago: the servers (or the database) were away since.
    db.execute(&format!(
        "INSERT INTO hardware.lifecycle_clock (last_pass_utc_unix_ms, up_since_utc_unix_ms)
         VALUES ({}, {})",
        now() - 10 * MINUTE,
        now() - 60 * MINUTE
    ));
    // Every host went silent with the outage; one has sessions.
    add(&db, "quiet-a", "ACTIVE", 10 * MINUTE, 60 * MINUTE, None);
    add(&db, "quiet-b", "ACTIVE", 10 * MINUTE, 60 * MINUTE, None);
    session(&db, "quiet-a", "RUNNING", 20 * MINUTE);
    let terminator = Recorded::default();
    let report = pass(&db, &terminator, at(0)).await;
    assert_eq!(report.marked_unresponsive, 0, "{report:?}");
    assert_eq!(
        report.up_since,
        Some(at(0)),
        "uptime counts from the restart"
    );

    // Passes go on; "quiet-a" heartbeats again, "quiet-b" really stopped. A whole
    // timeout after the restart, only the really silent one is found.
    db.execute(&format!(
        "UPDATE hardware.instance_info SET last_updated_utc_unix_ms = {}
         WHERE instance_name = 'quiet-a'",
        now() + 5_000
    ));
    for seconds in [30, 60, 90] {
        let report = pass(&db, &terminator, at(seconds * 1000)).await;
        assert_eq!(report.marked_unresponsive, 0, "at +{seconds} s");
    }
    let report = pass(&db, &terminator, at(121_000)).await;
    assert_eq!(report.marked_unresponsive, 1);
    assert_eq!(
        statuses(&db),
        ["quiet-a=ACTIVE", "quiet-b=HOST_SERVICE_UNRESPONSIVE"]
    );
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.mandelbox_info"),
        1,
        "no session was lost"
    );
    assert!(terminator.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn allocations_never_picked_up_are_removed() {
    let db = TestDatabase::new();
    add(&db, "host", "ACTIVE", 0, MINUTE, None);
    session(&db, "host", "ALLOCATED", 2 * MINUTE);
    session(&db, "host", "ALLOCATED", 30_000);
    session(&db, "host", "RUNNING", 60 * MINUTE);
    session(&db, "host", "CONNECTING", 60 * MINUTE);
    let report = pass(&db, &Recorded::default(), at(0)).await;
    assert_eq!(report.expired_allocations, 1);
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.mandelbox_info"),
        3
    );
    assert_eq!(
        db.number("SELECT mandelbox_count AS n FROM hardware.instance_info"),
        3,
        "the slot is counted free again"
    );
}

#[tokio::test]
async fn instances_past_their_time_are_terminated_and_removed() {
    let db = TestDatabase::new();
    up_for(&db, 60 * MINUTE);
    add(
        &db,
        "never-registered",
        "PRE_CONNECTION",
        now() + 1,
        16 * MINUTE,
        None,
    );
    add(
        &db,
        "still-booting",
        "PRE_CONNECTION",
        now() + 1,
        5 * MINUTE,
        None,
    );
    add(
        &db,
        "drained-long-ago",
        "DRAINING",
        0,
        60 * MINUTE,
        Some(11 * MINUTE),
    );
    add(
        &db,
        "draining-now",
        "DRAINING",
        0,
        60 * MINUTE,
        Some(MINUTE),
    );
    add(
        &db,
        "gone-quiet",
        "HOST_SERVICE_UNRESPONSIVE",
        30 * MINUTE,
        60 * MINUTE,
        Some(20 * MINUTE),
    );
    add(&db, "old-row", "DRAINING", 0, 60 * MINUTE, None);
    add(&db, "healthy", "ACTIVE", 0, 60 * MINUTE, None);
    let terminator = Recorded::default();
    let report = pass(&db, &terminator, at(0)).await;
    let mut terminated = terminator.calls.lock().unwrap().clone();
    terminated.sort();
    assert_eq!(
        terminated,
        [
            "cloud-drained-long-ago",
            "cloud-gone-quiet",
            "cloud-never-registered",
            "cloud-old-row"
        ]
    );
    assert_eq!(report.terminated.len(), 4);
    assert_eq!(
        statuses(&db),
        [
            "draining-now=DRAINING",
            "healthy=ACTIVE",
            "still-booting=PRE_CONNECTION"
        ]
    );
}

#[tokio::test]
async fn a_draining_instance_with_sessions_is_kept_until_empty_or_its_cap() {
    let db = TestDatabase::new();
    up_for(&db, 24 * 60 * MINUTE);
    // Draining for an hour (an image upgrade), its host heartbeating, sessions on.
    add(&db, "busy", "DRAINING", 0, 120 * MINUTE, Some(60 * MINUTE));
    session(&db, "busy", "RUNNING", 90 * MINUTE);
    // Draining for 13 hours: past DRAIN_MAX_AGE_SECS, it goes anyway.
    add(
        &db,
        "too-old",
        "DRAINING",
        0,
        14 * 60 * MINUTE,
        Some(13 * 60 * MINUTE),
    );
    session(&db, "too-old", "RUNNING", 60 * MINUTE);
    // Draining with sessions, but its host silent for the lingering timeout.
    add(
        &db,
        "host-died",
        "DRAINING",
        11 * MINUTE,
        120 * MINUTE,
        Some(60 * MINUTE),
    );
    session(&db, "host-died", "RUNNING", 90 * MINUTE);
    let terminator = Recorded::default();
    pass(&db, &terminator, at(0)).await;
    let mut calls = terminator.calls.lock().unwrap().clone();
    calls.sort();
    assert_eq!(calls, ["cloud-host-died", "cloud-too-old"]);
    assert_eq!(statuses(&db), ["busy=DRAINING"]);

    // Its last session ends: the lingering timeout counts from then, not from when it
    // began draining an hour ago.
    db.execute("DELETE FROM hardware.mandelbox_info");
    let emptied = db.number(
        "SELECT emptied_utc_unix_ms AS n FROM hardware.instance_info WHERE instance_name = 'busy'",
    );
    assert!((UnixMillis::now().as_millis() - emptied).abs() < MINUTE);
    pass(&db, &terminator, at(5 * MINUTE)).await;
    assert_eq!(statuses(&db), ["busy=DRAINING"]);
    pass(
        &db,
        &terminator,
        UnixMillis::from_millis(emptied + 11 * MINUTE),
    )
    .await;
    assert!(statuses(&db).is_empty());
}

#[tokio::test]
async fn one_regions_cloud_failure_ends_nothing_of_the_others() {
    let db = TestDatabase::new();
    up_for(&db, 60 * MINUTE);
    add_in(
        &db,
        "us-east-1",
        "east",
        "PRE_CONNECTION",
        now() + 1,
        16 * MINUTE,
        None,
    );
    add_in(
        &db,
        "eu-west-1",
        "west",
        "PRE_CONNECTION",
        now() + 1,
        16 * MINUTE,
        None,
    );
    let failing = Recorded {
        failing_regions: vec!["eu-west-1"],
        ..Recorded::default()
    };
    let report = pass(&db, &failing, at(0)).await;
    assert_eq!(report.failed_regions.len(), 1);
    assert_eq!(*failing.calls.lock().unwrap(), ["cloud-east"]);
    // The failed region's row stays, claimed: no late registration revives it, and
    // the next pass tries again.
    assert_eq!(statuses(&db), ["west=PRE_CONNECTION"]);
    assert_eq!(
        db.number(
            "SELECT count(*) AS n FROM hardware.instance_info WHERE terminating_utc_unix_ms IS NOT NULL"
        ),
        1
    );
    let recovered = Recorded::default();
    pass(&db, &recovered, at(30_000)).await;
    assert_eq!(*recovered.calls.lock().unwrap(), ["cloud-west"]);
    assert!(statuses(&db).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_row_lock_is_held_while_the_cloud_terminates() {
    let db = TestDatabase::new();
    up_for(&db, 60 * MINUTE);
    add(
        &db,
        "doomed",
        "HOST_SERVICE_UNRESPONSIVE",
        30 * MINUTE,
        60 * MINUTE,
        Some(20 * MINUTE),
    );
    let slow = Recorded {
        delay: Duration::from_secs(3),
        ..Recorded::default()
    }
    .fleet(&db);
    let terminating = {
        let pool = pool(&db);
        tokio::spawn(async move { apply_rules(&pool, policy(), &slow, at(0)).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // While the cloud call is under way, a write to the row does not wait for it.
    let started = std::time::Instant::now();
    db.execute(
        "SET lock_timeout = 1000;
         UPDATE hardware.instance_info SET memory_remaining_kb = 7 WHERE instance_name = 'doomed'",
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(terminating.await.unwrap().unwrap().terminated.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_passes_from_two_processes_do_nothing_twice() {
    let db = TestDatabase::new();
    up_for(&db, 60 * MINUTE);
    for i in 0..5 {
        add(
            &db,
            &format!("old-{i}"),
            "PRE_CONNECTION",
            now() + 1,
            16 * MINUTE,
            None,
        );
    }
    add(&db, "silent", "ACTIVE", 3 * MINUTE, 10 * MINUTE, None);
    let terminator = Recorded {
        delay: Duration::from_millis(300),
        ..Recorded::default()
    };
    // Two pools and two fleets: two processes' worth, each pass on a worker of its own
    // (the cloud's delay blocks the worker it runs on).
    let passes = [0, 1].map(|_| {
        let (pool, fleet) = (pool(&db), terminator.fleet(&db));
        tokio::spawn(async move { apply_rules(&pool, policy(), &fleet, at(0)).await })
    });
    let [a, b] = passes;
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    let mut calls = terminator.calls.lock().unwrap().clone();
    calls.sort();
    assert_eq!(calls.len(), 5, "each instance terminated once: {calls:?}");
    calls.dedup();
    assert_eq!(calls.len(), 5);
    assert_eq!(a.marked_unresponsive + b.marked_unresponsive, 1);
    assert_eq!(a.terminated.len() + b.terminated.len(), 5);
    assert_eq!(statuses(&db), ["silent=HOST_SERVICE_UNRESPONSIVE"]);
}
