//! The periodic pass (every `SCALE_DOWN_INTERVAL_SECS`) over every fleet.

use std::sync::Arc;
use std::time::Duration;

use cloud_interface::CloudInstance;
use models::{instance, region_to_ami};

use super::check::CheckReport;
use super::{Fleet, FleetError};

const PASS_LOCK: &str = "fleet:periodic-pass";

/// What one periodic pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// One per fleet checked.
    pub checks: Vec<CheckReport>,
    /// Instances the cloud ran for this deployment that no row recorded: terminated.
    pub orphans: Vec<CloudInstance>,
}

impl Fleet {
    /// One periodic pass: every fleet that has instances, and every enabled region's
    /// active image, is checked once; then orphans are ended ([`Fleet::end_orphans`]).
    /// One process at a time runs a pass; a fleet another process is deciding is
    /// skipped. Nothing when `AUTOSCALE` is off, or another process is running a pass.
    pub async fn run_pass(&self) -> Result<PassReport, FleetError> {
        if !self.settings.autoscale {
            return Ok(PassReport::default());
        }
        let Some(lock) = self.db.advisory_lock(PASS_LOCK, Duration::ZERO).await? else {
            return Ok(PassReport::default());
        };
        let result = self.pass_locked().await;
        lock.release().await;
        result
    }

    async fn pass_locked(&self) -> Result<PassReport, FleetError> {
        let checks = self.check_every_fleet().await?;
        let orphans = self.end_orphans().await?;
        Ok(PassReport { checks, orphans })
    }

    async fn check_every_fleet(&self) -> Result<Vec<CheckReport>, FleetError> {
        let fleets = self
            .db
            .run(|conn| {
                let mut fleets = instance::fleets(conn)?;
                for region in region_to_ami::enabled_regions(conn)? {
                    if let Some(active) = region_to_ami::active(conn, &region)? {
                        fleets.push((region, active.ami_id));
                    }
                }
                fleets.sort();
                fleets.dedup();
                Ok(fleets)
            })
            .await?;
        let mut reports = Vec::new();
        for (region, image) in fleets {
            match self.check(&region, Some(&image), Duration::ZERO).await {
                Ok(report) => reports.push(report),
                Err(err) => {
                    tracing::error!(region = %region, image = %image, error = &err as &dyn std::error::Error, "fleet check failed");
                }
            }
        }
        Ok(reports)
    }

    /// Runs a pass every `interval` until the task is dropped (see [`crate::jobs`]).
    pub async fn run_periodically(self: Arc<Self>, interval: Duration) {
        let metrics = self.metrics.clone();
        crate::jobs::run_every("scaling", interval, metrics, move || {
            let fleet = self.clone();
            async move { fleet.run_pass().await.map(drop) }
        })
        .await;
    }
}
