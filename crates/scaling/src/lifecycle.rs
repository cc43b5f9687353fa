//! The lifecycle jobs (SPEC §6): keep the fleet's records true, without ever ending a
//! session because the control plane itself was away.
//!
//! Each pass has two phases, each under a lock, so with several server processes one
//! does the work and the others skip it:
//! 1. In one short transaction: the pass is recorded (`hardware.lifecycle_clock`), so
//!    that only silence while the control plane was up counts; `ACTIVE` instances silent
//!    for the heartbeat timeout of such time become unresponsive; `ALLOCATED` mandelboxes
//!    never picked up are removed; rate-limit windows that no longer count, and past
//!    sessions older than `SESSION_HISTORY_DAYS`, are purged.
//! 2. Instances whose time is up (`PRE_CONNECTION` ones that never registered,
//!    unresponsive ones lingering too long, `DRAINING` ones empty for the lingering
//!    timeout, silent with their sessions, or draining past `DRAIN_MAX_AGE_SECS`) are
//!    claimed in one statement, then terminated through the cloud with no transaction
//!    open, region by region, and the rows of those ended are removed. A region the cloud
//!    fails for keeps its rows, claimed, for the next pass; the others go on.

use std::sync::Arc;
use std::time::Duration;

use diesel::Connection;
use models::db::try_lock_for_transaction;
use models::instance::{self, Deadlines, Doomed};
use models::{
    Db, DbError, Region, UnixMillis, demand, history, learning, lifecycle_clock, mandelbox,
    rate_limit,
};

use crate::fleet::Fleet;
use crate::metrics::FleetMetrics;

/// Lock key of the first phase of a pass (transaction-scoped).
const MARK_LOCK: i64 = 0x7765_6273_7276_0010;
/// Lock of the second phase (session-scoped: it spans cloud calls).
const TERMINATE_LOCK: &str = "lifecycle:terminate";

#[derive(Debug, Clone, Copy)]
pub struct LifecyclePolicy {
    pub heartbeat_timeout: Duration,
    pub pre_connection_timeout: Duration,
    pub lingering_timeout: Duration,
    pub allocation_timeout: Duration,
    /// `DRAIN_MAX_AGE_SECS`: a draining instance goes after this, sessions or not.
    pub drain_max_age: Duration,
    /// A gap between passes longer than this means the control plane was away: the
    /// silence of hosts counts again from the pass after it.
    pub outage_gap: Duration,
    /// How long arrivals are kept for the adaptive policy to learn from
    /// (`models::learning`); older ones are purged.
    pub arrivals_kept: Duration,
    /// `SESSION_HISTORY_DAYS`: past sessions older than this are purged.
    pub session_history_kept: Duration,
}

impl LifecyclePolicy {
    /// The gap that means an outage for passes every `interval`: two missed passes.
    pub fn outage_gap_for(interval: Duration) -> Duration {
        interval.saturating_mul(2).max(Duration::from_secs(1))
    }
}

/// How long a removed `ALLOCATED` mandelbox is remembered, so that its host's late
/// report is answered 410 Gone rather than 404.
pub const EXPIRED_MANDELBOXES_KEPT: Duration = Duration::from_secs(24 * 3600);

/// What a pass did.
#[derive(Debug, Default)]
pub struct LifecycleReport {
    pub marked_unresponsive: usize,
    pub expired_allocations: usize,
    /// Since when the control plane has been up, as this pass recorded it.
    pub up_since: Option<UnixMillis>,
    /// Terminated and removed.
    pub terminated: Vec<Doomed>,
    /// Regions whose instances could not be terminated this time.
    pub failed_regions: Vec<Region>,
    /// Another process held a phase's lock, so this one left it to them.
    pub skipped_phases: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("the lifecycle pass could not reach the database")]
    Database(#[from] DbError),
}

impl From<diesel::result::Error> for LifecycleError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Database(err.into())
    }
}

