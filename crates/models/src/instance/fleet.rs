//! What fleet sizing reads and writes: loads, drains, the gauges.

use std::net::IpAddr;

use diesel::prelude::*;

use crate::schema::hardware::instance_info;
use domain::{AmiId, InstanceName, InstanceStatus, Region, UnixMillis};

use super::*;

/// One instance as fleet sizing sees it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = instance_info, check_for_backend(diesel::pg::Pg))]
pub struct Load {
    pub instance_name: InstanceName,
    pub status: InstanceStatus,
    pub mandelbox_capacity: i64,
    pub mandelbox_count: i64,
    /// `DRAINING` by a consolidation whose host was not asked yet: the fleet may take
    /// it back ([`take_back`]).
    pub reclaimable: bool,
    /// The latest expected end of its mandelboxes (0 for none known).
    #[diesel(column_name = expected_end_utc_unix_ms)]
    pub expected_end: UnixMillis,
}

/// Every instance of `image` in `region`.
pub fn loads(conn: &mut PgConnection, region: &Region, image: &AmiId) -> QueryResult<Vec<Load>> {
    instance_info::table
        .filter(instance_info::location.eq(region))
        .filter(instance_info::aws_ami_id.eq(image))
        .order(instance_info::instance_name)
        .select(Load::as_select())
        .load(conn)
}

/// How many instances `region` has, of any image and in any state.
pub fn count_in_region(conn: &mut PgConnection, region: &Region) -> QueryResult<i64> {
    instance_info::table
        .filter(instance_info::location.eq(region))
        .count()
        .get_result(conn)
}

/// The mean capacity (rounded) of the `ACTIVE` instances of `region`, if it has any.
pub fn average_active_capacity(
    conn: &mut PgConnection,
    region: &Region,
) -> QueryResult<Option<i64>> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Nullable};
    instance_info::table
        .filter(instance_info::location.eq(region))
        .filter(instance_info::status.eq(InstanceStatus::Active))
        .select(sql::<Nullable<BigInt>>(
            "round(avg(mandelbox_capacity))::bigint",
        ))
        .first(conn)
}

/// Every (region, image) that has instances.
pub fn fleets(conn: &mut PgConnection) -> QueryResult<Vec<(Region, AmiId)>> {
    instance_info::table
        .select((instance_info::location, instance_info::aws_ami_id))
        .distinct()
        .order((instance_info::location, instance_info::aws_ami_id))
        .load(conn)
}

/// The `cloud_provider_id` of every instance recorded in `region`.
pub fn cloud_provider_ids(conn: &mut PgConnection, region: &Region) -> QueryResult<Vec<String>> {
    instance_info::table
        .filter(instance_info::location.eq(region))
        .select(instance_info::cloud_provider_id)
        .load(conn)
}

/// Where to reach an instance being drained, and how to end it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = instance_info, check_for_backend(diesel::pg::Pg))]
pub struct DrainTarget {
    pub instance_name: InstanceName,
    #[diesel(deserialize_as = StoredIp)]
    pub ip: Option<IpAddr>,
    pub location: Region,
    pub cloud_provider_id: String,
    /// Sessions it holds as it begins draining.
    pub mandelbox_count: i64,
    /// Its host's credential digest, which keys the drain request's signature
    /// (`auth::host::drain_authorization`); `None` if no host registered.
    pub host_token_sha256: Option<String>,
}

/// Marks the instance `DRAINING` if it is `ACTIVE` and holds no mandelbox, in one
/// statement: an assignment racing for it either lands first (and this does nothing) or
/// finds it draining.
pub fn begin_drain_if_empty(
    conn: &mut PgConnection,
    name: &InstanceName,
) -> QueryResult<Option<DrainTarget>> {
    diesel::update(
        instance_info::table
            .find(name)
            .filter(instance_info::status.eq(InstanceStatus::Active))
            .filter(instance_info::mandelbox_count.eq(0)),
    )
    .set(instance_info::status.eq(InstanceStatus::Draining))
    .returning(DrainTarget::as_returning())
    .get_result(conn)
    .optional()
}

