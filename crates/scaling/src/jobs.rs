//! Running periodic jobs so that they never stop silently.

use std::future::Future;
use std::time::Duration;

use crate::metrics::{FleetMetrics, JobOutcome};

/// Runs `run` every `interval` (the first time one interval from now) until the task
/// is dropped. Each run is a task of its own: one that fails or panics is logged and
/// counted in `webserver_job_runs_total{job}`, and the job runs again at its next tick.
pub async fn run_every<F, Fut, E>(
    job: &'static str,
    interval: Duration,
    metrics: FleetMetrics,
    mut run: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let outcome = match tokio::spawn(run()).await {
            Ok(Ok(())) => JobOutcome::Ok,
            Ok(Err(err)) => {
                tracing::error!(job, error = &err as &dyn std::error::Error, "job failed");
                JobOutcome::Failed
            }
            Err(join) => {
                tracing::error!(job, error = %join, "job panicked; it runs again at its next tick");
                JobOutcome::Panicked
            }
        };
        metrics.job_run(job, outcome);
    }
}
