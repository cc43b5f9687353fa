//! Taking a slot for a mandelbox.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text};

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

/// What [`place`] is asked to do: the user's placement, tried region by region.
#[derive(Debug, Clone)]
pub struct PlaceRequest<'a> {
    pub placement: Placement<'a>,
    /// The regions to try, nearest first, each with the commit hash to match there
    /// (`None`: nothing to match in that region, it is skipped).
    pub regions: &'a [(Region, Option<CommitHash>)],
    /// Whether the first region must itself be enabled for any to be tried.
    pub first_required: bool,
    /// Nothing is placed for a user holding this many mandelboxes.
    pub user_limit: i64,
}

/// What [`place`] found, and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The mandelboxes the user held before this placement.
    pub held: i64,
    /// The enabled regions among those asked, in the order asked.
    pub enabled: Vec<Region>,
    /// Where the mandelbox went, if it was placed.
    pub slot: Option<Slot>,
}

/// An assignment's placement in one statement, which is its own transaction (call it
/// outside one): the user's advisory lock, the user's count and the enabled regions
/// (seen after the lock), then [`take_slot`] in each enabled region in turn, unless the
/// user is at the limit or the first region is required and disabled. The same steps,
/// locks and invariants as calling [`crate::mandelbox::lock_user`],
/// [`crate::mandelbox::held_and_enabled`] and [`take_slot`] in a transaction, in one
/// round trip instead of five.
pub fn place(conn: &mut PgConnection, request: &PlaceRequest<'_>) -> QueryResult<Placed> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        held: i64,
        #[diesel(sql_type = Array<Text>)]
        enabled: Vec<String>,
        #[diesel(sql_type = Nullable<Text>)]
        slot_instance: Option<InstanceName>,
        #[diesel(sql_type = Nullable<Text>)]
        slot_ip: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        slot_region: Option<Region>,
        #[diesel(sql_type = Nullable<Text>)]
        slot_ami: Option<AmiId>,
    }
    let placement = &request.placement;
    let row: Row = Prepared::default()
        .sql("SELECT * FROM hardware.place_mandelbox(")
        .text(placement.user_id.as_str())
        .sql(", ")
        .text_array(
            request
                .regions
                .iter()
                .map(|(region, _)| region.as_str())
                .collect(),
        )
        .sql(", ")
        .nullable_text_array(
            request
                .regions
                .iter()
                .map(|(_, hash)| hash.as_ref().map(CommitHash::as_str))
                .collect(),
        )
        .sql(", ")
        .bool(request.first_required)
        .sql(", ")
        .bigint(request.user_limit)
        .sql(", ")
        .text(placement.mandelbox_id.as_str())
        .sql(", ")
        .bigint(placement.now.as_millis())
        .sql(")")
        .get_result(conn)?;
    let slot = match (row.slot_instance, row.slot_region, row.slot_ami) {
        (Some(instance_name), Some(location), Some(aws_ami_id)) => Some(Slot {
            instance_name,
            ip: row.slot_ip.unwrap_or_default(),
            location,
            aws_ami_id,
        }),
        _ => None,
    };
    Ok(Placed {
        held: row.held,
        enabled: crate::mandelbox::named_in_order(
            request.regions.iter().map(|(region, _)| region),
            &row.enabled,
        ),
        slot,
    })
}