/// Marks every `ACTIVE` or `PRE_CONNECTION` instance of `region` that does not run
/// `keep` as `DRAINING`, busy or not (an image upgrade); a consolidated one's drain
/// becomes final: its host is to be asked too.
pub fn begin_drain_all_but(
    conn: &mut PgConnection,
    region: &Region,
    keep: &AmiId,
) -> QueryResult<Vec<DrainTarget>> {
    diesel::update(
        instance_info::table
            .filter(instance_info::location.eq(region))
            .filter(instance_info::aws_ami_id.ne(keep))
            .filter(drainable()),
    )
    .set(final_drain())
    .returning(DrainTarget::as_returning())
    .get_results(conn)
}

/// What a final drain may begin on: an `ACTIVE` or `PRE_CONNECTION` instance, or a
/// consolidated one still reclaimable.
#[diesel::dsl::auto_type]
fn drainable() -> _ {
    let statuses: [InstanceStatus; 2] = [InstanceStatus::Active, InstanceStatus::PreConnection];
    instance_info::status
        .eq_any(statuses)
        .or(instance_info::reclaimable)
}

/// A final drain: `DRAINING`, and no longer reclaimable.
#[diesel::dsl::auto_type]
fn final_drain() -> _ {
    let draining: InstanceStatus = InstanceStatus::Draining;
    let reclaimable: bool = false;
    (
        instance_info::status.eq(draining),
        instance_info::reclaimable.eq(reclaimable),
    )
}

/// A consolidation's mark on an instance ([`begin_consolidation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consolidation {
    /// Where to reach it and how to end it, once its drain is final.
    pub target: DrainTarget,
    /// It holds sessions: it stays reclaimable and its host is not asked yet. Empty,
    /// the drain is final at once.
    pub reclaimable: bool,
}

/// Marks the instance `DRAINING` if it is `ACTIVE`, sessions or not, in one statement:
/// nothing new lands there, its sessions go on. Holding sessions, it is left
/// reclaimable (its host is not asked, and [`take_back`] may make it `ACTIVE` again);
/// empty, the drain is final.
pub fn begin_consolidation(
    conn: &mut PgConnection,
    name: &InstanceName,
) -> QueryResult<Option<Consolidation>> {
    diesel::update(
        instance_info::table
            .find(name)
            .filter(instance_info::status.eq(InstanceStatus::Active)),
    )
    .set((
        instance_info::status.eq(InstanceStatus::Draining),
        instance_info::reclaimable.eq(instance_info::mandelbox_count.gt(0)),
    ))
    .returning((DrainTarget::as_returning(), instance_info::reclaimable))
    .get_result(conn)
    .optional()
    .map(|row| {
        row.map(|(target, reclaimable)| Consolidation {
            target,
            reclaimable,
        })
    })
}

/// Makes these instances `ACTIVE` again if they are still reclaimable, in one
/// statement: an operator's drain, an image upgrade, a dying heartbeat or the
/// lifecycle that made a drain final first wins, and that instance is left out of the
/// answer (the instances taken back).
pub fn take_back(
    conn: &mut PgConnection,
    names: &[InstanceName],
) -> QueryResult<Vec<InstanceName>> {
    diesel::update(
        instance_info::table
            .filter(instance_info::instance_name.eq_any(names))
            .filter(instance_info::status.eq(InstanceStatus::Draining))
            .filter(instance_info::reclaimable),
    )
    .set((
        instance_info::status.eq(InstanceStatus::Active),
        instance_info::reclaimable.eq(false),
    ))
    .returning(instance_info::instance_name)
    .get_results(conn)
}

