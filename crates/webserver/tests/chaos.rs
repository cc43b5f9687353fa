//! The short version of the chaos run (`scripts/chaos.sh` runs the long one): the real
//! binary on a PostgreSQL of its own per scenario, so the restarts and outages touch no
//! other test's database. Each fault of the matrix runs twice under each load.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::Path;

use chaos::matrix::{self, Fault, MatrixTiming};
use chaos::{Row, Timing, scenarios, table};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_webserver"))
}

fn assert_passed(row: Row) {
    let shown = table(std::slice::from_ref(&row));
    println!("{shown}");
    assert!(row.passed, "{shown}");
}

async fn assert_recovers(fault: Fault) {
    let timing = MatrixTiming::short();
    let cells = matrix::run_fault(binary(), fault, &timing, |_| {}).await;
    let shown: String = cells
        .iter()
        .map(|cell| matrix::row(cell, &timing))
        .collect();
    let shown = format!("{}{shown}", matrix::HEADER);
    println!("{shown}");
    assert!(cells.iter().all(matrix::Cell::passed), "{shown}");
}

macro_rules! fault_tests {
    ($($name:ident: $fault:expr,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                assert_recovers($fault).await;
            }
        )*
    };
}

fault_tests! {
    a_fast_database_restart_heals_by_itself: Fault::RestartFast,
    an_immediate_database_restart_heals_by_itself: Fault::RestartImmediate,
    a_stopped_database_heals_by_itself_once_started: Fault::StopStart,
    terminated_connections_heal_by_themselves: Fault::Terminate,
    connections_reset_by_the_network_heal_by_themselves: Fault::Cut,
    a_blackholed_database_heals_by_itself: Fault::Blackhole,
    added_latency_breaks_nothing: Fault::Latency,
    a_full_database_heals_by_itself: Fault::MaxConnections,
    refused_connections_heal_by_themselves: Fault::Refused,
    a_failover_to_a_standby_heals_by_itself: Fault::Failover,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_heartbeats_starve_no_host() {
    assert_passed(scenarios::forged_heartbeat_flood(binary(), Timing::short()).await);
}
