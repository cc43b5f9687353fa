//! `hardware.mandelbox_info`: one row per live mandelbox.

use diesel::prelude::*;

use crate::newtypes::{InstanceName, MandelboxId, MandelboxStatus, UnixMillis, UserId};
use crate::schema::hardware::mandelbox_info;

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

pub fn insert(conn: &mut PgConnection, mandelbox: &Mandelbox) -> QueryResult<()> {
    diesel::insert_into(mandelbox_info::table)
        .values(mandelbox)
        .execute(conn)
        .map(drop)
}

/// Serialises, until the end of the transaction, every transaction that takes this lock
/// for the same user, in every server process.
pub fn lock_user(conn: &mut PgConnection, user: &UserId) -> QueryResult<()> {
    // The two-key form: its key space does not overlap the one-key locks used elsewhere.
    diesel::sql_query("SELECT pg_advisory_xact_lock(1, hashtext($1))")
        .bind::<diesel::sql_types::Text, _>(user)
        .execute(conn)
        .map(drop)
}

/// How many mandelboxes `user` holds.
pub fn count_for_user(conn: &mut PgConnection, user: &UserId) -> QueryResult<i64> {
    mandelbox_info::table
        .filter(mandelbox_info::user_id.eq(user))
        .count()
        .get_result(conn)
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
