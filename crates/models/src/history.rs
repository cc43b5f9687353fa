//! Users' past sessions and what is predicted from them (`PLACEMENT=lifetime`, SPEC §5):
//! `hardware.session_history` (lengths only, the last [`KEPT_PER_USER`] of each user,
//! filled by a trigger whenever a used mandelbox's row goes), and what the prediction
//! job last wrote: `hardware.session_prediction` (each user's expected length) and
//! `hardware.region_session_lengths` (each region's distribution). Placement reads the
//! predictions inside `hardware.place_mandelbox`; mandelboxes carry their expected end.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Text};
use domain::{MandelboxId, UnixMillis, UserId};

use crate::Region;

/// How many past sessions of each user are kept (a trigger trims the rest).
pub const KEPT_PER_USER: usize = 20;

/// The quantiles a region's distribution is kept as (at the midpoints of as many equal
/// steps).
pub const REGION_POINTS: usize = 20;

fn millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX / 4)
}

/// A region's session lengths, as quantiles.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct RegionLengths {
    #[diesel(sql_type = Text)]
    pub region_name: Region,
    /// [`REGION_POINTS`] quantiles, shortest first, in seconds.
    #[diesel(sql_type = Array<Double>)]
    pub points: Vec<f64>,
}

/// The [`REGION_POINTS`] quantiles of every region's sessions that ended after `since`.
pub fn region_lengths(
    conn: &mut PgConnection,
    since: UnixMillis,
) -> QueryResult<Vec<RegionLengths>> {
    let fractions: Vec<f64> = (0..REGION_POINTS)
        .map(|n| (n as f64 + 0.5) / REGION_POINTS as f64)
        .collect();
    diesel::sql_query(
        "SELECT region_name, percentile_disc($1) WITHIN GROUP (ORDER BY length_secs) AS points \
         FROM hardware.session_history WHERE ended_utc_unix_ms > $2 \
         GROUP BY region_name ORDER BY region_name",
    )
    .bind::<Array<Double>, _>(fractions)
    .bind::<BigInt, _>(since.as_millis())
    .load(conn)
}

/// Writes what is known of `region`'s sessions: its quantiles, and the expected length
/// of a session of a user it knows nothing of.
pub fn store_region(
    conn: &mut PgConnection,
    region: &Region,
    points: &[f64],
    expected_secs: f64,
    now: UnixMillis,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO hardware.region_session_lengths \
             (region_name, points, expected_secs, computed_utc_unix_ms) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (region_name) DO UPDATE SET points = EXCLUDED.points, \
             expected_secs = EXCLUDED.expected_secs, \
             computed_utc_unix_ms = EXCLUDED.computed_utc_unix_ms",
    )
    .bind::<Text, _>(region.as_str())
    .bind::<Array<Double>, _>(points)
    .bind::<Double, _>(expected_secs.max(0.0))
    .bind::<BigInt, _>(now.as_millis())
    .execute(conn)?;
    Ok(())
}

/// One user's kept history.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct UserHistory {
    #[diesel(sql_type = Text)]
    pub user_id: UserId,
    /// The region of their latest session.
    #[diesel(sql_type = Text)]
    pub region_name: Region,
    /// Their sessions' lengths in seconds, oldest first.
    #[diesel(sql_type = Array<Double>)]
    pub lengths: Vec<f64>,
    /// When their latest session ended.
    #[diesel(sql_type = BigInt)]
    pub last_ended_utc_unix_ms: i64,
}

const USER_HISTORY: &str = "SELECT user_id, \
        (array_agg(region_name ORDER BY ended_utc_unix_ms DESC, id DESC))[1] AS region_name, \
        array_agg(length_secs ORDER BY ended_utc_unix_ms, id) AS lengths, \
        max(ended_utc_unix_ms) AS last_ended_utc_unix_ms \
     FROM hardware.session_history";

/// The histories of up to `limit` users with a session ended after `since`, those
/// whose latest ended earliest first (so that a caller can carry on from the last one's
/// `last_ended_utc_unix_ms`).
pub fn changed_since(
    conn: &mut PgConnection,
    since: UnixMillis,
    limit: i64,
) -> QueryResult<Vec<UserHistory>> {
    diesel::sql_query(format!(
        "{USER_HISTORY} WHERE user_id IN \
             (SELECT user_id FROM hardware.session_history WHERE ended_utc_unix_ms > $1) \
         GROUP BY user_id ORDER BY last_ended_utc_unix_ms, user_id LIMIT $2"
    ))
    .bind::<BigInt, _>(since.as_millis())
    .bind::<BigInt, _>(limit)
    .load(conn)
}

/// The histories of `users` (those without one are left out).
pub fn of_users(conn: &mut PgConnection, users: &[UserId]) -> QueryResult<Vec<UserHistory>> {
    let users: Vec<&str> = users.iter().map(UserId::as_str).collect();
    diesel::sql_query(format!(
        "{USER_HISTORY} WHERE user_id = ANY($1) GROUP BY user_id ORDER BY user_id"
    ))
    .bind::<Array<Text>, _>(users)
    .load(conn)
}

