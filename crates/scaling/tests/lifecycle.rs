//! The lifecycle rules against PostgreSQL, with a recording terminator and a clock of
//! the test's choosing.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use models::instance::Doomed;
use models::{Db, PoolOptions, UnixMillis};
use scaling::lifecycle::{LifecyclePolicy, Terminator, run_pass};
use test_support::TestDatabase;

const MINUTE: i64 = 60_000;

/// The tests' "now": the real time, as the status-change trigger uses the database's.
fn now() -> i64 {
    static NOW: std::sync::LazyLock<i64> =
        std::sync::LazyLock::new(|| UnixMillis::now().as_millis());
    *NOW
}

fn policy() -> LifecyclePolicy {
    LifecyclePolicy {
        heartbeat_timeout: Duration::from_secs(120),
        pre_connection_timeout: Duration::from_secs(900),
        lingering_timeout: Duration::from_secs(600),
        allocation_timeout: Duration::from_secs(90),
    }
}

#[derive(Default)]
struct Recorded {
    calls: Mutex<Vec<String>>,
    fail: bool,
    delay: Duration,
}

#[async_trait]
impl Terminator for Recorded {
    async fn terminate(&self, instances: &[Doomed]) -> Result<(), String> {
        tokio::time::sleep(self.delay).await;
        if self.fail {
            return Err("cloud says no".to_owned());
        }
        let mut calls = self.calls.lock().unwrap();
        calls.extend(instances.iter().map(|d| d.cloud_provider_id.clone()));
        Ok(())
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
    let changed = changed_ago.map_or("NULL".to_owned(), |ago| (now() - ago).to_string());
    db.execute(&format!(
        "INSERT INTO hardware.instance_info
             (instance_name, cloud_provider_id, aws_ami_id, location, status, commit_hash,
              aws_instance_type, mandelbox_capacity, last_updated_utc_unix_ms,
              creation_time_utc_unix_ms, status_changed_utc_unix_ms)
         VALUES ('{name}', 'cloud-{name}', 'ami', 'us-east-1', '{status}', 'h', 't', 4,
                 {heard}, {created}, {changed})",
        heard = now() - heard_ago,
        created = now() - created_ago,
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

#[tokio::test]
async fn silent_active_instances_become_unresponsive() {
    let db = TestDatabase::new();
    add(&db, "fresh", "ACTIVE", MINUTE, 10 * MINUTE, None);
    add(&db, "silent", "ACTIVE", 3 * MINUTE, 10 * MINUTE, None);
    add(&db, "booting", "PRE_CONNECTION", -now() - 1, MINUTE, None);
    let terminator = Arc::new(Recorded::default());
    let report = run_pass(
        &pool(&db),
        policy(),
        terminator,
        UnixMillis::from_millis(now()),
    )
    .await
    .unwrap();
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
async fn allocations_never_picked_up_are_removed() {
    let db = TestDatabase::new();
    add(&db, "host", "ACTIVE", 0, MINUTE, None);
    for (id, status, age) in [
        (
            "6f1c2e1a-1b2c-4d3e-8f90-000000000001",
            "ALLOCATED",
            2 * MINUTE,
        ),
        ("6f1c2e1a-1b2c-4d3e-8f90-000000000002", "ALLOCATED", 30_000),
        (
            "6f1c2e1a-1b2c-4d3e-8f90-000000000003",
            "RUNNING",
            60 * MINUTE,
        ),
        (
            "6f1c2e1a-1b2c-4d3e-8f90-000000000004",
            "CONNECTING",
            60 * MINUTE,
        ),
    ] {
        db.execute(&format!(
            "INSERT INTO hardware.mandelbox_info
                 (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms)
             VALUES ('{id}', 'u-{id}', 'host', '{status}', {})",
            now() - age
        ));
    }
    let report = run_pass(
        &pool(&db),
        policy(),
        Arc::new(Recorded::default()),
        UnixMillis::from_millis(now()),
    )
    .await
    .unwrap();
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
    let terminator = Arc::new(Recorded::default());
    let report = run_pass(
        &pool(&db),
        policy(),
        terminator.clone(),
        UnixMillis::from_millis(now()),
    )
    .await
    .unwrap();
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
async fn a_failed_termination_removes_nothing() {
    let db = TestDatabase::new();
    add(
        &db,
        "never-registered",
        "PRE_CONNECTION",
        now() + 1,
        16 * MINUTE,
        None,
    );
    let terminator = Arc::new(Recorded {
        fail: true,
        ..Recorded::default()
    });
    let result = run_pass(
        &pool(&db),
        policy(),
        terminator,
        UnixMillis::from_millis(now()),
    )
    .await;
    assert!(result.is_err());
    assert_eq!(statuses(&db), ["never-registered=PRE_CONNECTION"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_passes_from_two_processes_do_nothing_twice() {
    let db = TestDatabase::new();
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
    let terminator = Arc::new(Recorded {
        delay: Duration::from_millis(300),
        ..Recorded::default()
    });
    // Two pools: two processes' worth of connections.
    let (first, second) = (pool(&db), pool(&db));
    let at = UnixMillis::from_millis(now());
    let (a, b) = tokio::join!(
        run_pass(&first, policy(), terminator.clone(), at),
        run_pass(&second, policy(), terminator.clone(), at)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut calls = terminator.calls.lock().unwrap().clone();
    calls.sort();
    assert_eq!(calls.len(), 5, "each instance terminated once: {calls:?}");
    calls.dedup();
    assert_eq!(calls.len(), 5);
    assert_eq!(a.marked_unresponsive + b.marked_unresponsive, 1);
    assert_eq!(a.terminated.len() + b.terminated.len(), 5);
    assert_eq!(statuses(&db), ["silent=HOST_SERVICE_UNRESPONSIVE"]);
}
