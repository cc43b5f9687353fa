//! `hardware.deployment`: the id of the deployment this database belongs to.

use diesel::prelude::*;

use crate::schema::hardware::deployment;

/// This database's deployment id, created on first use. Processes asking at once all get
/// the one that was stored first.
pub fn id(conn: &mut PgConnection) -> QueryResult<String> {
    diesel::insert_into(deployment::table)
        .values(deployment::deployment_id.eq(uuid::Uuid::new_v4().to_string()))
        .on_conflict_do_nothing()
        .execute(conn)?;
    deployment::table
        .select(deployment::deployment_id)
        .first(conn)
}
