//! The prediction job of `PLACEMENT=lifetime` against PostgreSQL: what it writes from
//! the history, what it reads again, and the sessions it re-predicts.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use models::{Db, PoolOptions, Region, UnixMillis, UserId, history};
use scaling::Predictions;
use scaling::lifetime::Lengths;
use test_support::{InstanceRow, TestDatabase};

const MINUTE: i64 = 60_000;

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn region() -> Region {
    Region::parse("us-east-1").unwrap()
}

fn prediction(db: &TestDatabase, name: &str) -> i64 {
    db.number(&format!(
        "SELECT round(expected_secs)::bigint AS n FROM hardware.session_prediction
         WHERE user_id = '{name}'"
    ))
}

#[tokio::test]
async fn users_are_predicted_from_their_history_and_overdue_sessions_go_on() {
    let db = TestDatabase::new();
    let now = UnixMillis::now();
    let ago = |minutes: i64| UnixMillis::from_millis(now.as_millis() - minutes * MINUTE);
    // The region: forty users of half an hour; alice plays two hours, every time.
    let mut past: Vec<_> = (0..40)
        .map(|n| (user(&format!("u{n}")), region(), 1800.0, ago(600 - n)))
        .collect();
    past.extend((0..10).map(|n| (user("alice"), region(), 7200.0, ago(300 - n))));
    let mut conn = db.connect();
    history::import(&mut conn, &past).unwrap();
    // Alice is an hour into a session expected to have ended ten minutes ago.
    db.add_instance(
        &InstanceRow::new("a")
            .region("us-east-1")
            .capacity(4)
            .heard_at(1),
    );
    db.execute(&format!(
        "INSERT INTO hardware.mandelbox_info
             (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms,
              expected_end_utc_unix_ms)
         VALUES ('m-alice', 'alice', 'a', 'RUNNING', {}, {})",
        ago(60).as_millis(),
        ago(10).as_millis()
    ));

    let job = Predictions::new(
        Db::new(db.url(), PoolOptions::default()),
        Duration::from_secs(90 * 86_400),
    );
    let report = job.run(now).await.unwrap();
    assert_eq!(
        (report.regions, report.users, report.repredicted),
        (1, 41, 1)
    );

    // As the predictor says: her ten sessions beside the region's three.
    let points = history::region_lengths(&mut conn, ago(100_000)).unwrap();
    let regional = Lengths::from_points(&points[0].points);
    let expected = Lengths::for_user(&[7200.0; 10], &regional)
        .expected()
        .unwrap();
    assert_eq!(prediction(&db, "alice"), expected.round() as i64);
    assert!(
        prediction(&db, "alice") > 6000,
        "{}",
        prediction(&db, "alice")
    );
    // One session of half an hour: mostly the region, whose sessions her own pull up.
    let one = Lengths::for_user(&[1800.0], &regional).expected().unwrap();
    assert_eq!(prediction(&db, "u1"), one.round() as i64);
    assert!(one > 1800.0 && one < regional.expected().unwrap(), "{one}");
    // Someone never seen: the region's.
    assert_eq!(
        history::expected_secs(&mut conn, &user("stranger"), &region()).unwrap(),
        regional.expected()
    );
    // An hour in, her sessions of two hours have an hour to go: the instance follows.
    let end = db.number(
        "SELECT expected_end_utc_unix_ms AS n FROM hardware.instance_info
         WHERE instance_name = 'a'",
    );
    let left = (end - now.as_millis()) / MINUTE;
    assert!((55..=65).contains(&left), "{left} minutes left");

    // Nothing new: nobody is predicted again, nothing is overdue.
    let again = job.run(now).await.unwrap();
    assert_eq!((again.users, again.repredicted), (0, 0));
    // Bob's first session ended: he alone is predicted.
    history::import(&mut conn, &[(user("bob"), region(), 600.0, now)]).unwrap();
    let later = UnixMillis::from_millis(now.as_millis() + 1000);
    let next = job.run(later).await.unwrap();
    assert_eq!(next.users, 1);
    // His short first session pulls him below the region's.
    let bob = prediction(&db, "bob") as f64;
    assert!(bob < regional.expected().unwrap(), "{bob}");
}
