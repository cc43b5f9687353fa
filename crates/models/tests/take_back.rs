//! The take-back against a real PostgreSQL server: a consolidated instance (`DRAINING`,
//! reclaimable, its host not asked) is either made `ACTIVE` again or drained for good,
//! never both, whatever races it: the lifecycle claiming it, an operator's drain, a
//! dying heartbeat, an image upgrade, placements looking for room. Each race is run
//! for many rounds, each on a fresh database.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::{Arc, Barrier};
use std::thread;

use models::instance::{
    self, Deadlines, Metrics, OperatorDrain, PlaceRequest, Placed, Placement, PlacementRule,
    Refusal,
};
use models::{AmiId, CommitHash, InstanceName, MandelboxId, Region, UnixMillis, UserId};
use test_support::{InstanceRow, TestDatabase};

const ROUNDS: usize = 20;

fn name(text: &str) -> InstanceName {
    InstanceName::parse(text).unwrap()
}

/// `full` (4 slots, all taken) and `spare` (8 slots, one session), both `ACTIVE`, and
/// `spare` consolidated: `DRAINING` and reclaimable.
fn consolidated() -> TestDatabase {
    let db = TestDatabase::new();
    db.execute(
        "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
         VALUES ('us-east-1', 'h', 'ami-1', true)",
    );
    for (instance, capacity, sessions) in [("full", 4, 4), ("spare", 8, 1)] {
        db.add_instance(
            &InstanceRow::new(instance)
                .ami("ami-1")
                .region("us-east-1")
                .commit_hash("h")
                .capacity(capacity)
                .heard_at(UnixMillis::now().as_millis())
                .ip("10.0.0.1")
                .host_token(&format!("host_test-{instance}")),
        );
        db.execute(&format!(
            "INSERT INTO hardware.mandelbox_info
                 (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms)
             SELECT '{instance}-' || n, 'other-{instance}-' || n, '{instance}', 'RUNNING', 0
             FROM generate_series(1, {sessions}) AS n"
        ));
    }
    let marked = instance::begin_consolidation(&mut db.connect(), &name("spare"))
        .unwrap()
        .unwrap();
    assert!(marked.reclaimable);
    assert_eq!(marked.target.mandelbox_count, 1);
    db
}

/// `spare`'s (status, reclaimable, being terminated).
fn spare(db: &TestDatabase) -> (String, bool, bool) {
    let status = match db.number(
        "SELECT CASE status WHEN 'ACTIVE' THEN 1 WHEN 'DRAINING' THEN 2 ELSE 3 END::bigint AS n
         FROM hardware.instance_info WHERE instance_name = 'spare'",
    ) {
        1 => "ACTIVE",
        2 => "DRAINING",
        _ => "other",
    };
    let flag = |sql: &str| db.number(sql) == 1;
    (
        status.to_owned(),
        flag(
            "SELECT reclaimable::int::bigint AS n FROM hardware.instance_info WHERE instance_name = 'spare'",
        ),
        flag(
            "SELECT (terminating_utc_unix_ms IS NOT NULL)::int::bigint AS n
             FROM hardware.instance_info WHERE instance_name = 'spare'",
        ),
    )
}

fn clean(db: &TestDatabase) {
    let violations = models::invariants::violations(&mut db.connect(), 1).unwrap();
    assert!(violations.is_clean(), "{violations:?}");
}

/// One racer: what it does on its own connection, and what it saw.
type Racer = Box<dyn FnOnce(&mut diesel::PgConnection) -> Outcome + Send>;

