//! Prometheus metrics of assignment, the fleet and the background jobs, in the
//! process-wide default registry (the HTTP layer serves it at `GET /metrics`).
//!
//! - `webserver_assign_outcomes_total{outcome}`: `ASSIGNED`, or the refusal's code
//!   (`NO_INSTANCE_AVAILABLE`, …, `PAYMENT_REQUIRED`, `RATE_LIMITED`, `FORBIDDEN`, `ERROR`);
//! - `webserver_fleet_actions_total{action, region}`: `launched`, `launch_failed`,
//!   `drained`, `terminated`, `orphan_terminated`;
//! - `webserver_job_runs_total{job, result}`: `lifecycle` and `scaling` passes, `ok` or
//!   `failed`;
//! - gauges per region, read from the database at each scrape
//!   ([`refresh_fleet_gauges`]): `webserver_fleet_instances{region, status}`,
//!   `webserver_fleet_capacity{region}` and `webserver_fleet_free_slots{region}` (of
//!   `ACTIVE` instances), `webserver_fleet_mandelboxes{region, status}`.

use std::sync::LazyLock;

use models::{Db, DbError, instance, mandelbox};
use prometheus::core::Collector;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};

/// `collector`, registered in the default registry (for the HTTP layer's metrics too).
pub fn registered<C: Collector + Clone + 'static>(collector: C) -> C {
    // Registering twice is the only failure, and each metric is registered once.
    let _ = prometheus::default_registry().register(Box::new(collector.clone()));
    collector
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    match IntCounterVec::new(Opts::new(name, help), labels) {
        Ok(counter) => registered(counter),
        Err(err) => unreachable!("metric {name} is malformed: {err}"),
    }
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    match IntGaugeVec::new(Opts::new(name, help), labels) {
        Ok(gauge) => registered(gauge),
        Err(err) => unreachable!("metric {name} is malformed: {err}"),
    }
}

pub static ASSIGN_OUTCOMES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "webserver_assign_outcomes_total",
        "Mandelbox assignment requests, by outcome: ASSIGNED or the refusal's code.",
        &["outcome"],
    )
});

pub static FLEET_ACTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "webserver_fleet_actions_total",
        "Instances launched, failed to launch, drained and terminated, by region.",
        &["action", "region"],
    )
});

pub static JOB_RUNS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "webserver_job_runs_total",
        "Runs of the periodic jobs, by job and result.",
        &["job", "result"],
    )
});

static INSTANCES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "webserver_fleet_instances",
        "Instances by region and status.",
        &["region", "status"],
    )
});

static CAPACITY: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "webserver_fleet_capacity",
        "Mandelbox slots of ACTIVE instances, by region.",
        &["region"],
    )
});

static FREE_SLOTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "webserver_fleet_free_slots",
        "Free mandelbox slots of ACTIVE instances, by region.",
        &["region"],
    )
});

static MANDELBOXES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "webserver_fleet_mandelboxes",
        "Mandelboxes by region and status.",
        &["region", "status"],
    )
});

/// Counts one fleet action.
pub fn fleet_action(action: &str, region: &str, count: u64) {
    FLEET_ACTIONS
        .with_label_values(&[action, region])
        .inc_by(count);
}

/// Counts one run of a periodic job.
pub fn job_run(job: &str, ok: bool) {
    JOB_RUNS
        .with_label_values(&[job, if ok { "ok" } else { "failed" }])
        .inc();
}

/// Makes sure every metric is registered (a family shows in a scrape once it has a
/// sample).
pub fn register_all() {
    LazyLock::force(&ASSIGN_OUTCOMES);
    LazyLock::force(&FLEET_ACTIONS);
    LazyLock::force(&JOB_RUNS);
    LazyLock::force(&INSTANCES);
    LazyLock::force(&CAPACITY);
    LazyLock::force(&FREE_SLOTS);
    LazyLock::force(&MANDELBOXES);
}

/// Sets the fleet gauges from the database (two grouped queries). Regions and statuses
/// that are gone disappear from the gauges.
pub async fn refresh_fleet_gauges(db: &Db) -> Result<(), DbError> {
    let (instances, mandelboxes) = db
        .run(|conn| {
            Ok((
                instance::totals_by_region_and_status(conn)?,
                mandelbox::counts_by_region_and_status(conn)?,
            ))
        })
        .await?;
    INSTANCES.reset();
    CAPACITY.reset();
    FREE_SLOTS.reset();
    MANDELBOXES.reset();
    for row in &instances {
        INSTANCES
            .with_label_values(&[row.region.as_str(), row.status.as_str()])
            .set(row.instances);
        if row.status == models::InstanceStatus::Active.as_str() {
            CAPACITY
                .with_label_values(&[row.region.as_str()])
                .set(row.capacity);
            FREE_SLOTS
                .with_label_values(&[row.region.as_str()])
                .set(row.free_slots);
        }
    }
    for row in &mandelboxes {
        MANDELBOXES
            .with_label_values(&[row.region.as_str(), row.status.as_str()])
            .set(row.mandelboxes);
    }
    Ok(())
}
