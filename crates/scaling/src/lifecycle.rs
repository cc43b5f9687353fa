//! The lifecycle jobs (SPEC §6): keep the fleet's records true.
//!
//! Each pass runs in two transactions, each under an advisory lock, so with several
//! server processes one does the work and the others skip it:
//! 1. `ACTIVE` instances silent for the heartbeat timeout become unresponsive;
//!    `ALLOCATED` mandelboxes never picked up are removed.
//! 2. `PRE_CONNECTION` instances that never registered, and `DRAINING` or unresponsive
//!    ones lingering too long, are terminated through the cloud provider and removed,
//!    in the same transaction: if the process dies half-way, nothing is committed and
//!    the next pass does it again (termination is idempotent).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use diesel::Connection;
use models::db::try_lock_for_transaction;
use models::instance::{self, Doomed};
use models::{Db, DbError, UnixMillis, mandelbox};

/// Lock keys of the two phases of a pass.
const MARK_LOCK: i64 = 0x7765_6273_7276_0010;
const TERMINATE_LOCK: i64 = 0x7765_6273_7276_0011;

/// Ends instances in the cloud.
#[async_trait]
pub trait Terminator: Send + Sync {
    /// Terminates these instances; terminating one already gone is not an error.
    async fn terminate(&self, instances: &[Doomed]) -> Result<(), String>;
}

#[derive(Debug, Clone, Copy)]
pub struct LifecyclePolicy {
    pub heartbeat_timeout: Duration,
    pub pre_connection_timeout: Duration,
    pub lingering_timeout: Duration,
    pub allocation_timeout: Duration,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub marked_unresponsive: usize,
    pub expired_allocations: usize,
    pub terminated: Vec<Doomed>,
    /// Another process held a phase's lock, so this one left it to them.
    pub skipped_phases: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("terminating instances failed: {0}")]
    Terminate(String),
}

impl From<diesel::result::Error> for PassError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Database(err.into())
    }
}

/// One pass of the lifecycle rules as of `now`.
pub async fn run_pass(
    db: &Db,
    policy: LifecyclePolicy,
    terminator: Arc<dyn Terminator>,
    now: UnixMillis,
) -> Result<PassReport, PassError> {
    let runtime = tokio::runtime::Handle::current();
    db.run(move |conn| {
        let mut report = PassReport::default();
        let marked = conn.transaction(|conn| {
            if !try_lock_for_transaction(conn, MARK_LOCK)? {
                return Ok::<_, PassError>(None);
            }
            let unresponsive =
                instance::mark_unresponsive(conn, now.minus(policy.heartbeat_timeout))?;
            let expired =
                mandelbox::delete_allocated_before(conn, now.minus(policy.allocation_timeout))?;
            Ok(Some((unresponsive, expired)))
        });
        match marked {
            Ok(Some((unresponsive, expired))) => {
                report.marked_unresponsive = unresponsive;
                report.expired_allocations = expired;
            }
            Ok(None) => report.skipped_phases += 1,
            Err(err) => return Ok(Err(err)),
        }
        let terminated = conn.transaction(|conn| {
            if !try_lock_for_transaction(conn, TERMINATE_LOCK)? {
                return Ok::<_, PassError>(None);
            }
            let doomed = instance::lock_doomed(
                conn,
                now.minus(policy.pre_connection_timeout),
                now.minus(policy.lingering_timeout),
            )?;
            if !doomed.is_empty() {
                runtime
                    .block_on(terminator.terminate(&doomed))
                    .map_err(PassError::Terminate)?;
                let names: Vec<_> = doomed.iter().map(|d| d.instance_name.clone()).collect();
                instance::delete(conn, &names)?;
            }
            Ok(Some(doomed))
        });
        match terminated {
            Ok(Some(doomed)) => report.terminated = doomed,
            Ok(None) => report.skipped_phases += 1,
            Err(err) => return Ok(Err(err)),
        }
        Ok(Ok(report))
    })
    .await?
}

/// Runs a pass every `interval` until the task is dropped; failures are logged.
pub async fn run_periodically(
    db: Db,
    policy: LifecyclePolicy,
    terminator: Arc<dyn Terminator>,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let result = run_pass(&db, policy, terminator.clone(), UnixMillis::now()).await;
        crate::metrics::job_run("lifecycle", result.is_ok());
        match result {
            Ok(report) => {
                if report.marked_unresponsive + report.expired_allocations + report.terminated.len()
                    > 0
                {
                    tracing::info!(
                        marked_unresponsive = report.marked_unresponsive,
                        expired_allocations = report.expired_allocations,
                        terminated = report.terminated.len(),
                        "lifecycle pass"
                    );
                }
            }
            Err(err) => tracing::error!(error = %err, "lifecycle pass failed"),
        }
    }
}
