//! The notification triggers and the listening thread, against a real PostgreSQL server:
//! what plain SQL changes reaches the listener, and a lost connection is noticed.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::{Duration, Instant};

use models::notify::{Channel, Notifications};
use test_support::{InstanceRow, TestDatabase};
use tokio::sync::watch::Receiver;

/// Waits up to 5 s for the counter to move past `seen`; the new value.
fn moved(counter: &Receiver<u64>, seen: u64, what: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = *counter.borrow();
        if now != seen {
            return now;
        }
        assert!(Instant::now() < deadline, "no notification for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts the counter stays at `seen` for a while.
fn stays(counter: &Receiver<u64>, seen: u64, what: &str) {
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(*counter.borrow(), seen, "a notification for {what}");
}

fn listening(db: &TestDatabase) -> (Notifications, Receiver<u64>, Receiver<u64>) {
    let notifications = Notifications::listen(db.url()).unwrap();
    let capacity = notifications.watch(Channel::Capacity);
    let regions = notifications.watch(Channel::Regions);
    // Connected: each counter moves once, since anything before was missed.
    moved(&capacity, 0, "connecting");
    moved(&regions, 0, "connecting");
    (notifications, capacity, regions)
}

fn instance() -> InstanceRow {
    InstanceRow::new("i-1").status("PRE_CONNECTION").capacity(2)
}

#[test]
fn capacity_that_may_have_appeared_is_notified_whoever_wrote_it() {
    let db = TestDatabase::new();
    let (_notifications, capacity, regions) = listening(&db);
    let mut seen = *capacity.borrow();
    let regions_seen = *regions.borrow();

    db.add_instance(&instance());
    seen = moved(&capacity, seen, "an instance inserted");
    db.execute(
        "UPDATE hardware.instance_info
         SET last_updated_utc_unix_ms = 1 WHERE instance_name = 'i-1'",
    );
    stays(&capacity, seen, "a heartbeat of an instance not ACTIVE");
    db.execute("UPDATE hardware.instance_info SET status = 'ACTIVE'");
    seen = moved(&capacity, seen, "an instance becoming ACTIVE");
    db.execute("UPDATE hardware.instance_info SET mandelbox_capacity = 4");
    seen = moved(&capacity, seen, "an ACTIVE instance with more room");
    db.execute(
        "INSERT INTO hardware.mandelbox_info (mandelbox_id, user_id, instance_name, status)
         VALUES ('6f1c2e1a-1b2c-4d3e-8f90-0123456789ab', 'alice', 'i-1', 'ALLOCATED')",
    );
    stays(&capacity, seen, "a mandelbox taking a slot");
    db.execute("DELETE FROM hardware.mandelbox_info");
    moved(&capacity, seen, "a mandelbox ended");
    assert_eq!(
        *regions.borrow(),
        regions_seen,
        "capacity is not a region change"
    );
}

#[test]
fn region_changes_are_notified() {
    let db = TestDatabase::new();
    let (_notifications, _capacity, regions) = listening(&db);
    let mut seen = *regions.borrow();
    db.execute(
        "INSERT INTO hardware.region_to_ami
             (region_name, client_commit_hash, ami_id, ami_active, region_enabled)
         VALUES ('us-east-1', 'abc', 'ami-1', true, true)",
    );
    seen = moved(&regions, seen, "a region added");
    db.execute("UPDATE hardware.region_to_ami SET region_enabled = false");
    seen = moved(&regions, seen, "a region disabled");
    db.execute("DELETE FROM hardware.region_to_ami");
    moved(&regions, seen, "a region removed");
}

#[test]
fn a_lost_listening_connection_is_noticed_and_reopened() {
    let db = TestDatabase::new();
    let (_notifications, capacity, _regions) = listening(&db);
    let seen = *capacity.borrow();
    // The server ends every other session of this database (the listener's among them).
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    // Reconnecting counts as a change: what was sent meanwhile was missed.
    let seen = moved(&capacity, seen, "reconnecting");
    db.add_instance(&instance());
    moved(&capacity, seen, "an instance inserted after reconnecting");
}
