//! Session history and placement by expected end (`PLACEMENT=lifetime`) against a real
//! PostgreSQL server: what the triggers record and keep, the instances' expected ends,
//! and which instance `hardware.place_mandelbox` picks.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::{Arc, Barrier};
use std::time::Duration;

use models::history;
use models::instance::{PlaceRequest, Placed, Placement, PlacementRule, Refusal, place};
use models::{CommitHash, MandelboxId, Region, UnixMillis, UserId};
use test_support::{InstanceRow, TestDatabase};

const MINUTE: i64 = 60_000;

fn region(name: &str) -> Region {
    Region::parse(name).unwrap()
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn now_ms() -> i64 {
    UnixMillis::now().as_millis()
}

/// An enabled `us-east-1` and, for each (name, capacity), an assignable instance.
fn fleet(instances: &[(&str, i64)]) -> TestDatabase {
    let db = TestDatabase::new();
    db.execute(
        "INSERT INTO hardware.region_to_ami
             (region_name, client_commit_hash, ami_id, ami_active, region_enabled)
         VALUES ('us-east-1', 'h', 'ami-e', true, true)",
    );
    for (name, capacity) in instances {
        db.add_instance(
            &InstanceRow::new(name)
                .region("us-east-1")
                .commit_hash("h")
                .capacity(*capacity)
                .heard_at(1)
                .ip("10.0.0.1"),
        );
    }
    db
}

/// A running mandelbox `id` of `owner` on `instance`, started `age_ms` ago, expected to
/// end at `expected_end` (ms) if given.
fn running(
    db: &TestDatabase,
    id: &str,
    owner: &str,
    instance: &str,
    age_ms: i64,
    end: Option<i64>,
) {
    let end = end.map_or("NULL".to_owned(), |e| e.to_string());
    db.execute(&format!(
        "INSERT INTO hardware.mandelbox_info
             (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms,
              expected_end_utc_unix_ms)
         VALUES ('{id}', '{owner}', '{instance}', 'RUNNING', {}, {end})",
        now_ms() - age_ms
    ));
}

fn expected_end(db: &TestDatabase, instance: &str) -> i64 {
    db.number(&format!(
        "SELECT expected_end_utc_unix_ms AS n FROM hardware.instance_info
         WHERE instance_name = '{instance}'"
    ))
}

fn place_for(db: &TestDatabase, name: &str, rule: PlacementRule) -> Option<String> {
    match try_place(&mut db.connect(), name, rule) {
        Placed::On(slot) => Some(slot.instance_name.as_str().to_owned()),
        Placed::Refused(..) => None,
    }
}

fn try_place(conn: &mut diesel::PgConnection, name: &str, rule: PlacementRule) -> Placed {
    let (id, user) = (MandelboxId::new_v4(), user(name));
    let regions = [(region("us-east-1"), Some(CommitHash::parse("h").unwrap()))];
    place(
        conn,
        &PlaceRequest {
            placement: Placement {
                mandelbox_id: &id,
                user_id: &user,
                now: UnixMillis::now(),
            },
            regions: &regions,
            first_required: true,
            user_limit: 1,
            rule,
        },
    )
    .unwrap()
}

#[test]
fn a_used_session_that_ends_is_remembered_and_an_unused_or_cut_short_one_is_not() {
    let db = fleet(&[("a", 4), ("b", 4)]);
    running(&db, "m-used", "alice", "a", 10 * MINUTE, None);
    db.execute(
        "INSERT INTO hardware.mandelbox_info
             (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms)
         VALUES ('m-unused', 'bob', 'a', 'ALLOCATED', 0)",
    );
    running(&db, "m-cut", "carol", "b", 5 * MINUTE, None);
    // Ended by hand, as the host protocol and the lifecycle end them.
    db.execute("DELETE FROM hardware.mandelbox_info WHERE instance_name = 'a'");
    // Its instance's row goes: the host failed, the session says nothing of a habit.
    db.execute("DELETE FROM hardware.instance_info WHERE instance_name = 'b'");
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.session_history"),
        1
    );
    assert_eq!(
        db.number(
            "SELECT count(*) AS n FROM hardware.session_history
             WHERE user_id = 'alice' AND region_name = 'us-east-1'
               AND length_secs BETWEEN 599 AND 620
               AND ended_utc_unix_ms - started_utc_unix_ms BETWEEN 599000 AND 620000"
        ),
        1
    );
}

