//! The scenarios of the chaos run besides the fault matrix (`crate::matrix`). Each returns a [`Row`](crate::Row) of the table, and whether
//! it passed: what it asks of the server is written in `passed`.

mod edges;
mod faults;
mod flood;
mod outage;

use std::time::Duration;

pub use edges::{hostile_requests, identity_provider_outage};
pub use faults::replica_killed;
pub use flood::forged_heartbeat_flood;
pub use outage::control_plane_outage;

use crate::cluster::Cluster;

/// How long each scenario's phases last.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Load around a killed replica.
    pub load: Duration,
    /// `HEARTBEAT_TIMEOUT_SECS` of the outage scenario; the outage lasts three of them.
    pub heartbeat_timeout: Duration,
    /// How long the identity provider stays away.
    pub idp_away: Duration,
    /// Hostile requests sent.
    pub hostile_requests: usize,
    /// Forged heartbeats a second, and the connections they come from, in the flood.
    pub flood_rate: u64,
    pub flood_connections: usize,
    /// Whether the flood run judges the assigns' p99 (the full run; the test command's
    /// short run shares the machine with other tests, so it reports the figure only).
    pub flood_judges_latency: bool,
}

impl Timing {
    /// The short version the test command runs.
    pub fn short() -> Self {
        Self {
            load: Duration::from_secs(6),
            heartbeat_timeout: Duration::from_secs(2),
            idp_away: Duration::from_secs(3),
            hostile_requests: 2_000,
            flood_rate: 300,
            flood_connections: 100,
            flood_judges_latency: false,
        }
    }

    /// The full run of `scripts/chaos.sh`.
    pub fn full() -> Self {
        Self {
            load: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(10),
            idp_away: Duration::from_secs(60),
            hostile_requests: 10_000,
            flood_rate: 10_000,
            flood_connections: 2_000,
            flood_judges_latency: true,
        }
    }
}

/// Every 202's mandelbox, looked for in the database: how many are missing.
pub(crate) fn missing(cluster: &Cluster, assigned: &[String]) -> usize {
    if assigned.is_empty() {
        return 0;
    }
    let list = assigned
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    let found = cluster.number(&format!(
        "SELECT count(*) AS n FROM hardware.mandelbox_info WHERE mandelbox_id IN ({list})"
    ));
    assigned.len() - usize::try_from(found).unwrap_or(0)
}

pub(crate) fn invariants(cluster: &Cluster) -> (bool, String) {
    match models::invariants::violations(&mut cluster.connect(), 1) {
        Ok(violations) if violations.is_clean() => (true, "held".to_owned()),
        Ok(violations) => (false, format!("{violations:?}")),
        Err(err) => (false, format!("unchecked: {err}")),
    }
}

pub(crate) fn keeps_every_session_vars() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ALLOCATION_TIMEOUT_SECS", "3600"),
        ("HEARTBEAT_TIMEOUT_SECS", "3600"),
        ("LIFECYCLE_INTERVAL_SECS", "1"),
        ("MANDELBOX_LIMIT_PER_USER", "1"),
    ]
}
