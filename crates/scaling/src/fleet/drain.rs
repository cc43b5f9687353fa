//! Draining instances through their hosts, and terminating them through the cloud.

use std::collections::BTreeMap;
use std::net::IpAddr;

use cloud_interface::{CloudError, CloudInstanceId};
use models::instance::{self, Consolidation, Doomed, DrainTarget, OperatorDrain};
use models::{AmiId, InstanceName, InstanceStatus, Region};

use super::{Fleet, FleetError};

/// How a drain request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainOutcome {
    /// The host accepted: it finishes, sends its dying heartbeat and shuts down.
    Asked,
    /// The host could not be reached and the instance held no mandelbox: it was
    /// terminated through the cloud and removed.
    Terminated,
    /// The host could not be reached but the instance holds sessions: it stays
    /// `DRAINING`, and the lifecycle ends it once empty, or once its host is silent.
    Unreachable,
}

/// How a consolidation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Consolidated {
    /// It holds sessions: marked `DRAINING`, reclaimable, its host not asked yet.
    Reclaimable,
    /// It was empty: drained as any empty instance is.
    Drained(DrainOutcome),
}

/// How an operator's drain went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorDrainOutcome {
    /// It began draining now, and its host was asked (or it was ended).
    Drained(DrainOutcome),
    /// It was draining already: nothing changed.
    AlreadyDraining,
    /// In this status it cannot be drained.
    NotDrainable(InstanceStatus),
    NotFound,
}

/// What a termination did, region by region: one region's failure ends nothing of the
/// others'.
#[derive(Debug, Default)]
pub struct Terminated {
    /// Ended in the cloud (or never this cloud's to end).
    pub ended: Vec<InstanceName>,
    /// Regions whose instances could not be ended, with why.
    pub failed: Vec<(Region, CloudError)>,
}

impl Fleet {
    /// Drains `name` if it is still `ACTIVE` and empty: marks it `DRAINING` (so nothing
    /// new lands), asks its host to drain, and if the host cannot be reached terminates
    /// it through the cloud and removes it. `None` if it was no longer empty and active.
    pub async fn drain_if_empty(
        &self,
        name: &InstanceName,
    ) -> Result<Option<DrainOutcome>, FleetError> {
        let target = {
            let name = name.clone();
            self.db
                .run(move |conn| Ok(instance::begin_drain_if_empty(conn, &name)?))
                .await?
        };
        match target {
            Some(target) => self.ask_or_end(target).await.map(Some),
            None => Ok(None),
        }
    }

    /// An operator's drain of `name`: marks it `DRAINING` whatever its load (its
    /// sessions go on, nothing new lands there) and asks its host to drain, as any drain
    /// (an unreachable host with sessions stays draining; without, it is terminated).
    pub async fn drain_by_operator(
        &self,
        name: &InstanceName,
    ) -> Result<OperatorDrainOutcome, FleetError> {
        let marked = self.mark_draining(name).await?;
        Ok(match marked {
            OperatorDrain::Began(target) => {
                OperatorDrainOutcome::Drained(self.ask_or_end(target).await?)
            }
            OperatorDrain::AlreadyDraining => OperatorDrainOutcome::AlreadyDraining,
            OperatorDrain::NotDrainable(status) => OperatorDrainOutcome::NotDrainable(status),
            OperatorDrain::NotFound => OperatorDrainOutcome::NotFound,
        })
    }

    /// The adaptive policy's consolidation of `name`, the least-loaded instance of a
    /// region with too much room: marked `DRAINING` (nothing new lands there, its
    /// sessions go on) but, while it holds sessions, reclaimable: its host is not asked
    /// yet, so that a check that needs room takes it back before launching
    /// ([`Fleet::finish_consolidations`] asks the host once it is empty). `None` if it
    /// was no longer `ACTIVE`.
    pub(crate) async fn consolidate(
        &self,
        name: &InstanceName,
    ) -> Result<Option<Consolidated>, FleetError> {
        let marked = {
            let name = name.clone();
            self.db
                .run(move |conn| Ok(instance::begin_consolidation(conn, &name)?))
                .await?
        };
        match marked {
            Some(Consolidation {
                reclaimable: true, ..
            }) => {
                tracing::info!(instance = %name, "consolidating: nothing new lands on the least-loaded instance");
                Ok(Some(Consolidated::Reclaimable))
            }
            Some(Consolidation { target, .. }) => {
                tracing::info!(instance = %name, "consolidating: draining the least-loaded instance, empty");
                Ok(Some(Consolidated::Drained(self.ask_or_end(target).await?)))
            }
            None => Ok(None),
        }
    }

    /// Makes these consolidated instances `ACTIVE` again, if nothing made their drain
    /// final meanwhile; the ones taken back.
    pub(crate) async fn take_back(
        &self,
        names: &[InstanceName],
    ) -> Result<Vec<InstanceName>, FleetError> {
        let names = names.to_vec();
        Ok(self
            .db
            .run(move |conn| Ok(instance::take_back(conn, &names)?))
            .await?)
    }

