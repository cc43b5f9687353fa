//! Ending instances of this deployment that no row records: their launcher died between
//! the cloud call and the insert, or their termination failed after their row went.

use std::collections::HashSet;
use std::time::SystemTime;

use cloud_interface::{CloudInstance, CloudInstanceId};
use models::region_to_ami;
use models::{Region, instance};

use super::{Fleet, FleetError};

impl Fleet {
    /// Terminates the instances the cloud runs for this deployment (tagged with its
    /// owner) in any region it knows, that no row records and that were launched over
    /// `orphan_grace` ago. A region the cloud cannot list is logged and skipped.
    pub async fn end_orphans(&self) -> Result<Vec<CloudInstance>, FleetError> {
        let regions = self
            .db
            .run(|conn| {
                let mut regions = region_to_ami::known_regions(conn)?;
                regions.extend(
                    instance::fleets(conn)?
                        .into_iter()
                        .map(|(region, _)| region),
                );
                regions.sort();
                regions.dedup();
                Ok(regions)
            })
            .await?;
        let mut ended = Vec::new();
        for region in regions {
            match self.end_orphans_in(&region).await {
                Ok(mut orphans) => ended.append(&mut orphans),
                Err(err) => {
                    tracing::warn!(region = %region, error = &err as &dyn std::error::Error, "could not look for orphaned instances");
                }
            }
        }
        Ok(ended)
    }

    async fn end_orphans_in(&self, region: &Region) -> Result<Vec<CloudInstance>, FleetError> {
        let owner = self.owner().await?;
        let running = self.cloud.list_instances(region, &owner).await?;
        if running.is_empty() {
            return Ok(Vec::new());
        }
        // Read after listing: a launch recorded in between is seen as recorded.
        let recorded: HashSet<String> = {
            let region = region.clone();
            self.db
                .run(move |conn| Ok(instance::cloud_provider_ids(conn, &region)?))
                .await?
                .into_iter()
                .collect()
        };
        let cutoff = SystemTime::now()
            .checked_sub(self.settings.orphan_grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let orphans: Vec<CloudInstance> = running
            .into_iter()
            .filter(|instance| instance.launched_at <= cutoff)
            .filter(|instance| !recorded.contains(instance.id.as_str()))
            .collect();
        if orphans.is_empty() {
            return Ok(orphans);
        }
        for orphan in &orphans {
            tracing::warn!(region = %region, cloud_id = %orphan.id, name = %orphan.name, "terminating an instance no row records");
        }
        let ids: Vec<CloudInstanceId> = orphans.iter().map(|o| o.id.clone()).collect();
        self.cloud.terminate_instances(region, &ids).await?;
        self.metrics
            .action("orphan_terminated", region.as_str(), ids.len() as u64);
        Ok(orphans)
    }
}
