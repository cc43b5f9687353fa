//! `models::instance::place` against a real PostgreSQL server: an assignment's placement
//! in one statement keeps the rules of the transaction it replaces (the per-user limit,
//! enabled regions tried in order, commit hashes, the fullest instance first, capacity)
//! under concurrency.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::{Arc, Barrier};

use models::instance::{PlaceRequest, Placed, Placement, PlacementRule, Refusal, place};
use models::{CommitHash, MandelboxId, Region, UnixMillis, UserId};
use test_support::{InstanceRow, TestDatabase};

fn region(name: &str) -> Region {
    Region::parse(name).unwrap()
}

fn hash(name: &str) -> Option<CommitHash> {
    Some(CommitHash::parse(name).unwrap())
}

/// Enabled regions `us-east-1` and `us-west-1` (`eu-west-1` is known but disabled), and
/// `instances` as (name, region, commit hash, capacity, mandelboxes already on it).
fn fleet(instances: &[(&str, &str, &str, i64, i64)]) -> TestDatabase {
    let db = TestDatabase::new();
    db.execute(
        "INSERT INTO hardware.region_to_ami
             (region_name, client_commit_hash, ami_id, ami_active, region_enabled)
         VALUES ('us-east-1', 'h', 'ami-e', true, true),
                ('us-west-1', 'h', 'ami-w', true, true),
                ('eu-west-1', 'h', 'ami-eu', true, false)",
    );
    for (name, location, commit, capacity, held) in instances {
        db.add_instance(
            &InstanceRow::new(name)
                .ami(&format!("ami-{name}"))
                .region(location)
                .commit_hash(commit)
                .capacity(*capacity)
                .heard_at(1)
                .ip("10.0.0.1"),
        );
        for n in 0..*held {
            db.execute(&format!(
                "INSERT INTO hardware.mandelbox_info
                     (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms)
                 VALUES ('{name}-{n}', 'other-{name}-{n}', '{name}', 'RUNNING', 0)"
            ));
        }
    }
    db
}

fn try_place(
    conn: &mut diesel::PgConnection,
    user: &str,
    regions: &[(Region, Option<CommitHash>)],
    first_required: bool,
    user_limit: i64,
) -> Placed {
    let (id, user) = (MandelboxId::new_v4(), UserId::parse(user).unwrap());
    place(
        conn,
        &PlaceRequest {
            placement: Placement {
                mandelbox_id: &id,
                user_id: &user,
                now: UnixMillis::now(),
            },
            regions,
            first_required,
            user_limit,
            rule: PlacementRule::Packed,
        },
    )
    .unwrap()
}

fn run(conn: &mut diesel::PgConnection, sql: &str) {
    use diesel::RunQueryDsl;
    diesel::sql_query(sql).execute(conn).unwrap();
}

fn placed_on(placed: &Placed) -> Option<&str> {
    match placed {
        Placed::On(slot) => Some(slot.instance_name.as_str()),
        Placed::Refused(..) => None,
    }
}

/// The refusal, with the region it names.
fn refused(placed: &Placed) -> Option<(Refusal, Option<&str>)> {
    match placed {
        Placed::On(_) => None,
        Placed::Refused(refusal, region) => Some((*refusal, region.as_ref().map(Region::as_str))),
    }
}

#[test]
fn places_on_the_fullest_instance_with_room_and_stops_at_the_user_limit() {
    let db = fleet(&[
        ("empty", "us-east-1", "h", 4, 0),
        ("fuller", "us-east-1", "h", 4, 2),
        ("full", "us-east-1", "h", 2, 2),
        ("other-hash", "us-east-1", "g", 4, 3),
    ]);
    let mut conn = db.connect();
    let east = [(region("us-east-1"), hash("h"))];

    let first = try_place(&mut conn, "ann", &east, true, 1);
    assert_eq!(placed_on(&first), Some("fuller"));
    let Placed::On(slot) = first else {
        panic!("not placed: {first:?}")
    };
    assert_eq!(
        (
            slot.ip.as_str(),
            slot.location.as_str(),
            slot.aws_ami_id.as_str()
        ),
        ("10.0.0.1", "us-east-1", "ami-fuller")
    );

    // At the limit nothing is placed, and the answer says why.
    let again = try_place(&mut conn, "ann", &east, true, 1);
    assert_eq!(refused(&again), Some((Refusal::UserAlreadyActive, None)));
    // A higher limit lets the same user have a second one.
    assert_eq!(
        placed_on(&try_place(&mut conn, "ann", &east, true, 2)),
        Some("fuller")
    );
    assert_eq!(
        db.number(
            "SELECT count(*) AS n FROM hardware.mandelbox_info
             WHERE user_id = 'ann' AND status = 'ALLOCATED'"
        ),
        2
    );
    assert_eq!(
        db.number(
            "SELECT free_slots AS n FROM hardware.instance_info WHERE instance_name = 'fuller'"
        ),
        0
    );
}

