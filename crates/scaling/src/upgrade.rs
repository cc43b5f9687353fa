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

use std::time::Duration;

use models::instance;
use models::region_to_ami::{self, RegionAmi};
use models::{AmiId, CommitHash, DbError, InstanceName, InstanceStatus, Region};
use serde_json::Value;

use crate::fleet::{Fleet, FleetError};

/// What to upgrade to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    pub commit_hash: CommitHash,
    /// One new image per region, sorted by region.
    pub images: Vec<(Region, AmiId)>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("{0}")]
    Invalid(String),
    #[error("unknown regions (not in hardware.region_to_ami): {}", .0.join(", "))]
    UnknownRegions(Vec<String>),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<diesel::result::Error> for UpgradeError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Database(err.into())
    }
}

impl UpgradeRequest {
    /// `commit_hash` and a JSON object of region → AMI id, e.g.
    /// `{"us-east-1": "ami-0abc"}`.
    pub fn parse(commit_hash: &str, regions_to_amis: &str) -> Result<Self, UpgradeError> {
        let commit_hash =
            CommitHash::parse(commit_hash).map_err(|err| UpgradeError::Invalid(err.to_string()))?;
        let json: Value = serde_json::from_str(regions_to_amis).map_err(|err| {
            UpgradeError::Invalid(format!(
                "the region→AMI map is not valid JSON ({err}); expected e.g. '{{\"us-east-1\": \"ami-0abc\"}}'"
            ))
        })?;
        let Value::Object(map) = json else {
            return Err(UpgradeError::Invalid(
                "the region→AMI map must be a JSON object, e.g. '{\"us-east-1\": \"ami-0abc\"}'"
                    .to_owned(),
            ));
        };
        if map.is_empty() {
            return Err(UpgradeError::Invalid(
                "the region→AMI map names no region".to_owned(),
            ));
        }
        let mut images = Vec::new();
        for (region, ami) in map {
            let region =
                Region::parse(&region).map_err(|err| UpgradeError::Invalid(err.to_string()))?;
            let ami = match ami {
                Value::String(ami) => {
                    AmiId::parse(&ami).map_err(|err| UpgradeError::Invalid(err.to_string()))?
                }
                other => {
                    return Err(UpgradeError::Invalid(format!(
                        "the AMI of {region} must be a string, not {other}"
                    )));
                }
            };
            images.push((region, ami));
        }
        images.sort();
        Ok(Self {
            commit_hash,
            images,
        })
    }
}

/// How one region's upgrade ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionOutcome {
    pub region: Region,
    pub image: AmiId,
    pub result: Result<Upgraded, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upgraded {
    /// The image was already the region's active one: nothing was done.
    pub already_active: bool,
    /// The new instances, all `ACTIVE`.
    pub launched: Vec<InstanceName>,
    /// Old instances whose hosts were asked to drain.
    pub drained: Vec<InstanceName>,
    /// Old instances whose hosts could not be reached: now unresponsive.
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
            upgrade_region(fleet, region, image, &request.commit_hash, ready_timeout)
                .await
                .map_err(|err| err.to_string())
        };
        if let Err(err) = &result {
            tracing::error!(region = %region, image = %image, error = %err, "region not upgraded");
        }
        RegionOutcome {
            region: region.clone(),
            image: image.clone(),
            result,
        }
    });
    Ok(futures_util::future::join_all(regions).await)
}

async fn upgrade_region(
    fleet: &Fleet,
    region: &Region,
    image: &AmiId,
    commit_hash: &CommitHash,
    ready_timeout: Duration,
) -> Result<Upgraded, FleetError> {
    let lock_name = crate::fleet::lock_name(region, image);
    let Some(lock) = fleet
        .db()
        .advisory_lock(&lock_name, fleet.settings().lock_wait)
        .await?
    else {
        return Err(FleetError::Launch(format!(
            "another process holds {lock_name}; try again"
        )));
    };
    let result = upgrade_locked(fleet, region, image, commit_hash, ready_timeout).await;
    lock.release().await;
    result
}

