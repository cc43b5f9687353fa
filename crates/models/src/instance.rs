//! `hardware.instance_info`: one row per instance.

use std::net::IpAddr;

use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::prepared::Prepared;
use crate::schema::hardware::instance_info;
use domain::{
    AmiId, CommitHash, InstanceName, InstanceStatus, MandelboxId, Region, UnixMillis, UserId,
};

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
    /// `None` until the host registers.
    #[diesel(deserialize_as = StoredIp)]
    pub ip: Option<IpAddr>,
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
    /// The argon2 hash of the secret the instance will register with.
    pub bootstrap_secret_hash: Option<String>,
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

/// What a host agent reports about its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metrics {
    pub memory_remaining_kb: i64,
    pub nanocpus_remaining: i64,
    pub gpu_vram_remaining_kb: i64,
}

/// A registration that was checked against its bootstrap secret.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Where clients reach the host; stored as text, `""` for none.
    pub ip: Option<IpAddr>,
    pub mandelbox_capacity: i64,
    pub metrics: Metrics,
    /// The digest of the host token handed back.
    pub host_token_sha256: String,
    pub now: UnixMillis,
}

/// An instance's `ip` column as an address: `""` until the host registers (and anything
/// else that is not an address, as older tools may have written) reads as none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromSqlRow)]
pub struct StoredIp(pub Option<IpAddr>);

impl FromSql<Text, Pg> for StoredIp {
    fn from_sql(bytes: PgValue<'_>) -> diesel::deserialize::Result<Self> {
        let text = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
        Ok(Self(text.parse().ok()))
    }
}

impl From<StoredIp> for Option<IpAddr> {
    fn from(ip: StoredIp) -> Self {
        ip.0
    }
}

/// The bootstrap secret hash of an instance still waiting for its host to register.
pub fn pending_bootstrap_hash(
    conn: &mut PgConnection,
    name: &InstanceName,
) -> QueryResult<Option<String>> {
    instance_info::table
        .find(name)
        .filter(instance_info::status.eq(InstanceStatus::PreConnection))
        .select(instance_info::bootstrap_secret_hash)
        .first::<Option<String>>(conn)
        .optional()
        .map(Option::flatten)
}

/// Makes the instance `ACTIVE` with what its host reported, if its bootstrap hash is
/// still `expected_hash`: the secret is consumed, so only one registration wins, even
/// when several race. Returns whether this one did.
pub fn register(
    conn: &mut PgConnection,
    name: &InstanceName,
    expected_hash: &str,
    registration: &Registration,
) -> QueryResult<bool> {
    diesel::update(
        instance_info::table
            .find(name)
            .filter(instance_info::status.eq(InstanceStatus::PreConnection))
            .filter(instance_info::terminating_utc_unix_ms.is_null())
            .filter(instance_info::bootstrap_secret_hash.eq(expected_hash)),
    )
    .set((
        instance_info::status.eq(InstanceStatus::Active),
        instance_info::ip.eq(registration.ip.map(|ip| ip.to_string()).unwrap_or_default()),
        instance_info::mandelbox_capacity.eq(registration.mandelbox_capacity),
        instance_info::memory_remaining_kb.eq(registration.metrics.memory_remaining_kb),
        instance_info::nanocpus_remaining.eq(registration.metrics.nanocpus_remaining),
        instance_info::gpu_vram_remaining_kb.eq(registration.metrics.gpu_vram_remaining_kb),
        instance_info::last_updated_utc_unix_ms.eq(registration.now),
        instance_info::bootstrap_secret_hash.eq(None::<String>),
        instance_info::host_token_sha256.eq(&registration.host_token_sha256),
    ))
    .execute(conn)
    .map(|updated| updated == 1)
}

