//! `hardware.rate_limit_windows`: requests per client and minute, shared by every
//! server process, for a sliding-window limit.

use diesel::prelude::*;

use crate::schema::hardware::rate_limit_windows;
use domain::UnixMillis;

/// A window's length.
pub const WINDOW_MILLIS: i64 = 60_000;

/// A client's hits in the current window (this one included) and the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hits {
    pub current: i64,
    pub previous: i64,
    /// How far into the current window `now` is.
    pub elapsed_millis: i64,
}

impl Hits {
    /// The sliding-window estimate of the hits in the last minute: the previous
    /// window's hits weighted by how much of it the last minute still covers.
    pub fn in_last_minute(&self) -> f64 {
        let overlap = (WINDOW_MILLIS - self.elapsed_millis) as f64 / WINDOW_MILLIS as f64;
        self.previous as f64 * overlap + self.current as f64
    }
}

/// Counts a hit for `client` at `now`.
pub fn hit(conn: &mut PgConnection, client: &str, now: UnixMillis) -> QueryResult<Hits> {
    let now = now.as_millis();
    let start = now - now.rem_euclid(WINDOW_MILLIS);
    let current: i32 = diesel::insert_into(rate_limit_windows::table)
        .values((
            rate_limit_windows::client.eq(client),
            rate_limit_windows::window_start.eq(start),
            rate_limit_windows::hits.eq(1),
        ))
        .on_conflict((rate_limit_windows::client, rate_limit_windows::window_start))
        .do_update()
        .set(rate_limit_windows::hits.eq(rate_limit_windows::hits + 1))
        .returning(rate_limit_windows::hits)
        .get_result(conn)?;
    let previous: Option<i32> = rate_limit_windows::table
        .find((client, start - WINDOW_MILLIS))
        .select(rate_limit_windows::hits)
        .first(conn)
        .optional()?;
    Ok(Hits {
        current: i64::from(current),
        previous: i64::from(previous.unwrap_or(0)),
        elapsed_millis: now - start,
    })
}

/// Forgets windows that no longer count at `now` (all but the current and the previous
/// one); returns how many.
pub fn purge_stale(conn: &mut PgConnection, now: UnixMillis) -> QueryResult<usize> {
    let now = now.as_millis();
    let previous_start = now - now.rem_euclid(WINDOW_MILLIS) - WINDOW_MILLIS;
    diesel::delete(
        rate_limit_windows::table.filter(rate_limit_windows::window_start.lt(previous_start)),
    )
    .execute(conn)
}
