//! One capacity check of one (region, image), under its lock.

use std::time::Duration;

use diesel::PgConnection;
use models::region_to_ami::{self, RegionAmi};
use models::{AmiId, InstanceName, Region, UnixMillis, demand, instance, learning};

use super::{Fleet, FleetError, lock_name};
use crate::adaptive::Observed;
use crate::fleet::drain::{Consolidated, DrainOutcome};
use crate::settings::{Learning, ScalingPolicy};
use crate::sizing::{Decision, FleetView, InstanceLoad, SizingPolicy, decide};

/// What one capacity check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub region: Region,
    pub image: Option<AmiId>,
    pub decision: Decision,
    pub launched: Vec<InstanceName>,
    /// Consolidated instances made `ACTIVE` again instead of launching.
    pub taken_back: Vec<InstanceName>,
    /// Consolidated with sessions: `DRAINING`, reclaimable, their hosts not asked yet.
    pub consolidated: Vec<InstanceName>,
    /// Drained through their hosts.
    pub drained: Vec<InstanceName>,
    /// Their hosts could not be reached: terminated through the cloud and removed.
    pub terminated: Vec<InstanceName>,
    /// Another process held the fleet's lock past the wait; it decides instead.
    pub skipped: bool,
}

impl CheckReport {
    fn new(region: &Region, image: Option<&AmiId>) -> Self {
        Self {
            region: region.clone(),
            image: image.cloned(),
            decision: Decision::Nothing,
            launched: Vec::new(),
            taken_back: Vec::new(),
            consolidated: Vec::new(),
            drained: Vec::new(),
            terminated: Vec::new(),
            skipped: false,
        }
    }
}

/// What a decision is taken on: the fleet, its region's active image, the mean
/// capacity of the region's registered instances, and (adaptive policy) what the
/// region showed recently.
struct Snapshot {
    view: FleetView,
    active: Option<RegionAmi>,
    average_capacity: Option<i64>,
    observed: Option<Observed>,
}

impl Fleet {
    /// Sizes one fleet: `image` of `region`, or the region's active image for `None`.
    /// Waits up to `wait` for another process deciding the same fleet.
    pub async fn check(
        &self,
        region: &Region,
        image: Option<&AmiId>,
        wait: Duration,
    ) -> Result<CheckReport, FleetError> {
        let mut report = CheckReport::new(region, image);
        let image = match image {
            Some(image) => image.clone(),
            None => {
                let region = region.clone();
                let active = self
                    .db
                    .run(move |conn| Ok(region_to_ami::active(conn, &region)?))
                    .await?;
                match active {
                    Some(row) => row.ami_id,
                    // No active image: nothing to launch; the periodic pass drains.
                    None => return Ok(report),
                }
            }
        };
        report.image = Some(image.clone());
        let Some(lock) = self
            .db
            .advisory_lock(&lock_name(region, &image), wait)
            .await?
        else {
            report.skipped = true;
            return Ok(report);
        };
        let result = self.check_locked(region, &image, report).await;
        lock.release().await;
        result
    }

    async fn snapshot(&self, region: &Region, image: &AmiId) -> Result<Snapshot, FleetError> {
        let (region, image) = (region.clone(), image.clone());
        let learning = match self.settings.policy {
            ScalingPolicy::Fixed => None,
            ScalingPolicy::Adaptive { .. } => Some(self.settings.learning),
        };
        Ok(self
            .db
            .run(move |conn| {
                let rows = region_to_ami::for_region(conn, &region)?;
                let loads = instance::loads(conn, &region, &image)?;
                let in_region = instance::count_in_region(conn, &region)?;
                let average_capacity = instance::average_active_capacity(conn, &region)?;
                let now = UnixMillis::now();
                let unmet_demand = demand::in_region(conn, &region, now)?;
                let observed = match learning {
                    Some(spans) => Some(observe(conn, &region, now, spans)?),
                    None => None,
                };
                let active = rows
                    .iter()
                    .find(|row| row.ami_active && row.region_enabled)
                    .cloned();
                let view = FleetView {
                    region_enabled: rows.iter().any(|row| row.region_enabled),
                    image_active: active.as_ref().is_some_and(|row| row.ami_id == image),
                    instances: loads
                        .into_iter()
                        .map(|load| InstanceLoad {
                            name: load.instance_name,
                            status: load.status,
                            capacity: load.mandelbox_capacity,
                            mandelboxes: load.mandelbox_count,
                            reclaimable: load.reclaimable,
                            expected_end: load.expected_end,
                        })
                        .collect(),
                    region_instances: u32::try_from(in_region).unwrap_or(u32::MAX),
                    unmet_demand,
                };
                Ok(Snapshot {
                    view,
                    active,
                    average_capacity,
                    observed,
                })
            })
            .await?)
    }