/// Records a heartbeat from the host holding the token with this digest, in one
/// statement (a HOT update unless the status changes: no indexed column changes). `dying`
/// marks the instance `DRAINING`; otherwise an instance found unresponsive becomes
/// `ACTIVE` again, with its mandelboxes (its silence is over), unless it is being
/// terminated. Returns the instance, or `None` for an unknown token.
pub fn heartbeat(
    conn: &mut PgConnection,
    host_token_sha256: &str,
    metrics: Metrics,
    dying: bool,
    now: UnixMillis,
) -> QueryResult<Option<InstanceName>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        instance_name: InstanceName,
    }
    let status = if dying {
        "'DRAINING'"
    } else {
        "CASE WHEN status = 'HOST_SERVICE_UNRESPONSIVE' AND terminating_utc_unix_ms IS NULL
              THEN 'ACTIVE' ELSE status END"
    };
    Prepared::default()
        .sql("UPDATE hardware.instance_info SET memory_remaining_kb = ")
        .bigint(metrics.memory_remaining_kb)
        .sql(", nanocpus_remaining = ")
        .bigint(metrics.nanocpus_remaining)
        .sql(", gpu_vram_remaining_kb = ")
        .bigint(metrics.gpu_vram_remaining_kb)
        .sql(", last_updated_utc_unix_ms = ")
        .bigint(now.as_millis())
        .sql(", status = ")
        .sql(status)
        .sql(" WHERE host_token_sha256 = ")
        .text(host_token_sha256)
        .sql(" RETURNING instance_name")
        .get_result::<Row>(conn)
        .optional()
        .map(|row| row.map(|row| row.instance_name))
}

/// The instance whose host holds the token with this digest.
pub fn by_host_token(
    conn: &mut PgConnection,
    host_token_sha256: &str,
) -> QueryResult<Option<InstanceName>> {
    instance_info::table
        .filter(instance_info::host_token_sha256.eq(host_token_sha256))
        .select(instance_info::instance_name)
        .first(conn)
        .optional()
}

/// An instance to terminate: its name, its region and the cloud's id for it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = instance_info, check_for_backend(diesel::pg::Pg))]
pub struct Doomed {
    pub instance_name: InstanceName,
    pub location: Region,
    pub cloud_provider_id: String,
}

/// `ACTIVE` instances silent since before `cutoff` while the control plane was up (since
/// `up_since`) become `HOST_SERVICE_UNRESPONSIVE`: when the control plane came back after
/// `cutoff`, nobody's silence is long enough yet.
pub fn mark_unresponsive(
    conn: &mut PgConnection,
    cutoff: UnixMillis,
    up_since: UnixMillis,
) -> QueryResult<usize> {
    if up_since >= cutoff {
        return Ok(0);
    }
    diesel::update(
        instance_info::table
            .filter(instance_info::status.eq(InstanceStatus::Active))
            .filter(instance_info::last_updated_utc_unix_ms.lt(cutoff)),
    )
    .set(instance_info::status.eq(InstanceStatus::HostServiceUnresponsive))
    .execute(conn)
}

/// When the instances of each kind are past their time (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// `PRE_CONNECTION` instances created before this never registered.
    pub launched_before: UnixMillis,
    /// Unresponsive instances in that state since before this, `DRAINING` ones empty since
    /// before this, and `DRAINING` ones with sessions whose host is silent since before
    /// this (counting only time the control plane was up) have lingered too long.
    pub lingering_since: UnixMillis,
    /// `DRAINING` instances in that state since before this go, sessions or not.
    pub draining_since: UnixMillis,
    /// Since when the control plane has been up.
    pub up_since: UnixMillis,
    pub now: UnixMillis,
}