#[test]
fn a_user_keeps_their_last_twenty_sessions_and_old_ones_are_purged() {
    let db = fleet(&[]);
    let mut conn = db.connect();
    let now = now_ms();
    let sessions: Vec<_> = (0..25)
        .map(|n| {
            (
                user("alice"),
                region("us-east-1"),
                f64::from(n) * 60.0,
                UnixMillis::from_millis(now - (25 - i64::from(n)) * 86_400_000),
            )
        })
        .collect();
    assert_eq!(history::import(&mut conn, &sessions).unwrap(), 25);
    history::import(
        &mut conn,
        &[(
            user("bob"),
            region("us-east-1"),
            60.0,
            UnixMillis::from_millis(now),
        )],
    )
    .unwrap();
    let kept = history::of_users(&mut conn, &[user("alice"), user("bob"), user("nobody")]).unwrap();
    assert_eq!(kept.len(), 2);
    let alice = &kept[0];
    assert_eq!(alice.user_id.as_str(), "alice");
    // The newest twenty, oldest first.
    let lengths: Vec<f64> = (5..25).map(|n| f64::from(n) * 60.0).collect();
    assert_eq!(alice.lengths, lengths);
    history::store_predictions(
        &mut conn,
        &[(user("alice"), 900.0), (user("bob"), 60.0)],
        UnixMillis::from_millis(now),
    )
    .unwrap();
    // Ten days kept: alice's sessions of 10 to 20 days ago go; bob's stays.
    let gone = history::purge(
        &mut conn,
        UnixMillis::from_millis(now),
        Duration::from_secs(10 * 86_400),
    )
    .unwrap();
    assert_eq!(gone, 11);
    // Thirty minutes kept: alice has none left, and her prediction goes with them.
    history::purge(
        &mut conn,
        UnixMillis::from_millis(now + 1),
        Duration::from_secs(1800),
    )
    .unwrap();
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.session_history WHERE user_id = 'alice'"),
        0
    );
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.session_prediction"),
        1
    );
    assert!(
        history::expected_secs(&mut conn, &user("alice"), &region("us-east-1"))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        history::expected_secs(&mut conn, &user("bob"), &region("us-east-1")).unwrap(),
        Some(60.0)
    );
}

#[test]
fn an_instance_expects_to_end_with_its_last_session() {
    let db = fleet(&[("a", 4)]);
    let now = now_ms();
    running(&db, "m1", "u1", "a", 0, Some(now + 10 * MINUTE));
    running(&db, "m2", "u2", "a", 0, Some(now + 30 * MINUTE));
    running(&db, "m3", "u3", "a", 0, None);
    assert_eq!(expected_end(&db, "a"), now + 30 * MINUTE);
    db.execute("DELETE FROM hardware.mandelbox_info WHERE mandelbox_id = 'm1'");
    assert_eq!(expected_end(&db, "a"), now + 30 * MINUTE);
    db.execute("DELETE FROM hardware.mandelbox_info WHERE mandelbox_id = 'm2'");
    assert_eq!(
        expected_end(&db, "a"),
        0,
        "no session left with an expected end"
    );
    // Re-predicted: the instance follows.
    let mut conn = db.connect();
    db.execute(&format!(
        "UPDATE hardware.mandelbox_info SET expected_end_utc_unix_ms = {} WHERE mandelbox_id = 'm3'",
        now + 50 * MINUTE
    ));
    assert_eq!(expected_end(&db, "a"), now + 50 * MINUTE);
    // Overdue ones are found, and new ends written in one statement.
    running(&db, "m4", "u4", "a", 40 * MINUTE, Some(now - MINUTE));
    assert_eq!(expected_end(&db, "a"), now + 50 * MINUTE);
    let overdue = history::overdue(&mut conn, UnixMillis::from_millis(now), 10).unwrap();
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].mandelbox_id.as_str(), "m4");
    assert_eq!(overdue[0].region_name.as_str(), "us-east-1");
    let later = UnixMillis::from_millis(now + 90 * MINUTE);
    assert_eq!(
        history::set_expected_ends(&mut conn, &[(overdue[0].mandelbox_id.clone(), later)]).unwrap(),
        1
    );
    assert_eq!(expected_end(&db, "a"), now + 90 * MINUTE);
    assert_eq!(
        db.number(
            "SELECT mandelbox_count AS n FROM hardware.instance_info WHERE instance_name = 'a'"
        ),
        2
    );
}

