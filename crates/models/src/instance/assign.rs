//! Taking a slot for a mandelbox.

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};

use crate::prepared::Prepared;
use crate::schema::hardware::instance_info;
use domain::{AmiId, CommitHash, InstanceName, MandelboxId, Region, UnixMillis, UserId};

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
    /// `PLACEMENT`.
    pub rule: PlacementRule,
}

/// `PLACEMENT`: which instance with room a mandelbox goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlacementRule {
    /// The fullest (fewest free slots), then by name.
    #[default]
    Packed,
    /// By expected end: the instance whose last session the new one is not expected to
    /// outlive, soonest-ending first; else the one whose life it extends least; packed
    /// when nothing is known of the session (see `hardware.place_mandelbox`).
    Lifetime,
}

/// Why [`place`] placed nothing: `hardware.place_mandelbox` decides it (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The user already holds the limit of mandelboxes.
    UserAlreadyActive,
    /// No region asked is enabled (or, when required, not the first one).
    RegionNotEnabled,
    /// An instance that could take it has room, but other transactions hold that room
    /// right now; it is taken or given back within milliseconds: ask again shortly.
    RoomHeld,
    /// No instance of the enabled regions asked has room.
    NoInstanceAvailable,
    /// Instances have room, none for the commit hashes asked.
    CommitHashMismatch,
}

impl Refusal {
    /// The refusal named `code` by the database function.
    fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "USER_ALREADY_ACTIVE" => Self::UserAlreadyActive,
            "REGION_NOT_ENABLED" => Self::RegionNotEnabled,
            "ROOM_HELD" => Self::RoomHeld,
            "NO_INSTANCE_AVAILABLE" => Self::NoInstanceAvailable,
            "COMMIT_HASH_MISMATCH" => Self::CommitHashMismatch,
            _ => return None,
        })
    }
}

/// What [`place`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// The mandelbox is `ALLOCATED` on this instance.
    On(Slot),
    /// Nothing was placed, for this reason; with the first enabled region asked, whose
    /// capacity the refusal concerns (none for the user limit or disabled regions).
    Refused(Refusal, Option<Region>),
}

/// An assignment's placement in one statement, which is its own transaction (call it
/// outside one): `hardware.place_mandelbox` takes the user's advisory lock, counts the
/// user's mandelboxes and finds the enabled regions (seen after the lock), then locks
/// the fullest assignable instance of each enabled region in turn (`ACTIVE`, heard
/// from, with a free slot, serving the commit hash asked there; one probe of
/// `instance_info_assignable` whatever the size of the fleet) and puts an `ALLOCATED`
/// mandelbox on it; the trigger on `mandelbox_info` counts the new row. Rows other
/// transactions hold are passed over, never waited for: [`Refusal::RoomHeld`] says so.
/// Every rule of placement lives in that function; this only reads its answer.
pub fn place(conn: &mut PgConnection, request: &PlaceRequest<'_>) -> QueryResult<Placed> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Text>)]
        refusal: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        first_region: Option<Region>,
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
        .sql(", ")
        .bool(request.rule == PlacementRule::Lifetime)
        .sql(")")
        .get_result(conn)?;
    if let (Some(instance_name), Some(location), Some(aws_ami_id)) =
        (row.slot_instance, row.slot_region, row.slot_ami)
    {
        return Ok(Placed::On(Slot {
            instance_name,
            ip: row.slot_ip.unwrap_or_default(),
            location,
            aws_ami_id,
        }));
    }
    let refusal = row
        .refusal
        .as_deref()
        .and_then(Refusal::from_code)
        .ok_or_else(|| {
            diesel::result::Error::DeserializationError(
                format!(
                    "hardware.place_mandelbox answered refusal {:?}",
                    row.refusal
                )
                .into(),
            )
        })?;
    Ok(Placed::Refused(refusal, row.first_region))
}