    async fn check_locked(
        &self,
        region: &Region,
        image: &AmiId,
        mut report: CheckReport,
    ) -> Result<CheckReport, FleetError> {
        let snapshot = self.snapshot(region, image).await?;
        let policy = SizingPolicy::new(
            &self.settings.sizing_rules(),
            snapshot.observed.as_ref(),
            snapshot
                .average_capacity
                .or(self.settings.launch_capacity)
                .unwrap_or(1),
        );
        self.metrics.set_desired_free(region, policy.desired_free);
        report.decision = decide(&snapshot.view, &policy);
        // Only a consolidation emptied by the snapshot is finished below: no write on
        // the checks (one after each assignment) that have none.
        let emptied = snapshot
            .view
            .instances
            .iter()
            .any(|i| i.reclaimable && i.mandelboxes == 0);
        match (&report.decision, snapshot.active) {
            (Decision::Launch(count), Some(active)) => {
                report.launched = self.launch(&active, *count).await?;
            }
            (Decision::TakeBack { instances, launch }, active) => {
                report.taken_back = self.take_back(instances).await?;
                if !report.taken_back.is_empty() {
                    let taken = report.taken_back.len() as u64;
                    self.metrics.action("taken_back", region.as_str(), taken);
                }
                if report.taken_back.len() < instances.len() {
                    // An operator, an image upgrade, a dying host or the lifecycle made
                    // their drain final first: the next check launches for them.
                    tracing::info!(region = %region, wanted = instances.len(), taken = report.taken_back.len(), "some consolidated instances could not be taken back");
                }
                if let (launch @ 1.., Some(active)) = (*launch, active) {
                    report.launched = self.launch(&active, launch).await?;
                }
            }
            (Decision::Consolidate(name), _) => {
                let consolidated = self.consolidate(name).await?;
                if consolidated.is_some() {
                    self.metrics.action("consolidated", region.as_str(), 1);
                }
                match consolidated {
                    Some(Consolidated::Reclaimable) => report.consolidated.push(name.clone()),
                    Some(Consolidated::Drained(DrainOutcome::Terminated)) => {
                        report.terminated.push(name.clone());
                    }
                    Some(Consolidated::Drained(
                        DrainOutcome::Asked | DrainOutcome::Unreachable,
                    )) => {
                        report.drained.push(name.clone());
                    }
                    None => {}
                }
            }
            (Decision::Drain(names), _) => {
                for name in names {
                    match self.drain_if_empty(name).await? {
                        Some(DrainOutcome::Asked) => report.drained.push(name.clone()),
                        Some(DrainOutcome::Terminated | DrainOutcome::Unreachable) => {
                            report.terminated.push(name.clone());
                        }
                        None => {}
                    }
                }
            }
            _ => {}
        }
        // Consolidated instances whose last session ended: their drain is final now.
        let finished = if emptied {
            self.finish_consolidations(region, image).await?
        } else {
            Vec::new()
        };
        for (name, outcome) in &finished {
            match outcome {
                DrainOutcome::Asked | DrainOutcome::Unreachable => {
                    report.drained.push(name.clone())
                }
                DrainOutcome::Terminated => report.terminated.push(name.clone()),
            }
        }
        if report.decision != Decision::Nothing || !finished.is_empty() {
            tracing::info!(
                region = %region,
                image = %image,
                decision = ?report.decision,
                launched = report.launched.len(),
                taken_back = report.taken_back.len(),
                consolidated = report.consolidated.len(),
                drained = report.drained.len(),
                terminated = report.terminated.len(),
                "fleet resized"
            );
        }
        Ok(report)
    }
}

/// What `region` showed over the learning spans before `now`.
fn observe(
    conn: &mut PgConnection,
    region: &Region,
    now: UnixMillis,
    spans: Learning,
) -> diesel::QueryResult<Observed> {
    let traffic = learning::traffic(conn, region, now, spans.short_span, spans.long_span)?;
    Ok(Observed {
        arrivals_short: traffic.arrivals_short,
        short_span: spans.short_span,
        arrivals_long: traffic.arrivals_long,
        departures_long: traffic.departures_long,
        long_span: spans.long_span,
        boot_time: learning::boot_time(conn, region)?,
    })
}
