//! The fleet as operators see it: every region (of `hardware.region_to_ami`, or with
//! instances), its capacity, free slots and waiting users, and each instance with its
//! sessions by status. One consistent read, answered as it is by `GET /fleet` (the
//! document describes these very types, with the `openapi` feature) and shown by
//! `webserver fleet`.

use std::collections::{BTreeMap, BTreeSet};

use diesel::prelude::*;
use domain::{AmiId, CommitHash, InstanceName, InstanceStatus, Region, UnixMillis};
use serde::{Deserialize, Serialize};

use crate::{demand, instance, mandelbox, region_to_ami};

/// The whole fleet at `generated_at_ms` (`GET /fleet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetOverview {
    /// When it was read, in Unix milliseconds.
    pub generated_at_ms: i64,
    /// Sorted by region.
    pub regions: Vec<RegionOverview>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegionOverview {
    pub region: Region,
    /// Some image row of the region has `region_enabled`.
    pub enabled: bool,
    pub active_image: Option<ActiveImage>,
    /// Slots of `ACTIVE` instances (as the metrics count them).
    pub capacity: i64,
    /// Free slots of `ACTIVE` instances.
    pub free_slots: i64,
    /// Users waiting for a slot here now, across every server process.
    pub waiting: i64,
    /// Sorted by name.
    pub instances: Vec<InstanceOverview>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActiveImage {
    pub ami_id: AmiId,
    pub client_commit_hash: CommitHash,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstanceOverview {
    pub instance_name: InstanceName,
    pub status: InstanceStatus,
    /// `None` until its host registers.
    pub ip: Option<String>,
    pub aws_ami_id: AmiId,
    pub commit_hash: CommitHash,
    pub capacity: i64,
    /// Its mandelboxes by status, e.g. `{"RUNNING": 5, "CONNECTING": 1}`.
    pub mandelboxes: BTreeMap<String, i64>,
    /// `None` if its host was never heard from.
    pub last_heartbeat_ms_ago: Option<i64>,
    pub age_ms: i64,
}

/// Reads the fleet at `now`, in one read-only snapshot.
pub fn read(conn: &mut PgConnection, now: UnixMillis) -> QueryResult<FleetOverview> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(|conn| {
            let images = region_to_ami::all(conn)?;
            let instances = instance::all(conn)?;
            let sessions = mandelbox::counts_by_instance_and_status(conn)?;
            let waiting = demand::waiting_by_region(conn, now)?;
            Ok(assemble(now, &images, instances, &sessions, &waiting))
        })
}

fn assemble(
    now: UnixMillis,
    images: &[region_to_ami::RegionAmi],
    instances: Vec<instance::Instance>,
    sessions: &[(InstanceName, domain::MandelboxStatus, i64)],
    waiting: &[(String, i64)],
) -> FleetOverview {
    let mut by_instance: BTreeMap<&InstanceName, BTreeMap<String, i64>> = BTreeMap::new();
    for (name, status, count) in sessions {
        by_instance
            .entry(name)
            .or_default()
            .insert(status.as_str().to_owned(), *count);
    }
    let names: BTreeSet<&Region> = images
        .iter()
        .map(|row| &row.region_name)
        .chain(instances.iter().map(|i| &i.location))
        .collect();
    let mut regions: Vec<RegionOverview> = names
        .into_iter()
        .map(|region| RegionOverview {
            region: region.clone(),
            enabled: images
                .iter()
                .any(|row| &row.region_name == region && row.region_enabled),
            active_image: images
                .iter()
                .find(|row| &row.region_name == region && row.ami_active && row.region_enabled)
                .map(|row| ActiveImage {
                    ami_id: row.ami_id.clone(),
                    client_commit_hash: row.client_commit_hash.clone(),
                }),
            capacity: 0,
            free_slots: 0,
            waiting: waiting
                .iter()
                .find(|(name, _)| name == region.as_str())
                .map_or(0, |(_, users)| *users),
            instances: Vec::new(),
        })
        .collect();
    for row in instances {
        let Some(region) = regions.iter_mut().find(|r| r.region == row.location) else {
            continue;
        };
        if row.status == InstanceStatus::Active {
            region.capacity += row.mandelbox_capacity;
            region.free_slots += (row.mandelbox_capacity - row.mandelbox_count).max(0);
        }
        let heard = row.last_updated_utc_unix_ms;
        region.instances.push(InstanceOverview {
            mandelboxes: by_instance.remove(&row.instance_name).unwrap_or_default(),
            instance_name: row.instance_name,
            status: row.status,
            ip: row.ip.map(|ip| ip.to_string()),
            aws_ami_id: row.aws_ami_id,
            commit_hash: row.commit_hash,
            capacity: row.mandelbox_capacity,
            last_heartbeat_ms_ago: (heard.as_millis() > 0)
                .then(|| (now.as_millis() - heard.as_millis()).max(0)),
            age_ms: (now.as_millis() - row.creation_time_utc_unix_ms.as_millis()).max(0),
        });
    }
    for region in &mut regions {
        region
            .instances
            .sort_unstable_by(|a, b| a.instance_name.cmp(&b.instance_name));
    }
    FleetOverview {
        generated_at_ms: now.as_millis(),
        regions,
    }
}