async fn upgrade_locked(
    fleet: &Fleet,
    region: &Region,
    image: &AmiId,
    commit_hash: &CommitHash,
    ready_timeout: Duration,
) -> Result<Upgraded, FleetError> {
    let row = {
        let (region, commit_hash) = (region.clone(), commit_hash.clone());
        fleet
            .db()
            .run(move |conn| {
                Ok(region_to_ami::for_region(conn, &region)?
                    .into_iter()
                    .find(|row| row.client_commit_hash == commit_hash))
            })
            .await?
    };
    let Some(row) = row else {
        return Err(FleetError::Launch(format!(
            "the image row of {region} for {commit_hash} is gone"
        )));
    };
    let launched = match fleet.launch(&row, fleet.settings().buffer.max(1)).await {
        Ok(launched) => launched,
        Err(err) => {
            roll_back(fleet, region, commit_hash, &[]).await;
            return Err(err);
        }
    };
    if let Err(err) = wait_until_active(fleet, &launched, ready_timeout).await {
        roll_back(fleet, region, commit_hash, &launched).await;
        return Err(err);
    }

    // The swap: old instances stop taking mandelboxes as the new image becomes active.
    let targets = {
        let (region, image) = (region.clone(), image.clone());
        fleet
            .db()
            .run(move |conn| {
                use diesel::Connection;
                Ok(conn.transaction(|conn| {
                    let targets = instance::begin_drain_all_but(conn, &region, &image)?;
                    region_to_ami::activate(conn, &region, &image)?;
                    Ok::<_, diesel::result::Error>(targets)
                })?)
            })
            .await?
    };
    let mut upgraded = Upgraded {
        launched,
        ..Upgraded::default()
    };
    for target in &targets {
        if fleet.ask_to_drain(target).await {
            upgraded.drained.push(target.instance_name.clone());
        } else {
            upgraded.unreachable.push(target.instance_name.clone());
        }
    }
    if !upgraded.unreachable.is_empty() {
        let names = upgraded.unreachable.clone();
        fleet
            .db()
            .run(move |conn| {
                Ok(instance::set_status(
                    conn,
                    &names,
                    InstanceStatus::HostServiceUnresponsive,
                )?)
            })
            .await?;
    }
    tracing::info!(
        region = %region,
        image = %image,
        launched = upgraded.launched.len(),
        drained = upgraded.drained.len(),
        unreachable = upgraded.unreachable.len(),
        "region upgraded"
    );
    Ok(upgraded)
}

async fn wait_until_active(
    fleet: &Fleet,
    names: &[InstanceName],
    timeout: Duration,
) -> Result<(), FleetError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let statuses = {
            let names = names.to_vec();
            fleet
                .db()
                .run(move |conn| Ok(instance::statuses(conn, &names)?))
                .await?
        };
        let active = statuses
            .iter()
            .filter(|(_, status)| *status == InstanceStatus::Active)
            .count();
        if active == names.len() {
            return Ok(());
        }
        if statuses.len() < names.len() {
            return Err(FleetError::Launch(
                "a new instance was removed before its host registered".to_owned(),
            ));
        }
        if let Some((name, status)) = statuses.iter().find(|(_, status)| {
            !matches!(
                status,
                InstanceStatus::Active | InstanceStatus::PreConnection
            )
        }) {
            return Err(FleetError::Launch(format!(
                "new instance {name} became {status} before the swap"
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(FleetError::Launch(format!(
                "{active} of {} new instances registered within {timeout:?}",
                names.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Undoes a region's upgrade before its swap: its new instances go, and its new image row.
async fn roll_back(
    fleet: &Fleet,
    region: &Region,
    commit_hash: &CommitHash,
    launched: &[InstanceName],
) {
    let names = launched.to_vec();
    let doomed = fleet
        .db()
        .run(move |conn| Ok(instance::doomed_by_name(conn, &names)?))
        .await;
    let doomed = match doomed {
        Ok(doomed) => doomed,
        Err(err) => {
            tracing::error!(region = %region, error = %err, "rollback could not read the new instances");
            Vec::new()
        }
    };
    if let Err(err) = fleet.terminate_and_remove(&doomed).await {
        tracing::error!(region = %region, error = %err, "rollback could not terminate the new instances; the lifecycle job will retry");
        return;
    }
    let (region_c, commit) = (region.clone(), commit_hash.clone());
    let undone = fleet
        .db()
        .run(move |conn| Ok(region_to_ami::delete_inactive(conn, &region_c, &commit)?))
        .await;
    if let Err(err) = undone {
        tracing::error!(region = %region, error = %err, "rollback could not remove the new rows");
    }
}
