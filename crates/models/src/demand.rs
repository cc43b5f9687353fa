//! `hardware.unmet_demand`: users refused for lack of capacity, or waiting for a slot,
//! per region, across every server process (SPEC §7). The fleet's sizing adds them to
//! the free slots it wants, so one scaling round launches enough for all of them.
//!
//! A row counts while it has not expired and its user holds no mandelbox: a user who is
//! served stops counting without anything removing the row, and one who goes away stops
//! counting when it expires.

use std::time::Duration;

use diesel::dsl::{exists, not};
use diesel::prelude::*;
use diesel::upsert::excluded;
use domain::UnixMillis;

use crate::schema::hardware::{mandelbox_info, unmet_demand};
use crate::{Region, UserId};

/// How long a refusal counts, by default.
pub const REFUSAL_COUNTS_FOR: Duration = Duration::from_secs(60);

/// Records that `user` found no slot in `region` at `now` and may wait `wait`: the user
/// counts until `now` plus the longer of `counts_for` (usually [`REFUSAL_COUNTS_FOR`])
/// and `wait` (a later record only extends it).
pub fn record(
    conn: &mut PgConnection,
    user: &UserId,
    region: &Region,
    now: UnixMillis,
    counts_for: Duration,
    wait: Duration,
) -> QueryResult<usize> {
    let after =
        |span: Duration| now.as_millis() + i64::try_from(span.as_millis()).unwrap_or(i64::MAX / 4);
    let expires = after(counts_for.max(wait));
    let waiting_until = if wait.is_zero() { 0 } else { after(wait) };
    diesel::insert_into(unmet_demand::table)
        .values((
            unmet_demand::user_id.eq(user.as_str()),
            unmet_demand::region_name.eq(region.as_str()),
            unmet_demand::expires_utc_unix_ms.eq(expires),
            unmet_demand::waiting_until_utc_unix_ms.eq(waiting_until),
        ))
        .on_conflict(unmet_demand::user_id)
        .do_update()
        .set((
            unmet_demand::region_name.eq(excluded(unmet_demand::region_name)),
            unmet_demand::expires_utc_unix_ms.eq(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "GREATEST(hardware.unmet_demand.expires_utc_unix_ms, \
                 excluded.expires_utc_unix_ms)",
            )),
            unmet_demand::waiting_until_utc_unix_ms.eq(
                diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "GREATEST(hardware.unmet_demand.waiting_until_utc_unix_ms, \
                     excluded.waiting_until_utc_unix_ms)",
                ),
            ),
        ))
        .execute(conn)
}

/// The row's user holds no mandelbox (a served user stops counting).
#[diesel::dsl::auto_type]
fn holds_no_mandelbox() -> _ {
    not(exists(
        mandelbox_info::table.filter(mandelbox_info::user_id.eq(unmet_demand::user_id)),
    ))
}

/// The users of `region` still unserved at `now`.
pub fn in_region(conn: &mut PgConnection, region: &Region, now: UnixMillis) -> QueryResult<i64> {
    unmet_demand::table
        .filter(unmet_demand::region_name.eq(region.as_str()))
        .filter(unmet_demand::expires_utc_unix_ms.gt(now.as_millis()))
        .filter(holds_no_mandelbox())
        .count()
        .get_result(conn)
}

/// Forgets rows expired at `now`; returns how many.
pub fn purge_expired(conn: &mut PgConnection, now: UnixMillis) -> QueryResult<usize> {
    diesel::delete(
        unmet_demand::table.filter(unmet_demand::expires_utc_unix_ms.le(now.as_millis())),
    )
    .execute(conn)
}

/// The users still unserved at `now`, per region (for the fleet's gauges).
pub fn by_region(conn: &mut PgConnection, now: UnixMillis) -> QueryResult<Vec<(String, i64)>> {
    unmet_demand::table
        .filter(unmet_demand::expires_utc_unix_ms.gt(now.as_millis()))
        .filter(holds_no_mandelbox())
        .group_by(unmet_demand::region_name)
        .select((unmet_demand::region_name, diesel::dsl::count_star()))
        .load(conn)
}

/// The users waiting for a slot at `now` (until their deadline, unless served), per
/// region: requests that wait, across every process. A client that went away counts
/// until its deadline.
pub fn waiting_by_region(
    conn: &mut PgConnection,
    now: UnixMillis,
) -> QueryResult<Vec<(String, i64)>> {
    unmet_demand::table
        .filter(unmet_demand::waiting_until_utc_unix_ms.gt(now.as_millis()))
        .filter(holds_no_mandelbox())
        .group_by(unmet_demand::region_name)
        .select((unmet_demand::region_name, diesel::dsl::count_star()))
        .load(conn)
}