#[test]
fn regions_are_tried_in_order_and_only_when_enabled_with_a_hash_to_match() {
    let db = fleet(&[
        ("east", "us-east-1", "h", 4, 0),
        ("west", "us-west-1", "h", 4, 0),
        ("eu", "eu-west-1", "h", 4, 0),
    ]);
    let mut conn = db.connect();
    let (east, west, eu) = (
        region("us-east-1"),
        region("us-west-1"),
        region("eu-west-1"),
    );

    // A disabled first region required: nothing, though its neighbour has room.
    let required = try_place(
        &mut conn,
        "a",
        &[(eu.clone(), hash("h")), (west.clone(), hash("h"))],
        true,
        1,
    );
    assert_eq!(refused(&required), Some((Refusal::RegionNotEnabled, None)));
    // No region asked enabled at all: the same.
    let none = try_place(&mut conn, "a", &[(eu.clone(), hash("h"))], false, 1);
    assert_eq!(refused(&none), Some((Refusal::RegionNotEnabled, None)));
    // Not required: the next enabled region serves.
    let listed = try_place(
        &mut conn,
        "a",
        &[
            (eu.clone(), hash("h")),
            (west.clone(), hash("h")),
            (east.clone(), hash("h")),
        ],
        false,
        1,
    );
    assert_eq!(placed_on(&listed), Some("west"));
    // A region with no commit hash to match is passed over; one with a hash no
    // instance serves finds nothing.
    let skipped = try_place(
        &mut conn,
        "b",
        &[(west.clone(), None), (east.clone(), hash("h"))],
        true,
        1,
    );
    assert_eq!(placed_on(&skipped), Some("east"));
    // Room, but not for the commit hash asked: the first enabled region is named.
    let unmatched = try_place(
        &mut conn,
        "c",
        &[(eu, hash("h")), (east.clone(), hash("nope"))],
        false,
        1,
    );
    assert_eq!(
        refused(&unmatched),
        Some((Refusal::CommitHashMismatch, Some("us-east-1")))
    );
    // The statement is prepared once for the connection, as every assignment statement.
    assert_eq!(
        test_support::number(
            &mut conn,
            "SELECT count(*) AS n FROM pg_prepared_statements
             WHERE statement LIKE '%hardware.place_mandelbox(%'"
        ),
        1
    );
}

#[test]
fn a_full_region_and_room_others_hold_are_told_apart() {
    let db = fleet(&[
        ("only", "us-east-1", "h", 2, 1),
        ("west", "us-west-1", "h", 1, 1),
    ]);
    let mut conn = db.connect();
    let east = [(region("us-east-1"), hash("h"))];

    // Another transaction holds the one instance with room: ask again, it is not full.
    let mut holder = db.connect();
    run(&mut holder, "BEGIN");
    run(
        &mut holder,
        "SELECT 1 FROM hardware.instance_info WHERE instance_name = 'only' FOR UPDATE",
    );
    assert_eq!(
        refused(&try_place(&mut conn, "a", &east, true, 1)),
        Some((Refusal::RoomHeld, Some("us-east-1")))
    );
    run(&mut holder, "ROLLBACK");
    assert_eq!(
        placed_on(&try_place(&mut conn, "a", &east, true, 1)),
        Some("only")
    );

    // Now full: no instance available, in the first enabled region asked; nothing was
    // written for the refused user.
    let full = try_place(
        &mut conn,
        "b",
        &[
            (region("us-east-1"), hash("h")),
            (region("us-west-1"), hash("h")),
        ],
        false,
        1,
    );
    assert_eq!(
        refused(&full),
        Some((Refusal::NoInstanceAvailable, Some("us-east-1")))
    );
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.mandelbox_info WHERE user_id = 'b'"),
        0
    );
}

/// Many connections at once: one user's racing requests get exactly the limit, and
/// many users racing for the last slots take exactly the slots there are, none twice.
#[test]
fn racing_placements_keep_the_user_limit_and_the_capacity() {
    let db = Arc::new(fleet(&[
        ("a", "us-east-1", "h", 3, 0),
        ("b", "us-east-1", "h", 3, 1),
        ("c", "us-east-1", "h", 5, 0),
    ]));
    let racers = 24;
    let barrier = Arc::new(Barrier::new(racers));
    let threads: Vec<_> = (0..racers)
        .map(|n| {
            let (db, barrier) = (db.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut conn = db.connect();
                let east = [(region("us-east-1"), hash("h"))];
                barrier.wait();
                // Half the racers are one user; the others are each their own.
                let user = if n % 2 == 0 {
                    "same".to_owned()
                } else {
                    format!("u{n}")
                };
                // Rows other racers hold are passed over: look again while room is left,
                // as the assigner does.
                loop {
                    match try_place(&mut conn, &user, &east, true, 1) {
                        Placed::On(_) => return true,
                        Placed::Refused(Refusal::RoomHeld, _) => continue,
                        Placed::Refused(
                            Refusal::UserAlreadyActive | Refusal::NoInstanceAvailable,
                            _,
                        ) => return false,
                        other => panic!("racer {n}: {other:?}"),
                    }
                }
            })
        })
        .collect();
    let placed = threads
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .filter(|placed| *placed)
        .count();
    // 10 free slots; 12 other users and one "same" ask.
    assert_eq!(placed, 10);
    assert!(
        db.number("SELECT count(*) AS n FROM hardware.mandelbox_info WHERE user_id = 'same'") <= 1
    );
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.instance_info WHERE free_slots <> 0"),
        0
    );
    let violations = models::invariants::violations(&mut db.connect(), 1).unwrap();
    assert!(violations.is_clean(), "{violations:?}");
}
