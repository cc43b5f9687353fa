//! `models::learning` against a real PostgreSQL server: arrivals and boot times are
//! recorded by triggers, whoever writes the rows, and counted per region and span.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use models::learning::{self, Traffic};
use models::{Region, UnixMillis};
use test_support::{InstanceRow, TestDatabase};

fn region(name: &str) -> Region {
    Region::parse(name).unwrap()
}

const NOW: i64 = 1_800_000_000_000;

fn at(offset_secs: i64) -> UnixMillis {
    UnixMillis::from_millis(NOW + offset_secs * 1000)
}

fn instance(db: &TestDatabase, name: &str, region: &str, status: &str, created: UnixMillis) {
    db.add_instance(
        &InstanceRow::new(name)
            .region(region)
            .status(status)
            .capacity(100)
            .created_at(created.as_millis()),
    );
}

fn mandelbox(db: &TestDatabase, n: u32, instance: &str, created: UnixMillis) {
    db.execute(&format!(
        "INSERT INTO hardware.mandelbox_info
             (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms)
         VALUES ('6f1c2e1a-1b2c-4d3e-8f90-{n:012}', 'user{n}', '{instance}', 'ALLOCATED', {})",
        created.as_millis()
    ));
}

#[test]
fn every_mandelbox_inserted_is_an_arrival_of_its_instances_region() {
    let db = TestDatabase::new();
    let mut conn = db.connect();
    instance(&db, "east", "us-east-1", "ACTIVE", at(-4000));
    instance(&db, "west", "us-west-1", "ACTIVE", at(-4000));
    // Ten in the last minute, five more in the last half hour, one older; two elsewhere.
    for n in 0..10 {
        mandelbox(&db, n, "east", at(-30));
    }
    for n in 10..15 {
        mandelbox(&db, n, "east", at(-900));
    }
    mandelbox(&db, 15, "east", at(-3600));
    mandelbox(&db, 16, "west", at(-30));
    mandelbox(&db, 17, "west", at(-30));
    let (minute, half_hour) = (Duration::from_secs(60), Duration::from_secs(1800));
    let east = region("us-east-1");
    let traffic = |conn: &mut _, region: &Region, now| {
        learning::traffic(conn, region, now, minute, half_hour).unwrap()
    };
    let seen = |arrivals_short, arrivals_long, departures_long| Traffic {
        arrivals_short,
        arrivals_long,
        departures_long,
    };
    assert_eq!(traffic(&mut conn, &east, at(0)), seen(10, 15, 0));
    // Sessions ending are departures, stamped when they end, and take nothing back.
    db.execute("DELETE FROM hardware.mandelbox_info WHERE instance_name = 'east'");
    db.execute(
        "DELETE FROM hardware.mandelbox_info
         WHERE mandelbox_id = '6f1c2e1a-1b2c-4d3e-8f90-000000000016'",
    );
    assert_eq!(traffic(&mut conn, &east, at(0)), seen(10, 15, 0));
    let now = UnixMillis::now();
    assert_eq!(traffic(&mut conn, &east, now).departures_long, 16);
    assert_eq!(
        traffic(&mut conn, &region("us-west-1"), now).departures_long,
        1
    );
    // Mandelboxes going with their instance are not departures.
    db.execute("DELETE FROM hardware.instance_info WHERE instance_name = 'west'");
    assert_eq!(
        traffic(&mut conn, &region("us-west-1"), now).departures_long,
        1
    );
    // Purging keeps the span asked for: half an hour after the real clock's now, the
    // 17 departures are old; the arrivals, at the test's later times, stay.
    assert_eq!(
        learning::purge(&mut conn, now.plus(half_hour), half_hour).unwrap(),
        17
    );
    assert_eq!(
        traffic(&mut conn, &east, UnixMillis::now()).departures_long,
        0
    );
    // At the test's now, the arrival an hour old goes.
    assert_eq!(learning::purge(&mut conn, at(0), half_hour).unwrap(), 1);
    assert_eq!(
        traffic(&mut conn, &region("us-west-1"), at(0)),
        seen(2, 2, 0)
    );
    assert_eq!(traffic(&mut conn, &east, at(0)), seen(10, 15, 0));
}

#[test]
fn a_region_learns_the_median_of_its_latest_boots() {
    let db = TestDatabase::new();
    let mut conn = db.connect();
    let east = region("us-east-1");
    assert_eq!(learning::boot_time(&mut conn, &east).unwrap(), None);
    let now = UnixMillis::now().as_millis();
    // Boots of 30, 60 and 90 s (launched that long ago, registering now).
    for (name, secs) in [("a", 30), ("b", 60), ("c", 90)] {
        instance(
            &db,
            name,
            "us-east-1",
            "PRE_CONNECTION",
            UnixMillis::from_millis(now - secs * 1000),
        );
    }
    instance(
        &db,
        "w",
        "us-west-1",
        "PRE_CONNECTION",
        UnixMillis::from_millis(now - 5000),
    );
    db.execute("UPDATE hardware.instance_info SET status = 'ACTIVE'");
    let median = learning::boot_time(&mut conn, &east).unwrap().unwrap();
    assert!(
        median >= Duration::from_secs(60) && median < Duration::from_secs(65),
        "{median:?}"
    );
    // Only the change from PRE_CONNECTION counts: going back and forth adds nothing.
    db.execute("UPDATE hardware.instance_info SET status = 'DRAINING'");
    db.execute("UPDATE hardware.instance_info SET status = 'ACTIVE'");
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.boot_samples"),
        4
    );

    // Beyond the latest ten per region, samples are purged.
    for n in 0..12 {
        instance(
            &db,
            &format!("n{n}"),
            "us-east-1",
            "PRE_CONNECTION",
            UnixMillis::from_millis(now - 1000),
        );
    }
    db.execute(
        "UPDATE hardware.instance_info SET status = 'ACTIVE' WHERE status = 'PRE_CONNECTION'",
    );
    assert_eq!(
        learning::purge(&mut conn, UnixMillis::now(), Duration::from_secs(60)).unwrap(),
        5
    );
    let latest = learning::boot_time(&mut conn, &east).unwrap().unwrap();
    assert!(latest < Duration::from_secs(30), "{latest:?}");
}
