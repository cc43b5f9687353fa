//! Faults under load: the database restarted, a replica killed.

use std::time::{Duration, Instant};

use super::{Timing, invariants, keeps_every_session_vars, missing};
use crate::cluster::Cluster;
use crate::load;
use crate::report::Row;

/// 1. PostgreSQL restarted mid-load: only 202 and 503, assigns back within 5 s, the
///    server process never restarts, every 202's mandelbox in the database.
pub async fn database_restart(binary: &std::path::Path, timing: Timing) -> Row {
    let cluster = Cluster::new(binary.to_path_buf(), &keeps_every_session_vars());
    let mut server = cluster.start_server();
    cluster.seed(20, 100_000);
    let pid = server.pid();
    let token = cluster.admin_token("chaos-admin");
    let until = load::Until::at(Instant::now() + timing.load);
    let servers = vec![server.address.clone()];
    let load = {
        let (token, until) = (token.clone(), until.clone());
        tokio::spawn(async move { load::assigns(&servers, &token, 16, until).await })
    };
    tokio::time::sleep(timing.load / 3).await;
    let postgres = &cluster.postgres;
    let restarted = tokio::task::block_in_place(|| {
        postgres.restart();
        Instant::now()
    });
    // A restart slowed by a busy machine still gets two thirds of the load after it.
    until.extend_to(restarted + timing.load * 2 / 3);
    let outcomes = load.await.unwrap_or_default();
    let recovery = outcomes
        .first_assigned_after(restarted)
        .map(|at| at.duration_since(restarted));
    let lost = missing(&cluster, &outcomes.assigned());
    let (held, invariants) = invariants(&cluster);
    let same_process = server.is_running() && server.pid() == pid;
    let unexpected = outcomes.unexpected(&[]).len();
    Row {
        scenario: "PostgreSQL restarted mid-load",
        outcomes: outcomes.summary(),
        recovery: recovery.map_or("never".to_owned(), |d| {
            format!("{:.2} s to a 202", d.as_secs_f64())
        }),
        invariants,
        lost: format!("{lost} of {} 202s", outcomes.assigned().len()),
        notes: format!(
            "server process {}",
            if same_process {
                "never restarted"
            } else {
                "RESTARTED"
            }
        ),
        passed: unexpected == 0
            && lost == 0
            && held
            && same_process
            && recovery.is_some_and(|d| d <= Duration::from_secs(5)),
    }
}

/// 2. Three replicas under load, one killed with SIGKILL: the others keep serving, no
///    invariant broken, every 202 recorded.
pub async fn replica_killed(binary: &std::path::Path, timing: Timing) -> Row {
    let cluster = Cluster::new(binary.to_path_buf(), &keeps_every_session_vars());
    let mut servers: Vec<_> = (0..3).map(|_| cluster.start_server()).collect();
    cluster.seed(20, 100_000);
    let token = cluster.admin_token("chaos-admin");
    let addresses: Vec<String> = servers.iter().map(|s| s.address.clone()).collect();
    let until = Instant::now() + timing.load;
    let load = tokio::spawn(async move { load::assigns(&addresses, &token, 24, until).await });
    tokio::time::sleep(timing.load / 3).await;
    servers[1].kill();
    let killed = Instant::now();
    let outcomes = load.await.unwrap_or_default();
    let served_after: Vec<u64> = [0, 2]
        .iter()
        .map(|i| {
            outcomes
                .answers
                .iter()
                .filter(|a| a.server == *i && a.at > killed && a.status == Some(202))
                .count() as u64
        })
        .collect();
    let lost = missing(&cluster, &outcomes.assigned());
    let (held, invariants) = invariants(&cluster);
    let others_alive = servers[0].is_running() && servers[2].is_running();
    Row {
        scenario: "3 replicas, one SIGKILLed",
        outcomes: outcomes.summary(),
        recovery: format!(
            "survivors: {} and {} 202s after the kill",
            served_after[0], served_after[1]
        ),
        invariants,
        lost: format!("{lost} of {} 202s", outcomes.assigned().len()),
        notes: "no answer only from the killed one".to_owned(),
        passed: outcomes.unexpected(&[1]).is_empty()
            && served_after.iter().all(|n| *n > 0)
            && others_alive
            && lost == 0
            && held,
    }
}
