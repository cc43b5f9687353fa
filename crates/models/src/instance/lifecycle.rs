//! The lifecycle's reads and writes: unresponsive hosts, instances whose time is up.

use diesel::prelude::*;

use crate::schema::hardware::instance_info;
use domain::{InstanceName, InstanceStatus, Region, UnixMillis};

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
/// stamped `terminating_utc_unix_ms` (so no late heartbeat or registration revives them,
/// and no take-back: a consolidated one is no longer reclaimable) and returned. Rows
/// other transactions hold are left for the next pass; rows claimed before and not yet
/// removed (their termination failed) are claimed again.
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
         SET terminating_utc_unix_ms = COALESCE(i.terminating_utc_unix_ms, $5),
             reclaimable = false
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