    /// Asks the hosts of the consolidated instances of `image` in `region` whose last
    /// session ended to drain (ending those that cannot be reached): their drain is
    /// final now. The instances and how each went.
    pub(crate) async fn finish_consolidations(
        &self,
        region: &Region,
        image: &AmiId,
    ) -> Result<Vec<(InstanceName, DrainOutcome)>, FleetError> {
        let targets = {
            let (region, image) = (region.clone(), image.clone());
            self.db
                .run(move |conn| Ok(instance::finish_consolidations(conn, &region, &image)?))
                .await?
        };
        let mut finished = Vec::new();
        for target in targets {
            let name = target.instance_name.clone();
            finished.push((name, self.ask_or_end(target).await?));
        }
        Ok(finished)
    }

    /// Marks `name` `DRAINING` whatever its load, if its status allows a drain.
    async fn mark_draining(&self, name: &InstanceName) -> Result<OperatorDrain, FleetError> {
        let name = name.clone();
        Ok(self
            .db
            .run(move |conn| Ok(instance::begin_drain_by_operator(conn, &name)?))
            .await?)
    }

    /// Asks `target`'s host to drain. An instance whose host cannot be reached is
    /// terminated through the cloud and its row removed, unless it holds sessions.
    pub(crate) async fn ask_or_end(&self, target: DrainTarget) -> Result<DrainOutcome, FleetError> {
        if self.ask_to_drain(&target).await {
            return Ok(DrainOutcome::Asked);
        }
        if target.mandelbox_count > 0 {
            tracing::warn!(instance = %target.instance_name, sessions = target.mandelbox_count, "host unreachable for drain; left draining with its sessions");
            return Ok(DrainOutcome::Unreachable);
        }
        let terminated = self
            .terminate_and_remove(&[Doomed {
                instance_name: target.instance_name,
                location: target.location,
                cloud_provider_id: target.cloud_provider_id,
            }])
            .await?;
        match terminated.failed.into_iter().next() {
            Some((_, err)) => Err(err.into()),
            None => Ok(DrainOutcome::Terminated),
        }
    }

    /// `POST http://<ip>:<HOST_SERVICE_PORT>/drain_and_shutdown`, signed with the host's
    /// credential digest (the agent refuses unsigned requests); whether the host said yes.
    pub async fn ask_to_drain(&self, target: &DrainTarget) -> bool {
        let Some(ip) = target.ip else {
            return false;
        };
        let host = match ip {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let url = format!(
            "http://{host}:{}/drain_and_shutdown",
            self.settings.host_service_port
        );
        let mut request = self.http.post(&url);
        if let Some(digest) = &target.host_token_sha256 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            request = request.header(
                reqwest::header::AUTHORIZATION,
                auth::host::drain_authorization(digest, target.instance_name.as_str(), now),
            );
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                tracing::info!(instance = %target.instance_name, "host asked to drain");
                self.metrics.action("drained", target.location.as_str(), 1);
                true
            }
            Ok(response) => {
                tracing::warn!(instance = %target.instance_name, status = %response.status(), "host refused to drain");
                false
            }
            Err(err) => {
                tracing::warn!(instance = %target.instance_name, error = &err as &dyn std::error::Error, "host unreachable for drain");
                false
            }
        }
    }

    /// Terminates these instances through the cloud, then removes the rows of those
    /// that were ended. Regions the cloud failed for keep their rows, to try again.
    pub async fn terminate_and_remove(&self, doomed: &[Doomed]) -> Result<Terminated, FleetError> {
        let terminated = self.terminate_in_cloud(doomed).await;
        let names = terminated.ended.clone();
        if !names.is_empty() {
            self.db
                .run(move |conn| Ok(instance::delete(conn, &names)?))
                .await?;
        }
        Ok(terminated)
    }

    /// Terminates instances in the cloud, region by region. A region that fails is
    /// logged, counted (`terminate_failed`) and left for the next try; the others go on.
    pub async fn terminate_in_cloud(&self, doomed: &[Doomed]) -> Terminated {
        let mut by_region: BTreeMap<&Region, Vec<&Doomed>> = BTreeMap::new();
        for instance in doomed {
            by_region
                .entry(&instance.location)
                .or_default()
                .push(instance);
        }
        let mut terminated = Terminated::default();
        for (region, instances) in by_region {
            let ids: Vec<CloudInstanceId> = instances
                .iter()
                .map(|i| CloudInstanceId::stored(i.cloud_provider_id.clone()))
                .collect();
            match self.cloud.terminate_instances(region, &ids).await {
                Ok(()) => {
                    tracing::info!(%region, ids = ?ids, "instances terminated");
                    self.metrics
                        .action("terminated", region.as_str(), ids.len() as u64);
                    terminated
                        .ended
                        .extend(instances.iter().map(|i| i.instance_name.clone()));
                }
                Err(err) => {
                    tracing::error!(%region, ids = ?ids, error = &err as &dyn std::error::Error, "terminating instances failed; trying again later");
                    self.metrics
                        .action("terminate_failed", region.as_str(), ids.len() as u64);
                    terminated.failed.push((region.clone(), err));
                }
            }
        }
        terminated
    }
}
