//! `hardware.instance_info`: one row per instance.

use diesel::prelude::*;

use crate::newtypes::{AmiId, CommitHash, InstanceName, InstanceStatus, Region, UnixMillis};
use crate::schema::hardware::instance_info;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = instance_info, primary_key(instance_name))]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct Instance {
    pub instance_name: InstanceName,
    pub cloud_provider_id: String,
    pub creation_time_utc_unix_ms: UnixMillis,
    pub memory_remaining_kb: i64,
    pub nanocpus_remaining: i64,
    pub gpu_vram_remaining_kb: i64,
    pub mandelbox_capacity: i64,
    /// [`UnixMillis::NEVER`] until the host's first heartbeat.
    pub last_updated_utc_unix_ms: UnixMillis,
    /// Empty until the host registers.
    pub ip: String,
    pub aws_ami_id: AmiId,
    pub location: Region,
    pub status: InstanceStatus,
    pub commit_hash: CommitHash,
    pub aws_instance_type: String,
    /// Kept equal to its rows in `mandelbox_info` by a trigger.
    pub mandelbox_count: i64,
}

/// An instance that was just launched: metrics, capacity, IP and heartbeat time take
/// their column defaults until the host registers.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = instance_info)]
pub struct NewInstance {
    pub instance_name: InstanceName,
    pub cloud_provider_id: String,
    pub creation_time_utc_unix_ms: UnixMillis,
    pub aws_ami_id: AmiId,
    pub location: Region,
    pub status: InstanceStatus,
    pub commit_hash: CommitHash,
    pub aws_instance_type: String,
}

pub fn insert(conn: &mut PgConnection, new: &NewInstance) -> QueryResult<Instance> {
    diesel::insert_into(instance_info::table)
        .values(new)
        .returning(Instance::as_returning())
        .get_result(conn)
}

pub fn find(conn: &mut PgConnection, name: &InstanceName) -> QueryResult<Option<Instance>> {
    instance_info::table
        .find(name)
        .select(Instance::as_select())
        .first(conn)
        .optional()
}

/// The instance a mandelbox can go to: where it is and what it runs.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = instance_info, check_for_backend(diesel::pg::Pg))]
pub struct Slot {
    pub instance_name: InstanceName,
    pub ip: String,
    pub location: Region,
    pub aws_ami_id: AmiId,
}

/// How to treat candidate rows that another transaction holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contention {
    /// Pass over them: fast, but may miss the only instance with room.
    Skip,
    /// Wait for them, then look again at what they became.
    Wait,
}

/// Locks, for the rest of the transaction, the fullest instance that can take one more
/// mandelbox in `region` for `commit_hash`: `ACTIVE`, heard from, with a free slot. One
/// index probe whatever the size of the fleet (`instance_info_assignable`).
pub fn lock_fullest_with_room(
    conn: &mut PgConnection,
    region: &Region,
    commit_hash: &CommitHash,
    contention: Contention,
) -> QueryResult<Option<Slot>> {
    let query = instance_info::table
        .filter(instance_info::location.eq(region))
        .filter(instance_info::commit_hash.eq(commit_hash))
        .filter(instance_info::status.eq(InstanceStatus::Active))
        .filter(instance_info::last_updated_utc_unix_ms.ne(UnixMillis::NEVER))
        .filter(instance_info::free_slots.gt(0))
        .order((instance_info::free_slots, instance_info::instance_name))
        .select(Slot::as_select())
        .limit(1)
        .for_update();
    match contention {
        Contention::Skip => query.skip_locked().first(conn).optional(),
        Contention::Wait => query.first(conn).optional(),
    }
}

/// Whether any `ACTIVE`, heard-from instance in these regions has a free slot, whatever
/// commit hash it serves.
pub fn any_with_room(conn: &mut PgConnection, regions: &[Region]) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        instance_info::table
            .filter(instance_info::location.eq_any(regions))
            .filter(instance_info::status.eq(InstanceStatus::Active))
            .filter(instance_info::last_updated_utc_unix_ms.ne(UnixMillis::NEVER))
            .filter(instance_info::free_slots.gt(0)),
    ))
    .get_result(conn)
}
