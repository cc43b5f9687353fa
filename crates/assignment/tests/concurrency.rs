//! Assignment under contention, against PostgreSQL: many requests racing for the last
//! slots of a few instances, through several connection pools, as several server
//! processes would.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::BTreeSet;
use std::sync::Arc;

use assignment::NoScaling;
use assignment::{
    AssignError, AssignMetrics, AssignPolicy, AssignRequest, Assigner, ClientAddress, Failure,
};
use auth::Caller;
use billing::NoPayments;
use futures_util::future::join_all;
use models::{Db, PoolOptions, UserId};
use serde_json::json;
use test_support::{InstanceRow, TestDatabase};

fn admin(user: &str) -> Caller {
    Caller {
        user_id: UserId::parse(user).unwrap(),
        scopes: BTreeSet::from([auth::ADMIN_SCOPE.to_owned()]),
        permissions: BTreeSet::new(),
        admin: true,
        stripe_customer_id: None,
    }
}

fn request(user: &str) -> AssignRequest {
    serde_json::from_value(json!({
        "region": "us-east-1",
        "username": user,
        "dpi": 96,
        "client_commit_hash": "race",
    }))
    .unwrap()
}

fn client() -> ClientAddress {
    ClientAddress::of(std::net::Ipv4Addr::LOCALHOST.into(), &[], 0)
}

fn assigner(db: &TestDatabase) -> Assigner {
    let registry = app_metrics::Registry::new();
    Assigner::new(
        Db::new(db.url(), PoolOptions::default()),
        Arc::new(NoPayments),
        Arc::new(NoScaling),
        AssignPolicy {
            rate_limit_per_minute: 0,
            ..AssignPolicy::default()
        },
        AssignMetrics::new(&registry),
        assignment::Waiting::new(
            models::notify::Notifications::silent().watch(models::notify::Channel::Capacity),
            &registry,
        ),
    )
}

/// Rounds of 48 users racing for 24 slots on 8 instances through three pools: every
/// answer is an assignment or "no instance available", never an error, and exactly the
/// slots there are get taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_for_the_last_slots_never_fails_a_request() {
    for round in 0..12 {
        let db = TestDatabase::new();
        db.execute(
            "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
             VALUES ('us-east-1', 'race', 'ami-race', true)",
        );
        for i in 0..8 {
            db.add_instance(
                &InstanceRow::new(&format!("i{i}"))
                    .ami("ami-race")
                    .commit_hash("race")
                    .capacity(3)
                    .heard_at(1),
            );
        }
        let assigners: Vec<Assigner> = (0..3).map(|_| assigner(&db)).collect();
        let users: Vec<String> = (0..48).map(|i| format!("user-{i}")).collect();
        let callers: Vec<Caller> = users.iter().map(|user| admin(user)).collect();
        let answers = join_all(
            users
                .iter()
                .zip(&callers)
                .enumerate()
                .map(|(i, (user, caller))| {
                    assigners[i % 3].assign(caller, request(user), client())
                }),
        )
        .await;
        let assigned = answers.iter().filter(|a| a.is_ok()).count();
        let unexpected: Vec<&AssignError> = answers
            .iter()
            .filter_map(|a| a.as_ref().err())
            .filter(|err| !matches!(err, AssignError::Refused(Failure::NoInstanceAvailable)))
            .collect();
        assert!(unexpected.is_empty(), "round {round}: {unexpected:?}");
        assert_eq!(assigned, 24, "round {round}");
        assert_eq!(
            db.number("SELECT count(*) AS n FROM hardware.mandelbox_info"),
            24,
            "round {round}"
        );
    }
}
