//! Checks of the invariants assignment promises, for tests, benchmarks and operators.

use diesel::prelude::*;
use diesel::sql_types::BigInt;

/// How many rows break each invariant; all zero when the data is sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, QueryableByName)]
pub struct Violations {
    /// Instances holding more mandelboxes than their capacity.
    #[diesel(sql_type = BigInt)]
    pub instances_over_capacity: i64,
    /// Instances whose `mandelbox_count` differs from their rows in `mandelbox_info`.
    #[diesel(sql_type = BigInt)]
    pub instances_miscounted: i64,
    /// Users holding more mandelboxes than the limit.
    #[diesel(sql_type = BigInt)]
    pub users_over_limit: i64,
}

impl Violations {
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }
}

pub fn violations(conn: &mut PgConnection, per_user_limit: i64) -> QueryResult<Violations> {
    diesel::sql_query(
        "WITH actual AS (
             SELECT i.instance_name, i.mandelbox_capacity, i.mandelbox_count,
                    count(m.mandelbox_id) AS boxes
             FROM hardware.instance_info i
             LEFT JOIN hardware.mandelbox_info m USING (instance_name)
             GROUP BY i.instance_name
         )
         SELECT
             (SELECT count(*) FROM actual WHERE boxes > mandelbox_capacity)
                 AS instances_over_capacity,
             (SELECT count(*) FROM actual WHERE boxes <> mandelbox_count)
                 AS instances_miscounted,
             (SELECT count(*) FROM (
                 SELECT user_id FROM hardware.mandelbox_info
                 GROUP BY user_id HAVING count(*) > $1) AS over)
                 AS users_over_limit",
    )
    .bind::<BigInt, _>(per_user_limit)
    .get_result(conn)
}
