//! One region's upgrade: launch the new image's instances, wait for them, swap.

use std::time::Duration;

use models::instance;
use models::region_to_ami;
use models::{AmiId, CommitHash, InstanceName, InstanceStatus, Region};

use super::Upgraded;
use crate::fleet::{DrainOutcome, Fleet, FleetError, lock_name};

/// Why one region was not upgraded (it was rolled back).
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    #[error("another process holds the lock of {0}; try again")]
    Locked(String),
    #[error("the image row of {region} for {commit_hash} is gone")]
    RowGone {
        region: Region,
        commit_hash: CommitHash,
    },
    #[error("a new instance was removed before its host registered")]
    Removed,
    #[error("new instance {name} became {status} before the swap")]
    Left {
        name: InstanceName,
        status: InstanceStatus,
    },
    #[error("{active} of {launched} new instances registered within {timeout:?}")]
    NotReady {
        active: usize,
        launched: usize,
        timeout: Duration,
    },
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

impl From<models::DbError> for RegionError {
    fn from(err: models::DbError) -> Self {
        Self::Fleet(err.into())
    }
}

/// What one region is upgraded to.
pub(super) struct Target<'a> {
    pub region: &'a Region,
    pub image: &'a AmiId,
    pub commit_hash: &'a CommitHash,
    /// How long the new instances may take to register.
    pub ready_timeout: Duration,
}

pub(super) async fn upgrade_region(
    fleet: &Fleet,
    target: Target<'_>,
) -> Result<Upgraded, RegionError> {
    let lock_name = lock_name(target.region, target.image);
    let Some(lock) = fleet
        .db()
        .advisory_lock(&lock_name, fleet.settings().lock_wait)
        .await?
    else {
        return Err(RegionError::Locked(lock_name));
    };
    let result = upgrade_locked(fleet, &target).await;
    lock.release().await;
    result
}

async fn upgrade_locked(fleet: &Fleet, target: &Target<'_>) -> Result<Upgraded, RegionError> {
    let Target {
        region,
        image,
        commit_hash,
        ready_timeout,
    } = *target;
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
        return Err(RegionError::RowGone {
            region: region.clone(),
            commit_hash: commit_hash.clone(),
        });
    };
    let launched = match fleet.launch(&row, fleet.settings().buffer.max(1)).await {
        Ok(launched) => launched,
        Err(err) => {
            roll_back(fleet, region, commit_hash, &[]).await;
            return Err(err.into());
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
    for target in targets {
        let name = target.instance_name.clone();
        match fleet.ask_or_end(target).await? {
            DrainOutcome::Asked => upgraded.drained.push(name),
            DrainOutcome::Terminated | DrainOutcome::Unreachable => {
                upgraded.unreachable.push(name);
            }
        }
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
) -> Result<(), RegionError> {
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
            return Err(RegionError::Removed);
        }
        if let Some((name, status)) = statuses.iter().find(|(_, status)| {
            !matches!(
                status,
                InstanceStatus::Active | InstanceStatus::PreConnection
            )
        }) {
            return Err(RegionError::Left {
                name: name.clone(),
                status: *status,
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RegionError::NotReady {
                active,
                launched: names.len(),
                timeout,
            });
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
            tracing::error!(region = %region, error = &err as &dyn std::error::Error, "rollback could not read the new instances");
            Vec::new()
        }
    };
    match fleet.terminate_and_remove(&doomed).await {
        Ok(terminated) if terminated.failed.is_empty() => {}
        Ok(_) => {
            tracing::error!(region = %region, "rollback could not terminate the new instances; the orphan pass will");
            return;
        }
        Err(err) => {
            tracing::error!(region = %region, error = &err as &dyn std::error::Error, "rollback could not remove the new instances; the lifecycle job will");
            return;
        }
    }
    let (region_c, commit) = (region.clone(), commit_hash.clone());
    let undone = fleet
        .db()
        .run(move |conn| Ok(region_to_ami::delete_inactive(conn, &region_c, &commit)?))
        .await;
    if let Err(err) = undone {
        tracing::error!(region = %region, error = &err as &dyn std::error::Error, "rollback could not remove the new rows");
    }
}
