//! The short version of the chaos run (`scripts/chaos.sh` runs the long one): the real
//! binary on a PostgreSQL of its own per scenario, so the restarts and outages touch no
//! other test's database.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::Path;

use chaos::{Row, Timing, scenarios, table};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_webserver"))
}

fn assert_passed(row: Row) {
    let shown = table(std::slice::from_ref(&row));
    println!("{shown}");
    assert!(row.passed, "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_mid_load_loses_no_assignment() {
    assert_passed(scenarios::database_restart(binary(), Timing::short()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replica_leaves_the_others_serving() {
    assert_passed(scenarios::replica_killed(binary(), Timing::short()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_of_every_server_ends_no_session() {
    assert_passed(scenarios::control_plane_outage(binary(), Timing::short()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_verify_again_moments_after_the_identity_provider_returns() {
    assert_passed(scenarios::identity_provider_outage(binary(), Timing::short()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_requests_get_no_5xx_and_grow_nothing() {
    assert_passed(scenarios::hostile_requests(binary(), Timing::short()).await);
}