/// One pass of the lifecycle rules as of `now`.
pub async fn apply_rules(
    db: &Db,
    policy: LifecyclePolicy,
    fleet: &Fleet,
    now: UnixMillis,
) -> Result<LifecycleReport, LifecycleError> {
    let mut report = LifecycleReport::default();
    match mark(db, policy, now).await? {
        Some((unresponsive, expired, up_since)) => {
            report.marked_unresponsive = unresponsive;
            report.expired_allocations = expired;
            report.up_since = Some(up_since);
        }
        None => report.skipped_phases += 1,
    }
    let Some(lock) = db.advisory_lock(TERMINATE_LOCK, Duration::ZERO).await? else {
        report.skipped_phases += 1;
        return Ok(report);
    };
    let ended = terminate(db, policy, fleet, now).await;
    lock.release().await;
    let (terminated, failed_regions) = ended?;
    report.terminated = terminated;
    report.failed_regions = failed_regions;
    Ok(report)
}

/// Phase 1, in one transaction: `None` if another process is doing it.
async fn mark(
    db: &Db,
    policy: LifecyclePolicy,
    now: UnixMillis,
) -> Result<Option<(usize, usize, UnixMillis)>, LifecycleError> {
    db.run(move |conn| {
        Ok(conn.transaction(|conn| {
            if !try_lock_for_transaction(conn, MARK_LOCK)? {
                return Ok::<_, diesel::result::Error>(None);
            }
            let up_since = lifecycle_clock::record_pass(conn, now, policy.outage_gap)?;
            let unresponsive =
                instance::mark_unresponsive(conn, now.minus(policy.heartbeat_timeout), up_since)?;
            let expired = mandelbox::delete_allocated_before(
                conn,
                now.minus(policy.allocation_timeout),
                now,
            )?;
            mandelbox::purge_expired_before(conn, now.minus(EXPIRED_MANDELBOXES_KEPT))?;
            rate_limit::purge_stale(conn, now)?;
            demand::purge_expired(conn, now)?;
            learning::purge(conn, now, policy.arrivals_kept)?;
            history::purge(conn, now, policy.session_history_kept)?;
            Ok(Some((unresponsive, expired, up_since)))
        })?)
    })
    .await
    .map_err(LifecycleError::from)
}

/// Phase 2, under its lock: claim, terminate with no transaction open, remove.
async fn terminate(
    db: &Db,
    policy: LifecyclePolicy,
    fleet: &Fleet,
    now: UnixMillis,
) -> Result<(Vec<Doomed>, Vec<Region>), LifecycleError> {
    let doomed = db
        .run(move |conn| {
            let up_since = lifecycle_clock::up_since(conn)?.unwrap_or(now);
            let deadlines = Deadlines {
                launched_before: now.minus(policy.pre_connection_timeout),
                lingering_since: now.minus(policy.lingering_timeout),
                draining_since: now.minus(policy.drain_max_age),
                up_since,
                now,
            };
            Ok(instance::claim_doomed(conn, &deadlines)?)
        })
        .await?;
    if doomed.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let outcome = fleet.terminate_in_cloud(&doomed).await;
    let names = outcome.ended.clone();
    if !names.is_empty() {
        db.run(move |conn| Ok(instance::delete(conn, &names)?))
            .await?;
    }
    let terminated = doomed
        .into_iter()
        .filter(|d| outcome.ended.contains(&d.instance_name))
        .collect();
    let failed = outcome
        .failed
        .into_iter()
        .map(|(region, _)| region)
        .collect();
    Ok((terminated, failed))
}

/// Runs a pass every `interval` until the task is dropped (see [`crate::jobs`]).
pub async fn apply_rules_every(
    db: Db,
    policy: LifecyclePolicy,
    fleet: Arc<Fleet>,
    interval: Duration,
    metrics: FleetMetrics,
) {
    crate::jobs::run_every("lifecycle", interval, metrics, move || {
        let (db, fleet) = (db.clone(), fleet.clone());
        async move {
            let report = apply_rules(&db, policy, &fleet, UnixMillis::now()).await?;
            let changed = report.marked_unresponsive
                + report.expired_allocations
                + report.terminated.len()
                + report.failed_regions.len();
            if changed > 0 {
                tracing::info!(
                    marked_unresponsive = report.marked_unresponsive,
                    expired_allocations = report.expired_allocations,
                    terminated = report.terminated.len(),
                    failed_regions = ?report.failed_regions,
                    "lifecycle pass"
                );
            }
            Ok::<_, LifecycleError>(())
        }
    })
    .await;
}
