//! `hardware.mandelbox_info`: one row per live mandelbox.

use diesel::prelude::*;

use crate::prepared::Prepared;
use crate::schema::hardware::mandelbox_info;
use domain::{InstanceName, MandelboxId, MandelboxStatus, UnixMillis, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = mandelbox_info, primary_key(mandelbox_id))]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct Mandelbox {
    pub mandelbox_id: MandelboxId,
    pub user_id: UserId,
    pub instance_name: InstanceName,
    pub status: MandelboxStatus,
    pub creation_time_utc_unix_ms: UnixMillis,
}

/// Sets the status of mandelbox `id` if it is on `instance`; returns whether it was.
pub fn set_status_on(
    conn: &mut PgConnection,
    id: &MandelboxId,
    instance: &InstanceName,
    status: MandelboxStatus,
) -> QueryResult<bool> {
    diesel::update(
        mandelbox_info::table
            .find(id)
            .filter(mandelbox_info::instance_name.eq(instance)),
    )
    .set(mandelbox_info::status.eq(status))
    .execute(conn)
    .map(|updated| updated == 1)
}

/// Deletes mandelbox `id` if it is on `instance`; returns whether it was.
pub fn delete_on(
    conn: &mut PgConnection,
    id: &MandelboxId,
    instance: &InstanceName,
) -> QueryResult<bool> {
    diesel::delete(
        mandelbox_info::table
            .find(id)
            .filter(mandelbox_info::instance_name.eq(instance)),
    )
    .execute(conn)
    .map(|deleted| deleted == 1)
}

/// Removes `ALLOCATED` mandelboxes created before `cutoff`: their hosts never reported
/// them (a report moves a mandelbox out of `ALLOCATED`, and a report that commits while
/// this waits for its row is seen: PostgreSQL rechecks the status on the new row). Each
/// one removed is remembered at `now`, so that a late report for it is told it is gone
/// ([`expired_on`]). Returns how many.
pub fn delete_allocated_before(
    conn: &mut PgConnection,
    cutoff: UnixMillis,
    now: UnixMillis,
) -> QueryResult<usize> {
    Prepared::default()
        .sql(
            "WITH gone AS (DELETE FROM hardware.mandelbox_info \
             WHERE status = 'ALLOCATED' AND creation_time_utc_unix_ms < ",
        )
        .bigint(cutoff.as_millis())
        .sql(
            " RETURNING mandelbox_id, instance_name) \
             INSERT INTO hardware.expired_mandelbox \
             (mandelbox_id, instance_name, removed_utc_unix_ms) \
             SELECT mandelbox_id, instance_name, ",
        )
        .bigint(now.as_millis())
        .sql(
            " FROM gone ON CONFLICT (mandelbox_id) DO UPDATE \
             SET instance_name = EXCLUDED.instance_name, \
             removed_utc_unix_ms = EXCLUDED.removed_utc_unix_ms",
        )
        .execute(conn)
}

/// Whether mandelbox `id` of `instance` was removed by [`delete_allocated_before`]
/// (within the time such records are kept).
pub fn expired_on(
    conn: &mut PgConnection,
    id: &MandelboxId,
    instance: &InstanceName,
) -> QueryResult<bool> {
    use crate::schema::hardware::expired_mandelbox;
    diesel::select(diesel::dsl::exists(
        expired_mandelbox::table
            .filter(expired_mandelbox::mandelbox_id.eq(id.as_str()))
            .filter(expired_mandelbox::instance_name.eq(instance.as_str())),
    ))
    .get_result(conn)
}

/// Forgets the removals of [`delete_allocated_before`] older than `cutoff`; returns how
/// many.
pub fn purge_expired_before(conn: &mut PgConnection, cutoff: UnixMillis) -> QueryResult<usize> {
    use crate::schema::hardware::expired_mandelbox;
    diesel::delete(
        expired_mandelbox::table
            .filter(expired_mandelbox::removed_utc_unix_ms.lt(cutoff.as_millis())),
    )
    .execute(conn)
}

pub fn find(conn: &mut PgConnection, id: &MandelboxId) -> QueryResult<Option<Mandelbox>> {
    mandelbox_info::table
        .find(id)
        .select(Mandelbox::as_select())
        .first(conn)
        .optional()
}

/// The mandelboxes on `instance`, oldest first.
pub fn on_instance(
    conn: &mut PgConnection,
    instance: &InstanceName,
) -> QueryResult<Vec<Mandelbox>> {
    mandelbox_info::table
        .filter(mandelbox_info::instance_name.eq(instance))
        .order(mandelbox_info::creation_time_utc_unix_ms)
        .select(Mandelbox::as_select())
        .load(conn)
}

/// The mandelboxes of one region in one status.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct StatusCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub region: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub mandelboxes: i64,
}

/// Mandelboxes per (region of their instance, status), for the fleet gauges.
pub fn counts_by_region_and_status(conn: &mut PgConnection) -> QueryResult<Vec<StatusCount>> {
    diesel::sql_query(
        "SELECT i.location AS region, m.status, count(*)::bigint AS mandelboxes
         FROM hardware.mandelbox_info m
         JOIN hardware.instance_info i USING (instance_name)
         GROUP BY i.location, m.status
         ORDER BY 1, 2",
    )
    .load(conn)
}

/// How many mandelboxes each instance holds, per status (instances without any are left
/// out).
pub fn counts_by_instance_and_status(
    conn: &mut PgConnection,
) -> QueryResult<Vec<(InstanceName, MandelboxStatus, i64)>> {
    mandelbox_info::table
        .group_by((mandelbox_info::instance_name, mandelbox_info::status))
        .select((
            mandelbox_info::instance_name,
            mandelbox_info::status,
            diesel::dsl::count_star(),
        ))
        .load(conn)
}
