//! Rolling the fleet over to new images (SPEC §7, `webserver ami-upgrade`).
//!
//! 1. The new images are recorded, inactive, for the new client commit hash, all in one
//!    transaction: unknown regions or conflicting rows change nothing.
//! 2. Per region, under that fleet's lock (so no capacity check drains the new,
//!    still-inactive instances): `DEFAULT_INSTANCE_BUFFER` instances of the new image are
//!    launched and awaited until their hosts register (`ACTIVE`).
//! 3. Then, in one transaction, every instance of the region's other images is marked
//!    `DRAINING` and the new image becomes the active one; afterwards each of those
//!    hosts is asked to drain (unreachable: `HOST_SERVICE_UNRESPONSIVE`).
//!
//! A region whose new instances do not come up in time is rolled back: they are
//! terminated and removed, and its new image row is deleted. All or nothing per region.

mod region;
mod request;

use std::time::Duration;

use models::region_to_ami::{self, RegionAmi};
use models::{AmiId, DbError, InstanceName, Region};

pub use region::RegionError;
pub use request::{InvalidUpgrade, UpgradeRequest};

use crate::fleet::Fleet;

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(transparent)]
    Invalid(#[from] InvalidUpgrade),
    #[error("unknown regions (not in hardware.region_to_ami): {}", .0.join(", "))]
    UnknownRegions(Vec<String>),
    #[error("{0}")]
    Conflict(String),
    #[error("the upgrade could not reach the database")]
    Database(#[from] DbError),
}

impl From<diesel::result::Error> for UpgradeError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Database(err.into())
    }
}

/// How one region's upgrade ended.
#[derive(Debug)]
pub struct RegionOutcome {
    pub region: Region,
    pub image: AmiId,
    pub result: Result<Upgraded, RegionError>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upgraded {
    /// The image was already the region's active one: nothing was done.
    pub already_active: bool,
    /// The new instances, all `ACTIVE`.
    pub launched: Vec<InstanceName>,
    /// Old instances whose hosts were asked to drain.
    pub drained: Vec<InstanceName>,
    /// Old instances whose hosts could not be reached: terminated if they held no
    /// mandelbox, else left draining (their sessions go on; the lifecycle ends them once
    /// empty, or once their host is silent).
    pub unreachable: Vec<InstanceName>,
}

/// Records the new images (step 1) and returns the regions where the image is already
/// the active one. Errors change nothing.
pub async fn record_images(
    fleet: &Fleet,
    request: &UpgradeRequest,
) -> Result<Vec<Region>, UpgradeError> {
    let request = request.clone();
    fleet
        .db()
        .run(move |conn| {
            use diesel::Connection;
            Ok(conn.transaction(|conn| {
                let known = region_to_ami::known_regions(conn)?;
                let unknown: Vec<String> = request
                    .images
                    .iter()
                    .filter(|(region, _)| !known.contains(region))
                    .map(|(region, _)| region.to_string())
                    .collect();
                if !unknown.is_empty() {
                    return Err(UpgradeError::UnknownRegions(unknown));
                }
                let mut done = Vec::new();
                for (region, image) in &request.images {
                    let rows = region_to_ami::for_region(conn, region)?;
                    if let Some(row) = rows
                        .iter()
                        .find(|row| row.client_commit_hash == request.commit_hash)
                    {
                        if row.ami_id != *image {
                            return Err(UpgradeError::Conflict(format!(
                                "{region} already has {} for commit {}",
                                row.ami_id, request.commit_hash
                            )));
                        }
                        if row.ami_active {
                            done.push(region.clone());
                        }
                        continue;
                    }
                    if let Some(row) = rows.iter().find(|row| row.ami_id == *image) {
                        return Err(UpgradeError::Conflict(format!(
                            "{image} already serves commit {} in {region}",
                            row.client_commit_hash
                        )));
                    }
                    region_to_ami::insert_if_absent(
                        conn,
                        &RegionAmi {
                            region_name: region.clone(),
                            client_commit_hash: request.commit_hash.clone(),
                            ami_id: image.clone(),
                            ami_active: false,
                            region_enabled: rows.iter().any(|row| row.region_enabled),
                        },
                    )?;
                }
                Ok(done)
            }))
        })
        .await?
}

/// The whole upgrade. `Err` only when nothing was changed (bad request, unknown
/// regions, conflicts, database down before the start); otherwise one outcome per
/// region.
pub async fn upgrade(
    fleet: &Fleet,
    request: &UpgradeRequest,
    ready_timeout: Duration,
) -> Result<Vec<RegionOutcome>, UpgradeError> {
    let done = record_images(fleet, request).await?;
    let done = &done;
    let regions = request.images.iter().map(|(region, image)| async move {
        let result = if done.contains(region) {
            Ok(Upgraded {
                already_active: true,
                ..Upgraded::default()
            })
        } else {
            let target = region::Target {
                region,
                image,
                commit_hash: &request.commit_hash,
                ready_timeout,
            };
            region::upgrade_region(fleet, target).await
        };
        if let Err(err) = &result {
            tracing::error!(region = %region, image = %image, error = err as &dyn std::error::Error, "region not upgraded");
        }
        RegionOutcome {
            region: region.clone(),
            image: image.clone(),
            result,
        }
    });
    Ok(futures_util::future::join_all(regions).await)
}