#[test]
fn by_expected_end_a_session_goes_where_it_will_not_outlive_the_instance() {
    // Four instances with room: `soon` expected to end in 10 minutes, `hour` in 60,
    // `long` in 120, `empty` with nothing on it; `soon` is the fullest.
    let db = fleet(&[("soon", 8), ("hour", 8), ("long", 8), ("empty", 8)]);
    let now = now_ms();
    for n in 0..5 {
        running(
            &db,
            &format!("s{n}"),
            &format!("s{n}"),
            "soon",
            0,
            Some(now + 10 * MINUTE),
        );
    }
    running(&db, "h0", "h0", "hour", 0, Some(now + 60 * MINUTE));
    running(&db, "l0", "l0", "long", 0, Some(now + 120 * MINUTE));
    let mut conn = db.connect();
    let at = UnixMillis::from_millis(now);
    history::store_predictions(
        &mut conn,
        &[
            (user("thirty-minutes"), 1800.0),
            (user("five-minutes"), 300.0),
            (user("three-hours"), 3.0 * 3600.0),
        ],
        at,
    )
    .unwrap();
    drop(conn);
    // Packed, as before: the fullest.
    assert_eq!(
        place_for(&db, "packed-user", PlacementRule::Packed).as_deref(),
        Some("soon")
    );
    let lifetime = PlacementRule::Lifetime;
    // Thirty minutes: the tightest it will not outlive is `hour` (not `long`).
    assert_eq!(
        place_for(&db, "thirty-minutes", lifetime).as_deref(),
        Some("hour")
    );
    // Five minutes fits in `soon`.
    assert_eq!(
        place_for(&db, "five-minutes", lifetime).as_deref(),
        Some("soon")
    );
    // Three hours outlives them all: the one whose life it extends least.
    assert_eq!(
        place_for(&db, "three-hours", lifetime).as_deref(),
        Some("long")
    );
    // The placed mandelbox carries its expected end, and its instance too.
    let end = db.number(
        "SELECT expected_end_utc_unix_ms AS n FROM hardware.mandelbox_info
         WHERE user_id = 'three-hours'",
    );
    assert!((end - (now + 180 * MINUTE)).abs() < MINUTE, "{end}");
    assert_eq!(expected_end(&db, "long"), end);
    // Nothing known of the user nor the region: packed.
    assert_eq!(
        place_for(&db, "stranger", lifetime).as_deref(),
        Some("soon")
    );
    assert_eq!(
        db.number(
            "SELECT count(*) AS n FROM hardware.mandelbox_info
             WHERE user_id = 'stranger' AND expected_end_utc_unix_ms IS NULL"
        ),
        1
    );
    // A user it knows nothing of is placed packed (`soon` is full now: `hour` and `long`
    // tie, by name), and expected to last what the region's sessions last.
    let mut conn = db.connect();
    history::store_region(&mut conn, &region("us-east-1"), &[100.0; 20], 6000.0, at).unwrap();
    drop(conn);
    assert_eq!(
        place_for(&db, "newcomer", lifetime).as_deref(),
        Some("hour")
    );
    let end = db.number(
        "SELECT expected_end_utc_unix_ms AS n FROM hardware.mandelbox_info
         WHERE user_id = 'newcomer'",
    );
    assert!((end - (now + 100 * MINUTE)).abs() < MINUTE, "{end}");
    assert_eq!(expected_end(&db, "hour"), end);
}

#[test]
fn by_expected_end_only_empty_instances_are_filled_fullest_first() {
    let db = fleet(&[("big", 8), ("small", 2)]);
    let mut conn = db.connect();
    history::store_predictions(&mut conn, &[(user("alice"), 600.0)], UnixMillis::now()).unwrap();
    drop(conn);
    assert_eq!(
        place_for(&db, "alice", PlacementRule::Lifetime).as_deref(),
        Some("small")
    );
}

/// Racing placements by expected end (its three lookups, each passing over rows other
/// transactions hold): the slots there are are taken once each, one user's racers get
/// the limit, and every instance's expected end is still the latest of its sessions'.
#[test]
fn racing_placements_by_expected_end_keep_the_limits_and_the_expected_ends() {
    let db = Arc::new(fleet(&[
        ("soon", 3),
        ("hour", 3),
        ("long", 3),
        ("empty", 4),
    ]));
    let now = now_ms();
    running(&db, "s0", "s0", "soon", 0, Some(now + 10 * MINUTE));
    running(&db, "h0", "h0", "hour", 0, Some(now + 60 * MINUTE));
    running(&db, "l0", "l0", "long", 0, Some(now + 120 * MINUTE));
    let racers = 24;
    // Half the racers are one user; the others are each their own, with sessions of 5
    // minutes to 3 hours, and every sixth without a prediction of their own.
    let name = |n: usize| {
        if n.is_multiple_of(2) {
            "same".to_owned()
        } else {
            format!("u{n}")
        }
    };
    let lengths = [300.0, 1800.0, 5400.0, 10_800.0];
    let predicted: Vec<(UserId, f64)> = (0..racers)
        .filter(|n| n % 2 == 1 && n % 6 != 1)
        .map(|n| (user(&name(n)), lengths[n % lengths.len()]))
        .chain([(user("same"), 1800.0)])
        .collect();
    let mut conn = db.connect();
    history::store_predictions(&mut conn, &predicted, UnixMillis::from_millis(now)).unwrap();
    drop(conn);
    let barrier = Arc::new(Barrier::new(racers));
    let threads: Vec<_> = (0..racers)
        .map(|n| {
            let (db, barrier, who) = (db.clone(), barrier.clone(), name(n));
            std::thread::spawn(move || {
                let mut conn = db.connect();
                barrier.wait();
                // Rows other racers hold are passed over: look again while room is left,
                // as the assigner does.
                loop {
                    match try_place(&mut conn, &who, PlacementRule::Lifetime) {
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
    assert_eq!(
        db.number(
            "SELECT count(*) AS n FROM hardware.instance_info i
             WHERE i.expected_end_utc_unix_ms IS DISTINCT FROM
                   (SELECT coalesce(max(m.expected_end_utc_unix_ms), 0)
                    FROM hardware.mandelbox_info m WHERE m.instance_name = i.instance_name)"
        ),
        0,
        "an instance's expected end is not the latest of its sessions'"
    );
}