/// Claims the instances whose time is up for termination, in one statement: they are
/// stamped `terminating_utc_unix_ms` (so no late heartbeat or registration revives them)
/// and returned. Rows other transactions hold are left for the next pass; rows claimed
/// before and not yet removed (their termination failed) are claimed again.
pub fn claim_doomed(conn: &mut PgConnection, deadlines: &Deadlines) -> QueryResult<Vec<Doomed>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        instance_name: InstanceName,
        #[diesel(sql_type = diesel::sql_types::Text)]
        location: Region,
        #[diesel(sql_type = diesel::sql_types::Text)]
        cloud_provider_id: String,
    }
    use diesel::sql_types::BigInt;
    let rows: Vec<Row> = diesel::sql_query(
        "UPDATE hardware.instance_info AS i
         SET terminating_utc_unix_ms = COALESCE(i.terminating_utc_unix_ms, $5)
         FROM (
             SELECT instance_name FROM hardware.instance_info
             WHERE (status = 'PRE_CONNECTION' AND creation_time_utc_unix_ms < $1)
                OR (status = 'HOST_SERVICE_UNRESPONSIVE'
                    AND COALESCE(status_changed_utc_unix_ms, creation_time_utc_unix_ms) < $2)
                OR (status = 'DRAINING' AND (
                       (mandelbox_count = 0
                        AND GREATEST(COALESCE(status_changed_utc_unix_ms, creation_time_utc_unix_ms),
                                     COALESCE(emptied_utc_unix_ms, 0)) < $2)
                    OR (mandelbox_count > 0
                        AND GREATEST(last_updated_utc_unix_ms, $4) < $2)
                    OR COALESCE(status_changed_utc_unix_ms, creation_time_utc_unix_ms) < $3))
             ORDER BY instance_name
             FOR UPDATE SKIP LOCKED
         ) AS doomed
         WHERE i.instance_name = doomed.instance_name
         RETURNING i.instance_name, i.location, i.cloud_provider_id",
    )
    .bind::<BigInt, _>(deadlines.launched_before)
    .bind::<BigInt, _>(deadlines.lingering_since)
    .bind::<BigInt, _>(deadlines.draining_since)
    .bind::<BigInt, _>(deadlines.up_since)
    .bind::<BigInt, _>(deadlines.now)
    .load(conn)?;
    let mut doomed: Vec<Doomed> = rows
        .into_iter()
        .map(|row| Doomed {
            instance_name: row.instance_name,
            location: row.location,
            cloud_provider_id: row.cloud_provider_id,
        })
        .collect();
    doomed.sort_by(|a, b| a.instance_name.cmp(&b.instance_name));
    Ok(doomed)
}

/// Removes these instances (their mandelboxes go with them).
pub fn delete(conn: &mut PgConnection, names: &[InstanceName]) -> QueryResult<usize> {
    diesel::delete(instance_info::table.filter(instance_info::instance_name.eq_any(names)))
        .execute(conn)
}

/// One instance as fleet sizing sees it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = instance_info, check_for_backend(diesel::pg::Pg))]
pub struct Load {
    pub instance_name: InstanceName,
    pub status: InstanceStatus,
    pub mandelbox_capacity: i64,
    pub mandelbox_count: i64,
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
/// `keep` as `DRAINING`, busy or not (an image upgrade).
pub fn begin_drain_all_but(
    conn: &mut PgConnection,
    region: &Region,
    keep: &AmiId,
) -> QueryResult<Vec<DrainTarget>> {
    diesel::update(
        instance_info::table
            .filter(instance_info::location.eq(region))
            .filter(instance_info::aws_ami_id.ne(keep))
            .filter(
                instance_info::status
                    .eq_any([InstanceStatus::Active, InstanceStatus::PreConnection]),
            ),
    )
    .set(instance_info::status.eq(InstanceStatus::Draining))
    .returning(DrainTarget::as_returning())
    .get_results(conn)
}

/// Sets the status of these instances.
pub fn set_status(
    conn: &mut PgConnection,
    names: &[InstanceName],
    status: InstanceStatus,
) -> QueryResult<usize> {
    diesel::update(instance_info::table.filter(instance_info::instance_name.eq_any(names)))
        .set(instance_info::status.eq(status))
        .execute(conn)
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