/// Writes each user's expected next session length, in seconds.
pub fn store_predictions(
    conn: &mut PgConnection,
    predictions: &[(UserId, f64)],
    now: UnixMillis,
) -> QueryResult<usize> {
    if predictions.is_empty() {
        return Ok(0);
    }
    let users: Vec<&str> = predictions.iter().map(|(u, _)| u.as_str()).collect();
    let expected: Vec<f64> = predictions.iter().map(|(_, e)| e.max(0.0)).collect();
    diesel::sql_query(
        "INSERT INTO hardware.session_prediction (user_id, expected_secs, computed_utc_unix_ms) \
         SELECT * , $3::bigint FROM unnest($1::text[], $2::float8[]) \
         ON CONFLICT (user_id) DO UPDATE SET expected_secs = EXCLUDED.expected_secs, \
             computed_utc_unix_ms = EXCLUDED.computed_utc_unix_ms",
    )
    .bind::<Array<Text>, _>(users)
    .bind::<Array<Double>, _>(expected)
    .bind::<BigInt, _>(now.as_millis())
    .execute(conn)
}

/// The expected length `hardware.place_mandelbox` would give `user`'s next session:
/// theirs, else `region`'s; `None` if nothing is known.
pub fn expected_secs(
    conn: &mut PgConnection,
    user: &UserId,
    region: &Region,
) -> QueryResult<Option<f64>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<Double>)]
        expected: Option<f64>,
    }
    let row: Row = diesel::sql_query(
        "SELECT coalesce( \
             (SELECT expected_secs FROM hardware.session_prediction WHERE user_id = $1), \
             (SELECT expected_secs FROM hardware.region_session_lengths WHERE region_name = $2) \
         ) AS expected",
    )
    .bind::<Text, _>(user.as_str())
    .bind::<Text, _>(region.as_str())
    .get_result(conn)?;
    Ok(row.expected)
}

/// A mandelbox still going past its expected end.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct Overdue {
    #[diesel(sql_type = Text)]
    pub mandelbox_id: MandelboxId,
    #[diesel(sql_type = Text)]
    pub user_id: UserId,
    #[diesel(sql_type = Text)]
    pub region_name: Region,
    #[diesel(sql_type = BigInt)]
    pub creation_time_utc_unix_ms: i64,
}

/// Up to `limit` mandelboxes whose expected end is before `now`, most overdue first.
pub fn overdue(conn: &mut PgConnection, now: UnixMillis, limit: i64) -> QueryResult<Vec<Overdue>> {
    diesel::sql_query(
        "SELECT m.mandelbox_id, m.user_id, i.location AS region_name, \
                m.creation_time_utc_unix_ms \
         FROM hardware.mandelbox_info m JOIN hardware.instance_info i USING (instance_name) \
         WHERE m.expected_end_utc_unix_ms < $1 \
         ORDER BY m.expected_end_utc_unix_ms LIMIT $2",
    )
    .bind::<BigInt, _>(now.as_millis())
    .bind::<BigInt, _>(limit)
    .load(conn)
}

/// Gives mandelboxes new expected ends; their instances' follow (a trigger).
pub fn set_expected_ends(
    conn: &mut PgConnection,
    ends: &[(MandelboxId, UnixMillis)],
) -> QueryResult<usize> {
    if ends.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = ends.iter().map(|(id, _)| id.as_str()).collect();
    let at: Vec<i64> = ends.iter().map(|(_, at)| at.as_millis()).collect();
    diesel::sql_query(
        "UPDATE hardware.mandelbox_info m SET expected_end_utc_unix_ms = e.at \
         FROM unnest($1::text[], $2::bigint[]) AS e(id, at) WHERE m.mandelbox_id = e.id",
    )
    .bind::<Array<Text>, _>(ids)
    .bind::<Array<BigInt>, _>(at)
    .execute(conn)
}

/// Adds a past session of `user` in `region` lasting `length_secs` that ended at
/// `ended` (an import of sessions held elsewhere; the trigger keeps the last
/// [`KEPT_PER_USER`]).
pub fn import(
    conn: &mut PgConnection,
    sessions: &[(UserId, Region, f64, UnixMillis)],
) -> QueryResult<usize> {
    if sessions.is_empty() {
        return Ok(0);
    }
    let users: Vec<&str> = sessions.iter().map(|s| s.0.as_str()).collect();
    let regions: Vec<&str> = sessions.iter().map(|s| s.1.as_str()).collect();
    let lengths: Vec<f64> = sessions.iter().map(|s| s.2.max(0.0)).collect();
    let ended: Vec<i64> = sessions.iter().map(|s| s.3.as_millis()).collect();
    diesel::sql_query(
        "INSERT INTO hardware.session_history \
             (user_id, region_name, started_utc_unix_ms, ended_utc_unix_ms, length_secs) \
         SELECT u, r, e - (l * 1000)::bigint, e, l \
         FROM unnest($1::text[], $2::text[], $3::float8[], $4::bigint[]) AS s(u, r, l, e)",
    )
    .bind::<Array<Text>, _>(users)
    .bind::<Array<Text>, _>(regions)
    .bind::<Array<Double>, _>(lengths)
    .bind::<Array<BigInt>, _>(ended)
    .execute(conn)
}

/// Forgets sessions that ended more than `keep` before `now`, and the predictions of
/// users left without any; how many sessions went.
pub fn purge(conn: &mut PgConnection, now: UnixMillis, keep: Duration) -> QueryResult<usize> {
    let gone =
        diesel::sql_query("DELETE FROM hardware.session_history WHERE ended_utc_unix_ms <= $1")
            .bind::<BigInt, _>(now.as_millis() - millis(keep))
            .execute(conn)?;
    if gone > 0 {
        diesel::sql_query(
            "DELETE FROM hardware.session_prediction p WHERE NOT EXISTS \
                 (SELECT 1 FROM hardware.session_history h WHERE h.user_id = p.user_id)",
        )
        .execute(conn)?;
    }
    Ok(gone)
}