/// Makes final the consolidations of `image` in `region` whose last session ended, in
/// one statement, and returns them: their hosts are to be asked to drain.
pub fn finish_consolidations(
    conn: &mut PgConnection,
    region: &Region,
    image: &AmiId,
) -> QueryResult<Vec<DrainTarget>> {
    diesel::update(
        instance_info::table
            .filter(instance_info::location.eq(region))
            .filter(instance_info::aws_ami_id.eq(image))
            .filter(instance_info::reclaimable)
            .filter(instance_info::mandelbox_count.eq(0)),
    )
    .set(instance_info::reclaimable.eq(false))
    .returning(DrainTarget::as_returning())
    .get_results(conn)
}

/// The statuses of these instances (missing ones are left out).
pub fn statuses(
    conn: &mut PgConnection,
    names: &[InstanceName],
) -> QueryResult<Vec<(InstanceName, InstanceStatus)>> {
    instance_info::table
        .filter(instance_info::instance_name.eq_any(names))
        .select((instance_info::instance_name, instance_info::status))
        .load(conn)
}

/// These instances, as [`Doomed`] (missing ones are left out).
pub fn doomed_by_name(conn: &mut PgConnection, names: &[InstanceName]) -> QueryResult<Vec<Doomed>> {
    instance_info::table
        .filter(instance_info::instance_name.eq_any(names))
        .select(Doomed::as_select())
        .load(conn)
}

/// The instances of one region in one status, summed.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct StatusTotals {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub region: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub instances: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub capacity: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub free_slots: i64,
}

/// Instances, slots and free slots per (region, status), for the fleet gauges.
pub fn totals_by_region_and_status(conn: &mut PgConnection) -> QueryResult<Vec<StatusTotals>> {
    diesel::sql_query(
        "SELECT location AS region, status, count(*)::bigint AS instances,
                coalesce(sum(mandelbox_capacity), 0)::bigint AS capacity,
                coalesce(sum(greatest(mandelbox_capacity - mandelbox_count, 0)), 0)::bigint
                    AS free_slots
         FROM hardware.instance_info
         GROUP BY location, status
         ORDER BY location, status",
    )
    .load(conn)
}

/// Every instance, in no particular order (the operators' view sorts them: sorting
/// 10,000 rows by text in the database's collation cost more than the scan).
pub fn all(conn: &mut PgConnection) -> QueryResult<Vec<Instance>> {
    instance_info::table
        .select(Instance::as_select())
        .load(conn)
}

/// What an operator's drain did to the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorDrain {
    /// Marked `DRAINING` (it was `ACTIVE` or `PRE_CONNECTION`, or reclaimable), whatever
    /// its load.
    Began(DrainTarget),
    /// It was draining already: nothing changed.
    AlreadyDraining,
    /// In this status it cannot be drained (an unresponsive host, or one being ended).
    NotDrainable(InstanceStatus),
    NotFound,
}

/// Marks the instance `DRAINING` if it is `ACTIVE` or `PRE_CONNECTION`, sessions or not:
/// they go on, and nothing new lands there. A consolidated instance's drain becomes
/// final (it is no longer reclaimable): that too is a drain that began, its host to
/// be asked.
pub fn begin_drain_by_operator(
    conn: &mut PgConnection,
    name: &InstanceName,
) -> QueryResult<OperatorDrain> {
    let began = diesel::update(instance_info::table.find(name).filter(drainable()))
        .set(final_drain())
        .returning(DrainTarget::as_returning())
        .get_result(conn)
        .optional()?;
    if let Some(target) = began {
        return Ok(OperatorDrain::Began(target));
    }
    let status: Option<InstanceStatus> = instance_info::table
        .find(name)
        .select(instance_info::status)
        .first(conn)
        .optional()?;
    Ok(match status {
        None => OperatorDrain::NotFound,
        Some(InstanceStatus::Draining) => OperatorDrain::AlreadyDraining,
        Some(other) => OperatorDrain::NotDrainable(other),
    })
}
