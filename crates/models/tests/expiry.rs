//! `ALLOCATED` mandelboxes the host never reported are removed, remembered, and never
//! removed once reported, however a report and the removal interleave.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::{Arc, Barrier};

use models::mandelbox::{delete_allocated_before, expired_on, purge_expired_before, set_status_on};
use models::{InstanceName, MandelboxId, MandelboxStatus, UnixMillis};
use test_support::{InstanceRow, TestDatabase};

const HOST: &str = "us-east-1-main-abc1234-uid-0000000001";

fn host() -> InstanceName {
    InstanceName::parse(HOST).unwrap()
}

fn fleet() -> TestDatabase {
    let db = TestDatabase::new();
    db.add_instance(
        &InstanceRow::new(HOST)
            .capacity(1000)
            .heard_at(1)
            .ip("10.0.0.1"),
    );
    db
}

/// `n` `ALLOCATED` mandelboxes on the host, created at `created`, in one statement.
fn allocated_many(db: &TestDatabase, n: usize, created: i64) -> Vec<MandelboxId> {
    let ids: Vec<MandelboxId> = (0..n).map(|_| MandelboxId::new_v4()).collect();
    let rows: Vec<String> = ids
        .iter()
        .map(|id| format!("('{id}', 'u-{id}', '{HOST}', 'ALLOCATED', {created})"))
        .collect();
    db.execute(&format!(
        "INSERT INTO hardware.mandelbox_info
             (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms)
         VALUES {}",
        rows.join(", ")
    ));
    ids
}

fn allocated(db: &TestDatabase, created: i64) -> MandelboxId {
    allocated_many(db, 1, created).remove(0)
}

#[test]
fn expired_allocations_are_remembered_until_purged() {
    let db = fleet();
    let old = allocated(&db, 1_000);
    let young = allocated(&db, 5_000);
    let reported = allocated(&db, 1_000);
    let mut conn = db.connect();
    assert!(set_status_on(&mut conn, &reported, &host(), MandelboxStatus::Connecting).unwrap());

    let now = UnixMillis::from_millis(10_000);
    let removed = delete_allocated_before(&mut conn, UnixMillis::from_millis(2_000), now).unwrap();
    assert_eq!(removed, 1);
    assert!(expired_on(&mut conn, &old, &host()).unwrap());
    assert!(!expired_on(&mut conn, &young, &host()).unwrap());
    assert!(!expired_on(&mut conn, &reported, &host()).unwrap());
    let other = InstanceName::parse("us-east-1-main-abc1234-uid-0000000002").unwrap();
    assert!(
        !expired_on(&mut conn, &old, &other).unwrap(),
        "only on its own instance"
    );
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.mandelbox_info"),
        2
    );

    assert_eq!(purge_expired_before(&mut conn, now).unwrap(), 0);
    assert_eq!(
        purge_expired_before(&mut conn, UnixMillis::from_millis(10_001)).unwrap(),
        1
    );
    assert!(!expired_on(&mut conn, &old, &host()).unwrap());
}

/// A report and the removal race on 200 mandelboxes, 20 times: each mandelbox ends
/// either reported and kept, or removed and remembered, never both or neither.
#[test]
fn a_report_racing_the_removal_wins_or_is_told_it_lost() {
    let db = Arc::new(fleet());
    for round in 0..20 {
        let ids = allocated_many(&db, 200, 1_000);
        let barrier = Arc::new(Barrier::new(2));
        let reporter = {
            let (db, ids, barrier) = (db.clone(), ids.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut conn = db.connect();
                barrier.wait();
                ids.iter()
                    .map(|id| {
                        set_status_on(&mut conn, id, &host(), MandelboxStatus::Running).unwrap()
                    })
                    .collect::<Vec<bool>>()
            })
        };
        let mut conn = db.connect();
        barrier.wait();
        let now = UnixMillis::from_millis(10_000 + round);
        let mut removed = 0;
        // Several passes, so removals interleave with the reports.
        for _ in 0..4 {
            removed +=
                delete_allocated_before(&mut conn, UnixMillis::from_millis(2_000), now).unwrap();
        }
        let reports = reporter.join().unwrap();
        removed += delete_allocated_before(&mut conn, UnixMillis::from_millis(2_000), now).unwrap();

        // One query: each mandelbox must be running if its report took, and remembered
        // as removed if it did not, never both or neither.
        let ids: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
        let took: Vec<&str> = reports
            .iter()
            .map(|t| if *t { "true" } else { "false" })
            .collect();
        let wrong = test_support::number(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM unnest(ARRAY[{}]::text[], ARRAY[{}]::bool[]) AS r (id, took)
                 WHERE took <> EXISTS (SELECT FROM hardware.mandelbox_info m
                                       WHERE m.mandelbox_id = r.id AND m.status = 'RUNNING')
                    OR took = EXISTS (SELECT FROM hardware.expired_mandelbox e
                                      WHERE e.mandelbox_id = r.id)",
                ids.join(","),
                took.join(",")
            ),
        );
        assert_eq!(
            wrong, 0,
            "round {round}: {wrong} mandelboxes both or neither"
        );
        let kept = reports.iter().filter(|took| **took).count();
        assert_eq!(kept + removed, ids.len(), "round {round}");
        db.execute("DELETE FROM hardware.mandelbox_info");
    }
}
