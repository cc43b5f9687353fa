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
        // Every line a run logs carries the job's name.
        let run = tracing::Instrument::instrument(run(), tracing::info_span!("job", job));
        let outcome = match tokio::spawn(run).await {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::metrics::FleetMetrics;

    #[derive(Debug, thiserror::Error)]
    #[error("the run failed")]
    struct Failed;

    #[tokio::test]
    async fn a_run_that_panics_or_fails_is_counted_and_the_job_goes_on() {
        let metrics = FleetMetrics::new(&app_metrics::Registry::new());
        let runs = Arc::new(AtomicU32::new(0));
        let job = {
            let (runs, metrics) = (runs.clone(), metrics.clone());
            tokio::spawn(run_every(
                "test",
                Duration::from_millis(10),
                metrics,
                move || {
                    let run = runs.fetch_add(1, Ordering::SeqCst);
                    async move {
                        match run {
                            0 => panic!("the first run panics"),
                            1 => Err(Failed),
                            _ => Ok(()),
                        }
                    }
                },
            ))
        };
        while metrics.job_runs("test", JobOutcome::Ok) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        job.abort();
        assert_eq!(metrics.job_runs("test", JobOutcome::Panicked), 1);
        assert_eq!(metrics.job_runs("test", JobOutcome::Failed), 1);
    }
}
