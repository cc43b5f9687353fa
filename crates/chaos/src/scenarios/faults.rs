//! A replica killed under load (the database's faults are the matrix's: `crate::matrix`).

use std::time::Instant;

use super::{Timing, invariants, keeps_every_session_vars, missing};
use crate::cluster::Cluster;
use crate::load;
use crate::report::Row;

/// Three replicas under load, one killed with SIGKILL: the others keep serving, no
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
