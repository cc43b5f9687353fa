//! The fleet's metrics, in the application's registry:
//!
//! - `webserver_fleet_actions_total{action, region}`: `launched`, `launch_failed`,
//!   `drained`, `consolidated`, `terminated`, `terminate_failed`, `orphan_terminated`;
//! - `webserver_fleet_desired_free{region}`: the free slots the last capacity check of
//!   the region aimed for (learned, under `SCALING_POLICY=adaptive`);
//! - `webserver_job_runs_total{job, result}`: the periodic jobs' runs, `ok`, `failed` or
//!   `panicked`;
//! - gauges per region, read from the database at most every few seconds
//!   ([`FleetGauges`]): `webserver_fleet_instances{region, status}`,
//!   `webserver_fleet_capacity{region}` and `webserver_fleet_free_slots{region}` (of
//!   `ACTIVE` instances), `webserver_fleet_mandelboxes{region, status}`,
//!   `webserver_fleet_unmet_demand{region}` (see `models::demand`).

use std::time::{Duration, Instant};

use app_metrics::Registry;
use models::{Db, DbError, InstanceStatus, UnixMillis, demand, instance, mandelbox};
use prometheus::{IntCounterVec, IntGaugeVec};

/// Counters of fleet actions and job runs.
#[derive(Clone)]
pub struct FleetMetrics {
    actions: IntCounterVec,
    job_runs: IntCounterVec,
    desired_free: IntGaugeVec,
}

/// How a run of a periodic job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Ok,
    Failed,
    Panicked,
}

impl JobOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Panicked => "panicked",
        }
    }
}

impl FleetMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            actions: app_metrics::counter_vec(
                registry,
                "webserver_fleet_actions_total",
                "Instances launched, failed to launch, drained and terminated, by region.",
                &["action", "region"],
            ),
            job_runs: app_metrics::counter_vec(
                registry,
                "webserver_job_runs_total",
                "Runs of the periodic jobs, by job and result.",
                &["job", "result"],
            ),
            desired_free: app_metrics::gauge_vec(
                registry,
                "webserver_fleet_desired_free",
                "The free slots the last capacity check of the region aimed for.",
                &["region"],
            ),
        }
    }

    /// Records the free slots a capacity check of `region` aimed for.
    pub fn set_desired_free(&self, region: &models::Region, slots: i64) {
        self.desired_free
            .with_label_values(&[region.as_str()])
            .set(slots);
    }

    /// Counts `count` of one fleet action in `region`.
    pub fn action(&self, action: &str, region: &str, count: u64) {
        self.actions
            .with_label_values(&[action, region])
            .inc_by(count);
    }

    /// Counts one run of a periodic job.
    pub fn job_run(&self, job: &str, outcome: JobOutcome) {
        self.job_runs
            .with_label_values(&[job, outcome.as_str()])
            .inc();
    }

    /// How many runs of `job` ended with `outcome` (for tests and reports).
    pub fn job_runs(&self, job: &str, outcome: JobOutcome) -> u64 {
        self.job_runs
            .with_label_values(&[job, outcome.as_str()])
            .get()
    }
}

/// The fleet's state per region, read from the database at most once per `max_age`,
/// whatever the number of scrapes: a scrape storm costs the database nothing more.
pub struct FleetGauges {
    instances: IntGaugeVec,
    capacity: IntGaugeVec,
    free_slots: IntGaugeVec,
    mandelboxes: IntGaugeVec,
    unmet_demand: IntGaugeVec,
    max_age: Duration,
    /// When the gauges were last read; held while a read is under way.
    refreshed: tokio::sync::Mutex<Option<Instant>>,
}

impl FleetGauges {
    pub fn new(registry: &Registry, max_age: Duration) -> Self {
        let gauge =
            |name, help, labels: &[&str]| app_metrics::gauge_vec(registry, name, help, labels);
        Self {
            instances: gauge(
                "webserver_fleet_instances",
                "Instances by region and status.",
                &["region", "status"],
            ),
            capacity: gauge(
                "webserver_fleet_capacity",
                "Mandelbox slots of ACTIVE instances, by region.",
                &["region"],
            ),
            free_slots: gauge(
                "webserver_fleet_free_slots",
                "Free mandelbox slots of ACTIVE instances, by region.",
                &["region"],
            ),
            mandelboxes: gauge(
                "webserver_fleet_mandelboxes",
                "Mandelboxes by region and status.",
                &["region", "status"],
            ),
            unmet_demand: gauge(
                "webserver_fleet_unmet_demand",
                "Users refused for lack of capacity in the last minute, or waiting, and not \
                 served since, by region.",
                &["region"],
            ),
            max_age,
            refreshed: tokio::sync::Mutex::new(None),
        }
    }

    /// Reads the gauges from `db` unless they are younger than `max_age`. While another
    /// scrape is reading them, this one keeps the values there are.
    pub async fn refresh(&self, db: &Db) -> Result<(), DbError> {
        let Ok(mut refreshed) = self.refreshed.try_lock() else {
            return Ok(());
        };
        if refreshed.is_some_and(|at| at.elapsed() < self.max_age) {
            return Ok(());
        }
        let (instances, mandelboxes, demand) = db
            .run(|conn| {
                Ok((
                    instance::totals_by_region_and_status(conn)?,
                    mandelbox::counts_by_region_and_status(conn)?,
                    demand::by_region(conn, UnixMillis::now())?,
                ))
            })
            .await?;
        // Regions and statuses that are gone disappear from the gauges.
        for gauge in [
            &self.instances,
            &self.capacity,
            &self.free_slots,
            &self.mandelboxes,
            &self.unmet_demand,
        ] {
            gauge.reset();
        }
        for (region, users) in &demand {
            self.unmet_demand
                .with_label_values(&[region.as_str()])
                .set(*users);
        }
        for row in &instances {
            // A region with instances and no one refused shows 0, not nothing.
            self.unmet_demand.with_label_values(&[row.region.as_str()]);
            self.instances
                .with_label_values(&[row.region.as_str(), row.status.as_str()])
                .set(row.instances);
            if row.status == InstanceStatus::Active.as_str() {
                self.capacity
                    .with_label_values(&[row.region.as_str()])
                    .set(row.capacity);
                self.free_slots
                    .with_label_values(&[row.region.as_str()])
                    .set(row.free_slots);
            }
        }
        for row in &mandelboxes {
            self.mandelboxes
                .with_label_values(&[row.region.as_str(), row.status.as_str()])
                .set(row.mandelboxes);
        }
        *refreshed = Some(Instant::now());
        Ok(())
    }
}