/// Runs `racers` at once, each on its own connection, from one barrier.
fn race(db: &Arc<TestDatabase>, racers: Vec<Racer>) -> Vec<Outcome> {
    let barrier = Arc::new(Barrier::new(racers.len()));
    let threads: Vec<_> = racers
        .into_iter()
        .map(|racer| {
            let (db, barrier) = (db.clone(), barrier.clone());
            thread::spawn(move || {
                let mut conn = db.connect();
                barrier.wait();
                racer(&mut conn)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[derive(Debug)]
enum Outcome {
    TakenBack(bool),
    Claimed(bool),
    Operator(OperatorDrain),
    Upgraded(bool),
    Dying,
    Placed(bool),
}

fn taking_back() -> Racer {
    Box::new(|conn| {
        let taken = instance::take_back(conn, &[name("spare")]).unwrap();
        Outcome::TakenBack(taken == [name("spare")])
    })
}

/// The lifecycle, with every `DRAINING` instance past its time.
fn claiming() -> Racer {
    Box::new(|conn| {
        let now = UnixMillis::now();
        let deadlines = Deadlines {
            launched_before: UnixMillis::from_millis(0),
            lingering_since: UnixMillis::from_millis(0),
            draining_since: now.plus(std::time::Duration::from_secs(3600)),
            up_since: UnixMillis::from_millis(0),
            now,
        };
        let doomed = instance::claim_doomed(conn, &deadlines).unwrap();
        Outcome::Claimed(doomed.iter().any(|d| d.instance_name == name("spare")))
    })
}

#[test]
fn the_lifecycle_and_a_take_back_never_both_win() {
    for round in 0..ROUNDS {
        let db = Arc::new(consolidated());
        let outcomes = race(&db, vec![taking_back(), claiming()]);
        let [Outcome::TakenBack(taken), Outcome::Claimed(claimed)] = outcomes[..] else {
            panic!("{outcomes:?}");
        };
        assert!(
            taken != claimed,
            "round {round}: taken {taken}, claimed {claimed}"
        );
        let expected = if taken {
            ("ACTIVE".to_owned(), false, false)
        } else {
            ("DRAINING".to_owned(), false, true)
        };
        assert_eq!(spare(&db), expected, "round {round}");
        clean(&db);
    }
}

#[test]
fn an_operators_drain_an_upgrade_or_a_dying_host_make_the_drain_final_whoever_is_first() {
    for round in 0..ROUNDS {
        let db = Arc::new(consolidated());
        // Round by round, the other racer changes.
        let other: Racer = match round % 3 {
            0 => Box::new(|conn| {
                Outcome::Operator(instance::begin_drain_by_operator(conn, &name("spare")).unwrap())
            }),
            1 => Box::new(|conn| {
                let region = Region::parse("us-east-1").unwrap();
                let keep = AmiId::parse("ami-2").unwrap();
                let drained = instance::begin_drain_all_but(conn, &region, &keep).unwrap();
                Outcome::Upgraded(drained.iter().any(|t| t.instance_name == name("spare")))
            }),
            _ => Box::new(|conn| {
                use diesel::prelude::*;
                use models::schema::hardware::instance_info;
                let digest: String = instance_info::table
                    .find(name("spare"))
                    .select(instance_info::host_token_sha256.assume_not_null())
                    .first(conn)
                    .unwrap();
                let metrics = Metrics {
                    memory_remaining_kb: 1,
                    nanocpus_remaining: 1,
                    gpu_vram_remaining_kb: 1,
                };
                instance::heartbeat(conn, &digest, metrics, true, UnixMillis::now())
                    .unwrap()
                    .unwrap();
                Outcome::Dying
            }),
        };
        let outcomes = race(&db, vec![taking_back(), other]);
        let Outcome::TakenBack(taken) = outcomes[0] else {
            panic!("{outcomes:?}");
        };
        match &outcomes[1] {
            // Taken back first or not, the operator's drain began: its host is asked.
            Outcome::Operator(OperatorDrain::Began(target)) => {
                assert_eq!(target.instance_name, name("spare"));
            }
            Outcome::Upgraded(drained) => assert!(drained, "round {round}"),
            Outcome::Dying => {}
            other => panic!("round {round}: {other:?}"),
        }
        // Final either way: draining, not reclaimable, its session still there.
        assert_eq!(
            spare(&db),
            ("DRAINING".to_owned(), false, false),
            "round {round}, taken back first: {taken}"
        );
        assert_eq!(
            db.number(
                "SELECT count(*) AS n FROM hardware.mandelbox_info WHERE instance_name = 'spare'"
            ),
            1
        );
        // And nothing takes it back any more.
        assert!(
            instance::take_back(&mut db.connect(), &[name("spare")])
                .unwrap()
                .is_empty()
        );
        clean(&db);
    }
}

#[test]
fn placements_racing_a_take_back_land_on_it_only_once_it_is_active() {
    for round in 0..ROUNDS {
        let db = Arc::new(consolidated());
        let mut racers: Vec<Racer> = vec![taking_back()];
        for n in 0..10 {
            racers.push(Box::new(move |conn| {
                let regions = [(
                    Region::parse("us-east-1").unwrap(),
                    Some(CommitHash::parse("h").unwrap()),
                )];
                let (id, user) = (
                    MandelboxId::new_v4(),
                    UserId::parse(&format!("u{n}")).unwrap(),
                );
                loop {
                    let placed = instance::place(
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
                            rule: PlacementRule::Packed,
                        },
                    )
                    .unwrap();
                    match placed {
                        Placed::On(slot) => {
                            assert_eq!(slot.instance_name, name("spare"));
                            return Outcome::Placed(true);
                        }
                        Placed::Refused(Refusal::RoomHeld, _) => {}
                        Placed::Refused(Refusal::NoInstanceAvailable, _) => {
                            return Outcome::Placed(false);
                        }
                        other => panic!("{other:?}"),
                    }
                }
            }));
        }
        let outcomes = race(&db, racers);
        let Outcome::TakenBack(taken) = outcomes[0] else {
            panic!("{outcomes:?}");
        };
        assert!(taken, "round {round}: nothing else races for it");
        let placed = outcomes[1..]
            .iter()
            .filter(|o| matches!(o, Outcome::Placed(true)))
            .count();
        // Only `spare` has room: what was placed is there, within its 7 free slots, and
        // placements refused came before the take-back.
        let on_spare = db.number(
            "SELECT count(*) AS n FROM hardware.mandelbox_info WHERE instance_name = 'spare'",
        );
        assert_eq!(
            on_spare,
            1 + i64::try_from(placed).unwrap(),
            "round {round}"
        );
        assert!(placed <= 7, "round {round}: {placed}");
        assert_eq!(spare(&db), ("ACTIVE".to_owned(), false, false));
        clean(&db);
    }
}
