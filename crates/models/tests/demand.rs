//! `models::demand` against a real PostgreSQL server: what counts as unmet demand, and
//! for how long.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use models::{Region, UnixMillis, UserId, demand};
use test_support::{InstanceRow, TestDatabase};

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn region(name: &str) -> Region {
    Region::parse(name).unwrap()
}

const NOW: i64 = 1_800_000_000_000;

fn at(offset_secs: i64) -> UnixMillis {
    UnixMillis::from_millis(NOW + offset_secs * 1000)
}

#[test]
fn refused_users_count_for_a_minute_waiting_ones_until_their_deadline() {
    let db = TestDatabase::new();
    let mut conn = db.connect();
    let east = region("us-east-1");
    demand::record(
        &mut conn,
        &user("a"),
        &east,
        at(0),
        demand::REFUSAL_COUNTS_FOR,
        Duration::ZERO,
    )
    .unwrap();
    demand::record(
        &mut conn,
        &user("b"),
        &east,
        at(0),
        demand::REFUSAL_COUNTS_FOR,
        Duration::from_secs(120),
    )
    .unwrap();
    demand::record(
        &mut conn,
        &user("c"),
        &region("eu-west-1"),
        at(0),
        demand::REFUSAL_COUNTS_FOR,
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(demand::in_region(&mut conn, &east, at(1)).unwrap(), 2);
    assert_eq!(demand::in_region(&mut conn, &east, at(61)).unwrap(), 1);
    assert_eq!(demand::in_region(&mut conn, &east, at(121)).unwrap(), 0);

    // Asking again counts once, and only extends.
    demand::record(
        &mut conn,
        &user("a"),
        &east,
        at(30),
        demand::REFUSAL_COUNTS_FOR,
        Duration::ZERO,
    )
    .unwrap();
    demand::record(
        &mut conn,
        &user("a"),
        &east,
        at(10),
        demand::REFUSAL_COUNTS_FOR,
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(demand::in_region(&mut conn, &east, at(31)).unwrap(), 2);
    assert_eq!(demand::in_region(&mut conn, &east, at(89)).unwrap(), 2);
    assert_eq!(demand::in_region(&mut conn, &east, at(91)).unwrap(), 1);

    // Expired rows are forgotten: c's at 60 s, then a's at 90 and b's at 120.
    assert_eq!(demand::purge_expired(&mut conn, at(70)).unwrap(), 1);
    assert_eq!(demand::purge_expired(&mut conn, at(200)).unwrap(), 2);
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.unmet_demand"),
        0
    );
}

#[test]
fn a_user_who_is_served_stops_counting() {
    let db = TestDatabase::new();
    let mut conn = db.connect();
    let east = region("us-east-1");
    demand::record(
        &mut conn,
        &user("alice"),
        &east,
        at(0),
        demand::REFUSAL_COUNTS_FOR,
        Duration::ZERO,
    )
    .unwrap();
    demand::record(
        &mut conn,
        &user("bob"),
        &east,
        at(0),
        demand::REFUSAL_COUNTS_FOR,
        Duration::ZERO,
    )
    .unwrap();
    db.add_instance(&InstanceRow::new("i-1").capacity(2));
    db.execute(
        "INSERT INTO hardware.mandelbox_info (mandelbox_id, user_id, instance_name, status)
         VALUES ('6f1c2e1a-1b2c-4d3e-8f90-0123456789ab', 'alice', 'i-1', 'ALLOCATED');",
    );
    assert_eq!(demand::in_region(&mut conn, &east, at(1)).unwrap(), 1);
}
