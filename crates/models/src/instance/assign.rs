//! Taking a slot for a mandelbox.

use diesel::prelude::*;

use crate::prepared::Prepared;
use crate::schema::hardware::instance_info;
use domain::{
    AmiId, CommitHash, InstanceName, InstanceStatus, MandelboxId, Region, UnixMillis, UserId,
};

/// The instance a mandelbox went to: where it is and what it runs.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = instance_info, check_for_backend(diesel::pg::Pg))]
pub struct Slot {
    pub instance_name: InstanceName,
    pub ip: String,
    pub location: Region,
    pub aws_ami_id: AmiId,
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
/// `mandelbox_info` counts the new row. Rows other transactions hold are passed over,
/// never waited for: see [`any_with_room_for`] for telling "none free" from "none free
/// right now".
pub fn take_slot(
    conn: &mut PgConnection,
    region: &Region,
    commit_hash: &CommitHash,
    placement: &Placement<'_>,
) -> QueryResult<Option<Slot>> {
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
        .sql(" FOR UPDATE SKIP LOCKED")
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

/// Whether any `ACTIVE`, heard-from instance serving one of these (region, commit hash)
/// pairs has a free slot, as last committed (rows other transactions hold count).
pub fn any_with_room_for(
    conn: &mut PgConnection,
    wanted: &[(Region, CommitHash)],
) -> QueryResult<bool> {
    for (region, commit_hash) in wanted {
        let room = diesel::select(diesel::dsl::exists(
            instance_info::table
                .filter(instance_info::location.eq(region))
                .filter(instance_info::commit_hash.eq(commit_hash))
                .filter(instance_info::status.eq(InstanceStatus::Active))
                .filter(instance_info::last_updated_utc_unix_ms.ne(UnixMillis::NEVER))
                .filter(instance_info::free_slots.gt(0)),
        ))
        .get_result(conn)?;
        if room {
            return Ok(true);
        }
    }
    Ok(false)
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
