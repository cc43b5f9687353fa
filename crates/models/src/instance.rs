//! `hardware.instance_info`: one row per instance.

use diesel::prelude::*;

use crate::newtypes::{
    AmiId, CommitHash, InstanceName, InstanceStatus, MandelboxId, Region, UnixMillis, UserId,
};
use crate::prepared::Prepared;
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

/// The instance a mandelbox went to: where it is and what it runs.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, QueryableByName)]
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

/// A mandelbox to place.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    pub mandelbox_id: &'a MandelboxId,
    pub user_id: &'a UserId,
    pub now: UnixMillis,
}

/// In one statement: locks the fullest instance that can take one more mandelbox in
/// `region` for `commit_hash` (`ACTIVE`, heard from, with a free slot; one probe of
/// `instance_info_assignable` whatever the size of the fleet) and puts an `ALLOCATED`
/// mandelbox on it. The lock lasts until the transaction ends; the trigger on
/// `mandelbox_info` counts the new row.
pub fn take_slot(
    conn: &mut PgConnection,
    region: &Region,
    commit_hash: &CommitHash,
    contention: Contention,
    placement: &Placement<'_>,
) -> QueryResult<Option<Slot>> {
    let lock = match contention {
        Contention::Skip => " FOR UPDATE SKIP LOCKED",
        Contention::Wait => " FOR UPDATE",
    };
    Prepared::default()
        .sql(
            "WITH slot AS (
                 SELECT instance_name, ip, location, aws_ami_id
                 FROM hardware.instance_info
                 WHERE location = ",
        )
        .text(region.as_str())
        .sql(" AND commit_hash = ")
        .text(commit_hash.as_str())
        .sql(
            " AND status = 'ACTIVE' AND last_updated_utc_unix_ms <> -1 AND free_slots > 0
                 ORDER BY free_slots, instance_name
                 LIMIT 1",
        )
        .sql(lock)
        .sql(
            "), taken AS (
                 INSERT INTO hardware.mandelbox_info
                     (mandelbox_id, user_id, instance_name, status, creation_time_utc_unix_ms)
                 SELECT ",
        )
        .text(placement.mandelbox_id.as_str())
        .sql(", ")
        .text(placement.user_id.as_str())
        .sql(", instance_name, 'ALLOCATED', ")
        .bigint(placement.now.as_millis())
        .sql(
            " FROM slot
             )
             SELECT instance_name, ip, location, aws_ami_id FROM slot",
        )
        .get_result(conn)
        .optional()
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
